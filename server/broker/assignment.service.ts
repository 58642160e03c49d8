import { BrokerError, isErrorCode } from '../errors.ts';
import type { PoolAtRevision, Store } from '../store/index.ts';
import type { Metrics } from '../observability/index.ts';
import type { AuditService, Actor, PreparedAuditEntry } from './audit.service.ts';
import { isEntitled, locationAllows, type Desktop, type Pool, type Session } from './model.ts';

/** The user's files (server/shares), consulted around every desktop request. */
export interface HomeHook {
  /** Before: the pool's share is healthy and the user's folder exists; else throws share_unavailable. */
  prepare(actor: Actor, pool: Pool, user: string): Promise<void>;
  /** prepare() would succeed without doing anything (the folder was verified a moment ago on a healthy share). */
  prepared?(pool: Pool, user: string): boolean;
  /** After a ready desktop was handed over: it gets the user's folder (the driver may restart it). Something (e.g. the logon's answer) when a logon happened, for the timeline. */
  attach(actor: Actor, pool: Pool, desktop: Desktop, user: string): Promise<unknown>;
}

export interface DesktopRequestResult {
  outcome: 'existing' | 'assigned' | 'provisioning';
  session: Session;
  desktop: Desktop;
  /** For the logon timeline: request start, desktop chosen (ms), and how long mapping the user's folder took. */
  timings: { requestedAt: number; assignedAt: number; homeMs?: number };
}

/** Bookkeeping written with a request's result and its session.start audit entry (`entry`), in one command. */
export type Alongside = (r: DesktopRequestResult, entry: PreparedAuditEntry | undefined) => Promise<unknown>;

/** Hands users desktops. The decision itself is one atomic script in the store. */
export class AssignmentService {
  constructor(
    private readonly store: Store,
    private readonly audit: AuditService,
    private readonly metrics: Metrics,
    private readonly now: () => number = Date.now,
  ) {}

  private home: HomeHook | undefined;

  /** Wires in the user's files (app.ts); without it desktops are handed out without a home share. */
  useHome(hook: HomeHook): void {
    this.home = hook;
  }

  /**
   * `alongside`: bookkeeping about the result (the logon timeline), given the session.start audit
   * entry to write with it in one Redis command (none for a live session handed back). An entry
   * it leaves unsettled is written by itself.
   */
  async request(actor: Actor, poolName: string, o: { alongside?: Alongside } = {}): Promise<DesktopRequestResult> {
    const requestedAt = this.now();
    const started = performance.now();
    const principal = actor.principal;
    // The pool as this replica read it last (no round trip), checked again by the assignment
    // script: a pool changed since then answers pool_changed and is read afresh, and so is
    // one that would refuse the caller (a refusal is never decided on a remembered record).
    for (let attempt = 0; ; attempt++) {
      const read = principal ? await this.store.pools.forAssignment(poolName, attempt > 0) : null;
      const pool = read?.pool;
      // "No such pool" and "not yours" look the same to the caller; API keys are entitled to nothing.
      if (!principal || !pool || pool.deleting || !isEntitled(pool, principal)) {
        if (read?.cached) continue;
        throw new BrokerError('not_found', `No pool named "${poolName}".`);
      }
      // An entitled user may still be in the wrong place: pools restricted to locations need an enrolled device there.
      if (!locationAllows(pool, actor.device)) {
        if (read.cached) continue;
        await this.audit.record(actor, 'desktop.request', { type: 'pool', id: poolName }, { code: 'pool_location_restricted', device: actor.device?.id ?? null, location: actor.device?.location ?? null }, 'denied');
        throw new BrokerError('pool_location_restricted', actor.device ? `Pool "${poolName}" cannot be used from location "${actor.device.location}".` : `Pool "${poolName}" can only be used from enrolled devices at its locations.`);
      }
      const r = await this.requestFrom(actor, principal.id, poolName, read, { requestedAt, started }, o);
      if (r === 'read_again') continue;
      if (r !== 'pool_changed') return r;
      // Changed twice in a row while we decided: let the caller try again rather than loop.
      if (attempt >= 2) throw new BrokerError('conflict', `Pool "${poolName}" is being changed; try again.`);
    }
  }

