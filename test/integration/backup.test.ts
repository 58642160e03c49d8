// Backup and restore (docs/backup.md) for real: a broker with a running QEMU desktop in use
// (alice's session) is backed up with the CLI, the file is restored with the CLI into a second,
// empty redis-server (started here, stopped after), and a new broker on that Redis re-adopts the
// running desktop (same id, same QEMU process, in use, console answering), keeps alice's
// session and login cookie, and logs users in. Restoring into a non-empty Redis is refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createBrokerApp, createHttpServer, type BrokerApp } from '../../server/app.ts';
import { createLogger } from '../../server/observability/index.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import type { Config } from '../../server/config/index.ts';
import { vncHello } from '../../server/providers/qemu/machine.ts';
import { ensureDemoImage } from '../qemu/helpers.ts';
import { testConfig, ApiClient, PASSWORD, waitFor } from '../support/harness.ts';
import { uniquePrefix, dropPrefix, SHARED_REDIS_URL } from '../support/redis.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { qemuPidsUnder, ROOT } from '../support/process.ts';
import { restoreBackup, BackupError } from '../../server/store/backup.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vdi-backup-'));
const prefix = uniquePrefix('backup');
const running: { app: BrokerApp; server: Server }[] = [];
let second: TestRedisServer | undefined;

async function start(redisUrl: string): Promise<{ app: BrokerApp; url: string; config: Config }> {
  const config = testConfig(prefix, {
    jobs: { enabled: true, inventoryIntervalMs: 500 },
    // QEMU under TCG loads this 2-core machine: give Redis commands room before they count as a stall.
    redis: { commandTimeoutMs: 10_000 },
    images: { dir: path.join(tmp, 'images') },
    shares: { list: [{ name: 'home', root: path.join(tmp, 'share'), unc: '', guacdPath: '', createRoot: true }] },
    providers: [{ name: 'local', kind: 'qemu', accel: 'tcg', stopTimeoutMs: 15000, hosts: [{ name: 'h1', dataDir: path.join(tmp, 'h1'), capacity: { vcpu: 8, memoryMiB: 4096 } }] }],
  } as never, redisUrl);
  const app = await createBrokerApp({ config, logger: createLogger('silent'), providers: 'configured' });
  const server = createHttpServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  running.push({ app, server });
  app.startJobs();
  return { app, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, config };
}

async function stop(app: BrokerApp): Promise<void> {
  const i = running.findIndex((r) => r.app === app);
  const [r] = running.splice(i, 1);
  r!.server.closeAllConnections();
  await new Promise<void>((res) => r!.server.close(() => res()));
  await r!.app.close();
}

function cli(redisUrl: string, args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'server/cli.ts'), ...args], {
    cwd: ROOT, encoding: 'utf8', timeout: 90_000,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', VDI_REDIS_URL: redisUrl, VDI_REDIS_KEY_PREFIX: prefix },
  });
}

before(() => {
  ensureDemoImage();
});

