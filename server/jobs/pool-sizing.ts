import type { Store } from '../store/index.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import { makesDesktops } from './manual-pools.ts';
import { SYSTEM_ACTOR, type AuditService } from '../broker/index.ts';
import type { JobContext } from './runner.ts';

/** At most this many desktops created or deleted per pool per pass, so one pass stays short. */
const MAX_CHANGES_PER_PASS = 50;

/**
 * Keeps each pool between min and max with `spare` desktops ready (or on their way to ready),
 * and empties then removes pools marked for deletion.
 */
export class PoolSizing {
  constructor(private readonly store: Store, private readonly audit: AuditService, private readonly providers?: ProviderRegistry) {}

  async run(ctx: JobContext): Promise<void> {
    for (const pool of await this.store.pools.list()) {
      if (!ctx.holdsLease()) return;
      const log = ctx.logger.child({ pool: pool.name });
      if (pool.deleting) {
        await this.empty(pool.name, ctx);
        continue;
      }
      // Manual pools: the desktops are the machines an admin added; min/max/spare do not apply.
      if (this.providers && !makesDesktops(this.providers, pool.provider)) continue;
      const c = await this.store.pools.counts(pool.name);
      // Desktops being built or refreshed for nobody will be ready soon: count them as spare.
      const pending = await this.store.desktops.getMany([
        ...(await this.store.desktops.idsInState(pool.name, 'provisioning')),
        ...(await this.store.desktops.idsInState(pool.name, 'refreshing')),
      ]);
      // Ready desktops on a host that does not answer cannot be handed out: not spares.
      const unreachable = (await this.store.desktops.getMany(await this.store.desktops.idsInState(pool.name, 'ready'))).filter((d) => d.unreachableSince > 0).length;
      const spareSoon = c.ready - unreachable + pending.filter((d) => d.user === '').length;
      const live = c.total - c.deleting; // desktops that are or will be usable
      let create = 0;
      if (pool.enabled) create = Math.max(pool.size.spare - spareSoon, pool.size.min - live, 0);
      create = Math.min(create, pool.size.max - c.total, MAX_CHANGES_PER_PASS);
      for (let i = 0; i < create; i++) {
        const r = await this.store.desktops.provisionSpare(pool.name, ctx.now);
        if ('error' in r) {
          if (r.error !== 'pool_exhausted') log.warn({ code: r.error }, 'cannot add a desktop to the pool');
          break;
        }
        log.info({ desktop: r.id, name: r.name }, 'provisioning spare desktop');
      }
      // Over max (after a resize down): retire ready desktops first; busy ones stay until logoff.
      const surplus = Math.min(live - pool.size.max, c.ready, MAX_CHANGES_PER_PASS);
      if (surplus > 0) {
        const ready = (await this.store.desktops.idsInState(pool.name, 'ready')).slice(0, surplus);
        for (const id of ready) await this.store.desktops.transition(id, 'deleting', { expect: ['ready'], reason: 'pool shrunk', now: ctx.now });
        log.info({ count: ready.length }, 'deleting desktops above the pool maximum');
      }
    }
  }

  private async empty(pool: string, ctx: JobContext): Promise<void> {
    const desktops = await this.store.desktops.listByPool(pool);
    if (desktops.length === 0) {
      if (await this.store.pools.removeIfEmpty(pool)) {
        ctx.logger.info({ pool }, 'pool removed');
        await this.audit.record(SYSTEM_ACTOR, 'pool.removed', { type: 'pool', id: pool });
      }
      return;
    }
    for (const d of desktops.slice(0, MAX_CHANGES_PER_PASS)) {
      if (d.state === 'deleting' || d.state === 'deleted') continue;
      // provisioning/refreshing desktops finish their operation first, then go.
      if (d.state === 'provisioning' || d.state === 'refreshing') continue;
      await this.store.desktops.transition(d.id, 'deleting', { reason: 'pool deleted', now: ctx.now });
    }
  }
}
