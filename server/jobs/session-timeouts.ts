import type { Store } from '../store/index.ts';
import { SYSTEM_ACTOR, type AuditService, type Pool, type Session, type Desktop } from '../broker/index.ts';
import type { JobContext } from './runner.ts';

/** Why a session should be logged off now, or null. Pure, so the rules are unit-tested. */
export function timeoutReason(s: Session, pool: Pick<Pool, 'sessionPolicy'>, desktop: Pick<Desktop, 'state' | 'stateSince'> | null, now: number): string | null {
  const p = pool.sessionPolicy;
  if (p.maxSessionSeconds > 0 && now - s.createdAt > p.maxSessionSeconds * 1000) return 'maximum session length reached';
  if (s.state === 'disconnected' && now - s.disconnectedAt > p.logoffAfterDisconnectSeconds * 1000) return 'disconnected too long';
  if (s.state === 'starting' && desktop?.state === 'in_use') {
    // Never connected: the clock starts when the desktop became usable, not at the request.
    const since = Math.max(s.createdAt, desktop.stateSince);
    if (now - since > p.logoffAfterDisconnectSeconds * 1000) return 'never connected';
  }
  if (p.idleTimeoutSeconds > 0 && s.state === 'connected' && idleMs(s, now) > p.idleTimeoutSeconds * 1000) return 'idle timeout';
  return null;
}

/** The guest agent reports idle time every 30 s while a user is logged on; older reports are stale. */
export const GUEST_IDLE_FRESH_MS = 90_000;

/**
 * How long the user has been idle: the guest agent's value where it can tell (it sees the
 * session's input whatever path it came by), else the time since the tunnel last relayed
 * input (keys, mouse, touch, clipboard; screen updates and keep-alives do not count).
 */
export function idleMs(s: Pick<Session, 'lastActivityAt' | 'guestIdleSeconds' | 'guestIdleAt'>, now: number): number {
  if (s.guestIdleAt > 0 && now - s.guestIdleAt <= GUEST_IDLE_FRESH_MS) return s.guestIdleSeconds * 1000 + Math.max(0, now - s.guestIdleAt);
  return now - s.lastActivityAt;
}

export class SessionTimeouts {
  constructor(private readonly store: Store, private readonly audit: AuditService) {}

  async run(ctx: JobContext): Promise<void> {
    const pools = new Map((await this.store.pools.list()).map((p) => [p.name, p]));
    const ids = await this.store.sessions.liveIds();
    for (let i = 0; i < ids.length && ctx.holdsLease(); i += 200) {
      const sessions = await this.store.sessions.getMany(ids.slice(i, i + 200));
      const desktops = new Map((await this.store.desktops.getMany(sessions.map((s) => s.desktop))).map((d) => [d.id, d]));
      for (const s of sessions) {
        const pool = pools.get(s.pool);
        const reason = pool ? timeoutReason(s, pool, desktops.get(s.desktop) ?? null, ctx.now) : 'pool deleted';
        if (!reason) continue;
        const r = await this.store.sessions.release(s.id, reason, ctx.now);
        if (r) {
          ctx.logger.info({ session: s.id, user: s.user, reason }, 'session logged off');
          await this.audit.record(SYSTEM_ACTOR, 'session.logoff', { type: 'session', id: s.id }, { reason, user: s.user, desktop: r.desktopId });
        }
      }
    }
  }
}
