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
import type { IdentityService } from './identity.service.ts';

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
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
  }
  return null;
}

export function actorOf(req: Request): Actor {
  return { principal: req.principal ?? null, address: req.ip ?? req.socket.remoteAddress ?? '' };
}

/** Sessions in Redis, passport-local, bearer API keys and CSRF, as express middleware. */
export class HttpAuth {
  private readonly csrf = csrfSync({ getTokenFromRequest: (req) => req.get('x-csrf-token') ?? undefined });
  private readonly passport = new passport.Passport();
  readonly session: RequestHandler;
  readonly cookieName: string;
  private readonly sessions: RedisStore;
  private readonly loadSecret: () => Promise<string>;

  constructor(private readonly identity: IdentityService, o: HttpAuthOptions) {
    this.cookieName = o.cookieName;
    this.sessions = new RedisStore({ client: o.redis, prefix: o.sessionPrefix, ttl: o.maxAgeSeconds });
    this.loadSecret = o.loadSecret ?? (async () => o.secret());
    const secure = o.secureCookies === true || o.secureCookies === 'true' ? true : o.secureCookies === 'auto' ? 'auto' : false;
    let mw: RequestHandler | undefined;
    this.session = (req, res, next) => {
      mw ??= session({
        store: this.sessions,
        name: o.cookieName,
        secret: o.secret(),
        resave: false,
        saveUninitialized: false,
        rolling: true,
        proxy: undefined,
        cookie: { httpOnly: true, sameSite: 'lax', secure, maxAge: o.maxAgeSeconds * 1000, path: '/' },
      });
      mw(req, res, next);
    };
    this.passport.use(
      new LocalStrategy({ passReqToCallback: true, session: true }, (req, username, password, done) => {
        identity.authenticate(username, password, req.ip ?? '').then(
          (p) => done(null, p),
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
        this.passport.session()(req, res, (err2?: unknown) => {
          if (err2) return next(err2);
          if (req.user) {
            req.principal = req.user;
            req.authKind = 'cookie';
          }
          next();
        });
      });
    };
    return [this.passport.initialize(), bearer, cookie];
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
    if (typeof user !== 'string') return null;
    const p = await this.identity.principalOf(user);
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

  /** Logs in with passport-local: rotates the session id and returns the principal. */
  login(req: Request, res: Response): Promise<Principal> {
    return new Promise((resolve, reject) => {
      this.session(req, res, (err?: unknown) => {
        if (err) return reject(err);
        this.passport.authenticate('local', { session: false }, (err2: unknown, principal: Principal | false) => {
          if (err2) return reject(err2);
          if (!principal) return reject(new BrokerError('validation_failed', 'username and password are required.', { field: 'username' }));
          // regenerate: a fresh session id at login (no fixation)
          req.session.regenerate((err3) => {
            if (err3) return reject(err3);
            (req.session as unknown as { passport: { user: string } }).passport = { user: principal.id };
            req.principal = principal;
            req.authKind = 'cookie';
            req.session.save((err4) => (err4 ? reject(err4) : resolve(principal)));
          });
        })(req, res, () => undefined);
      });
    });
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
