import express, { type Express, type RequestHandler } from 'express';
import helmet from 'helmet';
import { randomUUID } from 'node:crypto';
import { createServer, IncomingMessage, ServerResponse, type RequestListener, type Server } from 'node:http';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import type { Config } from './config/index.ts';
import { Store, ReplicaBarrier, keyspace, createRedis, connectRedis, redisTarget, sampleRedisLatency } from './store/index.ts';
import { ProviderRegistry, type Provider } from './providers/index.ts';
import { createProviders } from './providers/configured.ts';
import { MachineService } from './providers/manual/index.ts';
import { Broker, DESKTOP_STATES } from './broker/index.ts';
import { Passwords, LoginThrottle, IdentityService, HttpAuth, createAuthenticators } from './auth/index.ts';
import { createApi, errorHandler, type RouteTable } from './api/index.ts';
import { inSeries } from './api/in-series.ts';
import { eventHubOf } from './api/event-hub.ts';
import { doctorRoutes } from './api/doctor.router.ts';
import { ClockPublisher, doctorContext } from './doctor/index.ts';
import { createReconcilers, GuestEvents, type Reconcilers } from './jobs/index.ts';
import { ShadowRepository } from './store/shadow.repository.ts';
import { HistoryRepository } from './store/history.repository.ts';
import { ShadowService } from './broker/shadow.service.ts';
import { OverviewService } from './broker/overview.service.ts';
import { PoolHistory, POOL_HISTORY_INTERVAL_MS } from './jobs/pool-history.ts';
import { Metrics, requestIdOf, type Logger } from './observability/index.ts';
import { BrokerError } from './errors.ts';
import { TicketService } from './tunnel/tickets.ts';
import { createShares, HomeShares, type Shares, useGuestAgents } from './shares/index.ts';
import { MfaService, TOTP_KEY_PURPOSE } from './auth/mfa/index.ts';
import { derivedKey } from './store/index.ts';
import { DeviceService } from './devices/index.ts';
import { createAgents, type AgentHub } from './agent/index.ts';

export const VERSION = '0.1.0';
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface BrokerAppOptions {
  config: Config;
  logger: Logger;
  /** Hypervisor drivers: a list (tests), or 'configured' for the ones config.providers names. */
  providers?: Provider[] | 'configured';
  /** Reuse a client (tests); otherwise one is made from config.redis. */
  redis?: Redis;
  metrics?: Metrics;
  now?: () => number;
}

export interface BrokerApp {
  app: Express;
  /** The HTTP server's request listener: the lean lane, then `app` (createHttpServer). */
  listener: RequestListener;
  store: Store;
  broker: Broker;
  identity: IdentityService;
  /** Logins (cookie sessions, API keys); the tunnel resolves them from WebSocket upgrades. */
  auth: HttpAuth;
  providers: ProviderRegistry;
  reconcilers: Reconcilers | null;
  /** User files: shares, the files API's service, the home-folder hook. */
  shares: Shares;
  routes: RouteTable;
  metrics: Metrics;
  /** Guest agent events applied to sessions (logoff/poweroff inside the guest, logon done, idle). */
  guestEvents: GuestEvents;
  /** The guest agents (server/agent, docs/agent.md): readiness, logon/logoff, messages, status. */
  agents: AgentHub;
  /** Enrolled thin-client devices (server/devices). */
  devices: DeviceService;
  /** Starts the reconcilers (if enabled in config). */
  startJobs(): void;
  /**
   * Shutdown begins (first SIGTERM): /readyz and new API requests answer 503 not_ready so a load
   * balancer moves traffic elsewhere; requests already in flight are served to their end.
   */
  drain(): void;
  /** Before drain(), behind a load balancer: /readyz answers 503 (not_ready) but requests are still served. */
  leave(): void;
  close(): Promise<void>;
}

