import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Request, Response, NextFunction, RequestHandler } from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import passport from 'passport';
import { Strategy as LocalStrategy } from 'passport-local';
import { csrfSync } from 'csrf-sync';
import type { Redis } from 'ioredis';
import { BrokerError } from '../errors.ts';
import { hasRole, type Principal, type Role, type Actor } from '../broker/index.ts';
import type { IdentityService, PasswordLogin } from './identity.service.ts';
import type { StoredUser } from '../store/index.ts';
import type { DirectoryIdentity } from './authenticators/types.ts';
import { noSecondFactor, type SecondFactorGate, type SecondFactorMethod } from './second-factor.ts';

/** How long a login may wait for its second factor. */
export const PENDING_LOGIN_MS = 5 * 60_000;

/** A login that passed its first step and waits for the second factor (kept in the HTTP session). */
export interface PendingLogin {
  userId: string;
  /** The authenticator of the first step. */
  method: string;
  amr?: string[];
  /** The identity provider's id_token (kept for RP-initiated logout). */
  idToken?: string;
  /** When the login began (ms since the epoch), for its duration. */
  startedAt: number;
  expiresAt: number;
}

export type LoginOutcome = { status: 'ok'; principal: Principal } | { status: 'mfa_required'; methods: SecondFactorMethod[]; enrol: boolean };

/** What the broker keeps in an HTTP session beside express-session's cookie. */
interface SessionData {
  passport?: { user: string };
  pendingLogin?: PendingLogin;
  authMethod?: string;
  mfa?: string;
  loginAt?: string;
  idToken?: string;
  /** How long the login took (ms): the logon timeline's authentication phase (me.router.ts). */
  loginMs?: number;
  /** When the session's expiry was last pushed out (ms since the epoch): see HttpAuth.refreshIfDue. */
  refreshedAt?: number;
}

/**
 * How long after its last write a session's expiry is pushed out again. Rewriting it on every
 * request (express-session `rolling`) cost a Redis write and a signed Set-Cookie per request;
 * now an active session is rewritten (TTL and cookie renewed) at most once per this interval,
 * so an idle login ends between maxAge - interval and maxAge after its last request.
 */
export function sessionRefreshIntervalMs(maxAgeSeconds: number): number {
  return Math.min(60_000, Math.floor((maxAgeSeconds * 1000) / 10));
}

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
    authKind?: 'cookie' | 'bearer';
  }
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    // passport's req.user is our Principal
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type
    interface User extends Principal {}
  }
}

export interface HttpAuthOptions {
  redis: Redis;
  sessionPrefix: string;
  /** The cookie-signing secret; read when the first request arrives (it may come from Redis). */
  secret: () => string;
  /** The same secret, loaded if need be: a WebSocket upgrade may come before any API request. */
  loadSecret?: () => Promise<string>;
  cookieName: string;
  maxAgeSeconds: number;
  secureCookies: 'auto' | 'true' | 'false' | boolean;
  /**
   * Reads a session (by id) and the user its login names in one round trip (the store's
   * users.withSession); without it the session and the user are read one after the other.
   */
  sessionWithUser?: (sid: string) => Promise<{ session: string | null; userId?: string; user?: StoredUser | null }>;
  /**
   * With Redis replicas (`redis.waitReplicas`): a login is answered only once this many replicas
   * hold its session (WAIT), so a failover right after cannot lose it (the next request would
   * find no session: 403 csrf_invalid / 401). Short of that, 503 redis_unavailable; the client logs in again.
   */
  replicated?: (what: string) => Promise<void>;
}

/** A user record read together with a session, waiting for that request's cookie middleware. */
interface Prefetched {
  userId: string;
  user: StoredUser | null;
}

/**
 * connect-redis's store, reading the session and the user its login names in ONE round trip.
 * The user record is handed to the cookie middleware of the same request (by session id; a
 * concurrent request on the same session may overwrite it with its own, equally fresh read).
 */
class SessionWithUserStore extends RedisStore {
  readonly prefetched = new Map<string, Prefetched>();

  constructor(o: ConstructorParameters<typeof RedisStore>[0], readonly readWithUser: NonNullable<HttpAuthOptions['sessionWithUser']>) {
    super(o);
  }

