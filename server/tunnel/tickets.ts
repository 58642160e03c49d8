// Connection tickets. The browser holds only an opaque random id (256 bits). Redis holds the
// connection settings under SHA-256(id), encrypted with AES-256-GCM under a key derived from
// the tunnel secret AND the id: neither a Redis dump alone nor the secret alone opens a ticket,
// and nothing the browser receives names the console's host, port or password. A ticket lives
// `tunnel.ticketTtlSeconds` and is taken from Redis with GETDEL before guacd is contacted, so
// it works once even when two WebSockets race with it. It is no bearer token: it is bound to
// the login that asked for it (a hash of the cookie session id, or the API key id) and only
// that login can redeem it.
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { BrokerError } from '../errors.ts';
import { Status } from '../gateway/protocol.ts';
import { derivedKey, type Store } from '../store/index.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import type { Config } from '../config/index.ts';
import { actorName, hasRole, type Actor, type Broker } from '../broker/index.ts';
import type { Login } from '../auth/index.ts';
import { consoleSettings, SHADOW_SETTINGS, type GuacSettings, type DriveRedirect } from './settings.ts';
import type { Pool, RecordingPolicy } from '../broker/index.ts';

export const TUNNEL_PATH = '/api/v1/tunnel';

export interface Ticket {
  v: 1;
  kind: 'connect' | 'shadow';
  /** Who may use it: the session's user (connect) or the helpdesk actor (shadow). */
  user: string;
  /** The login that asked for it (Login.binding); only that login redeems it. */
  login: string;
  session: string;
  desktop: string;
  /** Expiry, ms since the epoch. */
  exp: number;
  protocol: 'vnc' | 'rdp';
  settings: GuacSettings;
  /** shadow: the guacd connection id to join, and the guacd that holds it (host:port). */
  join?: string;
  guacd?: string;
  /** shadow: the user handed control to the helpdesk (input allowed; server/broker/shadow.service.ts). */
  control?: boolean;
  /** connect: the desktop's pool and its recording policy when the ticket was issued (the tunnel records 'on'/'notify'). */
  pool?: string;
  recording?: RecordingPolicy;
}

/** What the API hands the browser. */
export interface IssuedTicket {
  ticket: string;
  tunnel: string;
  expiresAt: string;
  readOnly: boolean;
  /** The session is recorded: true (policy on), 'notify' (on, and the viewer tells the user), false (off). */
  recording: boolean | 'notify';
}

/** Why a tunnel was refused (audit `tunnel.refused`, logs, metrics). */
export type RefusalReason =
  | 'no_ticket' | 'ticket_in_url' | 'invalid_ticket' | 'expired_ticket' | 'no_login' | 'other_login'
  | 'foreign_origin' | 'session_ended' | 'overrun' | 'unavailable' | 'recording_unavailable';

/** A refused ticket, with the Guacamole status the WebSocket is closed with. */
export class TicketError extends Error {
  constructor(message: string, readonly status: number, readonly reason: RefusalReason, readonly ticket?: Ticket) {
    super(message);
    this.name = 'TicketError';
  }
}

const UNAVAILABLE = 'The broker cannot check tickets right now; try again.';

const TICKET_RE = /^[A-Za-z0-9_-]{43}$/;

