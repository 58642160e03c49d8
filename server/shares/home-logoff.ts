// Reconcile check: nobody's folder stays mounted in a desktop nobody uses. A desktop that is
// ready (back in its floating pool) or assigned without a session (dedicated, owner gone) and
// whose agent still reports a logged-on user gets that user logged off. Covers every path the
// session logoff API does not (timeouts, a broker that died between release and logoff).
import type { Store } from '../store/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Desktop } from '../broker/index.ts';
import type { HomeShares } from './home.hook.ts';

export interface LogoffCheckContext {
  logger: Logger;
  holdsLease: () => boolean;
}

/** At most this many logoffs per pass (each is one agent round trip). */
const MAX_PER_PASS = 20;
/**
 * An agent's report of its user comes from its periodic ping (every 15 s): after a logoff it
 * may name the user a while longer. The same logoff is not sent again before this.
 */
const RETRY_AFTER_MS = 60_000;

export class StaleHomeLogoffs {
  /** desktop id → the user logged off and when (ms). */
  private readonly sent = new Map<string, { user: string; at: number }>();

  constructor(
    private readonly store: Store,
    private readonly home: HomeShares,
    private readonly now: () => number = Date.now,
  ) {}

  /** Nobody holds it: a ready desktop, or an assigned one with no live session. */
  private static unused(d: Desktop | null): boolean {
    return !!d && !d.session && (d.state === 'ready' || d.state === 'assigned');
  }

  async run(ctx: LogoffCheckContext): Promise<void> {
    const agents = this.home.guestAgents;
    if (!agents) return;
    if (this.sent.size > 10_000) this.sent.clear();
    let done = 0;
    for (const pool of await this.store.pools.list()) {
      const ids = [...(await this.store.desktops.idsInState(pool.name, 'ready')), ...(await this.store.desktops.idsInState(pool.name, 'assigned'))];
      for (const d of await this.store.desktops.getMany(ids)) {
        if (done >= MAX_PER_PASS || !ctx.holdsLease()) return;
        if (!StaleHomeLogoffs.unused(d)) continue;
        const st = await agents.status(d.id).catch(() => undefined);
        if (!st?.connected || !st.user) {
          this.sent.delete(d.id);
          continue;
        }
        const last = this.sent.get(d.id);
        if (last && last.user === st.user && this.now() - last.at < RETRY_AFTER_MS) continue;
        // Read again right before: a user handed this desktop meanwhile keeps their logon.
        if (!StaleHomeLogoffs.unused(await this.store.desktops.get(d.id))) continue;
        ctx.logger.info({ desktop: d.id, user: st.user, state: d.state }, 'unused desktop still has a user logged on: logging them off');
        await this.home.logoff(d, st.user);
        this.sent.set(d.id, { user: st.user, at: this.now() });
        done++;
      }
    }
  }
}