  override async get(sid: string, cb: (err?: unknown, data?: unknown) => void = () => undefined): Promise<void> {
    let data: unknown;
    try {
      const r = await this.readWithUser(sid);
      if (!r.session) return cb();
      data = JSON.parse(r.session);
      if (r.userId !== undefined) {
        // Left-overs (a request that failed before its middleware ran) must not pile up.
        if (this.prefetched.size >= 10_000) this.prefetched.clear();
        this.prefetched.set(sid, { userId: r.userId, user: r.user ?? null });
      }
    } catch (err) {
      return cb(err);
    }
    cb(null, data);
  }

  /** The user read with this session for `userId`, once (undefined: read it the usual way). */
  take(sid: string, userId: string): StoredUser | null | undefined {
    const p = this.prefetched.get(sid);
    if (!p) return undefined;
    this.prefetched.delete(sid);
    return p.userId === userId ? p.user : undefined;
  }
}

/**
 * The login behind a request, as a connection ticket is bound to it: a cookie session (by a
 * hash of its id, so the id itself is never copied anywhere) or an API key (by its id).
 */
export interface Login {
  binding: string;
  principal: Principal;
}

const sessionBinding = (sid: string) => `session:${createHash('sha256').update(`vdi-broker http session\0${sid}`).digest('base64url')}`;

/** The session id in express-session's signed cookie value (`s:<id>.<HMAC>`), or null. */
function unsignSessionCookie(raw: string, secret: string): string | null {
  let v: string;
  try {
    v = decodeURIComponent(raw);
  } catch {
    return null;
  }
  if (!v.startsWith('s:')) return null;
  const dot = v.lastIndexOf('.');
  if (dot < 3) return null;
  const sid = v.slice(2, dot);
  const want = Buffer.from(createHmac('sha256', secret).update(sid).digest('base64').replace(/=+$/, ''));
  const got = Buffer.from(v.slice(dot + 1));
  return want.length === got.length && timingSafeEqual(want, got) ? sid : null;
}

function cookieValue(header: string | undefined, name: string): string | null {
  return cookieValues(header, [name])[0]!;
}

/** The values of the cookies `names` in a Cookie header, read in one pass (the first of each name); null where absent. */
function cookieValues(header: string | undefined, names: readonly string[]): (string | null)[] {
  const out: (string | null)[] = names.map(() => null);
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim();
    for (let i = 0; i < names.length; i++) {
      if (names[i] === key && out[i] === null) out[i] = part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    }
  }
  return out;
}

export function actorOf(req: Request): Actor {
  // req.device: the enrolled thin client (server/devices), for entitlement checks and the audit.
  const device = (req as { device?: Actor['device'] }).device;
  return { principal: req.principal ?? null, address: req.ip ?? req.socket.remoteAddress ?? '', ...(device ? { device } : {}) };
}

/** Sessions in Redis, passport-local, bearer API keys and CSRF, as express middleware. */
export class HttpAuth {
  private readonly csrf = csrfSync({ getTokenFromRequest: (req) => req.get('x-csrf-token') ?? undefined });
  private readonly passport = new passport.Passport();
  readonly session: RequestHandler;
  readonly cookieName: string;
  private readonly sessions: RedisStore;
  private readonly loadSecret: () => Promise<string>;
  private readonly refreshAfterMs: number;
  private readonly replicatedHook: HttpAuthOptions['replicated'];

