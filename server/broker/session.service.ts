import { BrokerError } from '../errors.ts';
import type { Store } from '../store/index.ts';
import type { AuditService, Actor } from './audit.service.ts';
import { hasRole, type Session, type SessionState } from './model.ts';

export interface SessionFilter {
  user?: string;
  pool?: string;
  state?: SessionState;
}

export class SessionService {
  constructor(private readonly store: Store, private readonly audit: AuditService, private readonly now: () => number = Date.now) {}

  /** A session the actor may see: their own, or any for helpdesk and admin. */
  async get(actor: Actor, id: string): Promise<Session> {
    const s = await this.store.sessions.get(id);
    const p = actor.principal;
    if (!s || !p || (!hasRole(p, 'helpdesk') && s.user !== p.id)) throw new BrokerError('not_found', 'No such session.');
    return s;
  }

  async listLive(f: SessionFilter = {}): Promise<Session[]> {
    const ids = f.user ? await this.store.sessions.liveIdsOfUser(f.user) : f.pool ? await this.store.sessions.liveIdsOfPool(f.pool) : await this.store.sessions.liveIds();
    const all = await this.store.sessions.getMany(ids);
    return all
      .filter((s) => (!f.user || s.user === f.user) && (!f.pool || s.pool === f.pool) && (!f.state || s.state === f.state))
      .sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Logs the session off; its desktop goes back per the pool's policy. */
  async logoff(actor: Actor, id: string, reason = 'logoff'): Promise<Session> {
    const s = await this.get(actor, id);
    if (s.state === 'ended') return s;
    const r = await this.store.sessions.release(id, reason, this.now());
    if (r) await this.audit.record(actor, 'session.logoff', { type: 'session', id }, { reason, desktop: r.desktopId, desktopState: r.desktopState });
    return (await this.store.sessions.get(id)) ?? s;
  }

  /** Tunnel events (the streaming layer reports them). */
  async connected(id: string): Promise<void> {
    await this.store.sessions.event(id, 'connected', this.now());
  }

  async disconnected(id: string): Promise<void> {
    await this.store.sessions.event(id, 'disconnected', this.now());
  }

  async activity(id: string): Promise<void> {
    await this.store.sessions.event(id, 'activity', this.now());
  }
}
