import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { JobRunner } from '../../server/jobs/index.ts';
import { createLogger, Metrics } from '../../server/observability/index.ts';
import { FakeProvider } from '../support/fake-provider.ts';
import { desktopSpec } from '../../server/jobs/desktop-lifecycle.ts';

let tb: TestBroker;
const BACKOFF_BASE_MS = 400;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  // backoffBaseMs is long against the 50 ms lifecycle interval, so the measured delays show it.
  tb = await startTestBroker({ name: 'reconcile', config: { jobs: { enabled: true, maxFailures: 3, backoffBaseMs: BACKOFF_BASE_MS, backoffMaxMs: 4 * BACKOFF_BASE_MS } } });
  for (const u of ['alice', 'bob', 'carol']) await tb.addUser(u);
  tb.app.startJobs();
});
after(async () => tb.close());

const counts = (pool: string) => tb.app.store.pools.counts(pool);

test('pool sizing keeps spare ready and min, never above max; shrinking deletes ready ones', async () => {
  // spare 3 with max 4: once two desktops are taken, spare would want a fifth; max forbids it.
  await tb.app.broker.pools.create(tb.pool({ name: 'size', size: { min: 3, max: 4, spare: 3 }, entitlements: { users: ['alice', 'bob'], groups: [] } }), SYSTEM_ACTOR);
  // The broker's count and the hypervisor's, sampled all along (bounded: stops with the test).
  const samples: { total: number; vms: number }[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling && samples.length < 20_000) {
      const vms = [...tb.provider.vms.values()].filter((v) => v.spec.pool === 'size').length;
      samples.push({ total: (await counts('size')).total, vms });
      await sleep(5);
    }
  })();
  try {
    await waitFor(async () => (await counts('size')).ready === 3);
    const alice = new ApiClient(tb.url);
    await alice.login('alice');
    await alice.post('/me/pools/size/request');
    const bob = new ApiClient(tb.url);
    await bob.login('bob');
    await bob.post('/me/pools/size/request');
    await waitFor(async () => {
      const c = await counts('size');
      return c.ready === 2 && c.in_use === 2 && c.total === 4;
    });
    // a few more passes at max, where spare keeps asking for one more
    const passes = samples.length;
    await waitFor(async () => samples.length > passes + 40 && (await counts('size')).total === 4);
  } finally {
    sampling = false;
    await sampler;
  }
  assert.ok(samples.length > 50, `sampled ${samples.length} times`);
  const most = Math.max(...samples.map((x) => Math.max(x.total, x.vms)));
  assert.equal(most, 4, `never above max 4 (highest sample ${most})`);
  assert.ok(samples.every((x) => x.total <= 4 && x.vms <= 4));

  // Shrunk below what it holds: ready ones are deleted, and nothing new is made on the way down.
  await tb.app.broker.pools.update('size', { size: { min: 0, max: 2, spare: 0 } }, SYSTEM_ACTOR, 'pool.resize');
  let last = (await counts('size')).total;
  await waitFor(async () => {
    const c = await counts('size');
    assert.ok(c.total <= last, `grew from ${last} to ${c.total} while above max`);
    last = c.total;
    return c.total === 2 && c.in_use === 2 && c.ready === 0;
  });
  assert.equal([...tb.provider.vms.values()].filter((v) => v.spec.pool === 'size').length, 2);
});

