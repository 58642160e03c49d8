// Routes are declared once, with their role, input schemas and summary; the same declarations
// mount the express handlers, build the OpenAPI document and drive the role-matrix test.
import { Router, type Request, type Response, type NextFunction } from 'express';
import { z, type ZodType } from 'zod';
import { BrokerError, isRedisUnavailable } from '../errors.ts';
import { ERROR_CODES } from '../errors.ts';
import { actorOf } from '../auth/index.ts';
import { hasRole, trackAuditedCall, type Actor, type AuditService, type AuditedCall, type Role } from '../broker/index.ts';

export type Method = 'get' | 'post' | 'patch' | 'put' | 'delete';

export interface HandlerContext<B, Q, P> {
  req: Request;
  res: Response;
  body: B;
  query: Q;
  params: P;
  actor: Actor;
  /** Answer with this status instead of the route's default. */
  setStatus: (code: number) => void;
}

export interface RouteDef<B = unknown, Q = unknown, P = unknown> {
  method: Method;
  /** express path relative to /api/v1, e.g. /pools/:name */
  path: string;
  summary: string;
  tag: string;
  /** Least role allowed; 'anyone' = no login needed. */
  role: Role | 'anyone';
  body?: ZodType<B>;
  query?: ZodType<Q>;
  params?: ZodType<P>;
  /** Success status (default 200). */
  status?: number;
  /** The success answer's shape, for the API description only (not checked at run time). */
  response?: ZodType;
  /** Error codes this route may answer with, beyond the common ones (for the docs). */
  errors?: (keyof typeof ERROR_CODES)[];
  /**
   * The audit action a refusal of this helpdesk/admin change is recorded under; by default
   * derived from the path (POST /pools -> pool.create, POST /desktops/:id/migrate -> desktop.migrate).
   */
  auditAction?: string;
  /**
   * The handler may write the HTTP session (login state, CSRF token): it is never served by the
   * lean lane (lean-lane.ts), whose session is read only. The groups /auth, /oidc, /mfa and
   * /devices are treated so as a whole.
   */
  writesSession?: boolean;
  handler: (ctx: HandlerContext<B, Q, P>) => Promise<unknown>;
}

export function zodIssueToError(err: z.ZodError, where: 'body' | 'query' | 'params'): BrokerError {
  const issue = err.issues[0]!;
  let path = issue.path.map(String);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    path = [...path, issue.keys[0]!];
    message = `Unknown field "${issue.keys[0]}".`;
  } else if (issue.code === 'invalid_type' && issue.input === undefined) {
    message = 'Required.';
  }
  const field = path.length ? path.join('.') : where;
  return new BrokerError('validation_failed', `${field}: ${message}`, { field });
}

function parse<T>(schema: ZodType<T> | undefined, value: unknown, where: 'body' | 'query' | 'params'): T {
  if (!schema) {
    if (where === 'body' && value !== undefined && !(typeof value === 'object' && value !== null && Object.keys(value).length === 0)) {
      throw new BrokerError('validation_failed', 'This route takes no request body.', { field: 'body' });
    }
    return undefined as T;
  }
  const r = schema.safeParse(value === undefined && where !== 'body' ? {} : value);
  if (!r.success) throw zodIssueToError(r.error, where);
  return r.data;
}

export class RouteTable {
  readonly routes: RouteDef<any, any, any>[] = [];

  add<B, Q, P>(def: RouteDef<B, Q, P>): void {
    this.routes.push(def as RouteDef<any, any, any>);
  }

  /**
   * Mounts every route. With `audit`, a state-changing helpdesk/admin route that refuses a known
   * caller (invalid input, forbidden for the role, not found, conflict, provider error) writes one
   * audit entry, unless the service behind it already audited that refusal itself.
   */
  /** Each route's express handler (role guard, validation, audit of refusals, answer), once mounted. */
  readonly handlers = new Map<RouteDef<any, any, any>, (req: Request, res: Response, next: NextFunction) => Promise<void>>();

