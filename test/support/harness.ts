// A real broker for tests: in-process, real Redis (own key prefix), listening on 127.0.0.1.
import type { Server } from 'node:http';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { loadConfig, type Config } from '../../server/config/index.ts';
import { createLogger } from '../../server/observability/index.ts';
import { createBrokerApp, createHttpServer, type BrokerApp } from '../../server/app.ts';
import { attachTunnel, type AttachedTunnel } from '../../server/tunnel/index.ts';
import type { Provider } from '../../server/providers/index.ts';
import { SYSTEM_ACTOR, type PoolSpec, type Role } from '../../server/broker/index.ts';
import { FakeProvider } from './fake-provider.ts';
import { desktopSpec } from '../../server/jobs/desktop-lifecycle.ts';
import { SHARED_REDIS_URL, uniquePrefix, dropPrefix } from './redis.ts';

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export function testConfig(prefix: string, over: DeepPartial<Config> = {}, redisUrl = SHARED_REDIS_URL): Config {
  const base: DeepPartial<Config> = {
    server: { host: '127.0.0.1', port: 0 },
    redis: { url: redisUrl, keyPrefix: prefix, autoStart: false },
    // No second factor by default (test/auth/mfa-*.test.ts and test/client/mfa.test.ts turn it on).
    auth: { argon2MemoryKib: 1024, argon2TimeCost: 1, mfa: { requiredFor: { roles: [], groups: [] } } },
    jobs: { enabled: false, poolSizingIntervalMs: 100, lifecycleIntervalMs: 50, sessionTimeoutsIntervalMs: 100, inventoryIntervalMs: 200, backoffBaseMs: 20, backoffMaxMs: 200, leaseTtlMs: 2000 },
    logging: { level: (process.env.VDI_TEST_LOG ?? 'silent') as Config['logging']['level'] },
  };
  const merge = (a: any, b: any): any => {
    const out = { ...a };
    for (const [k, v] of Object.entries(b ?? {})) out[k] = v && typeof v === 'object' && !Array.isArray(v) ? merge(a?.[k] ?? {}, v) : v;
    return out;
  };
  return loadConfig({ env: {}, overrides: merge(base, over) });
}

export interface TestBroker {
  app: BrokerApp;
  server: Server;
  /** The Guacamole tunnel on the same server (built-in gateway unless guacd.host is set). */
  tunnel: AttachedTunnel;
  url: string;
  prefix: string;
  provider: FakeProvider;
  config: Config;
  close(): Promise<void>;
  /** Adds a user straight into the store (fast; the password hash is computed once per broker). */
  addUser(id: string, role?: Role, groups?: string[]): Promise<void>;
  pool(spec: Partial<PoolSpec> & { name: string }): PoolSpec;
  /** Ready desktops made by hand (no reconcilers), present in the FakeProvider too. */
  readyDesktops(pool: string, n: number): Promise<string[]>;
}

export const PASSWORD = 'correct horse battery';