function requestLog(logger: Logger, metrics: Metrics): RequestHandler {
  // The histogram's series by method, route and status (a bounded set: routes are declared), so a
  // request does not build and hash its label set again.
  const series = new Map<string, { observe: (seconds: number) => void }>();
  return (req, res, next) => {
    // The lean lane reads the body and the login before this step: it counts from the request's arrival.
    const start = (res.locals.startedAt as number | undefined) ?? performance.now();
    const id = requestIdOf(req.headers);
    res.locals.reqId = id;
    res.setHeader('X-Request-Id', id);
    res.once('finish', () => {
      const ms = performance.now() - start;
      const route = (req.route?.path as string | undefined) ?? 'unmatched';
      const key = `${req.method} ${req.baseUrl}${route} ${res.statusCode}`;
      let h = series.get(key);
      if (!h) {
        if (series.size >= 10_000) series.clear();
        series.set(key, (h = metrics.httpDuration.labels({ method: req.method, route: `${req.baseUrl}${route}`, status: String(res.statusCode) })));
      }
      h.observe(ms / 1000);
      if (res.locals.lean) metrics.httpLean.inc();
      // The line (and its object) only when it is written: access lines are debug, 5xx warn.
      const level = res.statusCode >= 500 ? 'warn' : 'debug';
      if (logger.isLevelEnabled(level)) logger[level]({ reqId: id, ...(res.locals.session ? { session: res.locals.session } : {}), method: req.method, path: req.path, status: res.statusCode, ms: Math.round(ms * 10) / 10 }, 'request');
    });
    next();
  };
}

/**
 * The HTTP server for the broker (its `listener`: the lean lane ahead of the express app), or
 * for an express app alone. Its requests and responses are born with
 * express's prototypes: express otherwise switches the prototype of every request and response
 * it is handed (Object.setPrototypeOf), which leaves V8's property caches in node's HTTP code
 * megamorphic and was a third of an API request's CPU time (bench:assign). Express still sets
 * them; setting a prototype an object has already is a no-op.
 */
export function createHttpServer(target: Express | Pick<BrokerApp, 'app' | 'listener'>): Server {
  const app = 'listener' in target ? target.app : target;
  const listener = 'listener' in target ? target.listener : target;
  function BrokerRequest(this: IncomingMessage, socket: ConstructorParameters<typeof IncomingMessage>[0]): void {
    IncomingMessage.call(this, socket);
  }
  BrokerRequest.prototype = app.request;
  function BrokerResponse(this: ServerResponse, req: IncomingMessage, options?: object): void {
    (ServerResponse as unknown as (this: ServerResponse, req: IncomingMessage, options?: object) => void).call(this, req, options);
  }
  BrokerResponse.prototype = app.response;
  return createServer({ IncomingMessage: BrokerRequest as unknown as typeof IncomingMessage, ServerResponse: BrokerResponse as unknown as typeof ServerResponse }, listener);
}

/**
 * The same headers as `mw` (helmet: static values only, no per-request input such as a CSP
 * nonce), computed once and copied onto each answer: helmet's dozen small middlewares per
 * request were a visible part of a request's CPU time.
 */
export function precomputedHeaders(mw: RequestHandler): RequestHandler {
  const set: [string, string | string[]][] = [];
  const removed: string[] = [];
  let done = false;
  const res = {
    setHeader: (name: string, value: string | number | string[]) => void set.push([name, Array.isArray(value) ? value : String(value)]),
    removeHeader: (name: string) => void removed.push(name),
    getHeader: () => undefined,
  };
  void mw({ method: 'GET', headers: {}, secure: false } as never, res as never, ((err?: unknown) => {
    if (err) throw err;
    done = true;
  }) as never);
  if (!done) throw new Error('header middleware did not finish synchronously; it cannot be precomputed');
  return (_req, r, next) => {
    for (const [name, value] of set) r.setHeader(name, value);
    for (const name of removed) r.removeHeader(name);
    next();
  };
}

const JSON_TYPE = /^application\/json\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

function bodyError(message: string, type: string): Error {
  return Object.assign(new Error(message), { type, status: 400, statusCode: 400, expose: true });
}