  mount(router: Router, audit?: AuditService): void {
    // Routes are grouped by their first path segment (/me, /pools, ...), each group in a router of
    // its own, in declaration order: a request is matched against its group only, not against
    // every route declared before it (express tries them one by one).
    const groups = new Map<string, Router>();
    router.use((req, res, next) => {
      const group = groups.get(firstSegment(req.path));
      if (group) group(req, res, next);
      else next();
    });
    for (const def of this.routes) {
      const segment = firstSegment(def.path);
      let group = groups.get(segment);
      if (/[:*(?{]/.test(segment)) throw new Error(`route ${def.path}: the first path segment must be a plain word (routes are grouped by it)`);
      if (!group) groups.set(segment, (group = Router({ strict: false, caseSensitive: true })));
      const audited = audit && def.method !== 'get' && (def.role === 'helpdesk' || def.role === 'admin');
      const aboutSession = /^\/(me\/)?sessions\/:id(\/|$)/.test(def.path);
      const handler = async (req: Request, res: Response, next: NextFunction): Promise<void> => {
        const call: AuditedCall = { refusalRecorded: false };
        try {
          // The role guard, inline (requireRole's checks, without a promise per request).
          if (def.role !== 'anyone') {
            if (!req.principal) throw new BrokerError('unauthenticated');
            if (!hasRole(req.principal, def.role)) throw new BrokerError('forbidden');
          }
          let status = def.status ?? 200;
          const actor = actorOf(req);
          if (audited) trackAuditedCall(actor, call);
          const ctx = {
            setStatus: (code: number) => void (status = code),
            req,
            res,
            body: parse(def.body, req.body, 'body'),
            query: parse(def.query, req.query, 'query'),
            params: parse(def.params, req.params, 'params'),
            actor,
          };
          // Routes about one session put its id on the request's log line (docs/observability.md).
          if (aboutSession) res.locals.session = (ctx.params as { id?: unknown } | undefined)?.id;
          const out = await def.handler(ctx);
          if (res.headersSent) return;
          if (out === undefined) res.status(def.status ?? 204).end();
          else answerJson(req, res, status, out);
        } catch (err) {
          if (audited && !call.refusalRecorded) await auditRefusal(audit, def, req, err);
          next(err);
        }
      };
      this.handlers.set(def, handler);
      group[def.method](def.path, handler);
    }
  }
}

/**
 * res.json's answer (the same headers, no ETag: app setting) without res.send's generic
 * machinery (type lookups, charset parsing, freshness), a visible share of a request's CPU.
 */
function answerJson(req: Request, res: Response, status: number, out: unknown): void {
  if (res.hasHeader('Content-Type')) {
    res.status(status).json(out);
    return;
  }
  const body = JSON.stringify(out);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** `POST /pools` -> pool.create, `PATCH /pools/:name` -> pool.update, `POST /desktops/:id/migrate` -> desktop.migrate. */
export function auditActionOf(def: Pick<RouteDef, 'method' | 'path' | 'auditAction'>): string {
  if (def.auditAction) return def.auditAction;
  const parts = def.path.split('/').filter(Boolean);
  const nouns: string[] = [];
  let verb: string | undefined;
  for (const [i, p] of parts.entries()) {
    if (p.startsWith(':')) continue;
    // A plural is a collection (pools, snapshots); a last word after an id is a verb (migrate, resize).
    if (/s$/.test(p)) nouns.push(singular(p));
    else if (i === parts.length - 1 && i > 0) verb = p;
    else nouns.push(p);
  }
  const endsWithId = parts.at(-1)?.startsWith(':') ?? false;
  // DELETE on an action undoes it (DELETE /hosts/:p/:h/drain -> host.drain.cancel).
  if (verb && def.method === 'delete') return [...nouns, verb, 'cancel'].join('.');
  verb ??= def.method === 'delete' ? 'delete' : def.method === 'post' && !endsWithId ? 'create' : 'update';
  return [...nouns, verb].join('.');
}

function singular(p: string): string {
  return p.replace(/-/g, '').replace(/s$/, '');
}

/** Writes the audit entry of a refused call (never throws: the refusal answers either way). */
async function auditRefusal(audit: AuditService, def: RouteDef<any, any, any>, req: Request, err: unknown): Promise<void> {
  const actor = actorOf(req);
  // Unknown callers are answered 401 and not audited: anyone could fill the trail with those.
  // A Redis outage or a stopping broker is not a refusal of the action (and Redis could not take the entry).
  if (!actor.principal || isRedisUnavailable(err)) return;
  const e = err instanceof BrokerError ? err : new BrokerError('internal_error');
  if (e.code === 'redis_unavailable' || e.code === 'not_ready' || e.code === 'unauthenticated') return;
  const parts = def.path.split('/').filter(Boolean);
  const params = Object.values((req.params ?? {}) as Record<string, string>);
  const body = (req.body ?? {}) as Record<string, unknown>;
  const named = typeof body.name === 'string' ? body.name : typeof body.id === 'string' ? body.id : '';
  const target = { type: singular(parts[0] ?? 'api'), id: (params.length ? params.join('/') : named).slice(0, 128) };
  await audit.refused(actor, auditActionOf(def), target, { code: e.code, status: e.status, message: e.message, ...(e.field ? { field: e.field } : {}) }, { method: def.method.toUpperCase(), route: def.path });
}

export const router = () => Router({ strict: false, caseSensitive: true });

/** `/me/pools/x` -> `me`; `/openapi.json` -> `openapi.json`; `/` -> `` (a route path's first segment is never a parameter). */
export function firstSegment(path: string): string {
  const end = path.indexOf('/', 1);
  return path.slice(1, end < 0 ? path.length : end);
}