  constructor(private readonly identity: IdentityService, o: HttpAuthOptions) {
    this.cookieName = o.cookieName;
    this.replicatedHook = o.replicated;
    // No touch (EXPIRE) at the end of every request: the expiry is refreshed by rewriting the
    // session when it is due (refreshIfDue), which also renews the cookie and its stored expiry.
    const storeOptions = { client: o.redis, prefix: o.sessionPrefix, ttl: o.maxAgeSeconds, disableTouch: true };
    this.sessions = o.sessionWithUser ? new SessionWithUserStore(storeOptions, o.sessionWithUser) : new RedisStore(storeOptions);
    this.loadSecret = o.loadSecret ?? (async () => o.secret());
    this.refreshAfterMs = sessionRefreshIntervalMs(o.maxAgeSeconds);
    const secure = o.secureCookies === true || o.secureCookies === 'true' ? true : o.secureCookies === 'auto' ? 'auto' : false;
    let mw: RequestHandler | undefined;
    this.session = (req, res, next) => {
      mw ??= session({
        store: this.sessions,
        name: o.cookieName,
        secret: o.secret(),
        resave: false,
        saveUninitialized: false,
        rolling: false,
        proxy: undefined,
        cookie: { httpOnly: true, sameSite: 'lax', secure, maxAge: o.maxAgeSeconds * 1000, path: '/' },
      });
      mw(req, res, (err?: unknown) => {
        if (!err) this.refreshIfDue(req);
        next(err);
      });
    };
    // One passport strategy for every password authenticator (local, LDAP): the realm in the
    // body (or user@domain) picks the authenticator inside IdentityService.passwordLogin.
    this.passport.use(
      new LocalStrategy({ passReqToCallback: true, session: true }, (req, username, password, done) => {
        const realm = typeof req.body?.realm === 'string' ? req.body.realm : undefined;
        identity.passwordLogin(username, password, req.ip ?? '', realm).then(
          // passport only hands this back to login() (session: false), never to serializeUser.
          (l) => done(null, l as unknown as Principal),
          (err) => done(err),
        );
      }),
    );
    this.passport.serializeUser((p, done) => done(null, (p as Principal).id));
    this.passport.deserializeUser((id: string, done) => {
      identity.principalOf(id).then(
        (p) => done(null, p ?? false),
        (err) => done(err),
      );
    });
  }

  /** Session, passport and bearer tokens; sets req.principal when the caller is known. */
  middleware(): RequestHandler[] {
    const bearer: RequestHandler = (req, _res, next) => {
      const h = req.get('authorization');
      if (!h) return next();
      const m = /^Bearer (\S+)$/i.exec(h);
      if (!m) return next(new BrokerError('unauthenticated', 'Malformed Authorization header.'));
      this.identity.principalOfToken(m[1]!).then((p) => {
        if (!p) return next(new BrokerError('unauthenticated', 'Unknown or revoked API key.'));
        req.principal = p;
        req.authKind = 'bearer';
        next();
      }, next);
    };
    const cookie: RequestHandler = (req, res, next) => {
      // No cookie, no session to load (login creates its own).
      if (req.principal || !req.headers.cookie) return next();
      this.session(req, res, (err?: unknown) => {
        if (err) return next(err);
        // The user is re-read on every request (a disabled or deleted user is refused at once),
        // as passport's session strategy did, without its per-request machinery.
        const s = req.session as unknown as SessionData | undefined;
        const user = s?.passport?.user;
        if (user === undefined || user === null) return next();
        // Read with the session when the store could (SessionWithUserStore), else now.
        const known = this.sessions instanceof SessionWithUserStore ? this.sessions.take(req.sessionID, String(user)) : undefined;
        (known !== undefined ? this.identity.principalOfStored(known) : this.identity.principalOf(String(user))).then((p) => {
          if (!p) {
            // A user who is gone or disabled: the login is dropped from the session (as passport does).
            delete (s!.passport as { user?: string }).user;
            return next();
          }
          req.user = p;
          req.principal = p;
          req.authKind = 'cookie';
          next();
        }, next);
      });
    };
    return [bearer, cookie];
  }

  /**
   * The login of an API request settled without express-session, for the lean lane
   * (server/api/lean-lane.ts), which serves routes that change nothing in the session: a bearer
   * API key, or a logged-in cookie session read with its user in one round trip. On success
   * req.principal, authKind and sessionID are set (and req.session is the stored data, frozen:
   * read only) and it answers true. It answers false, having set nothing, whenever the request
   * must take the full middleware path, which then decides exactly as before: no login or an
   * unknown one, a session not logged in or due for its refresh, a disabled user, a thin
   * client's device cookie, anything unusual.
   */
  /** Signed session cookies (their exact text) whose signature was checked, and their session ids. */
  private readonly verifiedCookies = new Map<string, string>();

