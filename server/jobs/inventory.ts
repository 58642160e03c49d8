import type { Store } from '../store/index.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import { SYSTEM_ACTOR, type AuditService, type Desktop } from '../broker/index.ts';
import type { JobContext } from './runner.ts';

/**
 * A migration record whose last progress sample is older than this is taken as left over (a
 * broker that stopped mid-migration): the inventory acts on that desktop again.
 */
export const MIGRATION_QUIET_MS = 10 * 60_000;

/**
 * Compares what each provider runs with what the broker believes: orphans (in the hypervisor,
 * owned by no desktop) are destroyed; desktops the hypervisor no longer has are marked error;
 * usable desktops found powered off are started again; desktops whose host does not answer are
 * marked unreachable (and unmarked when it answers again).
 */
export class InventoryReconciler {
  constructor(
    private readonly store: Store,
    private readonly providers: ProviderRegistry,
    private readonly audit: AuditService,
    private readonly busy: (desktopId: string) => boolean = () => false,
  ) {}

  /** A desktop in use found powered off: its session ends there (jobs/guest-events.ts); true when one did. */
  poweredOff?: (desktopId: string) => Promise<boolean>;

  async run(ctx: JobContext): Promise<void> {
    const all: Desktop[] = [];
    for (const pool of await this.store.pools.list()) all.push(...(await this.store.desktops.listByPool(pool.name)));
    for (const provider of this.providers.list()) {
      if (!ctx.holdsLease()) return;
      const log = ctx.logger.child({ provider: provider.name });
      const mine = new Map(all.filter((d) => d.provider === provider.name).map((d) => [d.id, d]));
      let items;
      try {
        items = await provider.inventory();
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'inventory failed');
        continue;
      }
      const seen = new Set<string>();
      for (const item of items) {
        seen.add(item.desktopId);
        const d = mine.get(item.desktopId) ?? (await this.store.desktops.get(item.desktopId));
        if (!d || d.state === 'deleted') {
          if (this.busy(item.desktopId)) continue;
          log.warn({ desktop: item.desktopId, host: item.host }, 'removing orphan desktop from the hypervisor');
          await provider.destroy(item.desktopId).catch((err: Error) => log.error({ err: err.message }, 'orphan removal failed'));
          await this.audit.record(SYSTEM_ACTOR, 'desktop.orphan_removed', { type: 'desktop', id: item.desktopId }, { provider: provider.name, host: item.host });
        } else if ((item.power === 'unreachable') !== d.unreachableSince > 0) {
          await this.markReachability(d, item.power === 'unreachable', provider.name, item.host, ctx);
        } else if (item.power === 'stopped' && ['ready', 'assigned', 'in_use'].includes(d.state) && (this.busy(d.id) || (await this.moving(d.id, ctx.now)))) {
          // Being worked on, or live-migrating: a stopped source at the switch-over is not a guest that powered off.
          continue;
        } else if (item.power === 'stopped' && d.state === 'in_use' && this.poweredOff && (await this.poweredOff(d.id))) {
          // The user's session ended with the guest; the desktop went back per pool policy (next pass acts on that).
          log.info({ desktop: d.id }, 'session ended: its desktop was found powered off');
        } else if (item.power === 'stopped' && ['ready', 'assigned', 'in_use'].includes(d.state)) {
          log.info({ desktop: d.id }, 'starting a usable desktop found powered off');
          await provider.start(d.id).catch((err: Error) => log.warn({ err: err.message }, 'start failed'));
        }
      }
      for (const d of mine.values()) {
        if (seen.has(d.id) || !['ready', 'assigned', 'in_use'].includes(d.state) || this.busy(d.id) || (await this.moving(d.id, ctx.now))) continue;
        log.warn({ desktop: d.id, name: d.name }, 'desktop missing from its hypervisor');
        const r = await this.store.desktops.transition(d.id, 'error', {
          expect: [d.state],
          reason: 'missing from hypervisor',
          now: ctx.now,
          fields: { lastError: 'missing from its hypervisor', unreachableSince: 0 },
        });
        if (r.ok) await this.audit.record(SYSTEM_ACTOR, 'desktop.missing', { type: 'desktop', id: d.id }, { provider: provider.name }, 'failed');
      }
    }
  }

  /**
   * A live migration moves the desktop now (its record carries the running migration, sampled
   * recently): what the hosts show of it is in flux (a stopped source at the switch-over, no
   * domain for a moment). Read fresh: the pass's list of desktops may predate the migration.
   */
  private async moving(id: string, now: number): Promise<boolean> {
    const m = (await this.store.desktops.get(id))?.migration;
    return !!m && now - m.updatedAt < MIGRATION_QUIET_MS;
  }

  /**
   * Its host stopped (or started again) answering: a mark on the record, not a state, so the
   * desktop is neither error nor deleted and comes back by itself; assignment skips it meanwhile.
   */
  private async markReachability(d: Desktop, unreachable: boolean, provider: string, host: string, ctx: JobContext): Promise<void> {
    if (!(await this.store.desktops.markUnreachable(d.id, unreachable ? ctx.now : 0))) return;
    const details = { provider, host, state: d.state, ...(unreachable ? {} : { unreachableMs: ctx.now - d.unreachableSince }) };
    ctx.logger[unreachable ? 'warn' : 'info']({ desktop: d.id, name: d.name, host }, unreachable ? 'desktop unreachable: its host does not answer' : 'desktop reachable again');
    await this.audit.record(SYSTEM_ACTOR, unreachable ? 'desktop.unreachable' : 'desktop.reachable', { type: 'desktop', id: d.id }, details, unreachable ? 'failed' : undefined);
  }
}
