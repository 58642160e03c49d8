// A real broker for manual-pool tests: in-process, real Redis (own key prefix), its reconcilers
// running, the `manual` provider built from config (server/providers/configured.ts) exactly as
// in production, the tunnel attached, and every log line it writes kept (to prove no secret
// is ever logged).
import type { Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Config } from '../../../server/config/index.ts';
import { createLogger } from '../../../server/observability/index.ts';
import { createBrokerApp, createHttpServer, type BrokerApp } from '../../../server/app.ts';
import { attachTunnel, type AttachedTunnel } from '../../../server/tunnel/index.ts';
import { SYSTEM_ACTOR, type PoolSpec, type Role } from '../../../server/broker/index.ts';
import { testConfig, ApiClient, PASSWORD } from '../../support/harness.ts';
import { uniquePrefix, dropPrefix } from '../../support/redis.ts';

export interface ManualBroker {
  app: BrokerApp;
  server: Server;
  tunnel: AttachedTunnel;
  url: string;
  prefix: string;
  config: Config;
  /** Every log line the broker and its tunnel wrote (JSON). */
  logs: string[];
  addUser(id: string, role?: Role): Promise<void>;
  /** A manual pool (provider "lab"): sizes 0, image only a label. */
  pool(name: string, over?: Partial<PoolSpec>): Promise<void>;
  client(user: string): Promise<ApiClient>;
  close(): Promise<void>;
}

export async function startManualBroker(name: string, o: { guacd?: { host: string; port: number }; healthIntervalMs?: number } = {}): Promise<ManualBroker> {
  const prefix = uniquePrefix(name);
  const shareRoot = mkdtempSync(join(tmpdir(), 'vdi-manual-share-'));
  const config = testConfig(prefix, {
    jobs: { enabled: true },
    ...(o.guacd ? { guacd: o.guacd } : {}),
    shares: { list: [{ name: 'home', root: shareRoot, unc: '', guacdPath: '/srv/homes', createRoot: true }] },
    // Only loopback: Wake-on-LAN packets (machines with a MAC) go to 127.0.0.1. A start ends as
    // soon as the console answers; its timeout only has to outlast a machine stalled by the other
    // lane's work. With 3 s, the 30-machine CSV import once missed its 30 s while the Docker image
    // was built beside it (2 s when run alone): failed starts wait out the lifecycle's retries.
    providers: [{ name: 'lab', kind: 'manual', healthIntervalMs: o.healthIntervalMs ?? 300, probeTimeoutMs: 1000, startTimeoutMs: 15_000, wakeAddress: '127.0.0.1' }],
  } as never);
  const logs: string[] = [];
  const logger = createLogger('trace', { write: (line: string) => void logs.push(line) });
  const app = await createBrokerApp({ config, logger, providers: 'configured' });
  const server = createHttpServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const tunnel = await attachTunnel({ server, store: app.store, broker: app.broker, providers: app.providers, config, logger, metrics: app.metrics, logins: (req) => app.auth.loginOfUpgrade(req) });
  app.startJobs();
  let hash: string | undefined;
  return {
    app, server, tunnel, url, prefix, config, logs,
    async addUser(id, role = 'user') {
      hash ??= await (await import('argon2')).default.hash(PASSWORD, { type: 2, memoryCost: 1024, timeCost: 1 });
      await app.store.users.create({ id, displayName: id, role, passwordHash: hash, groups: [] });
    },
    async pool(pool, over = {}) {
      await app.broker.pools.create({
        name: pool, displayName: `Lab ${pool}`, description: '', assignment: 'floating', persistence: 'persistent',
        size: { min: 0, max: 0, spare: 0 }, naming: `${pool}-{n:02}`,
        resources: { vcpu: 1, memoryMiB: 256, diskGiB: 4, network: 'default', graphics: 'vga' },
        image: 'none', provider: 'lab', clone: 'linked', entitlements: { users: [], groups: [] },
        sessionPolicy: { idleTimeoutSeconds: 0, logoffAfterDisconnectSeconds: 900, maxSessionSeconds: 0 },
        enabled: true, maintenance: false, ...over,
      }, SYSTEM_ACTOR);
    },
    async client(user) {
      const c = new ApiClient(url);
      const r = await c.login(user);
      if (r.status !== 200) throw new Error(`login ${user}: ${r.status}`);
      return c;
    },
    async close() {
      await tunnel.close();
      await app.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await dropPrefix(config.redis.url, prefix);
      rmSync(shareRoot, { recursive: true, force: true });
    },
  };
}
