// What the helpdesk overview and session detail pages read, computed on the server so every
// helpdesk sees the same: the last hours of desktops and sessions per pool (written once a
// minute by server/jobs/pool-history.ts), alerts (pools out of spares, quarantined desktops,
// unavailable shares), and one session with its live tunnel figures and where it runs.
import type { Store } from '../store/index.ts';
import type { HistoryRepository, HistorySample } from '../store/history.repository.ts';
import type { SessionStats } from '../store/session-stats.repository.ts';
import type { Actor, AuditService } from './audit.service.ts';
import { BrokerError } from '../errors.ts';
import type { SessionService } from './session.service.ts';
import type { Session } from './model.ts';

export interface Alert {
  /** Stable for one condition (the console keys rows by it). */
  id: string;
  kind: 'pool_out_of_spares' | 'desktops_error' | 'share_unavailable';
  severity: 'warning' | 'critical';
  target: { type: 'pool' | 'share'; id: string };
  message: string;
}

export interface SessionDetail {
  session: Session;
  desktop: { id: string; name: string; host: string; provider: string; state: string } | null;
  pool: { name: string; displayName: string } | null;
  /** The open tunnel's figures (null while no tunnel is open or before its first report). */
  stats: SessionStats | null;
  /** Seconds since the user's last input (tunnel input, the session's activity, or the guest's idle report). */
  idleSeconds: number | null;
}

export class OverviewService {
  constructor(
    private readonly store: Store,
    private readonly history: HistoryRepository,
    private readonly sessions: SessionService,
    private readonly audit: AuditService,
    /** The configured shares and whether they answer (server/shares, cached probes). */
    private readonly shareHealth: () => Promise<{ name: string; ok: boolean; error: string }[]>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Per pool and summed over pools: the samples of the last `hours`, oldest first. */
  async historyOf(hours: number): Promise<{ from: number; to: number; pools: { pool: string; samples: HistorySample[] }[]; total: HistorySample[] }> {
    const to = this.now();
    const from = to - hours * 3600_000;
    const pools = await this.store.pools.list();
    const per = await Promise.all(pools.map(async (p) => ({ pool: p.name, samples: await this.history.since(p.name, from) })));
    const sums = new Map<number, HistorySample>();
    for (const { samples } of per) {
      for (const s of samples) {
        const t = sums.get(s.t) ?? { t: s.t, ready: 0, inUse: 0, provisioning: 0, error: 0, connected: 0, disconnected: 0 };
        t.ready += s.ready; t.inUse += s.inUse; t.provisioning += s.provisioning; t.error += s.error; t.connected += s.connected; t.disconnected += s.disconnected;
        sums.set(s.t, t);
      }
    }
    return { from, to, pools: per, total: [...sums.values()].sort((a, b) => a.t - b.t) };
  }

  /** Conditions the helpdesk should act on, worst first. */
  async alerts(): Promise<Alert[]> {
    const out: Alert[] = [];
    for (const p of await this.store.pools.list()) {
      if (p.deleting) continue;
      const c = await this.store.pools.counts(p.name);
      if (p.enabled && !p.maintenance && p.size.spare > 0 && c.ready === 0) {
        const atMax = c.total >= p.size.max;
        const building = c.provisioning + c.refreshing;
        out.push({
          id: `pool_out_of_spares:${p.name}`, kind: 'pool_out_of_spares', target: { type: 'pool', id: p.name },
          severity: atMax || building === 0 ? 'critical' : 'warning',
          message: `Pool ${p.displayName} (${p.name}) has no ready spare desktop (target ${p.size.spare}): ` +
            (atMax ? `all ${c.total} of its maximum ${p.size.max} desktops are taken; the next user waits or is refused.` : building ? `${building} being prepared.` : 'none is being prepared.'),
        });
      }
      if (c.error > 0) {
        out.push({
          id: `desktops_error:${p.name}`, kind: 'desktops_error', severity: 'critical', target: { type: 'pool', id: p.name },
          message: `${c.error} desktop${c.error === 1 ? '' : 's'} of pool ${p.displayName} (${p.name}) ${c.error === 1 ? 'is' : 'are'} in error (quarantined after repeated failures or found broken).`,
        });
      }
    }
    for (const s of await this.shareHealth()) {
      if (s.ok) continue;
      out.push({ id: `share_unavailable:${s.name}`, kind: 'share_unavailable', severity: 'critical', target: { type: 'share', id: s.name }, message: `Share ${s.name} is unavailable: ${s.error || 'its write probe failed'}. Users of its pools cannot get their folders.` });
    }
    const rank = { critical: 0, warning: 1 };
    return out.sort((a, b) => rank[a.severity] - rank[b.severity]);
  }

  /** Closes the user's viewer connection (on every replica); the session and desktop stay, like a closed tab. */
  async disconnect(actor: Actor, id: string): Promise<Session> {
    const session = await this.sessions.get(actor, id);
    if (session.state !== 'connected') throw new BrokerError('conflict', 'The user is not connected.');
    await this.store.tickets.publish({ type: 'disconnect', session: id });
    await this.audit.record(actor, 'session.disconnect', { type: 'session', id }, { user: session.user, desktop: session.desktop });
    return session;
  }

  /** One session for the detail page (helpdesk). */
  async sessionDetail(actor: Actor, id: string): Promise<SessionDetail> {
    const session = await this.sessions.get(actor, id);
    const [d, pool, stats] = await Promise.all([this.store.desktops.get(session.desktop), this.store.pools.get(session.pool), this.store.sessionStats.get(id)]);
    const now = this.now();
    const lastInput = Math.max(stats?.lastInputAt ?? 0, session.lastActivityAt || 0);
    let idleSeconds: number | null = lastInput ? Math.max(0, Math.round((now - lastInput) / 1000)) : null;
    // The guest's own idle report (its agent) is fresher than the tunnel when it is recent.
    if (session.guestIdleAt && now - session.guestIdleAt < 120_000) idleSeconds = Math.min(idleSeconds ?? Infinity, session.guestIdleSeconds + Math.round((now - session.guestIdleAt) / 1000));
    return {
      session,
      desktop: d ? { id: d.id, name: d.name, host: d.host, provider: d.provider, state: d.state } : null,
      pool: pool ? { name: pool.name, displayName: pool.displayName } : null,
      stats: session.state === 'connected' ? stats : null,
      idleSeconds: session.state === 'ended' ? null : idleSeconds,
    };
  }
}