test('failing provisioning backs off, then quarantines the desktop in error', async () => {
  // When each attempt reaches the hypervisor.
  const attempts: number[] = [];
  const create = tb.provider.create.bind(tb.provider);
  tb.provider.create = async (spec) => {
    if (spec.pool === 'bad') attempts.push(Date.now());
    return create(spec);
  };
  let d;
  try {
    tb.provider.failNext('create', 100);
    await tb.app.broker.pools.create(tb.pool({ name: 'bad', size: { min: 1, max: 1, spare: 0 } }), SYSTEM_ACTOR);
    d = await waitFor(async () => (await tb.app.store.desktops.listByPool('bad')).find((x) => x.state === 'error'), 10_000);
  } finally {
    tb.provider.create = create;
  }
  assert.equal(d.failures, 3);
  assert.equal(attempts.length, 3, 'three attempts, then no more');
  // backoff: base after the first failure, twice that after the second (a pass every 50 ms adds a little)
  const gaps = [attempts[1]! - attempts[0]!, attempts[2]! - attempts[1]!];
  assert.ok(gaps[0]! >= BACKOFF_BASE_MS && gaps[0]! < 2 * BACKOFF_BASE_MS, `first retry after ${gaps[0]} ms`);
  assert.ok(gaps[1]! >= 2 * BACKOFF_BASE_MS && gaps[1]! < 4 * BACKOFF_BASE_MS, `second retry after ${gaps[1]} ms`);
  assert.match(d.lastError, /provisioning: fake create failure/);
  tb.provider.failNext('create', 0);
  // the audit entry follows the state change: wait for it, then check it is the only one
  const audit = await waitFor(async () => {
    const a = await tb.app.broker.audit.query({ action: 'desktop.quarantine', target: d.id, limit: 5 });
    return a.entries.length ? a : null;
  });
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
  const MAX_SECONDS = 3;
  await tb.app.broker.pools.create(
    tb.pool({ name: 'tmo', size: { min: 0, max: 4, spare: 3 }, entitlements: { users: ['alice', 'bob', 'carol'], groups: [] }, sessionPolicy: { idleTimeoutSeconds: 0, logoffAfterDisconnectSeconds: 1, maxSessionSeconds: MAX_SECONDS } }),
    SYSTEM_ACTOR,
  );
  await waitFor(async () => (await counts('tmo')).ready === 3);
  const alice = new ApiClient(tb.url);
  await alice.login('alice');
  const ra = await alice.post('/me/pools/tmo/request');
  await tb.app.broker.sessions.connected(ra.body.session.id);
  const bob = new ApiClient(tb.url);
  await bob.login('bob');
  const rb = await bob.post('/me/pools/tmo/request'); // never connects
  const carol = new ApiClient(tb.url);
  await carol.login('carol');
  const rc = await carol.post('/me/pools/tmo/request'); // stays connected past the maximum
  await tb.app.broker.sessions.connected(rc.body.session.id);
  await tb.app.broker.sessions.disconnected(ra.body.session.id);
  await waitFor(async () => (await tb.app.store.sessions.get(ra.body.session.id))?.state === 'ended', 8000);
  assert.equal((await tb.app.store.sessions.get(ra.body.session.id))?.endReason, 'disconnected too long');
  await waitFor(async () => (await tb.app.store.sessions.get(rb.body.session.id))?.state === 'ended', 8000);
  assert.equal((await tb.app.store.sessions.get(rb.body.session.id))?.endReason, 'never connected');

  // Carol's session lives until the maximum and is ended after it, not before.
  const ended = await waitFor(async () => {
    const s = (await tb.app.store.sessions.get(rc.body.session.id))!;
    if (s.state !== 'ended') {
      assert.equal(s.state, 'connected');
      return null;
    }
    return s;
  }, (MAX_SECONDS + 5) * 1000);
  assert.equal(ended.endReason, 'maximum session length reached');
  const lived = ended.endedAt - ended.createdAt;
  assert.ok(lived >= MAX_SECONDS * 1000, `ended ${lived} ms after it began, before the ${MAX_SECONDS} s maximum`);
  assert.ok(lived < MAX_SECONDS * 1000 + 2000, `ended only ${lived} ms after it began`);
  // the desktops were refreshed and came back
  await waitFor(async () => (await counts('tmo')).in_use === 0 && (await counts('tmo')).ready >= 3);
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
  try {
    r1.start();
    r2.start();
    // Both try every 20 ms; the holder runs many passes while the other runs none.
    await waitFor(async () => a >= 15 || b >= 15);
    assert.ok((a > 0) !== (b > 0), `exactly one ran (a=${a}, b=${b})`);
    // the holder stops and releases: the other takes over
    const [first, second] = a > 0 ? [r1, r2] : [r2, r1];
    const firstCount = () => (first === r1 ? a : b);
    const secondCount = () => (second === r1 ? a : b);
    await first.stop();
    const stoppedAt = firstCount();
    await waitFor(async () => secondCount() >= 5, 3000);
    assert.equal(firstCount(), stoppedAt, 'the stopped replica ran no more passes');
    assert.equal(await tb.app.store.leases.holder('lease-test'), second.holder);
  } finally {
    await r1.stop();
    await r2.stop();
  }
});