/**
 * The common API body (UTF-8 JSON with a Content-Length within the limit, not compressed) read
 * and parsed here, with express.json's rules (strict: an object or array; an empty body is {};
 * a leading BOM is dropped; the same error types for the error handler). Everything else
 * (chunked, compressed, other charsets, too large, other types) is left to express.json in
 * the API router, which skips a body already read. body-parser's stream machinery was a
 * visible share of a request's CPU time.
 */
export function fastJsonBody(limitBytes: number): RequestHandler {
  return (req, _res, next) => {
    // Read already (by the lean lane, which then passed the request on).
    if (req.body !== undefined) return next();
    const h = req.headers;
    const len = h['content-length'];
    if (len === undefined || h['transfer-encoding'] !== undefined || h['content-encoding'] !== undefined || !/^\d{1,9}$/.test(len) || Number(len) > limitBytes || !JSON_TYPE.test(h['content-type'] ?? '')) return next();
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (err) return next(err);
      const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      let text = buf.toString('utf8');
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (text.length === 0) {
        req.body = {};
        return next();
      }
      const first = /^[\x20\x09\x0a\x0d]*(.)/s.exec(text)?.[1];
      if (first !== '{' && first !== '[') return next(bodyError('Unexpected token: the body is not a JSON object or array.', 'entity.parse.failed'));
      try {
        req.body = JSON.parse(text);
      } catch (e) {
        return next(bodyError((e as Error).message, 'entity.parse.failed'));
      }
      next();
    };
    const onData = (c: Buffer) => void chunks.push(c);
    req.on('data', onData);
    req.once('end', () => finish());
    // 'close' follows 'end' on every request: the error (and its stack) is made only when it is one.
    const aborted = () => void (done || finish(bodyError('request aborted', 'request.aborted')));
    req.once('error', aborted);
    req.once('close', aborted);
  };
}

/**
 * Where the web client may connect: its own origin ('self' covers same-origin ws:/wss: in
 * current browsers, so the tunnel needs nothing more) and the thin-client shells allowed to
 * open tunnels (tunnel.allowedOrigins), over HTTP(S) and WebSocket alike.
 */
export function connectSources(allowedOrigins: readonly string[]): string[] {
  const out = ["'self'"];
  for (const o of allowedOrigins) {
    const origin = new URL(o).origin;
    out.push(origin, origin.replace(/^http/, 'ws'));
  }
  return out;
}

