// What the guest says about its user's session (server/agent events) applied to the broker's
// session: the user logged off inside the guest or the guest powered off → the session ends
// (its desktop goes back per pool policy, as any logoff); the guest logon done → the logon
// timeline's guest_logon; idle time → the idle timeout's input. The inventory reports desktops
// it finds powered off here too. Events are level-safe: one about an ended session, another
// user, or older than the session is ignored, so duplicates and stragglers change nothing.
import type { Store } from '../store/index.ts';
import { SYSTEM_ACTOR, type AuditService, type Session, type SessionService } from '../broker/index.ts';
import type { Logger } from '../observability/index.ts';

export interface GuestEvent {
  desktop: string;
  event: 'logon_complete' | 'session_end' | 'poweroff' | 'idle';
  user?: string;
  idleSeconds?: number;
  at: number;
}

/** Where guest events come from (server/agent's Agents). */
export interface GuestEventSource {
  on(event: 'guest', cb: (e: GuestEvent) => void): void;
}

export const GUEST_LOGOFF_REASON = 'guest logoff';
export const GUEST_POWEROFF_REASON = 'guest powered off';

export class GuestEvents {
  private readonly log: Logger;
  /** The name a broker user has inside the guest (server/shares HomeShares.guestUser; app.ts wires it). */
  guestUserOf: (userId: string) => string = (u) => u;

  constructor(
    private readonly store: Store,
    private readonly sessions: SessionService,
    private readonly audit: AuditService,
    logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.log = logger.child({ component: 'guest-events' });
  }

  /** Subscribes to a source's guest events (errors are logged, never thrown into the source). */
  subscribe(source: GuestEventSource): void {
    source.on('guest', (e) => {
      this.handle(e).catch((err: unknown) => this.log.warn({ desktop: e.desktop, event: e.event, err: (err as Error).message }, 'guest event not applied'));
    });
  }

  async handle(e: GuestEvent): Promise<void> {
    const s = await this.liveSessionOf(e.desktop, e.user, e.at);
    if (!s) return;
    switch (e.event) {
      case 'logon_complete':
        await this.sessions.recordGuestLogon(s.id, e.at);
        return;
      case 'idle':
        if (typeof e.idleSeconds === 'number' && Number.isFinite(e.idleSeconds) && e.idleSeconds >= 0) await this.store.sessions.guestIdle(s.id, Math.min(e.idleSeconds, 10 * 365 * 86400), e.at);
        return;
      case 'session_end':
        await this.end(s, GUEST_LOGOFF_REASON, e.event);
        return;
      case 'poweroff':
        await this.end(s, GUEST_POWEROFF_REASON, e.event);
        return;
    }
  }

  /** The inventory found the desktop powered off while a session was on it. Returns whether a session ended. */
  async poweredOff(desktopId: string): Promise<boolean> {
    const s = await this.liveSessionOf(desktopId, undefined, this.now());
    return s ? this.end(s, GUEST_POWEROFF_REASON, 'inventory') : false;
  }

  private async liveSessionOf(desktopId: string, user: string | undefined, at: number): Promise<Session | null> {
    const d = await this.store.desktops.get(desktopId);
    if (!d?.session) return null;
    const s = await this.store.sessions.get(d.session);
    if (!s || s.state === 'ended' || s.desktop !== d.id) return null;
    // About the previous holder (a late event), or from before this session began: not this session's.
    if ((user && user !== s.user && user !== this.guestUserOf(s.user)) || at < s.createdAt) return null;
    return s;
  }

  private async end(s: Session, reason: string, source: string): Promise<boolean> {
    const r = await this.store.sessions.release(s.id, reason, this.now());
    if (!r) return false;
    this.log.info({ session: s.id, user: s.user, desktop: r.desktopId, reason, source }, 'session ended from the guest');
    // As any logoff: a desktop that stays running gets the user logged off (their folder unmounted).
    if (source === 'session_end') this.sessions.onLogoff?.(s.user, r);
    await this.audit.record(SYSTEM_ACTOR, 'session.logoff', { type: 'session', id: s.id }, { reason, user: s.user, desktop: r.desktopId, desktopState: r.desktopState, source });
    return true;
  }
}