export async function startTestBroker(opts: { name: string; config?: DeepPartial<Config>; providers?: Provider[]; redisUrl?: string; keepKeys?: boolean; prefix?: string } = { name: 'broker' }): Promise<TestBroker> {
  const prefix = opts.prefix ?? uniquePrefix(opts.name);
  // Users' folders go to a share root of this broker's own (removed on close), unless the test sets shares.
  const shareRoot = (opts.config as { shares?: unknown } | undefined)?.shares ? null : mkdtempSync(join(tmpdir(), 'vdi-share-'));
  const over = shareRoot
    ? { ...opts.config, shares: { list: [{ name: 'home', root: shareRoot, unc: '', guacdPath: '', createRoot: true }] } }
    : opts.config;
  const config = testConfig(prefix, over as DeepPartial<Config>, opts.redisUrl);
  const provider = new FakeProvider();
  const app = await createBrokerApp({ config, logger: createLogger(config.logging.level), providers: opts.providers ?? [provider] });
  const server = createHttpServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const tunnel = await attachTunnel({ server, store: app.store, broker: app.broker, providers: app.providers, config, logger: createLogger(config.logging.level), metrics: app.metrics, logins: (req) => app.auth.loginOfUpgrade(req), trustProxy: app.app.get('trust proxy fn') });
  // A registered, published image "demo" (an empty disk file: the fake provider never reads it).
  const imageDir = mkdtempSync(join(tmpdir(), 'vdi-image-'));
  writeFileSync(join(imageDir, 'disk.qcow2'), '');
  if (!(await app.store.images.get('demo'))) {
    await app.broker.images.create(SYSTEM_ACTOR, 'demo', 'Demo image');
    await app.broker.images.addVersion(SYSTEM_ACTOR, 'demo', { path: imageDir, publish: true });
  }
  let hash: string | undefined;
  return {
    app, server, tunnel, url, prefix, provider, config,
    async close() {
      await tunnel.close();
      await app.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      if (!opts.keepKeys) await dropPrefix(config.redis.url, prefix);
      rmSync(imageDir, { recursive: true, force: true });
      if (shareRoot) rmSync(shareRoot, { recursive: true, force: true });
    },
    async addUser(id, role = 'user', groups = []) {
      hash ??= await (await import('argon2')).default.hash(PASSWORD, { type: 2, memoryCost: 1024, timeCost: 1 });
      await app.store.users.create({ id, displayName: id, role, passwordHash: hash, groups });
    },
    async readyDesktops(pool, n) {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const r = await app.store.desktops.provisionSpare(pool, Date.now());
        if (!('id' in r)) throw new Error(`cannot provision in ${pool}: ${r.error}`);
        const t = await app.store.desktops.transition(r.id, 'settled', { expect: ['provisioning'] });
        if (!t.ok || t.to !== 'ready') throw new Error(`desktop did not settle: ${JSON.stringify(t)}`);
        await provider.create(desktopSpec((await app.store.desktops.get(r.id))!, (await app.store.pools.get(pool))!));
        await provider.start(r.id);
        ids.push(r.id);
      }
      return ids;
    },
    pool(spec) {
      return {
        displayName: 'Test pool', description: '', assignment: 'floating', persistence: 'refresh',
        size: { min: 0, max: 10, spare: 0 }, naming: `${spec.name}-{n:03}`,
        resources: { vcpu: 1, memoryMiB: 256, diskGiB: 4, network: 'default', graphics: 'vga' },
        image: 'demo', provider: 'fake', clone: 'linked', entitlements: { users: [], groups: [] },
        sessionPolicy: { idleTimeoutSeconds: 0, logoffAfterDisconnectSeconds: 900, maxSessionSeconds: 0 },
        enabled: true, maintenance: false,
        ...spec,
      };
    },
  };
}

export interface HttpResult {
  status: number;
  body: any;
  headers: Headers;
}

/** A browser-like API client: keeps the session cookie and sends the CSRF token. */
export class ApiClient {
  cookie = '';
  csrf = '';
  bearer = '';

  constructor(readonly base: string) {}

  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
    const h: Record<string, string> = { ...headers };
    if (this.cookie) h.cookie = this.cookie;
    if (this.csrf) h['x-csrf-token'] = this.csrf;
    if (this.bearer) h.authorization = `Bearer ${this.bearer}`;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    // A request the broker never answers fails the test naming it, instead of hanging the file.
    const res = await fetch(`${this.base}/api/v1${path}`, { method, headers: h, body: payload, redirect: 'manual', signal: AbortSignal.timeout(60_000) }).catch((e: Error) => {
      throw new Error(`${method} ${path}: ${e.name === 'TimeoutError' ? 'no answer within 60 s' : e.message}`, { cause: e });
    });
    const set = res.headers.getSetCookie();
    for (const c of set) {
      const [kv] = c.split(';');
      if (kv?.startsWith('vdi.sid=')) this.cookie = kv;
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON (metrics)
    }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  get(path: string) {
    return this.request('GET', path);
  }
  post(path: string, body?: unknown) {
    return this.request('POST', path, body ?? {});
  }
  patch(path: string, body: unknown) {
    return this.request('PATCH', path, body);
  }
  del(path: string) {
    return this.request('DELETE', path);
  }

  async login(username: string, password = PASSWORD): Promise<HttpResult> {
    const r = await this.request('POST', '/auth/login', { username, password });
    if (r.status === 200) this.csrf = r.body.csrfToken;
    return r;
  }
}

/** Polls until fn returns a truthy value or the time is up. */
export async function waitFor<T>(fn: () => Promise<T | null | undefined | false>, timeoutMs = 10_000, stepMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