export class TicketService {
  private master: Promise<Buffer> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly d: {
      store: Store; broker: Broker; providers: ProviderRegistry; config: Config; now?: () => number;
      /** The user's folder as an RDP drive (server/shares), for RDP consoles through guacd. */
      drive?: (pool: Pool, user: string) => DriveRedirect;
    },
  ) {
    this.now = d.now ?? Date.now;
  }

  private key(): Promise<Buffer> {
    this.master ??= this.d.store.tickets.secret(this.d.config.tunnel.secret).then(
      (s) => derivedKey(s, 'tunnel tickets v1'),
      (err: unknown) => {
        this.master = undefined;
        throw err;
      },
    );
    return this.master;
  }

  private static lookup(id: string): string {
    return createHash('sha256').update(id).digest('base64url');
  }

  private async seal(t: Omit<Ticket, 'v' | 'exp'>): Promise<IssuedTicket> {
    const ttl = this.d.config.tunnel.ticketTtlSeconds;
    const ticket: Ticket = { v: 1, ...t, exp: this.now() + ttl * 1000 };
    const id = randomBytes(32).toString('base64url');
    const lookup = TicketService.lookup(id);
    const key = createHmac('sha256', await this.key()).update(id).digest();
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(Buffer.from(lookup));
    const body = Buffer.concat([c.update(JSON.stringify(ticket), 'utf8'), c.final()]);
    const sealed = Buffer.concat([iv, c.getAuthTag(), body]).toString('base64url');
    if (!(await this.d.store.tickets.put(lookup, sealed, ttl))) throw new Error('ticket id collision');
    const recording = t.kind === 'connect' && t.recording && t.recording !== 'off' ? (t.recording === 'notify' ? 'notify' : true) : false;
    return { ticket: id, tunnel: TUNNEL_PATH, expiresAt: new Date(ticket.exp).toISOString(), readOnly: t.kind === 'shadow' && !t.control, recording };
  }

  /** A ticket for the session's own user (404 for anyone else's session, like a missing one), bound to `login`. */
  async issueConnect(actor: Actor, login: Login | null, sessionId: string): Promise<IssuedTicket> {
    const p = actor.principal;
    const s = await this.d.store.sessions.get(sessionId);
    if (!p || p.kind !== 'user' || !login || login.principal.id !== p.id || !s || s.user !== p.id || s.state === 'ended') throw new BrokerError('not_found', 'No such session.');
    const desktop = await this.d.store.desktops.get(s.desktop);
    if (!desktop || desktop.session !== s.id) throw new BrokerError('not_found', 'No such session.');
    if (desktop.state !== 'in_use') {
      throw new BrokerError('conflict', 'The desktop is still being prepared; try again in a moment.', { retryAfterSeconds: 2 });
    }
    const provider = this.d.providers.get(desktop.provider);
    let ep;
    try {
      ep = await provider.console(desktop.id);
    } catch (err) {
      throw new BrokerError('provider_error', 'The desktop console is not reachable.', { cause: err });
    }
    if (ep.protocol !== 'vnc' && !this.d.config.guacd.host) {
      throw new BrokerError('not_supported', 'This desktop needs an external guacd (guacd.host) for its RDP console.');
    }
    const pool = await this.d.store.pools.get(desktop.pool);
    const drive = pool && ep.protocol === 'rdp' && this.d.drive ? this.d.drive(pool, p.id) : undefined;
    const recording = pool?.recording ?? 'off';
    return this.seal({ kind: 'connect', user: p.id, login: login.binding, session: s.id, desktop: desktop.id, protocol: ep.protocol, settings: consoleSettings(ep, drive), pool: desktop.pool, recording });
  }

  /** A read-only ticket joining the session's live connection (helpdesk; audited), bound to `login`. */
  async issueShadow(actor: Actor, login: Login | null, sessionId: string, o: { control?: boolean } = {}): Promise<IssuedTicket> {
    if (!login) throw new BrokerError('unauthenticated');
    const s = await this.d.store.sessions.get(sessionId);
    if (!s || s.state === 'ended') throw new BrokerError('not_found', 'No such session.');
    const tun = await this.d.store.tickets.tunnel(s.id);
    if (s.state !== 'connected' || !tun?.guacConnection) throw new BrokerError('conflict', 'The session has no live connection to shadow.');
    const issued = await this.seal({
      kind: 'shadow', user: actorName(actor), login: login.binding, session: s.id, desktop: s.desktop, protocol: 'vnc', settings: o.control ? {} : SHADOW_SETTINGS, join: tun.guacConnection, guacd: tun.guacd, ...(o.control ? { control: true } : {}),
    });
    await this.d.broker.audit.record(actor, 'session.shadow', { type: 'session', id: s.id }, { user: s.user, desktop: s.desktop, readOnly: !o.control });
    return issued;
  }

  /**
   * Takes the ticket from Redis (once: it is gone whatever happens next) and opens it. Used
   * alone to burn a ticket that leaked (sent in a URL).
   */
  async take(id: string): Promise<Ticket> {
    if (!TICKET_RE.test(id)) throw new TicketError('Invalid ticket.', Status.CLIENT_UNAUTHORIZED, 'invalid_ticket');
    const lookup = TicketService.lookup(id);
    let sealed: string | null;
    let key: Buffer;
    try {
      sealed = await this.d.store.tickets.take(lookup);
      key = await this.key();
    } catch {
      throw new TicketError(UNAVAILABLE, Status.UPSTREAM_UNAVAILABLE, 'unavailable');
    }
    if (!sealed) throw new TicketError('The ticket is unknown, expired or already used.', Status.CLIENT_UNAUTHORIZED, 'invalid_ticket');
    let t: Ticket;
    try {
      const raw = Buffer.from(sealed, 'base64url');
      const d = createDecipheriv('aes-256-gcm', createHmac('sha256', key).update(id).digest(), raw.subarray(0, 12));
      d.setAAD(Buffer.from(lookup));
      d.setAuthTag(raw.subarray(12, 28));
      t = JSON.parse(Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8')) as Ticket;
    } catch {
      throw new TicketError('Invalid ticket.', Status.CLIENT_UNAUTHORIZED, 'invalid_ticket');
    }
    if (t.v !== 1 || !(t.exp > this.now())) throw new TicketError('The ticket has expired.', Status.CLIENT_UNAUTHORIZED, 'expired_ticket', t);
    return t;
  }

  /**
   * Takes the ticket (once), opens it and checks that `login` is the one it was issued to and
   * that it still fits its session. `trusted`: false when the WebSocket came from an origin
   * that is not allowed (the ticket is burnt and refused all the same).
   */
  async redeem(id: string, login: Login | null, trusted = true): Promise<Ticket> {
    const t = await this.take(id);
    if (!trusted) throw new TicketError('This page may not open desktops.', Status.CLIENT_FORBIDDEN, 'foreign_origin', t);
    if (!login) throw new TicketError('Not logged in: log in again.', Status.CLIENT_UNAUTHORIZED, 'no_login', t);
    const p = login.principal;
    const same = t.login === login.binding && (t.kind === 'connect' ? p.kind === 'user' && p.id === t.user : actorName({ principal: p, address: '' }) === t.user && hasRole(p, 'helpdesk'));
    if (!same) throw new TicketError('The ticket belongs to another login.', Status.CLIENT_FORBIDDEN, 'other_login', t);
    let s;
    try {
      s = await this.d.store.sessions.get(t.session);
    } catch {
      throw new TicketError(UNAVAILABLE, Status.UPSTREAM_UNAVAILABLE, 'unavailable', t);
    }
    if (!s || s.state === 'ended' || s.desktop !== t.desktop || (t.kind === 'connect' && s.user !== t.user)) {
      throw new TicketError('The session has ended.', Status.CLIENT_FORBIDDEN, 'session_ended', t);
    }
    return t;
  }
}