  async leanLogin(req: Request, deviceCookie: string): Promise<boolean> {
    const h = req.headers;
    const cookies = h.cookie;
    const [device, raw] = cookieValues(cookies, [deviceCookie, this.cookieName]);
    if (device !== null) return false;
    if (h.authorization !== undefined) {
      const m = /^Bearer (\S+)$/i.exec(h.authorization);
      const p = m ? await this.identity.principalOfToken(m[1]!) : null;
      if (!p) return false;
      req.principal = p;
      req.authKind = 'bearer';
      return true;
    }
    if (!raw || !(this.sessions instanceof SessionWithUserStore)) return false;
    // A cookie whose signature was checked once is known by its exact text: no HMAC per request.
    let sid = this.verifiedCookies.get(raw);
    if (sid === undefined) {
      const checked = unsignSessionCookie(raw, await this.loadSecret());
      if (!checked) return false;
      if (this.verifiedCookies.size >= 10_000) this.verifiedCookies.clear();
      this.verifiedCookies.set(raw, (sid = checked));
    }
    const r = await this.sessions.readWithUser(sid);
    if (!r.session || r.userId === undefined) return false;
    let s: SessionData & { cookie?: { expires?: string | null } };
    try {
      s = JSON.parse(r.session) as typeof s;
    } catch {
      return false;
    }
    const now = Date.now();
    if (s.passport?.user !== r.userId || s.pendingLogin !== undefined) return false;
    if (s.cookie?.expires && Date.parse(s.cookie.expires) <= now) return false;
    if (!(typeof s.refreshedAt === 'number' && now - s.refreshedAt < this.refreshAfterMs && s.refreshedAt <= now)) return false;
    const p = await this.identity.principalOfStored(r.user ?? null);
    if (!p) return false;
    req.principal = p;
    req.user = p;
    req.authKind = 'cookie';
    req.sessionID = sid;
    req.session = Object.freeze(s) as unknown as Request['session'];
    return true;
  }

  /**
   * A stored session whose expiry was last pushed out more than refreshAfterMs ago is marked, so
   * express-session rewrites it at the end of the request (new TTL, new cookie expiry, Set-Cookie).
   * Sessions that were never stored (no login in them) are left alone.
   */
  private refreshIfDue(req: Request): void {
    const s = req.session as unknown as SessionData | undefined;
    if (!s || (s.passport === undefined && s.pendingLogin === undefined && s.refreshedAt === undefined)) return;
    const now = Date.now();
    if (!(typeof s.refreshedAt === 'number' && now - s.refreshedAt < this.refreshAfterMs && s.refreshedAt <= now)) s.refreshedAt = now;
  }

  /** The login of an API request that went through middleware(), or null. */
  loginOf(req: Request): Login | null {
    const p = req.principal;
    if (!p) return null;
    if (req.authKind === 'bearer' && p.kind === 'apikey') return { binding: `apikey:${p.id}`, principal: p };
    if (req.authKind === 'cookie' && req.sessionID) return { binding: sessionBinding(req.sessionID), principal: p };
    return null;
  }

  /**
   * The login of a bare request (a WebSocket upgrade, which express never sees): the bearer
   * API key if an Authorization header is sent (a bad one is no login; no fallback to the
   * cookie, as in middleware()), else the signed session cookie, re-read from Redis so a
   * logged-out session or a disabled user is no login. Rejects when Redis cannot answer.
   */
  async loginOfUpgrade(req: IncomingMessage): Promise<Login | null> {
    const h = req.headers.authorization;
    if (h !== undefined) {
      const m = /^Bearer (\S+)$/i.exec(h);
      const p = m ? await this.identity.principalOfToken(m[1]!) : null;
      return p?.kind === 'apikey' ? { binding: `apikey:${p.id}`, principal: p } : null;
    }
    const raw = cookieValue(req.headers.cookie, this.cookieName);
    if (!raw) return null;
    const sid = unsignSessionCookie(raw, await this.loadSecret());
    if (!sid) return null;
    const data = await new Promise<unknown>((resolve, reject) => {
      void this.sessions.get(sid, (err: unknown, s?: unknown) => (err ? reject(err) : resolve(s)));
    });
    const s = data as { passport?: { user?: unknown }; cookie?: { expires?: string | null } } | undefined | null;
    if (s?.cookie?.expires && Date.parse(s.cookie.expires) <= Date.now()) return null;
    const user = s?.passport?.user;
    const known = this.sessions instanceof SessionWithUserStore && typeof user === 'string' ? this.sessions.take(sid, user) : undefined;
    if (typeof user !== 'string') return null;
    const p = known !== undefined ? await this.identity.principalOfStored(known) : await this.identity.principalOf(user);
    return p ? { binding: sessionBinding(sid), principal: p } : null;
  }

