// The overview's history (GET /stats/history): per pool, desktops by state and sessions by
// state, one sample per minute for 24 h, in Redis (server/store/history.repository.ts). The
// runner holds the `pool-history` lease, so one replica writes while every replica reads; a
// pass reads the actual counts and writes this minute's sample (a second pass in the same
// minute replaces it), so missed or repeated passes are harmless. A pool's history is
// dropped once the pool is gone.
import type { Store } from '../store/index.ts';
import type { HistoryRepository } from '../store/history.repository.ts';
import type { JobContext } from './runner.ts';

/** How often the sample of the current minute is refreshed. */
export const POOL_HISTORY_INTERVAL_MS = 20_000;

export class PoolHistory {
  private known = new Set<string>();

  constructor(private readonly store: Store, private readonly history: HistoryRepository) {}

  async run(ctx: JobContext): Promise<void> {
    const pools = await this.store.pools.list();
    const names = new Set(pools.map((p) => p.name));
    for (const gone of this.known) if (!names.has(gone)) await this.history.drop(gone);
    this.known = names;
    for (const p of pools) {
      if (!ctx.holdsLease()) return;
      const c = await this.store.pools.counts(p.name);
      const sessions = await this.store.sessions.getMany(await this.store.sessions.liveIdsOfPool(p.name));
      await this.history.put(p.name, {
        t: ctx.now,
        ready: c.ready,
        inUse: c.in_use + c.assigned,
        provisioning: c.provisioning + c.refreshing,
        error: c.error,
        connected: sessions.filter((s) => s.state === 'connected').length,
        disconnected: sessions.filter((s) => s.state === 'disconnected').length,
      });
    }
  }
}
