import type { Store, Machine } from '../store/index.ts';
import { SYSTEM_ACTOR, type AuditService } from '../broker/index.ts';
import type { JobContext } from './runner.ts';

/** What the reconciler needs of a manual driver (server/providers/manual). */
export interface MachineProber {
  readonly name: string;
  readonly healthIntervalMs: number;
  probeAll(now: () => number): Promise<{ machine: Machine; result: { ok: boolean; detail: string } }[]>;
}

export const UNREACHABLE = 'unreachable:';

/**
 * Consecutive failed probes before a ready machine is taken out of service: one lost probe (a
 * console busy for a moment, a dropped SYN on a loaded host) is not an outage, and taking the
 * machine out would restart it (a Wake-on-LAN packet, a new probe) for nothing.
 */
export const MISSES_BEFORE_UNREACHABLE = 2;

/**
 * Health of manual pools' machines: each pass probes every machine's console (RFB banner or
 * X.224 connection confirm). A ready or assigned machine that does not answer goes to `error`
 * (lastError "unreachable: ...") after MISSES_BEFORE_UNREACHABLE failed probes in a row, so it is
 * not handed out; once it answers again it goes to
 * `refreshing`, where the lifecycle sees the console answer and settles it back to ready
 * (or assigned to its owner). Machines in use are left alone: the session shows what happens.
 * A machine whose desktop is gone (its pool was deleted) is forgotten.
 */
export class MachineHealthReconciler {
  /** Failed probes in a row per machine id (this replica's passes; a new lease holder starts at 0). */
  private readonly misses = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly prober: MachineProber,
    private readonly audit: AuditService,
    private readonly busy: (desktopId: string) => boolean = () => false,
  ) {}

  async run(ctx: JobContext): Promise<void> {
    const probes = await this.prober.probeAll(() => ctx.now);
    const probed = new Set(probes.map((p) => p.machine.id));
    for (const id of this.misses.keys()) if (!probed.has(id)) this.misses.delete(id);
    for (const { machine: m, result } of probes) {
      if (!ctx.holdsLease()) return;
      const misses = result.ok ? 0 : (this.misses.get(m.id) ?? 0) + 1;
      if (misses) this.misses.set(m.id, misses);
      else this.misses.delete(m.id);
      const d = await this.store.desktops.get(m.id);
      const log = ctx.logger.child({ machine: m.name, desktop: m.id });
      if (!d || d.state === 'deleted') {
        await this.store.machines.remove(m.id);
        log.info('machine forgotten: its desktop is gone');
        await this.audit.record(SYSTEM_ACTOR, 'machine.forget', { type: 'machine', id: m.name }, { pool: m.pool, reason: 'desktop gone' });
        continue;
      }
      if (this.busy(d.id)) continue;
      if (!result.ok && misses >= MISSES_BEFORE_UNREACHABLE && (d.state === 'ready' || d.state === 'assigned') && !d.session) {
        const r = await this.store.desktops.transition(d.id, 'error', { expect: [d.state], reason: 'console not answering', now: ctx.now, fields: { lastError: `${UNREACHABLE} ${result.detail}`.slice(0, 500) } });
        if (!r.ok) continue;
        log.warn({ detail: result.detail }, 'machine console not answering: not handed out');
        await this.audit.record(SYSTEM_ACTOR, 'machine.unreachable', { type: 'machine', id: m.name }, { pool: m.pool, detail: result.detail }, 'failed');
      } else if (result.ok && d.state === 'error') {
        const r = await this.store.desktops.transition(d.id, 'refreshing', { expect: ['error'], reason: 'console answers again', now: ctx.now, fields: { failures: 0, nextAttemptAt: 0 } });
        if (!r.ok) continue;
        log.info('machine console answers again');
        await this.audit.record(SYSTEM_ACTOR, 'machine.reachable', { type: 'machine', id: m.name }, { pool: m.pool });
      }
    }
  }
}