  /** Cookie-authenticated state changes must carry the session's CSRF token. */
  csrfProtection(): RequestHandler {
    return (req, _res, next) => {
      // Login is exempt: it replaces the session anyway (kiosks re-login with a stale cookie).
      if (['GET', 'HEAD', 'OPTIONS'].includes(req.method) || req.authKind !== 'cookie' || req.path === '/auth/login') return next();
      if (!this.csrf.isRequestValid(req)) return next(new BrokerError('csrf_invalid'));
      next();
    };
  }

  csrfToken(req: Request): string {
    return this.csrf.generateToken(req);
  }

  /** The second-factor gate the pipeline asks after the primary login (server/auth/mfa sets it). */
  useSecondFactor(gate: SecondFactorGate): void {
    this.secondFactor = gate;
  }

  private secondFactor: SecondFactorGate = noSecondFactor;

  /**
   * POST /auth/login: the password pipeline. The primary step (passport-local → the realm's
   * authenticator → JIT user), then the second-factor gate: either the login finishes
   * (completeLogin) or the session holds a pending login for the second step.
   */
  login(req: Request, res: Response): Promise<LoginOutcome> {
    const startedAt = Date.now();
    return new Promise<PasswordLogin>((resolve, reject) => {
      this.session(req, res, (err?: unknown) => {
        if (err) return reject(err);
        this.passport.authenticate('local', { session: false }, (err2: unknown, l: PasswordLogin | false) => {
          if (err2) return reject(err2);
          if (!l) return reject(new BrokerError('validation_failed', 'username and password are required.', { field: 'username' }));
          resolve(l);
        })(req, res, () => undefined);
      });
    }).then((l) => this.afterPrimary(req, l.principal, { method: l.authenticator, startedAt }));
  }

  /**
   * A primary login done elsewhere (a redirect authenticator's callback): the JIT user, then the
   * second-factor gate, as for passwords. Loads the pre-login session if the caller has not.
   */
  async loginWithIdentity(req: Request, res: Response, identity: DirectoryIdentity, o: { startedAt?: number; idToken?: string } = {}): Promise<LoginOutcome> {
    await this.preLoginSession(req, res);
    const principal = await this.identity.upsertFromDirectory(identity, actorOf(req));
    return this.afterPrimary(req, principal, { method: identity.source, startedAt: o.startedAt ?? Date.now(), ...(identity.amr ? { amr: identity.amr } : {}), ...(o.idToken ? { idToken: o.idToken } : {}) });
  }

  /** The same as loginWithIdentity (the name the OIDC callback uses). */
  finishRedirectLogin(req: Request, res: Response, identity: DirectoryIdentity, o: { startedAt?: number; idToken?: string } = {}): Promise<LoginOutcome> {
    return this.loginWithIdentity(req, res, identity, o);
  }

