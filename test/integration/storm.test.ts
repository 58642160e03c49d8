// 08:00 at a call centre: 500 users ask for a desktop at once from a pool of 100 ready ones.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, ApiClient, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

let tb: TestBroker;
const USERS = 500;
const READY = 100;

before(async () => {
  tb = await startTestBroker({ name: 'storm' });
  const users = Array.from({ length: USERS }, (_, i) => `u${String(i).padStart(3, '0')}`);
  for (const u of users) await tb.addUser(u, 'user', []);
  await tb.app.identity.createGroup(SYSTEM_ACTOR, { name: 'callcentre', members: users });
  await tb.app.broker.pools.create(tb.pool({ name: 'storm', size: { min: 0, max: READY, spare: 0 }, naming: 'cc-{n:04}', entitlements: { users: [], groups: ['callcentre'] } }), SYSTEM_ACTOR);
  for (let i = 0; i < READY; i++) {
    const r = await tb.app.store.desktops.provisionSpare('storm', Date.now());
    assert.ok('id' in r);
    assert.ok((await tb.app.store.desktops.transition(r.id, 'settled')).ok);
  }
});
after(async () => tb.close());

test('500 simultaneous requests for 100 ready desktops: exactly 100 win, no desktop twice', async () => {
  const clients = Array.from({ length: USERS }, () => new ApiClient(tb.url));
  // log everyone in first (in batches: this is not what is being measured)
  for (let i = 0; i < USERS; i += 50) {
    await Promise.all(clients.slice(i, i + 50).map(async (c, j) => assert.equal((await c.login(`u${String(i + j).padStart(3, '0')}`)).status, 200)));
  }
  const results = await Promise.all(clients.map((c) => c.post('/me/pools/storm/request')));
  const ok = results.filter((r) => r.status === 200);
  const exhausted = results.filter((r) => r.status === 503 && r.body?.error?.code === 'pool_exhausted');
  assert.equal(ok.length, READY, `statuses: ${JSON.stringify(results.filter((r) => r.status !== 200 && r.status !== 503).slice(0, 3).map((r) => r.body))}`);
  assert.equal(exhausted.length, USERS - READY);
  const desktops = new Set(ok.map((r) => r.body.desktop.id));
  assert.equal(desktops.size, READY, 'no desktop handed out twice');
  assert.equal(new Set(ok.map((r) => r.body.session.id)).size, READY);

  // the pool's counters add up
  const c = await tb.app.store.pools.counts('storm');
  assert.equal(c.total, READY);
  assert.equal(c.in_use, READY);
  assert.equal(c.ready, 0);
  assert.equal(c.provisioning, 0);
  assert.equal(c.sessions, READY);
  const stateSum = c.provisioning + c.ready + c.assigned + c.in_use + c.refreshing + c.deleting + c.error;
  assert.equal(stateSum, c.total);
  // every desktop is held by exactly the user whose session it carries
  const all = await tb.app.store.desktops.listByPool('storm');
  const sessions = await tb.app.store.sessions.getMany(all.map((d) => d.session));
  const holders = new Set<string>();
  for (const d of all) {
    const s = sessions.find((x) => x.id === d.session);
    assert.ok(s, `desktop ${d.name} has its session`);
    assert.equal(s.user, d.user);
    assert.equal(s.desktop, d.id);
    assert.equal(await tb.app.store.desktops.assignmentOf('storm', d.user), d.id);
    holders.add(d.user);
  }
  assert.equal(holders.size, READY, 'no user holds two desktops');
  const live = await tb.app.store.sessions.liveIds();
  assert.equal(live.length, READY);
});