test('a pass longer than the lease TTL keeps its lease: no other replica runs the job meanwhile', async () => {
  const log = createLogger('silent');
  const running = new Set<string>();
  const ran: string[] = [];
  let overlaps = 0;
  let lostLease = false;
  let stopping = false; // stop() itself ends holdsLease()
  // Each pass works for 3 lease TTLs (400 ms) and watches its lease all along.
  const job = (who: string) => async (ctx: { holdsLease: () => boolean }) => {
    running.add(who);
    if (running.size > 1) overlaps++;
    const end = Date.now() + 1200;
    while (Date.now() < end) {
      if (!ctx.holdsLease() && !stopping) lostLease = true;
      await sleep(20);
    }
    running.delete(who);
    ran.push(who);
  };
  const r1 = new JobRunner(tb.app.store, log, new Metrics({ defaultMetrics: false }), 400);
  const r2 = new JobRunner(tb.app.store, log, new Metrics({ defaultMetrics: false }), 400);
  r1.add({ name: 'long-pass', intervalMs: 20, run: job('r1') });
  r2.add({ name: 'long-pass', intervalMs: 20, run: job('r2') });
  try {
    r1.start();
    await waitFor(async () => running.has('r1'));
    r2.start();
    await waitFor(async () => ran.filter((x) => x === 'r1').length >= 2, 8000);
  } finally {
    stopping = true;
    // r2 first: once r1 stops it gives its lease back, and r2 would rightly take the job over.
    await r2.stop();
    await r1.stop();
  }
  assert.equal(overlaps, 0, 'the other replica ran while a pass was under way');
  assert.equal(lostLease, false);
  assert.deepEqual(ran.filter((x) => x === 'r2'), []);
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

test('a host drain is a record the drain reconciler carries out: cancel stops it, maintenance off stops it, otherwise it empties the host', async () => {
  // Orchestration only (a fake hypervisor with two hosts); test/qemu/drain.test.ts drains real desktops.
  const fp = new FakeProvider('fake', ['host-a', 'host-b']);
  const b = await startTestBroker({ name: 'drain', providers: [fp], config: { jobs: { enabled: true, maxFailures: 50, backoffBaseMs: 50, backoffMaxMs: 100, drainIntervalMs: 30 } } });
  try {
    await b.addUser('boss', 'admin');
    const api = new ApiClient(b.url);
    await api.login('boss');
    await b.app.broker.pools.create(b.pool({ name: 'dr', size: { min: 0, max: 5, spare: 0 } }), SYSTEM_ACTOR);
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await b.app.store.desktops.provisionSpare('dr', Date.now());
      assert.ok('id' in r);
      await b.app.store.desktops.transition(r.id, 'settled', { expect: ['provisioning'], fields: { host: 'host-a' } });
      const d = (await b.app.store.desktops.get(r.id))!;
      await fp.create({ ...desktopSpec(d, (await b.app.store.pools.get('dr'))!), host: 'host-a' });
      ids.push(r.id);
    }
    b.app.startJobs();
    const drainOf = async () => (await api.get('/hosts/fake/host-a/drain')).body.drain;

    // No other host in service: it keeps retrying; an explicit cancel stops it.
    assert.equal((await api.post('/hosts/fake/host-b/maintenance', { on: true })).status, 200);
    const started = await api.post('/hosts/fake/host-a/drain');
    assert.equal(started.status, 202);
    assert.equal(started.body.drain.state, 'running');
    assert.deepEqual(started.body.drain.progress, { total: 2, moved: 0, failed: 0, pending: 2 });
    await waitFor(async () => (await drainOf()).desktops.some((d: { attempts: number }) => d.attempts >= 2));
    assert.match((await drainOf()).desktops[0].lastError, /No other host is in service/);
    const cancelled = await api.del('/hosts/fake/host-a/drain');
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.drain.state, 'cancelled');
    assert.match(cancelled.body.drain.reason, /cancelled by boss/);
    // the reconciler leaves a cancelled drain alone: passes later, no attempt was added
    const passesAfter = async (ms: number) => {
      const beat = (await b.app.store.leases.lastHeartbeat('host-drain')) ?? 0;
      await waitFor(async () => ((await b.app.store.leases.lastHeartbeat('host-drain')) ?? 0) > beat + ms);
    };
    await passesAfter(0); // an attempt that was in flight at the cancel has been recorded
    const attemptsAtCancel = (await drainOf()).desktops.map((d: { attempts: number }) => d.attempts).join();
    await passesAfter(150);
    assert.equal((await drainOf()).desktops.map((d: { attempts: number }) => d.attempts).join(), attemptsAtCancel);
    assert.equal((await b.app.broker.audit.query({ action: 'host.drain.cancel', limit: 5 })).entries.length, 1);

    // A new drain (new id); turning maintenance off cancels it too.
    const second = (await api.post('/hosts/fake/host-a/drain')).body.drain;
    assert.notEqual(second.id, started.body.drain.id);
    assert.equal((await api.post('/hosts/fake/host-a/maintenance', { on: false })).status, 200);
    assert.equal((await drainOf()).state, 'cancelled');
    assert.match((await drainOf()).reason, /maintenance turned off/);

    // host-b in service: the drain empties host-a and is done; host-a stays in maintenance.
    assert.equal((await api.post('/hosts/fake/host-b/maintenance', { on: false })).status, 200);
    const third = (await api.post('/hosts/fake/host-a/drain')).body.drain;
    const done = await waitFor(async () => {
      const d = await drainOf();
      return d.state === 'done' ? d : null;
    });
    assert.equal(done.id, third.id);
    assert.deepEqual(done.progress, { total: 2, moved: 2, failed: 0, pending: 0 });
    for (const id of ids) {
      assert.equal(fp.vms.get(id)?.host, 'host-b');
      assert.equal((await b.app.store.desktops.get(id))?.host, 'host-b');
    }
    const hosts = (await api.get('/hosts')).body.hosts as { name: string; maintenance: boolean; drain: { id: string; state: string } | null }[];
    const a = hosts.find((h) => h.name === 'host-a')!;
    assert.equal(a.maintenance, true);
    assert.deepEqual([a.drain?.id, a.drain?.state], [third.id, 'done']);
    const moves = await b.app.broker.audit.query({ action: 'desktop.migrate', limit: 100 });
    assert.equal(moves.entries.filter((e) => e.outcome === 'ok' && e.details.drain === third.id).length, 2);
    assert.equal((await b.app.broker.audit.query({ action: 'host.drain.done', limit: 5 })).entries.length, 1);
  } finally {
    await b.close();
  }
});