  /** Loads (or starts) the HTTP session of a request that is not logged in yet (login flows). */
  preLoginSession(req: Request, res: Response): Promise<void> {
    if (req.session) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.session(req, res, (err?: unknown) => (err ? reject(err) : resolve())));
  }

  private async afterPrimary(req: Request, principal: Principal, o: { method: string; startedAt: number; amr?: string[]; idToken?: string }): Promise<LoginOutcome> {
    const device = (req as { device?: unknown }).device;
    const gate = await this.secondFactor.check(principal, { method: o.method, ...(o.amr ? { amr: o.amr } : {}), ...(device !== undefined ? { device } : {}) });
    if (!gate.required) return { status: 'ok', principal: await this.completeLogin(req, principal, { method: o.method, startedAt: o.startedAt, ...(o.idToken ? { idToken: o.idToken } : {}) }) };
    // A fresh session that is not logged in, holding only who passed the first step.
    await this.regenerate(req);
    const pending: PendingLogin = {
      userId: principal.id, method: o.method, startedAt: o.startedAt, expiresAt: Date.now() + PENDING_LOGIN_MS,
      ...(o.amr ? { amr: o.amr } : {}), ...(o.idToken ? { idToken: o.idToken } : {}),
    };
    (req.session as unknown as SessionData).pendingLogin = pending;
    (req.session as unknown as SessionData).refreshedAt = Date.now();
    await this.saveSession(req);
    await this.identity.recordSecondFactorRequired({ principal: null, address: actorOf(req).address }, principal.id, o.method);
    return { status: 'mfa_required', methods: gate.methods, enrol: gate.enrol };
  }

  /** The login waiting for its second factor in this session, or null (none, or expired). */
  pendingLoginOf(req: Request): PendingLogin | null {
    const p = (req.session as unknown as SessionData | undefined)?.pendingLogin;
    if (!p || typeof p.userId !== 'string' || !(p.expiresAt > Date.now())) return null;
    return p;
  }

  /**
   * Finishes a login: a fresh session id (no fixation; a pending login is dropped), the user in
   * it, how they logged in (`authMethod`, `mfa`), and one `auth.login` audit entry naming the
   * authenticator, the second factor and how long the login took.
   */
  async completeLogin(req: Request, principal: Principal, o: { method: string; mfa?: string; startedAt?: number; idToken?: string }): Promise<Principal> {
    const pending = this.pendingLoginOf(req);
    const startedAt = o.startedAt ?? pending?.startedAt ?? Date.now();
    const idToken = o.idToken ?? pending?.idToken;
    await this.regenerate(req);
    const s = req.session as unknown as SessionData;
    s.passport = { user: principal.id };
    s.authMethod = o.method;
    if (o.mfa) s.mfa = o.mfa;
    if (idToken) s.idToken = idToken;
    s.loginAt = new Date().toISOString();
    s.loginMs = Date.now() - startedAt;
    s.refreshedAt = Date.now();
    req.principal = principal;
    req.authKind = 'cookie';
    await this.saveSession(req);
    await this.replicated('the login');
    const durationMs = Date.now() - startedAt;
    await this.identity.recordLogin({ principal, address: actorOf(req).address }, principal.id, { authenticator: o.method, mfa: o.mfa ?? 'none', durationMs });
    return principal;
  }

  /** How the session's user logged in (authenticator and second factor), for the MFA policy and /me. */
  authMethodOf(req: Request): { method: string; mfa?: string } | null {
    const s = req.session as unknown as SessionData | undefined;
    return s?.authMethod ? { method: s.authMethod, ...(s.mfa ? { mfa: s.mfa } : {}) } : null;
  }

  /** Waits until the configured replicas hold what was just written (redis.waitReplicas), else throws a transient Redis error. */
  private async replicated(what: string): Promise<void> {
    await this.replicatedHook?.(what);
  }

  private regenerate(req: Request): Promise<void> {
    return new Promise((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));
  }

  /** The identity provider's id_token of this login (RP-initiated logout), if any. */
  idTokenOf(req: Request): string | undefined {
    return (req.session as unknown as SessionData | undefined)?.idToken;
  }

  saveSession(req: Request): Promise<void> {
    return new Promise((resolve, reject) => req.session.save((err) => (err ? reject(err) : resolve())));
  }

  logout(req: Request): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!req.session) return resolve();
      req.session.destroy((err) => (err ? reject(err) : resolve()));
    });
  }
}

/** Route guard: the caller must be known and hold at least `role`. */
export function requireRole(role: Role | 'anyone'): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    if (role === 'anyone') return next();
    if (!req.principal) return next(new BrokerError('unauthenticated'));
    if (!hasRole(req.principal, role)) return next(new BrokerError('forbidden'));
    next();
  };
}
