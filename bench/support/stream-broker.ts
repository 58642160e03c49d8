// The broker process of the stream bench (forked by bench/stream.bench.ts with
// `--import tsx --import ./bench/support/gateway-hook.mjs --expose-gc`): the real broker app
// (HTTP API, sessions in Redis under its own key prefix, the `manual` provider from config,
// reconcilers running) with the Guacamole WebSocket tunnel attached on its HTTP server; the
// built-in gateway runs in its own process (gateway-process.ts). Logs at `warn`.
//
// IPC from the bench: {users: [ids]} creates users (group "bench", password PASSWORD),
// {usage: true} answers this process's and the gateway's CPU and memory (after a GC),
// {exit: true} closes everything, drops its Redis keys and exits. The bench gets
// {ready: {url, password}} once it listens.
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBrokerApp, createHttpServer } from '../../server/app.ts';
import { loadConfig } from '../../server/config/index.ts';
import { createLogger } from '../../server/observability/index.ts';
import { attachTunnel } from '../../server/tunnel/index.ts';
import { PASSWORD, testConfig } from '../../test/support/harness.ts';
import { dropPrefix, uniquePrefix } from '../../test/support/redis.ts';
import { gatewayProcess, type ProcessUsage } from './gateway-process.ts';

const prefix = uniquePrefix('bench-stream');
const shareRoot = mkdtempSync(join(tmpdir(), 'vdi-bench-share-'));
// The reconcile loops at the production defaults (config/default.yaml), not the tests' fast
// ones: at the tests' 50 ms, the loops over a few hundred desktops were most of the broker's
// CPU while a tunnel streamed (its CPU per megapixel is what this bench reports). More
// operations at once than the default 4, so that the machines' consoles are checked and
// they become ready within seconds of the start, as the tests' loops made them.
const config = testConfig(prefix, {
  jobs: { ...loadConfig({ env: {} }).jobs, enabled: true, maxConcurrentOperations: 64 },
  logging: { level: 'warn' },
  shares: { list: [{ name: 'home', root: shareRoot, unc: '', guacdPath: '/srv/homes', createRoot: true }] },
  // A few hundred machines share one Xvnc here: their consoles are probed every 60 s, with a
  // patient timeout (a busy machine must not turn machines unhealthy in the middle of a run).
  providers: [{ name: 'lab', kind: 'manual', healthIntervalMs: 60_000, probeTimeoutMs: 15_000, startTimeoutMs: 30_000, wakeAddress: '127.0.0.1' }],
} as never);
const logger = createLogger('warn');
const app = await createBrokerApp({ config, logger, providers: 'configured' });
const server = createHttpServer(app);
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const tunnel = await attachTunnel({ server, store: app.store, broker: app.broker, providers: app.providers, config, logger, metrics: app.metrics, logins: (req) => app.auth.loginOfUpgrade(req) });
if (!gatewayProcess.usage) throw new Error('the built-in gateway is not in its own process: start with --import ./bench/support/gateway-hook.mjs');
app.startJobs();

let hash: string | undefined;
let closing = false;
const gc = (globalThis as { gc?: () => void }).gc;

async function close(): Promise<void> {
  if (closing) return;
  closing = true;
  try {
    await tunnel.close();
    await app.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await dropPrefix(config.redis.url, prefix);
  } finally {
    rmSync(shareRoot, { recursive: true, force: true });
    process.exit(0);
  }
}

process.on('disconnect', () => void close());
process.on('message', async (m: { users?: string[]; usage?: boolean; exit?: boolean; id?: number }) => {
  try {
    if (m.users) {
      hash ??= await (await import('argon2')).default.hash(PASSWORD, { type: 2, memoryCost: 1024, timeCost: 1 });
      if (!(await app.store.users.getGroup('bench'))) await app.store.users.createGroup({ name: 'bench', displayName: 'Bench users', members: [] });
      for (const id of m.users) await app.store.users.create({ id, displayName: id, role: id === 'admin' ? 'admin' : 'user', passwordHash: hash, groups: ['bench'] });
      process.send!({ id: m.id, done: true });
    } else if (m.usage) {
      gc?.();
      const u = process.cpuUsage();
      const mem = process.memoryUsage();
      const broker: ProcessUsage = { pid: process.pid, cpuMs: (u.user + u.system) / 1000, rss: mem.rss, heap: mem.heapUsed, external: mem.external };
      process.send!({ id: m.id, broker, gateway: await gatewayProcess.usage!(), tunnels: tunnel.count() });
    } else if (m.exit) {
      await close();
    }
  } catch (e) {
    process.send!({ id: m.id, error: (e as Error).message });
  }
});
process.send!({ ready: { url, password: PASSWORD } });
