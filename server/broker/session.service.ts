import { BrokerError } from '../errors.ts';
import type { Store } from '../store/index.ts';
import type { SessionMessage } from '../store/sessions.repository.ts';
import type { Metrics } from '../observability/index.ts';
import type { AuditService, Actor, PreparedAuditEntry } from './audit.service.ts';
import type { DesktopRequestResult } from './assignment.service.ts';
import { hasRole, type Desktop, type LogonPhase, type Session, type SessionState } from './model.ts';

export interface SessionFilter {
  user?: string;
  pool?: string;
  state?: SessionState;
}

/** What the helpdesk's session table sorts by. */
export const SESSION_SORTS = ['user', 'pool', 'state', 'desktop', 'clientAddress', 'createdAt', 'connectedAt', 'disconnectedAt'] as const;
export type SessionSort = (typeof SESSION_SORTS)[number];

/** The part of the guest agents (server/agent) sessions use: messages shown inside the guest. */
export interface GuestMessenger {
  /** Best effort: true when the guest's agent showed it. */
  message(d: Pick<Desktop, 'id' | 'provider' | 'image'>, m: { title: string; text: string }): Promise<boolean>;
}

export type { SessionMessage };

/** How long a message waits for the viewer, and how many are kept per session. */
const MESSAGE_TTL_SECONDS = 3600;
const MESSAGES_KEPT = 20;
/** A guest that does not answer a message within this is reported as not reached. */
const GUEST_MESSAGE_TIMEOUT_MS = 5000;

export class SessionService {
  constructor(
    private readonly store: Store,
    private readonly audit: AuditService,
    private readonly now: () => number = Date.now,
    private readonly metrics?: Metrics,
  ) {}

  private guests: GuestMessenger | undefined;
  /** Whether a desktop's guest runs our agent, so its logon completes the timeline (app.ts wires the image's `agent`). */
  expectsGuestLogon: (d: Desktop) => Promise<boolean> = async () => false;

  /** Called after a logoff released a desktop (app.ts: the guest agent logs the user off a desktop that stays running). Must not throw. */
  onLogoff: ((user: string, r: { desktopId: string; desktopState: string; desktop?: Desktop | null }) => void) | undefined;

  /** Wires in the guest agents (app.ts); without them messages reach only the viewer. */
  useGuests(g: GuestMessenger): void {
    this.guests = g;
  }

  /** A session the actor may see: their own, or any for helpdesk and admin. */
  async get(actor: Actor, id: string): Promise<Session> {
    const s = await this.store.sessions.get(id);
    const p = actor.principal;
    if (!s || !p || (!hasRole(p, 'helpdesk') && s.user !== p.id)) throw new BrokerError('not_found', 'No such session.');
    return s;
  }

  /** The caller's own session, whatever their role ("not yours" looks like "not found"). */
  async own(actor: Actor, id: string): Promise<Session> {
    const s = await this.store.sessions.get(id);
    if (!s || !actor.principal || s.user !== actor.principal.id) throw new BrokerError('not_found', 'No such session.');
    return s;
  }

  async listLive(f: SessionFilter = {}): Promise<Session[]> {
    const ids = f.user ? await this.store.sessions.liveIdsOfUser(f.user) : f.pool ? await this.store.sessions.liveIdsOfPool(f.pool) : await this.store.sessions.liveIds();
    const all = await this.store.sessions.getMany(ids);
    return all
      .filter((s) => (!f.user || s.user === f.user) && (!f.pool || s.pool === f.pool) && (!f.state || s.state === f.state))
      .sort((a, b) => a.createdAt - b.createdAt);
  }

  /**
   * One page of live sessions for the helpdesk's table: `q` matches user, pool, state, desktop,
   * client address or device (case-insensitive); sorted by `sort` then start time.
   */
  async pageLive(f: SessionFilter & { q?: string; sort?: SessionSort; order?: 'asc' | 'desc'; offset: number; limit: number }): Promise<{ items: Session[]; total: number }> {
    const q = (f.q ?? '').toLowerCase();
    const rows = (await this.listLive(f)).filter((s) => !q || [s.user, s.pool, s.state, s.desktop, s.clientAddress, s.device?.name ?? ''].join('\n').toLowerCase().includes(q));
    const key = f.sort ?? 'createdAt';
    const dir = f.order === 'desc' ? -1 : 1;
    rows.sort((a, b) => {
      const x = a[key];
      const y = b[key];
      const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return dir * (c || a.createdAt - b.createdAt);
    });
    return { total: rows.length, items: rows.slice(f.offset, f.offset + f.limit) };
  }

