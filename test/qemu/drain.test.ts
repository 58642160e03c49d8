// Draining a host of real QEMU desktops (two desktops, hosts h1 and h2 as folders here), under
// the reconcilers' Redis lease: a drain that cannot move anything retries with backoff and
// fails with its reason; a drain with a host in service moves both running desktops live
// (progress visible through the API while it runs, guests alive afterwards); and a drain whose
// broker process is killed half-way is finished by another broker on the same Redis prefix.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { QemuProvider } from '../../server/providers/qemu/qemu.provider.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import type { Config } from '../../server/config/index.ts';
import { ensureDemoImage, SerialShell, TestEnv } from './helpers.ts';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { uniquePrefix, SHARED_REDIS_URL, dropPrefix, freePort } from '../support/redis.ts';
import { startBrokerProcess, type BrokerProcess } from '../support/process.ts';

const env = new TestEnv('drain');
const prefix = uniquePrefix('qemu-drain');
const live = new Set<TestBroker>();
const procs: BrokerProcess[] = [];
let token = '';
let ids: string[] = [];
/** Each guest's boot id at the start: the same after every move means no reboot. */
const bootIds = new Map<string, string>();

interface DrainBody {
  id: string; state: string; reason: string; requestedBy: string;
  progress: { total: number; moved: number; failed: number; pending: number };
  desktops: { id: string; status: string; attempts: number; lastError: string; to: string; movedAt: number }[];
}

/** A broker on the shared prefix with the QEMU driver over h1 and h2, reconcilers running. */
async function broker(name: string, jobs: Partial<Config['jobs']>, startJobs = true): Promise<{ b: TestBroker; api: ApiClient; qemu: QemuProvider }> {
  const qemu = env.provider([env.host('h1', { capacity: { vcpu: 8, memoryMiB: 2048 } }), env.host('h2', { capacity: { vcpu: 8, memoryMiB: 2048 } })]);
  const b = await startTestBroker({
    name, prefix, keepKeys: true, providers: [qemu],
    config: { jobs: { enabled: true, leaseTtlMs: 2000, lifecycleIntervalMs: 200, poolSizingIntervalMs: 300, inventoryIntervalMs: 60_000, operationTimeoutMs: 60_000, ...jobs } },
  });
  live.add(b);
  if (startJobs) b.app.startJobs();
  token ||= (await b.app.identity.createApiKey(SYSTEM_ACTOR, { name: 'drain-test', role: 'admin' })).token;
  const api = new ApiClient(b.url);
  api.bearer = token;
  return { b, api, qemu };
}

async function stop(b: TestBroker): Promise<void> {
  live.delete(b);
  await b.close();
}

async function bootId(qemu: QemuProvider, id: string): Promise<string> {
  const sh = await SerialShell.open((await qemu.serial(id)).socket);
  try {
    return await sh.run('cat /proc/sys/kernel/random/boot_id');
  } finally {
    sh.close();
  }
}

/** Running on `host`, the same boot as at the start, and its clock keeps counting. */
async function assertAlive(qemu: QemuProvider, id: string, host: string): Promise<void> {
  const where = await qemu.describe(id);
  assert.equal(where?.host, host);
  if ((await qemu.power(id)) !== 'running') {
    // What the guest said last (a panic stops QEMU: -no-reboot).
    const log = fs.readFileSync(path.join(where!.dir, 'serial.log'), 'utf8').split('\n').slice(-25).join('\n');
    assert.fail(`desktop ${id} on ${host} is not running; its console ended with:\n${log}`);
  }
  const sh = await SerialShell.open((await qemu.serial(id)).socket);
  try {
    assert.equal(await sh.run('cat /proc/sys/kernel/random/boot_id'), bootIds.get(id), 'no reboot');
    const c1 = Number(await sh.run('cat /run/counter'));
    await waitFor(async () => Number(await sh.run('cat /run/counter')) > c1, 10_000, 200);
  } finally {
    sh.close();
  }
}

