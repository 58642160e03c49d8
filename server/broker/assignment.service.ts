import { BrokerError, isErrorCode } from '../errors.ts';
import type { Store } from '../store/index.ts';
import type { Metrics } from '../observability/index.ts';
import type { AuditService, Actor } from './audit.service.ts';
import { isEntitled, type Desktop, type Session } from './model.ts';

export interface DesktopRequestResult {
  outcome: 'existing' | 'assigned' | 'provisioning';
  session: Session;
  desktop: Desktop;
}

/** Hands users desktops. The decision itself is one atomic script in the store. */
export class AssignmentService {
  constructor(
    private readonly store: Store,
    private readonly audit: AuditService,
    private readonly metrics: Metrics,
    private readonly now: () => number = Date.now,
  ) {}

  async request(actor: Actor, poolName: string): Promise<DesktopRequestResult> {
    const principal = actor.principal;
    const pool = await this.store.pools.get(poolName);
    // "No such pool" and "not yours" look the same to the caller; API keys are entitled to nothing.
    if (!principal || !pool || pool.deleting || !isEntitled(pool, principal)) throw new BrokerError('not_found', `No pool named "${poolName}".`);

    const r = await this.store.sessions.assign(poolName, principal.id, actor.address, this.now());
    if (r.outcome === 'error') {
      this.metrics.assignments.inc({ pool: poolName, outcome: r.code });
      if (r.code === 'pool_exhausted') await this.audit.record(actor, 'desktop.request', { type: 'pool', id: poolName }, { code: r.code }, 'failed');
      throw new BrokerError(isErrorCode(r.code) ? r.code : 'internal_error', undefined, r.code === 'pool_exhausted' ? { retryAfterSeconds: 30 } : {});
    }
    this.metrics.assignments.inc({ pool: poolName, outcome: r.outcome });
    const [session, desktop] = await Promise.all([this.store.sessions.get(r.sessionId), this.store.desktops.get(r.desktopId)]);
    if (!session || !desktop) throw new BrokerError('conflict', 'The desktop changed while it was being assigned; try again.');
    if (r.outcome !== 'existing') {
      await this.audit.record(actor, 'session.start', { type: 'session', id: session.id }, { pool: poolName, desktop: desktop.name, outcome: r.outcome });
    }
    return { outcome: r.outcome, session, desktop };
  }
}