  /** Logs several sessions off (each audited as a single logoff); every id gets its outcome. */
  async bulkLogoff(actor: Actor, ids: string[]): Promise<{ id: string; ok: boolean; error?: { code: string; message: string } }[]> {
    const out: { id: string; ok: boolean; error?: { code: string; message: string } }[] = [];
    for (const id of new Set(ids)) {
      try {
        await this.logoff(actor, id, 'helpdesk logoff');
        out.push({ id, ok: true });
      } catch (err) {
        const e = err instanceof BrokerError ? err : new BrokerError('internal_error');
        out.push({ id, ok: false, error: { code: e.code, message: e.message } });
      }
    }
    return out;
  }

  /** Logs the session off; its desktop goes back per the pool's policy. */
  async logoff(actor: Actor, id: string, reason = 'logoff'): Promise<Session> {
    const p = actor.principal;
    if (!p || !/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new BrokerError('not_found', 'No such session.');
    // One script checks that the session is the caller's (helpdesk: anyone's), ends it, writes
    // the session.logoff audit entry with it and answers with the records (release.lua); an
    // ended session is answered as it is.
    const entry = this.audit.forScript(actor, 'session.logoff', { type: 'session', id });
    const r = await this.store.sessions.releaseOwn(id, reason, this.now(), hasRole(p, 'helpdesk') ? '' : p.id, entry.args);
    if (r.outcome === 'not_found' || (r.outcome === 'not_live' && !r.session)) throw new BrokerError('not_found', 'No such session.');
    if (r.outcome === 'not_live') return r.session!;
    const { release } = r;
    entry.written({ reason, desktop: release.desktopId, desktopState: release.desktopState });
    if (release.session) this.onLogoff?.(release.session.user, release);
    return release.session ?? (await this.get(actor, id));
  }

  /** Tunnel events (the streaming layer reports them). */
  async connected(id: string): Promise<void> {
    await this.store.sessions.event(id, 'connected', this.now());
    await this.timeTunnel(id);
  }

  async disconnected(id: string): Promise<void> {
    await this.store.sessions.event(id, 'disconnected', this.now());
  }

  async activity(id: string): Promise<void> {
    await this.store.sessions.event(id, 'activity', this.now());
  }

  // ---- the logon timeline (docs/architecture.md "Logon timeline") ----

  /**
   * A desktop request was answered (me.router): records authentication (the login's duration,
   * from the user's HTTP session), assignment, home_mapped and, on a ready desktop, a boot wait
   * of 0. A request that found the user's live session records nothing (that is a reconnect).
   */
  async recordRequest(r: DesktopRequestResult, o: { loginMs?: number; audit?: PreparedAuditEntry } = {}): Promise<void> {
    if (r.outcome === 'existing') return;
    const t = r.timings;
    const phases: Partial<Record<LogonPhase, number>> = { assignment: t.assignedAt - t.requestedAt };
    if (o.loginMs !== undefined && Number.isFinite(o.loginMs)) phases.authentication = o.loginMs;
    if (t.homeMs !== undefined) phases.home_mapped = t.homeMs;
    if (r.desktop.state === 'in_use') phases.desktop_ready = 0;
    // Bounded: the answer to the user's request never waits on a guest.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expects = await Promise.race([this.expectsGuestLogon(r.desktop).catch(() => false), new Promise<boolean>((res) => (timer = setTimeout(() => res(false), 500)))]).finally(() => clearTimeout(timer));
    await this.recordPhases(r.session.id, phases, { requestedAt: t.requestedAt, answeredAt: this.now(), logonExpectsGuest: expects ? '1' : '0' }, o.audit);
  }

  /** The user's folder was mapped by the agent outside the request (a desktop built for a waiting user). */
  async recordHomeMapped(sessionId: string, ms: number): Promise<void> {
    await this.recordPhases(sessionId, { home_mapped: ms });
  }

  /** The guest's agent says the user's session is up (logon_complete). */
  async recordGuestLogon(sessionId: string, at: number): Promise<void> {
    // It may come before the request is answered: the store derives guest_logon (at − requestedAt) once both are known.
    await this.recordPhases(sessionId, {}, { guestLogonAt: at });
  }

  /**
   * The browser drew the first frame of a tunnel `ms` after Launch (own session only; once per
   * tunnel, else conflict). The first tunnel's report is the logon's first_frame.
   */
  async firstFrame(actor: Actor, id: string, ms: number): Promise<{ recorded: boolean }> {
    await this.own(actor, id);
    const r = await this.store.sessions.firstFrame(id, ms);
    if (!r.ok) throw new BrokerError(r.code, r.code === 'conflict' ? 'This connection already reported its first frame, or the session has ended.' : 'No such session.');
    if (r.recorded) this.metrics?.logonPhase.observe({ phase: 'first_frame' }, ms / 1000);
    if (r.usableMs !== undefined) this.metrics?.logonClickToUsable.observe(r.usableMs / 1000);
    return { recorded: r.recorded };
  }

  /** Boot wait of a built desktop and the tunnel's own time, at the first connection. */
  private async timeTunnel(id: string): Promise<void> {
    const s = await this.store.sessions.get(id);
    if (!s || s.logon.tunnel_connected !== undefined) return;
    const m = await this.store.sessions.logonMarkers(id);
    if (!m.answeredAt) return; // not requested through the API (no timeline)
    const now = this.now();
    const phases: Partial<Record<LogonPhase, number>> = {};
    let readyAt = m.answeredAt;
    if (s.logon.desktop_ready === undefined) {
      // Built or refreshed for this request: usable since it went in_use (else: now).
      const d = await this.store.desktops.get(s.desktop);
      readyAt = Math.min(now, Math.max(m.answeredAt, d?.state === 'in_use' && d.session === id ? d.stateSince : now));
      phases.desktop_ready = readyAt - m.answeredAt;
    }
    phases.tunnel_connected = now - readyAt;
    await this.recordPhases(id, phases);
  }

  /** `audit`: an entry written in the same command (AuditService.prepared), settled here. */
  private async recordPhases(id: string, phases: Partial<Record<LogonPhase, number>>, markers: Record<string, string | number> = {}, audit?: PreparedAuditEntry): Promise<void> {
    let r: Awaited<ReturnType<Store['sessions']['recordLogon']>>;
    try {
      r = await this.store.sessions.recordLogon(id, phases as Record<string, number>, markers, audit?.args);
    } catch (err) {
      audit?.failed(err);
      throw err;
    }
    audit?.written();
    for (const f of r.recorded) {
      const phase = f.startsWith('logon:') ? f.slice(6) : '';
      const ms = phases[phase as LogonPhase];
      if (ms !== undefined) this.metrics?.logonPhase.observe({ phase }, Math.max(0, ms) / 1000);
    }
    for (const [phase, ms] of Object.entries(r.derived)) this.metrics?.logonPhase.observe({ phase }, ms / 1000);
    if (r.usableMs !== undefined) this.metrics?.logonClickToUsable.observe(r.usableMs / 1000);
  }

  // ---- messages from the helpdesk ----

  /**
   * Shows a helpdesk message to the session's user: in their viewer (queued in Redis, streamed by
   * GET /me/sessions/{id}/messages from any replica) and, best effort, inside the guest.
   */
  async message(actor: Actor, id: string, m: { title: string; text: string }): Promise<{ id: number; viewer: boolean; guest: boolean }> {
    const s = await this.get(actor, id);
    if (s.state === 'ended') throw new BrokerError('conflict', 'The session has ended.');
    const at = this.now();
    const msgId = await this.store.sessions.pushMessage(id, { ...m, at, from: 'helpdesk' }, { ttlSeconds: MESSAGE_TTL_SECONDS, max: MESSAGES_KEPT });
    if (!msgId) throw new BrokerError('conflict', 'The session has ended.');
    let guest = false;
    const d = this.guests ? await this.store.desktops.get(s.desktop) : null;
    if (d && this.guests) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), GUEST_MESSAGE_TIMEOUT_MS)));
      guest = await Promise.race([this.guests.message(d, m).catch(() => false), late]).finally(() => clearTimeout(timer));
    }
    await this.audit.record(actor, 'session.message', { type: 'session', id }, { user: s.user, desktop: s.desktop, title: m.title, text: m.text.slice(0, 500), viewer: true, guest });
    return { id: msgId, viewer: true, guest };
  }

  /** Messages for the caller's own session with an id above `after`. */
  async messagesAfter(actor: Actor, id: string, after: number): Promise<{ session: Session; messages: SessionMessage[] }> {
    const session = await this.own(actor, id);
    return { session, messages: await this.store.sessions.messagesAfter(id, after) };
  }
}
