// The lean lane: an API request from a caller who is logged in already (cookie session or API
// key) to a route that changes nothing in the HTTP session is served without express-session,
// the per-request auth middlewares and the route groups' routers. It runs the route's own
// handler (RouteTable.handlers: the same role guard, validation, audit of refusals and answer)
// after the same login and CSRF checks. Anything it cannot settle (no login, a login being
// made, a session due for its refresh, a thin client's device cookie, a body not read yet, a
// path it does not match) goes on to the full middleware path unchanged: what is refused or
// answered there is exactly what it was before. Measured in `npm run bench:assign`.
import type { Request, RequestHandler } from 'express';
import type { HttpAuth } from '../auth/index.ts';
import { firstSegment, type RouteDef, type RouteTable } from './route.ts';

/**
 * Route groups that write the HTTP session (log in, log out, second factor, OIDC round trips,
 * device enrolment and kiosk logins): always the full path.
 */
const SESSION_WRITERS = new Set(['auth', 'oidc', 'mfa', 'devices']);

interface LeanRoute {
  def: RouteDef<any, any, any>;
  method: string;
  /** Literal segments, or null where the path has a parameter. */
  segments: (string | null)[];
  names: string[];
}

function compile(def: RouteDef<any, any, any>): LeanRoute {
  const parts = def.path.split('/').slice(1);
  return {
    def,
    method: def.method.toUpperCase(),
    segments: parts.map((p) => (p.startsWith(':') ? null : p)),
    names: parts.filter((p) => p.startsWith(':')).map((p) => p.slice(1)),
  };
}

/**
 * The route and its parameters for a request path, as the express routers would match it
 * (case-sensitive, one optional trailing slash, parameters non-empty and URI-decoded), or
 * undefined: no route, or a path this matcher leaves to express (empty segments, bad escapes).
 */
function matchRoute(routes: LeanRoute[], method: string, path: string): { route: LeanRoute; params: Record<string, string> } | undefined {
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  const parts = trimmed.split('/');
  for (const route of routes) {
    if (route.method !== method || route.segments.length !== parts.length - 1) continue;
    const values: string[] = [];
    let ok = true;
    for (let i = 0; i < route.segments.length && ok; i++) {
      const seg = route.segments[i];
      const part = parts[i + 1]!;
      if (seg === null) {
        if (part === '') ok = false;
        else values.push(part);
      } else ok = seg === part;
    }
    if (!ok) continue;
    const params: Record<string, string> = {};
    try {
      for (const [i, name] of route.names.entries()) params[name] = decodeURIComponent(values[i]!);
    } catch {
      return undefined;
    }
    return { route, params };
  }
  return undefined;
}

/**
 * The lean lane as one middleware for the API mount (after the body is read, before the full
 * path). `table` must be mounted already (its handlers exist).
 */
export function leanLane(table: RouteTable, auth: HttpAuth, deviceCookie: string): RequestHandler {
  const groups = new Map<string, LeanRoute[]>();
  for (const def of table.routes) {
    const segment = firstSegment(def.path);
    if (SESSION_WRITERS.has(segment) || def.writesSession || def.role === 'anyone') continue;
    let g = groups.get(segment);
    if (!g) groups.set(segment, (g = []));
    g.push(compile(def));
  }
  const csrf = auth.csrfProtection();
  return (req, res, next) => {
    const routes = groups.get(firstSegment(req.path));
    if (!routes || (req.body === undefined && hasBody(req))) return next();
    const m = matchRoute(routes, req.method, req.path);
    const handler = m && table.handlers.get(m.route.def);
    if (!m || !handler) return next();
    auth.leanLogin(req, deviceCookie).then((settled) => {
      if (!settled) return next();
      req.params = m.params;
      // The request's log line and metrics name the route, as express's router does.
      (req as { route?: unknown }).route = { path: m.route.def.path };
      res.locals.lean = true;
      csrf(req, res, (err?: unknown) => (err ? next(err) : void handler(req, res, next)));
    }, next);
  };
}

/** A body comes with the request (body-parser's rule): it is read by the full path's parsers unless read already. */
function hasBody(req: Request): boolean {
  return req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined;
}