after(async () => {
  for (const r of [...running]) await stop(r.app).catch(() => undefined);
  for (const pid of qemuPidsUnder(tmp)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await second?.stop();
  await dropPrefix(SHARED_REDIS_URL, prefix);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('backup of a broker with a desktop in use, restore into an empty Redis: the new broker re-adopts the desktop, sessions and logins intact', { timeout: 240_000 }, async () => {
  const imageDir = path.join(ensureDemoImage(), 'demo', '1');
  const a = await start(SHARED_REDIS_URL);
  const hash = await (await import('argon2')).default.hash(PASSWORD, { type: 2, memoryCost: 1024, timeCost: 1 });
  await a.app.store.users.create({ id: 'alice', displayName: 'Alice', role: 'user', passwordHash: hash, groups: [] });
  await a.app.store.users.create({ id: 'bob', displayName: 'Bob', role: 'user', passwordHash: hash, groups: [] });
  await a.app.broker.images.create(SYSTEM_ACTOR, 'demo', 'Demo');
  await a.app.broker.images.addVersion(SYSTEM_ACTOR, 'demo', { path: imageDir, publish: true });
  await a.app.broker.pools.create({
    name: 'bk', displayName: 'Backup', description: '', assignment: 'floating', persistence: 'persistent', size: { min: 0, max: 1, spare: 1 }, naming: 'bk-{n:02}',
    resources: { vcpu: 1, memoryMiB: 160, diskGiB: 0, network: 'default', graphics: 'vga' }, image: 'demo', provider: 'local', clone: 'linked',
    entitlements: { users: ['alice', 'bob'], groups: [] }, sessionPolicy: { idleTimeoutSeconds: 0, logoffAfterDisconnectSeconds: 900, maxSessionSeconds: 0 }, enabled: true, maintenance: false,
  }, SYSTEM_ACTOR);
  await waitFor(async () => (await a.app.store.desktops.idsInState('bk', 'ready')).length === 1, 180_000, 500);
  const alice = new ApiClient(a.url);
  assert.equal((await alice.login('alice')).status, 200);
  const req = await alice.post('/me/pools/bk/request');
  assert.equal(req.status, 200, JSON.stringify(req.body));
  const desktopId = req.body.desktop.id as string;
  const sessionId = req.body.session.id as string;
  const before = await a.app.store.desktops.get(desktopId);
  assert.equal(before?.state, 'in_use');
  const [pid] = qemuPidsUnder(tmp);
  assert.ok(pid, 'the desktop runs');
  const sessionSecret = await a.app.store.redis.get(a.app.store.keys.sessionSecret);

  // Backup, through the CLI, while the broker runs.
  const file = path.join(tmp, 'broker.backup');
  const b = cli(SHARED_REDIS_URL, ['backup', '--out', file]);
  assert.equal(b.status, 0, b.stderr);
  const summary = JSON.parse(b.stdout) as { keys: number; byType: Record<string, number> };
  assert.ok(summary.keys > 10 && summary.byType.hash && summary.byType.set, b.stdout);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'the backup holds secrets: owner only');
  assert.ok(!b.stdout.includes('$argon2') && !(sessionSecret && b.stdout.includes(sessionSecret)), 'no secret printed');
  const header = JSON.parse(fs.readFileSync(file, 'utf8').split('\n')[0]!) as Record<string, unknown>;
  assert.deepEqual(Object.keys(header).sort(), ['brokerVersion', 'createdAt', 'format', 'keys', 'prefix', 'redisVersion', 'version']);
  assert.equal(header.version, 1);
  assert.equal(header.prefix, prefix);

  // The first broker stops (its desktops keep running); a second, empty Redis gets the backup.
  await stop(a.app);
  second = await startRedisServer();
  const r = cli(second.url, ['restore', '--in', file]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).keys, summary.keys);
  // Again into the now non-empty Redis: refused (the CLI's restore is this function), nothing touched.
  const keys = await second.admin.dbsize();
  await assert.rejects(restoreBackup(second.admin, file, prefix), (e: Error) => e instanceof BackupError && /not empty \(\d+ keys.*--force/s.test(e.message));
  assert.equal(await second.admin.dbsize(), keys);

  // A broker on the restored Redis: same desktop, same process, still in use; the session and
  // alice's login cookie survive; logins work.
  const c = await start(second.url);
  // Two inventory passes of the new broker have seen the desktop.
  const hb = `${prefix}job:inventory:heartbeat`;
  const first = await waitFor(async () => second!.admin.get(hb), 30_000, 100);
  await waitFor(async () => ((await second!.admin.get(hb)) !== first ? true : null), 30_000, 100);
  const after = await c.app.store.desktops.get(desktopId);
  assert.equal(after?.state, 'in_use', JSON.stringify(after));
  assert.equal(after?.session, sessionId);
  assert.deepEqual(qemuPidsUnder(tmp), [pid], 're-adopted, not restarted');
  const con = await c.app.providers.get('local').console(desktopId);
  assert.equal((await vncHello(con.host, con.port)).version, 'RFB 003.008');
  const oldCookie = new ApiClient(c.url);
  oldCookie.cookie = alice.cookie;
  const mine = await oldCookie.get('/me/sessions');
  assert.equal(mine.status, 200, 'the login made before the backup still works');
  assert.deepEqual(mine.body.sessions.map((s: { id: string }) => s.id), [sessionId]);
  const bob = new ApiClient(c.url);
  assert.equal((await bob.login('bob')).status, 200);
  const alice2 = new ApiClient(c.url);
  assert.equal((await alice2.login('alice')).status, 200);
  const same = await alice2.post('/me/pools/bk/request');
  assert.equal(same.status, 200);
  assert.equal(same.body.session.id, sessionId, 'alice gets her live session back');
});
