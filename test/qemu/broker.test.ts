// The broker process with the embedded QEMU driver, end to end through its API: a pool of real
// desktops boots, the broker is SIGKILLed while one is being provisioned and started again
// (running desktops re-adopted, the half-made one completed, no orphans), a desktop moves to
// another host live, bad inputs give clear errors, and deleting the pool leaves nothing behind.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ensureDemoImage, TestEnv } from './helpers.ts';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { uniquePrefix, freePort, SHARED_REDIS_URL, dropPrefix } from '../support/redis.ts';
import { startBrokerProcess, type BrokerProcess } from '../support/process.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

const env = new TestEnv('broker');
const prefix = uniquePrefix('qemu-broker');
let admin: TestBroker | undefined;
const procs: BrokerProcess[] = [];

after(async () => {
  for (const p of procs) await p.kill('SIGKILL');
  await admin?.close();
  await dropPrefix(SHARED_REDIS_URL, prefix);
  await env.cleanup();
});

test('a pool of QEMU desktops through the broker: boot, SIGKILL mid-provisioning, restart, migrate, delete', { timeout: 420_000 }, async () => {
  const imageDir = path.join(ensureDemoImage(), 'demo', '1');
  // an in-process broker (no jobs) on the same prefix: the admin's tool to seed users and a key
  admin = await startTestBroker({ name: 'qemu-admin', prefix, keepKeys: true });
  await admin.addUser('alice');
  await admin.addUser('bob');
  await admin.addUser('carol');
  const { token } = await admin.app.identity.createApiKey(SYSTEM_ACTOR, { name: 'test', role: 'admin' });

  const port = await freePort();
  const cfg = path.join(env.root, 'broker.yaml');
  fs.writeFileSync(
    cfg,
    [
      'providers:',
      '  - name: local',
      '    kind: qemu',
      '    accel: auto',
      '    stopTimeoutMs: 15000',
      '    hosts:',
      `      - { name: h1, dataDir: ${path.join(env.root, 'h1')}, capacity: { vcpu: 8, memoryMiB: 2048 } }`,
      `      - { name: h2, dataDir: ${path.join(env.root, 'h2')}, capacity: { vcpu: 8, memoryMiB: 2048 } }`,
      `images: { dir: ${path.join(env.root, 'images')} }`,
    ].join('\n'),
  );
  const vars = {
    VDI_CONFIG: cfg, VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(port), VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: prefix,
    VDI_LOGGING_LEVEL: 'info', VDI_JOBS_POOL_SIZING_INTERVAL_MS: '300', VDI_JOBS_LIFECYCLE_INTERVAL_MS: '200', VDI_JOBS_INVENTORY_INTERVAL_MS: '1000',
    VDI_JOBS_LEASE_TTL_MS: '2000', VDI_JOBS_MAX_FAILURES: '5', VDI_JOBS_BACKOFF_BASE_MS: '200',
  };
  let p = await startBrokerProcess('server/main.ts', vars);
  procs.push(p);
  const api = new ApiClient(p.url);
  api.bearer = token;

  // the image, then the pool
  assert.equal((await api.post('/images', { name: 'qdemo', displayName: 'QEMU demo' })).status, 201);
  const noVersion = await api.post('/pools', { ...admin.pool({ name: 'qp', provider: 'local', image: 'qdemo' }) });
  assert.equal(noVersion.status, 400);
  assert.equal(noVersion.body.error.field, 'image');
  const v = await api.post('/images/qdemo/versions', { path: imageDir, publish: true });
  assert.equal(v.status, 201, JSON.stringify(v.body));
  assert.equal(v.body.image.current, 1);
  const created = await api.post('/pools', {
    ...admin.pool({ name: 'qp', provider: 'local', image: 'qdemo', naming: 'qp-{n:02}', size: { min: 0, max: 3, spare: 2 }, entitlements: { users: ['alice', 'bob', 'carol'], groups: [] } }),
    resources: { vcpu: 1, memoryMiB: 160, diskGiB: 1, network: 'default', graphics: 'vga' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));

  const desktops = async () => (await api.get('/desktops?pool=qp')).body.desktops as { id: string; name: string; mac: string; state: string; host: string; image: string; lastError: string }[];
  const ready = await waitFor(async () => {
    const d = await desktops();
    return d.filter((x) => x.state === 'ready').length === 2 ? d : null;
  }, 120_000, 500);
  assert.equal(new Set(ready.map((d) => d.name)).size, 2);
  assert.equal(new Set(ready.map((d) => d.mac)).size, 2);
  assert.ok(ready.every((d) => d.image === 'qdemo:1' && ['h1', 'h2'].includes(d.host)));
  assert.equal(new Set(ready.map((d) => d.host)).size, 2, 'breadth-first placement uses both hosts');
  assert.equal(env.qemuPids().length, 2);

  // No more spares: alice and bob take the two ready desktops, carol's request creates a new
  // desktop (202, provisioning), and the broker is killed at once, mid-provisioning.
  assert.equal((await api.post('/pools/qp/resize', { min: 0, max: 3, spare: 0 })).status, 200);
  const alice = new ApiClient(p.url);
  const bob = new ApiClient(p.url);
  const carol = new ApiClient(p.url);
  for (const [c, u] of [[alice, 'alice'], [bob, 'bob'], [carol, 'carol']] as const) assert.equal((await c.login(u)).status, 200);
  const ra = await alice.post('/me/pools/qp/request');
  assert.equal(ra.status, 200);
  assert.equal((await bob.post('/me/pools/qp/request')).status, 200);
  const rc = await carol.post('/me/pools/qp/request');
  assert.equal(rc.status, 202, JSON.stringify(rc.body));
  assert.equal(await p.kill('SIGKILL'), null);
  assert.equal((await admin!.app.store.desktops.get(rc.body.desktop.id))?.state, 'provisioning');
  // the pids of the desktops that were running (the half-made one may be rebuilt)
  const pidOf = (d: { id: string; host: string }) => Number(fs.readFileSync(path.join(env.root, d.host, 'desktops', d.id, 'qemu.pid'), 'utf8').trim());
  const pidsAtKill = ready.map(pidOf);
  for (const pid of pidsAtKill) assert.ok(env.qemuPids().includes(pid), 'desktops keep running without the broker');

  p = await startBrokerProcess('server/main.ts', vars);
  procs.push(p);

  const settled = await waitFor(async () => {
    const d = await desktops();
    return d.length === 3 && d.every((x) => x.state === 'in_use') ? d : null;
  }, 120_000, 500).catch(async (e) => {
    throw new Error(`${(e as Error).message}: ${JSON.stringify((await desktops()).map((x) => [x.name, x.state, x.lastError]))}`);
  });
  assert.ok(settled.some((d) => d.id === rc.body.desktop.id), "carol's half-made desktop was completed");
  for (const pid of pidsAtKill) assert.ok(env.qemuPids().includes(pid), `running desktop ${pid} was re-adopted, not restarted`);
  // no orphans: one process per desktop, one directory per desktop
  await new Promise((r) => setTimeout(r, 1500)); // an inventory pass
  assert.equal(env.qemuPids().length, 3);
  const dirs = ['h1', 'h2'].flatMap((h) => (fs.existsSync(path.join(env.root, h, 'desktops')) ? fs.readdirSync(path.join(env.root, h, 'desktops')) : []));
  assert.equal(dirs.length, 3, `desktop directories: ${dirs.join(', ')}`);
  const again = await alice.post('/me/pools/qp/request');
  assert.equal(again.body.desktop.id, ra.body.desktop.id);

  // alice's desktop, in use, moves live to the other host (her folder reaches the guest over
  // SMB through the guest agent, which a live migration keeps; no 9p device blocks it).
  const mine = settled.find((d) => d.id === ra.body.desktop.id)!;
  const to = mine.host === 'h1' ? 'h2' : 'h1';
  const mig = await api.post(`/desktops/${mine.id}/migrate`, { host: to });
  assert.equal(mig.status, 200, JSON.stringify(mig.body));
  assert.equal(mig.body.migration.toHost, to);
  assert.equal((await api.get(`/desktops/${mine.id}`)).body.desktop.host, to);
  const hosts = (await api.get('/hosts')).body.hosts as { name: string; used: { desktops: number } }[];
  assert.equal(hosts.reduce((n, h) => n + h.used.desktops, 0), 3);

  // a pool whose desktops cannot fit anywhere: a clear error on the desktop, nothing half-made
  assert.equal((await api.post('/pools', { ...admin.pool({ name: 'huge', provider: 'local', image: 'qdemo', naming: 'huge-{n}', size: { min: 1, max: 1, spare: 0 } }), resources: { vcpu: 1, memoryMiB: 65536, diskGiB: 1, network: 'default', graphics: 'vga' } })).status, 201);
  const bad = await waitFor(async () => (await api.get('/desktops?pool=huge&state=error')).body.desktops[0], 30_000, 300);
  assert.match(bad.lastError, /capacity/i);
  assert.equal(env.qemuPids().length, 3);

  // deleting the pools destroys every desktop: no process, no file left
  assert.equal((await api.del('/pools/qp')).status, 202);
  assert.equal((await api.del('/pools/huge')).status, 202);
  await waitFor(async () => ((await api.get('/pools')).body.pools.length === 0 ? true : null), 90_000, 500);
  assert.deepEqual(env.qemuPids(), []);
  const left = ['h1', 'h2'].flatMap((h) => (fs.existsSync(path.join(env.root, h, 'desktops')) ? fs.readdirSync(path.join(env.root, h, 'desktops')) : []));
  assert.deepEqual(left, []);
  assert.equal(await p.kill('SIGTERM'), 0);
});