  private async requestFrom(
    actor: Actor,
    user: string,
    poolName: string,
    read: PoolAtRevision,
    t: { requestedAt: number; started: number },
    o: { alongside?: Alongside },
  ): Promise<DesktopRequestResult | 'pool_changed' | 'read_again'> {
    const { pool, rev: poolRev } = read;
    // Never a desktop without the user's files: the share is checked (and the folder made) first.
    // A user going back to a live session is not stopped by a share outage (that desktop has its
    // files already), nor by a disabled pool or one in maintenance: those refuse only new sessions.
    // A folder verified a moment ago needs neither that check nor the look-up of a live session (one Redis read less per request).
    const prepare = this.home !== undefined && !this.home.prepared?.(pool, user);
    const held = prepare ? await this.store.desktops.assignmentOf(poolName, user) : null;
    const live = held ? (await this.store.desktops.get(held))?.session : '';
    if (this.home && prepare && !live) {
      try {
        await this.home.prepare(actor, pool, user);
      } catch (e) {
        // The share may be one the pool no longer uses: a refusal is decided on the pool read afresh.
        if (read.cached) return 'read_again';
        this.metrics.assignments.inc({ pool: poolName, outcome: e instanceof BrokerError ? e.code : 'error' });
        throw e;
      }
    }
    const r = await this.store.sessions.assign(poolName, user, actor.address, this.now(), poolRev);
    if (r.outcome === 'error' && r.code === 'pool_changed') return 'pool_changed';
    this.metrics.assignmentDuration.observe({ pool: poolName }, (performance.now() - t.started) / 1000);
    if (r.outcome === 'error') {
      this.metrics.assignments.inc({ pool: poolName, outcome: r.code });
      if (r.code === 'pool_exhausted') await this.audit.record(actor, 'desktop.request', { type: 'pool', id: poolName }, { code: r.code }, 'failed');
      throw new BrokerError(isErrorCode(r.code) ? r.code : 'internal_error', undefined, r.code === 'pool_exhausted' ? { retryAfterSeconds: 30 } : {});
    }
    this.metrics.assignments.inc({ pool: poolName, outcome: r.outcome });
    const timings: DesktopRequestResult['timings'] = { requestedAt: t.requestedAt, assignedAt: this.now() };
    // The records come back with the decision (assign.lua): no second round trip.
    const { session, desktop } = r;
    if (!session || !desktop) throw new BrokerError('conflict', 'The desktop changed while it was being assigned; try again.');
    if (this.home && r.outcome === 'assigned') {
      try {
        const homeStart = this.now();
        // Timed only when a logon happened (a guest without our agent maps nothing here).
        if (await this.home.attach(actor, pool, desktop, user)) timings.homeMs = this.now() - homeStart;
      } catch (e) {
        // The desktop could not get the user's folder: give it back rather than hand it out without files.
        await this.store.sessions.release(session.id, 'home share not attached', this.now()).catch(() => undefined);
        await this.audit.record(actor, 'desktop.request', { type: 'pool', id: poolName }, { code: 'share_unavailable', desktop: desktop.name, error: String((e as Error).message).slice(0, 300) }, 'failed');
        throw e instanceof BrokerError ? e : new BrokerError('share_unavailable', undefined, { retryAfterSeconds: 30, cause: e });
      }
    }
    const result: DesktopRequestResult = { outcome: r.outcome, session, desktop, timings };
    const start = r.outcome !== 'existing' ? this.audit.prepared(actor, 'session.start', { type: 'session', id: session.id }, { pool: poolName, desktop: desktop.name, outcome: r.outcome }) : undefined;
    await o.alongside?.(result, start);
    if (start && !start.settled) await start.writeAlone();
    return result;
  }
}