const drainOf = async (api: ApiClient, host: string) => {
  const r = await api.get(`/hosts/local/${host}/drain`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.drain as DrainBody;
};

before(() => {
  ensureDemoImage();
});
after(async () => {
  for (const p of procs) await p.kill('SIGKILL');
  for (const b of live) await b.close().catch(() => undefined);
  await dropPrefix(SHARED_REDIS_URL, prefix);
  await env.cleanup();
});

test('a drain that cannot move its desktops retries with backoff, then fails with the reason in the API', { timeout: 240_000 }, async () => {
  const { b, api, qemu } = await broker('qemu-drain-a', { maxFailures: 3, backoffBaseMs: 300, backoffMaxMs: 2000, drainIntervalMs: 100 });
  // Both desktops boot on h1: h2 is in maintenance.
  assert.equal((await api.post('/hosts/local/h2/maintenance', { on: true })).status, 200);
  const created = await api.post('/pools', {
    ...b.pool({ name: 'dq', provider: 'local', image: 'demo', naming: 'dq-{n:02}', size: { min: 2, max: 2, spare: 0 } }),
    resources: { vcpu: 1, memoryMiB: 160, diskGiB: 1, network: 'default', graphics: 'vga' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const ready = await waitFor(async () => {
    const ds = (await api.get('/desktops?pool=dq')).body.desktops as { id: string; state: string; host: string }[];
    return ds.filter((d) => d.state === 'ready').length === 2 ? ds : null;
  }, 150_000, 500);
  assert.deepEqual(ready.map((d) => d.host), ['h1', 'h1']);
  ids = ready.map((d) => d.id);
  for (const id of ids) bootIds.set(id, await bootId(qemu, id));

  const r = await api.post('/hosts/local/h1/drain');
  assert.equal(r.status, 202, JSON.stringify(r.body));
  assert.equal(r.body.drain.state, 'running');
  assert.match(r.body.drain.requestedBy, /^apikey:/);
  assert.equal(r.body.drain.progress.total, 2);
  const failed = await waitFor(async () => {
    const d = await drainOf(api, 'h1');
    return d.state === 'failed' ? d : null;
  }, 30_000, 100);
  assert.match(failed.reason, /2 desktop\(s\) could not be moved/);
  assert.match(failed.reason, /No other host is in service/);
  assert.deepEqual(failed.progress, { total: 2, moved: 0, failed: 2, pending: 0 });
  for (const d of failed.desktops) {
    assert.equal(d.status, 'failed');
    assert.equal(d.attempts, 3);
    assert.match(d.lastError, /No other host is in service/);
  }
  const hosts = (await api.get('/hosts')).body.hosts as { name: string; drain: { state: string; reason: string } | null }[];
  assert.deepEqual(hosts.find((h) => h.name === 'h1')?.drain?.state, 'failed');

  // Every attempt is audited; the waits between a desktop's attempts grow with the backoff.
  const audit = (await b.app.broker.audit.query({ action: 'desktop.migrate', target: ids[0]!, limit: 20 })).entries
    .filter((e) => e.details.drain === failed.id)
    .sort((x, y) => Date.parse(x.at) - Date.parse(y.at));
  assert.deepEqual(audit.map((e) => [e.outcome, e.details.attempt, e.details.final]), [['failed', 1, false], ['failed', 2, false], ['failed', 3, true]]);
  const at = audit.map((e) => Date.parse(e.at));
  assert.ok(at[1]! - at[0]! >= 300, `first retry after ${at[1]! - at[0]!} ms (backoff 300)`);
  assert.ok(at[2]! - at[1]! >= 600, `second retry after ${at[2]! - at[1]!} ms (backoff 600)`);
  assert.equal((await b.app.broker.audit.query({ action: 'host.drain.failed', target: 'local/h1', limit: 5 })).entries.length, 1);
  // nothing moved, nothing broken
  for (const id of ids) assert.equal((await qemu.describe(id))?.host, 'h1');
  await stop(b);
});

test('draining a host live-migrates its running desktops to the other host, progress visible while it runs', { timeout: 240_000 }, async () => {
  assert.equal(ids.length, 2, 'the desktops of the first test');
  const { b, api, qemu } = await broker('qemu-drain-b', { maxFailures: 5, backoffBaseMs: 300, backoffMaxMs: 2000, drainIntervalMs: 200 });
  assert.equal((await api.post('/hosts/local/h2/maintenance', { on: false })).status, 200);
  const r = await api.post('/hosts/local/h1/drain');
  assert.equal(r.status, 202);
  assert.equal(r.body.drain.state, 'running');
  // Sample the API while it runs.
  const seen: DrainBody[] = [];
  const done = await waitFor(async () => {
    const d = await drainOf(api, 'h1');
    seen.push(d);
    return d.state === 'running' ? null : d;
  }, 120_000, 100);
  assert.equal(done.state, 'done', JSON.stringify(done));
  assert.equal(done.id, r.body.drain.id);
  assert.deepEqual(done.progress, { total: 2, moved: 2, failed: 0, pending: 0 });
  assert.ok(seen.some((d) => d.state === 'running' && d.desktops.some((x) => x.status === 'moving' && x.to === 'h2')), 'a migration in progress was visible');
  assert.ok(seen.some((d) => d.state === 'running' && d.progress.moved === 1 && d.progress.pending === 1), 'one of two moved was visible');
  for (const id of ids) {
    await assertAlive(qemu, id, 'h2');
    assert.equal((await api.get(`/desktops/${id}`)).body.desktop.host, 'h2');
  }
  const hosts = (await api.get('/hosts')).body.hosts as { name: string; maintenance: boolean; used: { desktops: number }; drain: { state: string } | null }[];
  const h1 = hosts.find((h) => h.name === 'h1')!;
  assert.deepEqual([h1.maintenance, h1.used.desktops, h1.drain?.state], [true, 0, 'done']);
  assert.equal(hosts.find((h) => h.name === 'h2')!.used.desktops, 2);
  const moves = (await b.app.broker.audit.query({ action: 'desktop.migrate', limit: 50 })).entries.filter((e) => e.details.drain === done.id);
  assert.deepEqual(moves.map((e) => [e.outcome, e.details.fromHost, e.details.toHost]).sort(), [['ok', 'h1', 'h2'], ['ok', 'h1', 'h2']]);
  assert.equal((await b.app.broker.audit.query({ action: 'host.drain.done', target: 'local/h1', limit: 5 })).entries.length, 1);
  await stop(b);
});

test('a drain resumes on another broker when the broker process that started it is killed half-way', { timeout: 240_000 }, async () => {
  assert.equal(ids.length, 2, 'the desktops of the first test');
  // The broker that starts the drain is a process of its own, killed (SIGKILL: no lease given
  // back) between its first and second migration: its drain passes are 3 s apart.
  const port = await freePort();
  const cfg = path.join(env.root, 'broker.yaml');
  fs.writeFileSync(cfg, [
    'providers:',
    '  - name: local',
    '    kind: qemu',
    '    accel: auto',
    '    hosts:',
    `      - { name: h1, dataDir: ${path.join(env.root, 'h1')}, capacity: { vcpu: 8, memoryMiB: 2048 } }`,
    `      - { name: h2, dataDir: ${path.join(env.root, 'h2')}, capacity: { vcpu: 8, memoryMiB: 2048 } }`,
    `images: { dir: ${path.join(env.root, 'images')} }`,
  ].join('\n'));
  const proc = await startBrokerProcess('server/main.ts', {
    VDI_CONFIG: cfg, VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(port), VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: prefix,
    VDI_LOGGING_LEVEL: 'info', VDI_JOBS_LEASE_TTL_MS: '2000', VDI_JOBS_DRAIN_INTERVAL_MS: '3000', VDI_JOBS_INVENTORY_INTERVAL_MS: '60000',
    VDI_JOBS_MAX_FAILURES: '5', VDI_JOBS_BACKOFF_BASE_MS: '300',
  });
  procs.push(proc);
  const papi = new ApiClient(proc.url);
  papi.bearer = token;
  assert.equal((await papi.post('/hosts/local/h1/maintenance', { on: false })).status, 200);
  const r = await papi.post('/hosts/local/h2/drain');
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const half = await waitFor(async () => {
    const d = await drainOf(papi, 'h2');
    return d.progress.moved === 1 ? d : null;
  }, 60_000, 100).catch(async (e) => {
    throw new Error(`${(e as Error).message}: ${JSON.stringify(await drainOf(papi, 'h2'))}\n${proc.output()}`);
  });
  assert.equal(await proc.kill('SIGKILL'), null);
  const killedAt = Date.now();

  // Another broker on the same prefix: the drain is where the killed one left it, and once the
  // dead broker's lease runs out it carries on.
  const next = await broker('qemu-drain-d', { maxFailures: 5, backoffBaseMs: 300, backoffMaxMs: 2000, drainIntervalMs: 200 }, false);
  const atHandOver = await drainOf(next.api, 'h2');
  assert.equal(atHandOver.id, r.body.drain.id);
  assert.equal(half.id, r.body.drain.id);
  assert.equal(atHandOver.state, 'running');
  assert.deepEqual(atHandOver.progress, { total: 2, moved: 1, failed: 0, pending: 1 });
  const deadHolder = await next.b.app.store.leases.holder('host-drain');
  assert.ok(deadHolder && deadHolder !== next.b.app.reconcilers!.runner.holder, 'the killed broker still holds the lease');
  next.b.app.startJobs();
  const done = await waitFor(async () => {
    const d = await drainOf(next.api, 'h2');
    return d.state === 'running' ? null : d;
  }, 120_000, 100);
  assert.equal(done.state, 'done', JSON.stringify(done));
  assert.equal(done.id, r.body.drain.id, 'the same drain, carried on');
  assert.deepEqual(done.progress, { total: 2, moved: 2, failed: 0, pending: 0 });
  assert.equal(await next.b.app.store.leases.holder('host-drain'), next.b.app.reconcilers!.runner.holder);
  const [before, after] = [...done.desktops].sort((x, y) => x.movedAt - y.movedAt);
  assert.ok(before!.movedAt < killedAt, 'one moved by the killed broker');
  assert.ok(after!.movedAt > killedAt, 'the other moved by the broker that took over');
  for (const id of ids) await assertAlive(next.qemu, id, 'h1');
  await stop(next.b);
});
