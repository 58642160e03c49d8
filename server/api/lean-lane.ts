// The lean lane: an API request from a caller who is logged in already (cookie session or API
// key) to a route that changes nothing in the HTTP session is served ahead of express (the HTTP
// server's request listener, createHttpServer): without express's routing, express-session, the
// per-request auth middlewares and the route groups' routers. It runs the steps every request
// takes (security headers, request log, drain header: the same functions express runs) and the
// route's own handler (RouteTable.handlers: the same role guard, validation, audit of refusals
// and answer) after the same login and CSRF checks. Anything it cannot settle (no login, a
// login being made, a session due for its refresh, a thin client's device cookie, a body it
// does not read, a path it does not match, a broker draining or without Redis) goes on to the
// express app unchanged: what is refused or answered there is exactly what it was before.
// Measured in `npm run bench:assign`.
import type { ErrorRequestHandler, Express, Request, RequestHandler, Response } from 'express';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { BrokerError } from '../errors.ts';
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

/** What the front door needs from the app around it (server/app.ts). */
export interface FrontDoorOptions {
  /** The full path: the express app, for every request the lane does not settle. */
  app: Express;
  /** Where the API is mounted ('/api/v1'). */
  mount: string;
  /** The API takes requests now (not draining, Redis reachable); else the app answers. */
  ready: () => boolean;
  /** The API's body reader (express middleware: sets req.body, or leaves a body it does not read to express). */
  body: RequestHandler;
  /** The steps every request takes, as one middleware (headers, request log, drain header). */
  everyRequest: RequestHandler;
  /** The app's error handler: the lane's refusals answer exactly like the full path's. */
  onError: ErrorRequestHandler;
}

/**
 * The lean lane as the HTTP server's request listener, ahead of express. `table` must be
 * mounted already (its handlers exist).
 */
export function leanFrontDoor(table: RouteTable, auth: HttpAuth, deviceCookie: string, o: FrontDoorOptions): RequestListener {
  const groups = new Map<string, LeanRoute[]>();
  for (const def of table.routes) {
    const segment = firstSegment(def.path);
    if (SESSION_WRITERS.has(segment) || def.writesSession || def.role === 'anyone') continue;
    let g = groups.get(segment);
    if (!g) groups.set(segment, (g = []));
    g.push(compile(def));
  }
  const csrf = auth.csrfProtection();
  const prefix = `${o.mount}/`;
  return (rawReq, rawRes) => {
    // The server makes them with express's prototypes (createHttpServer).
    const req = rawReq as Request;
    const res = rawRes as ServerResponse as Response;
    const url = req.url ?? '';
    const h = req.headers;
    if (!url.startsWith(prefix) || (h.cookie === undefined && h.authorization === undefined) || !o.ready()) return o.app(req, res);
    const q = url.indexOf('?');
    const path = url.slice(o.mount.length, q < 0 ? url.length : q);
    const routes = groups.get(firstSegment(path));
    const m = routes && matchRoute(routes, req.method ?? '', path);
    const handler = m && table.handlers.get(m.route.def);
    if (!m || !handler) return o.app(req, res);
    const startedAt = performance.now();
    /** From here the lane answers: express's request state, then the steps every request takes. */
    const answerHere = (then: () => void) => {
      req.res = res;
      res.req = req;
      res.locals ??= Object.create(null) as Response['locals'];
      res.locals.startedAt = startedAt;
      req.originalUrl = url;
      req.baseUrl = o.mount;
      req.url = url.slice(o.mount.length);
      o.everyRequest(req, res, (err?: unknown) => (err ? fail(err) : then()));
    };
    const fail = (err: unknown) => o.onError(err, req, res, () => undefined);
    const login = () => {
      auth.leanLogin(req, deviceCookie).then((settled) => {
        if (!settled) return o.app(req, res);
        answerHere(() => {
          req.params = m.params;
          // The request's log line and metrics name the route, as express's router does.
          (req as { route?: unknown }).route = { path: m.route.def.path };
          res.locals.lean = true;
          csrf(req, res, (err?: unknown) => {
            if (err) return fail(err);
            handler(req, res, (e?: unknown) => fail(e ?? new BrokerError('route_not_found', `No API route ${req.method} ${req.path}.`))).catch(fail);
          });
        });
      }, (err: unknown) => answerHere(() => fail(err)));
    };
    if (!hasBody(req)) return login();
    o.body(req, res, (err?: unknown) => {
      if (err) return answerHere(() => fail(err));
      // A body the API's reader leaves alone (chunked, compressed, another type) is read by express.
      if (req.body === undefined) return o.app(req, res);
      login();
    });
  };
}

/** A body comes with the request (body-parser's rule). */
function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined;
}