/** Builds the broker: store, services, auth, API and reconcilers. The caller listens. */
export async function createBrokerApp(o: BrokerAppOptions): Promise<BrokerApp> {
  const { config, logger } = o;
  const ownsRedis = !o.redis;
  const redis = o.redis ?? createRedis({ ...redisTarget(config.redis), commandTimeoutMs: config.redis.commandTimeoutMs, logger });
  const metrics = o.metrics ?? new Metrics();
  if (ownsRedis && !(await connectRedis(redis, 5000))) {
    logger.warn({ url: config.redis.url.replace(/\/\/[^@]*@/, '//***@') }, 'redis not reachable yet; answering 503 until it is');
  }
  // WAIT on a connection of its own (store/replica-barrier.ts): its socket outlasts the wait.
  const replicaBarrier = config.redis.waitReplicas > 0
    ? new ReplicaBarrier(
      createRedis({ ...redisTarget(config.redis), commandTimeoutMs: config.redis.commandTimeoutMs + config.redis.waitTimeoutMs, logger }),
      keyspace(config.redis.keyPrefix).replicaBarrier, config.redis.waitReplicas, config.redis.waitTimeoutMs,
    )
    : undefined;
  const store = new Store(redis, {
    keyPrefix: config.redis.keyPrefix,
    macs: { prefix: config.desktops.macPrefix.toLowerCase(), size: config.desktops.macPoolSize },
    deletedRetentionSeconds: config.desktops.deletedRetentionDays * 86400,
    auditMaxEntries: config.audit.maxEntries,
    ...(replicaBarrier ? { replicaBarrier } : {}),
  });
  const providers = new ProviderRegistry(Array.isArray(o.providers) ? o.providers : []);
  const broker = new Broker({ store, providers, logger, metrics, ...(o.now ? { now: o.now } : {}) });
  if (o.providers === 'configured') {
    for (const p of createProviders(config, logger, async (ref) => (await broker.images.resolve(ref)).path, store)) providers.add(p);
  }
  // Host maintenance is kept in Redis so it survives restarts and holds for every replica.
  await store.images.hostMaintenance().then(
    async (set) => {
      for (const key of set) {
        const [provider, host] = key.split('/') as [string, string];
        if (providers.has(provider)) await providers.get(provider).setHostMaintenance(host, true).catch(() => undefined);
      }
    },
    () => undefined,
  );
  const passwords = new Passwords({ memoryKiB: config.auth.argon2MemoryKib, timeCost: config.auth.argon2TimeCost, parallelism: config.auth.argon2Parallelism });
  const throttle = new LoginThrottle(redis, { keyPrefix: store.keys.rateLimitPrefix, ...config.auth });
  const authenticators = createAuthenticators(config, { logger, publicUrl: config.server.publicUrl, users: store.users, passwords });
  const identity = new IdentityService(store, passwords, throttle, broker.audit, config.auth.passwordMinLength, broker, { authenticators, roleMapping: config.auth.roleMapping });
  // The cookie secret may live in Redis; if Redis is down now, a request waits for it.
  let secret: string | undefined = config.session.secret || undefined;
  const auth = new HttpAuth(identity, {
    redis,
    sessionPrefix: store.keys.httpSessionPrefix,
    sessionWithUser: (sid) => store.users.withSession(store.keys.httpSessionPrefix + sid),
    ...(replicaBarrier ? { replicated: (what: string) => replicaBarrier.hold(what) } : {}),
    secret: () => {
      if (!secret) throw new Error('session secret read before it was loaded');
      return secret;
    },
    loadSecret: async () => (secret ??= await store.sessionSecret('')),
    cookieName: config.session.cookieName,
    maxAgeSeconds: config.session.maxAgeSeconds,
    secureCookies: config.session.secureCookies,
  });
  // Second factors; TOTP secrets are sealed under a key derived from the tunnel secret.
  let mfaKey: Promise<Buffer> | undefined;
  const mfa = new MfaService(store.mfa, broker.audit, config.auth.mfa, () => (mfaKey ??= store.tickets.secret(config.tunnel.secret).then((s) => derivedKey(s, TOTP_KEY_PURPOSE), (err: unknown) => { mfaKey = undefined; throw err; })), o.now);
  auth.useSecondFactor(mfa);
  const metricsRoute = (table: RouteTable) => table.add({
    method: 'get', path: '/metrics', tag: 'meta', summary: 'Prometheus metrics', role: 'helpdesk',
    handler: async ({ res }) => {
      metrics.desktopsByState.reset();
      metrics.poolSparesTarget.reset();
      for (const p of await store.pools.list()) {
        const c = await store.pools.counts(p.name);
        for (const s of DESKTOP_STATES) metrics.desktopsByState.set({ pool: p.name, state: s }, c[s]);
        metrics.poolSparesTarget.set({ pool: p.name }, p.size.spare);
      }
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
      return undefined;
    },
  });
  const shares = createShares(config, { logger, metrics, audit: broker.audit, providers, quota: store.quota, ...(o.now ? { now: o.now } : {}) });
  broker.assignment.useHome(shares.home);
  const devices = new DeviceService(store.devices, store.sessions, broker.audit, config.devices, o.now, store.users);
  // Helpdesk shadowing (notice, consent, control) and the overview's history and alerts.
  const shadow = new ShadowService(store, new ShadowRepository(store.redis, store.keys.sessionShadow), broker.audit, o.now);
  const history = new HistoryRepository(store.redis, store.keys.poolHistory);
  const overview = new OverviewService(store, history, broker.sessions, broker.audit, () => Promise.all(shares.shares.shares.map(async (s) => ({ name: s.name, ...(await shares.shares.health(s)) }))), o.now);
  const { router: api, table, frontDoor } = createApi({ broker, identity, auth, version: VERSION, tickets: new TicketService({ store, broker, providers, config, drive: (pool, user) => shares.home.drive(pool, user) }), files: shares.files, shares: shares.shares, machines: new MachineService(store, providers, broker.audit, o.now), mfa, publicUrl: config.server.publicUrl, recordings: store.recordings, devices, shadow, overview }, config.server.bodyLimitBytes, (t) => {
    metricsRoute(t);
    // The doctor reads the running broker's own parts (agents are made below; routes run later).
    doctorRoutes(t, () => doctorContext({ config, store, providers, guests: agents, mode: 'broker' }));
  });
  // The live streams' one loop per replica (api/event-hub.ts), woken by the replicas' tunnel events.
  const events = eventHubOf(broker);
  events.attach((wake) => store.tickets.subscribe((e) => {
    wake('snapshot');
    wake(`messages:${e.session}`);
  }, () => undefined));
  const reconcilers = config.jobs.enabled ? createReconcilers({ store, providers, audit: broker.audit, images: broker.images, logger, metrics, jobs: config.jobs, recordings: config.recordings, ...(o.now ? { now: o.now } : {}) }) : null;
  if (reconcilers) reconcilers.lifecycle.homeOf = shares.home.homeOf;
  const poolHistory = new PoolHistory(store, history);
  if (reconcilers) reconcilers.runner.add({ name: 'pool-history', intervalMs: POOL_HISTORY_INTERVAL_MS, run: (c) => poolHistory.run(c) });
  // Guest agents: a desktop is ready once its guest says so; the replica holding the `agents`
  // lease holds the channels, the others reach them through Redis.
  const agentParts = createAgents({ config, store, providers, resolveImage: (ref) => broker.images.resolve(ref), logger, metrics,
    // Until this replica's runner runs, nobody else's lease can be assumed: the channels are local.
    leased: () => !!reconcilers?.runner.started, ...(o.now ? { now: o.now } : {}) });
  const agents = agentParts.agents;
  // Each replica publishes its clock against Redis TIME (the doctor's replica-skew check).
  const clock = new ClockPublisher(store);
  metrics.buildInfo.set({ version: VERSION }, 1);
  const stopRedisSampler = sampleRedisLatency(redis, { sample: (sec) => metrics.redisLatency.observe(sec), up: (isUp) => metrics.redisUp.set(isUp ? 1 : 0) });
  clock.start();
  if (reconcilers) {
    reconcilers.lifecycle.agents = agents;
    reconcilers.lifecycle.agentSecretOf = agentParts.secretOf;
    reconcilers.runner.add({ name: 'agents', intervalMs: config.agent.syncIntervalMs, run: (c) => agentParts.sync(c.holdsLease) });
  }
  // Users' folders mounted by the guest agent at logon, unmounted at logoff (docs/shares.md).
  useGuestAgents(shares, agents, { store, sessions: broker.sessions, reconcilers, intervalMs: config.jobs.lifecycleIntervalMs });
  const guestEvents = new GuestEvents(store, broker.sessions, broker.audit, logger, o.now);
  guestEvents.guestUserOf = HomeShares.guestUser;
  if (reconcilers) reconcilers.inventory.poweredOff = (id) => guestEvents.poweredOff(id);
  // The guest logon completes the timeline only where our agent talks (qga / no agent: first frame alone).
  broker.sessions.expectsGuestLogon = async (d) => (await agents.status(d.id, d))?.via === 'vdi';
  // What the guests say (logoff/poweroff inside, logon done, idle) and helpdesk messages to them.
  guestEvents.subscribe(agents);
  broker.sessions.useGuests(agents);
  let closing = false;
  // Leaving (runtime.ts, server.drainSeconds): not ready, still serving until the balancer has moved away.
  let leaving = false;

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.server.trustProxy);
  // No ETag on answers: the API's are live state (a hash of every answer cost CPU on the hot
  // path and no client revalidates them); the web client's files keep theirs (serve-static).
  app.set('etag', false);
  // Strict CSP (no inline scripts). No upgrade-insecure-requests: TLS is the proxy's business,
  // and the quick start serves plain HTTP. HSTS only on requests that arrived over TLS
  // (req.secure honours server.trustProxy and X-Forwarded-Proto): over plain HTTP it means nothing.
  const hsts = helmet.strictTransportSecurity();
  // The steps every request takes, as one express layer (each layer costs a router pass); the
  // lean lane runs the same ones (lean-lane.ts).
  const everyRequest = inSeries(
    precomputedHeaders(helmet({ contentSecurityPolicy: { directives: { 'connect-src': connectSources(config.tunnel.allowedOrigins), 'img-src': ["'self'", 'data:', 'blob:'], 'upgrade-insecure-requests': null } }, strictTransportSecurity: false })),
    (req, res, next) => (req.secure ? hsts(req, res, next) : next()),
    requestLog(logger, metrics),
    // While draining, every answer asks the client to take its next request elsewhere.
    (_req, res, next) => {
      if (closing || leaving) res.setHeader('Connection', 'close');
      next();
    },
  );
  app.use(everyRequest);
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', version: VERSION });
  });
  app.get('/readyz', async (_req, res) => {
    const redisOk = store.available && (await store.ping());
    const jobsOk = !reconcilers || reconcilers.runner.healthy();
    const ok = redisOk && jobsOk && !closing && !leaving;
    if (!ok) res.set('Retry-After', '2');
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not_ready', redis: redisOk, reconcilers: reconcilers ? jobsOk : 'disabled', closing: closing || leaving });
  });
  const apiBody = fastJsonBody(config.server.bodyLimitBytes);
  app.use('/api/v1', inSeries(async (req, _res, next) => {
    if (closing) return next(new BrokerError('not_ready', undefined, { retryAfterSeconds: 2 }));
    // The API description needs no state; everything else needs Redis (and the cookie secret kept there).
    const doc = req.path === '/openapi.json';
    if (!store.available) return doc ? next() : next(new BrokerError('redis_unavailable', undefined, { retryAfterSeconds: 2 }));
    try {
      secret ??= await store.sessionSecret('');
      next();
    } catch (err) {
      next(doc ? undefined : err);
    }
  }, apiBody, api));
  // The web client (`npm run build:client`). Hashed assets are cached; index.html is not, and
  // it answers every client route (/desktop/..., /helpdesk/...) so deep links and reloads work.
  const clientDir = join(ROOT, 'client/dist');
  if (existsSync(join(clientDir, 'index.html'))) {
    app.use('/assets', express.static(join(clientDir, 'assets'), { immutable: true, maxAge: '1y', fallthrough: false }));
    app.use(express.static(clientDir, { index: 'index.html', maxAge: 0 }));
    app.get(/^\/(?!api\/|assets\/)[^.]*$/, (req, res, next) => (req.accepts('html') ? res.sendFile(join(clientDir, 'index.html'), { maxAge: 0 }) : next()));
  } else {
    logger.warn({ clientDir }, 'web client not built (npm run build:client); only the API is served');
  }
  const onError = errorHandler(logger);
  app.use(onError);
  // Logged-in callers of routes that leave the HTTP session alone are served ahead of express (lean-lane.ts).
  const listener = frontDoor({ app, mount: '/api/v1', ready: () => !closing && store.available, body: apiBody, everyRequest, onError });

  return {
    app, listener, store, broker, identity, auth, providers, reconcilers, shares, routes: table, metrics, guestEvents, devices, agents,
    startJobs() {
      reconcilers?.runner.start();
    },
    drain() {
      closing = true;
    },
    leave() {
      leaving = true;
    },
    async close() {
      closing = true;
      // Running uploads are aborted and cleaned up while Redis is still there (reservations).
      await shares.close();
      await events.close();
      await reconcilers?.stop();
      await clock.stop();
      stopRedisSampler();
      await agents.close();
      await providers.close();
      if (ownsRedis) redis.disconnect();
      replicaBarrier?.close();
    },
  };
}
