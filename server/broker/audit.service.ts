import type { AuditFilter, AuditRepository, AuditEntry } from '../store/index.ts';
import type { Logger } from '../observability/index.ts';
import type { DeviceContext, Principal } from './model.ts';

/** Who did something and from where; every state-changing call carries one. */
export interface Actor {
  principal: Principal | null;
  address: string;
  /** The enrolled thin client the request came from (server/devices), if any. */
  device?: DeviceContext;
}

export const SYSTEM_ACTOR: Actor = { principal: { kind: 'user', id: 'system', role: 'admin', groups: [] }, address: '' };

export function actorName(a: Actor): string {
  if (!a.principal) return 'anonymous';
  return a.principal.kind === 'apikey' ? `apikey:${a.principal.id}` : a.principal.id;
}

/** One API call: did a service already write a denied/failed entry for it? */
export interface AuditedCall {
  refusalRecorded: boolean;
}
// Keyed by the actor object the route made for the call and handed down to the services: an
// AsyncLocalStorage would do the same but slows every promise in the process (async hooks).
const callOf = new WeakMap<Actor, AuditedCall>();

/** Marks one API call's actor so that a refusal the services audit themselves is not audited twice. */
export function trackAuditedCall(actor: Actor, call: AuditedCall): void {
  callOf.set(actor, call);
}

/** What a refused call is audited with: the error's code and message (and field). */
export interface Refusal {
  code: string;
  status: number;
  message: string;
  field?: string;
}

/** An entry's fields but its details: who did what to which target, from where, with what outcome. */
function entryOf(actor: Actor, action: string, target: { type: string; id: string }, outcome: AuditEntry['outcome']): Omit<AuditEntry, 'id' | 'at' | 'details'> {
  return { actor: actorName(actor), role: actor.principal?.role ?? '', action, targetType: target.type, target: target.id, address: actor.address, outcome };
}

/** An audit entry a store script writes with other bookkeeping (AuditService.prepared). */
export interface PreparedAuditEntry {
  args: string[];
  settled: boolean;
  written(): void;
  failed(err: unknown): void;
  writeAlone(): Promise<void>;
}

export class AuditService {
  /** `watch` sees every entry as it is written (metrics count logins from here: one place for every authenticator). */
  constructor(private readonly repo: AuditRepository, private readonly logger: Logger, private readonly watch?: (action: string, outcome: AuditEntry['outcome'], details: Record<string, unknown>) => void) {}

  /**
   * Writes one entry. An audit write failure is logged, not thrown: the action it records has
   * already happened, and failing the request would suggest otherwise.
   */
  async record(
    actor: Actor,
    action: string,
    target: { type: string; id: string },
    details: Record<string, unknown> = {},
    outcome: AuditEntry['outcome'] = 'ok',
  ): Promise<void> {
    if (outcome !== 'ok') {
      const call = callOf.get(actor);
      if (call) call.refusalRecorded = true;
    }
    this.watch?.(action, outcome, details);
    try {
      await this.repo.append({ ...entryOf(actor, action, target, outcome), details });
    } catch (err) {
      this.writeFailed(err, action, target);
    }
  }

  /** An entry that could not be written: logged, not thrown (the action it records has happened). */
  private writeFailed(err: unknown, action: string, target: { type: string; id: string }): void {
    this.logger.error({ err: (err as Error).message, action, target }, 'audit write failed');
  }

  /**
   * The entry of an action that a store script performs and writes with its change, atomically
   * (the script adds the details it knows): pass `args` to the script, then call `written` with
   * the details once it has run and written the entry.
   */
  forScript(actor: Actor, action: string, target: { type: string; id: string }, outcome: AuditEntry['outcome'] = 'ok'): { args: string[]; written: (details: Record<string, unknown>) => void } {
    return {
      args: this.repo.scriptArgs(entryOf(actor, action, target, outcome)),
      written: (details) => this.watch?.(action, outcome, details),
    };
  }

  /**
   * An entry whose details are known now, for a store script to write beside other bookkeeping
   * in one command (the session.start entry with the logon timeline): pass `args` to it, then
   * call `written()` once it ran or `failed(err)` when it did not (logged, not thrown, as in
   * record()). `settled` tells whether either happened; `writeAlone()` writes it by itself.
   */
  prepared(actor: Actor, action: string, target: { type: string; id: string }, details: Record<string, unknown>, outcome: AuditEntry['outcome'] = 'ok'): PreparedAuditEntry {
    const e = { ...entryOf(actor, action, target, outcome), details };
    const entry: PreparedAuditEntry = {
      args: this.repo.entryArgs(e),
      settled: false,
      written: () => {
        entry.settled = true;
        this.watch?.(action, outcome, details);
      },
      failed: (err) => {
        entry.settled = true;
        this.writeFailed(err, action, target);
      },
      writeAlone: () => this.record(actor, action, target, details, outcome),
    };
    return entry;
  }

  /**
   * A refused state-changing call: outcome `denied` when the broker refused it (4xx: invalid,
   * forbidden, not found, conflict), `failed` when it was tried and failed (5xx: provider error).
   */
  refused(actor: Actor, action: string, target: { type: string; id: string }, r: Refusal, details: Record<string, unknown> = {}): Promise<void> {
    const why = { code: r.code, message: r.message.slice(0, 300), ...(r.field ? { field: r.field } : {}) };
    return this.record(actor, action, target, { ...details, ...why }, r.status >= 500 ? 'failed' : 'denied');
  }

  query(f: AuditFilter) {
    return this.repo.query(f);
  }
}
