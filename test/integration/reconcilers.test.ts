import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { JobRunner } from '../../server/jobs/index.ts';
import { createLogger, Metrics } from '../../server/observability/index.ts';

let tb: TestBroker;

before(async () => {
  tb = await startTestBroker({ name: 'reconcile', config: { jobs: { enabled: true, maxFailures: 3 } } });
  for (const u of ['alice', 'bob']) await tb.addUser(u);
  tb.app.startJobs();
});
after(async () => tb.close());

const counts = (pool: string) => tb.app.store.pools.counts(pool);

test('pool sizing keeps spare ready and min, never above max; shrinking deletes ready ones', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'size', size: { min: 3, max: 6, spare: 2 }, entitlements: { users: ['alice', 'bob'], groups: [] } }), SYSTEM_ACTOR);
  await waitFor(async () => (await counts('size')).ready === 3);
  const alice = new ApiClient(tb.url);
  await alice.login('alice');
  await alice.post('/me/pools/size/request');
  // one taken: 2 ready remain, spare satisfied, total stays 3 (min) ... then bob takes another
  const bob = new ApiClient(tb.url);
  await bob.login('bob');
  await bob.post('/me/pools/size/request');
  await waitFor(async () => {
    const c = await counts('size');
    return c.ready === 2 && c.in_use === 2 && c.total === 4;
  });
  await tb.app.broker.pools.update('size', { size: { min: 0, max: 2, spare: 0 } }, SYSTEM_ACTOR, 'pool.resize');
  await waitFor(async () => {
    const c = await counts('size');
    return c.total === 2 && c.in_use === 2 && c.ready === 0;
  });
  assert.ok(tb.provider.vms.size >= 2);
});

test('failing provisioning backs off, then quarantines the desktop in error', async () => {
  tb.provider.failNext('create', 100);
  await tb.app.broker.pools.create(tb.pool({ name: 'bad', size: { min: 1, max: 1, spare: 0 } }), SYSTEM_ACTOR);
  const d = await waitFor(async () => (await tb.app.store.desktops.listByPool('bad')).find((x) => x.state === 'error'), 10_000);
  assert.equal(d.failures, 3);
  assert.match(d.lastError, /provisioning: fake create failure/);
  tb.provider.failNext('create', 0);
  const audit = await tb.app.broker.audit.query({ action: 'desktop.quarantine', target: d.id, limit: 5 });
  assert.equal(audit.entries.length, 1);
  // the helpdesk recovers it: refresh builds it anew
  await tb.app.broker.desktops.refresh(SYSTEM_ACTOR, d.id);
  await waitFor(async () => (await tb.app.store.desktops.get(d.id))?.state === 'ready');
});

test('deleted desktops free their name and MAC; refreshed ones are rebuilt', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'life', size: { min: 1, max: 1, spare: 0 }, naming: 'life-{n:02}', entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  const d = await waitFor(async () => (await tb.app.store.desktops.listByPool('life')).find((x) => x.state === 'ready'));
  await tb.app.broker.desktops.remove(SYSTEM_ACTOR, d.id);
  await waitFor(async () => (await tb.app.store.desktops.get(d.id))?.state === 'deleted');
  assert.equal(tb.provider.vms.has(d.id), false);
  // the replacement may reuse the name, but never while the old one lives
  const next = await waitFor(async () => (await tb.app.store.desktops.listByPool('life')).find((x) => x.state === 'ready'));
  assert.notEqual(next.id, d.id);
  assert.equal(next.name, 'life-01');
  assert.equal(await tb.app.store.desktops.macOwner(d.mac), d.mac === next.mac ? next.id : null);
});

test('session timeouts: disconnected too long, never connected, maximum length', async () => {
  await tb.app.broker.pools.create(
    tb.pool({ name: 'tmo', size: { min: 0, max: 3, spare: 2 }, entitlements: { users: ['alice', 'bob'], groups: [] }, sessionPolicy: { idleTimeoutSeconds: 0, logoffAfterDisconnectSeconds: 1, maxSessionSeconds: 0 } }),
    SYSTEM_ACTOR,
  );
  await waitFor(async () => (await counts('tmo')).ready === 2);
  const alice = new ApiClient(tb.url);
  await alice.login('alice');
  const ra = await alice.post('/me/pools/tmo/request');
  await tb.app.broker.sessions.connected(ra.body.session.id);
  const bob = new ApiClient(tb.url);
  await bob.login('bob');
  const rb = await bob.post('/me/pools/tmo/request'); // never connects
  await tb.app.broker.sessions.disconnected(ra.body.session.id);
  await waitFor(async () => (await tb.app.store.sessions.get(ra.body.session.id))?.state === 'ended', 8000);
  assert.equal((await tb.app.store.sessions.get(ra.body.session.id))?.endReason, 'disconnected too long');
  await waitFor(async () => (await tb.app.store.sessions.get(rb.body.session.id))?.state === 'ended', 8000);
  assert.equal((await tb.app.store.sessions.get(rb.body.session.id))?.endReason, 'never connected');
  // both desktops were refreshed and came back
  await waitFor(async () => (await counts('tmo')).in_use === 0 && (await counts('tmo')).ready >= 2);
});

test('inventory: orphans removed from the hypervisor, missing desktops marked error', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'inv', size: { min: 2, max: 2, spare: 0 } }), SYSTEM_ACTOR);
  const ds = await waitFor(async () => {
    const l = await tb.app.store.desktops.listByPool('inv');
    return l.filter((x) => x.state === 'ready').length === 2 ? l : null;
  });
  await tb.provider.create({ id: '00000000-0000-4000-8000-000000000001', name: 'orphan', pool: 'inv', mac: '02:00:00:00:00:01', image: 'demo', clone: 'linked', resources: { vcpu: 1, memoryMiB: 128, diskGiB: 1, network: 'default', graphics: 'vga' } });
  tb.provider.vms.delete(ds[0]!.id);
  await waitFor(async () => !tb.provider.vms.has('00000000-0000-4000-8000-000000000001'), 5000);
  await waitFor(async () => (await tb.app.store.desktops.get(ds[0]!.id))?.state === 'error', 5000);
  assert.match((await tb.app.store.desktops.get(ds[0]!.id))!.lastError, /missing/);
});

test('deleting a pool ends its sessions, destroys its desktops and removes it', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'gone', size: { min: 2, max: 2, spare: 0 }, entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  await waitFor(async () => (await counts('gone')).ready === 2);
  const alice = new ApiClient(tb.url);
  await alice.login('alice');
  const r = await alice.post('/me/pools/gone/request');
  await tb.app.broker.pools.remove('gone', SYSTEM_ACTOR);
  await waitFor(async () => (await tb.app.store.pools.get('gone')) === null, 10_000);
  assert.equal((await tb.app.store.sessions.get(r.body.session.id))?.state, 'ended');
  assert.equal(tb.provider.vms.has(r.body.desktop.id), false);
});

test('a lease lets one replica at a time run a job', async () => {
  const log = createLogger('silent');
  let a = 0;
  let b = 0;
  const r1 = new JobRunner(tb.app.store, log, new Metrics({ defaultMetrics: false }), 1000);
  const r2 = new JobRunner(tb.app.store, log, new Metrics({ defaultMetrics: false }), 1000);
  r1.add({ name: 'lease-test', intervalMs: 20, run: async () => void a++ });
  r2.add({ name: 'lease-test', intervalMs: 20, run: async () => void b++ });
  r1.start();
  r2.start();
  await new Promise((r) => setTimeout(r, 400));
  assert.ok((a > 0) !== (b > 0), `exactly one ran (a=${a}, b=${b})`);
  // the holder stops and releases: the other takes over
  const [first, second] = a > 0 ? [r1, r2] : [r2, r1];
  await first.stop();
  const before = a + b;
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(a + b > before, 'the other replica took the lease over');
  await second.stop();
});

test('publishing an image version rebuilds idle desktops at once, busy ones after logoff; the pool shows progress', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'roll', size: { min: 3, max: 3, spare: 0 }, entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  await waitFor(async () => (await tb.app.store.desktops.listByPool('roll')).filter((d) => d.state === 'ready' && d.image === 'demo:1').length === 3);
  const alice = new ApiClient(tb.url);
  await alice.login('alice');
  const r = await alice.post('/me/pools/roll/request');
  assert.equal(r.status, 200);

  const dir = mkdtempSync(join(tmpdir(), 'vdi-image-v2-'));
  writeFileSync(join(dir, 'disk.qcow2'), 'v2');
  try {
    const img = await tb.app.broker.images.addVersion(SYSTEM_ACTOR, 'demo', { path: dir, publish: true });
    assert.equal(img.current, 2);
    assert.match(img.versions[1]!.checksum, /^[0-9a-f]{64}$/);
    await waitFor(async () => {
      const ds = await tb.app.store.desktops.listByPool('roll');
      return ds.filter((d) => d.image === 'demo:2' && d.state === 'ready').length === 2 ? ds : null;
    });
    let pool = await tb.app.broker.pools.get('roll');
    assert.deepEqual(pool.rollout, { target: 'demo:2', upToDate: 2, total: 3 });
    assert.equal((await tb.app.store.desktops.get(r.body.desktop.id))?.image, 'demo:1', 'the busy desktop is left alone');
    await alice.post(`/me/sessions/${r.body.session.id}/logoff`);
    await waitFor(async () => (await tb.app.store.desktops.get(r.body.desktop.id))?.image === 'demo:2');
    pool = await tb.app.broker.pools.get('roll');
    assert.deepEqual(pool.rollout, { target: 'demo:2', upToDate: 3, total: 3 });
  } finally {
    await tb.app.broker.images.publish(SYSTEM_ACTOR, 'demo', 1);
    rmSync(dir, { recursive: true, force: true });
  }
});
