import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, ApiClient, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

let tb: TestBroker;
const admin = () => ({ ...SYSTEM_ACTOR });

before(async () => {
  tb = await startTestBroker({ name: 'assign' });
  for (const u of ['alice', 'bob', 'carol']) await tb.addUser(u);
});
after(async () => tb.close());

const readyDesktops = (pool: string, n: number) => tb.readyDesktops(pool, n);

test('floating refresh pool: ready desktop, same desktop on second request, refresh on logoff', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'flt', size: { min: 0, max: 2, spare: 0 }, entitlements: { users: ['alice', 'bob', 'carol'], groups: [] } }), admin());
  const [d1, d2] = await readyDesktops('flt', 2);
  const alice = new ApiClient(tb.url);
  assert.equal((await alice.login('alice')).status, 200);
  const r1 = await alice.post('/me/pools/flt/request');
  assert.equal(r1.status, 200, JSON.stringify(r1.body));
  assert.equal(r1.body.outcome, 'assigned');
  assert.equal(r1.body.state, 'in_use');
  assert.ok([d1, d2].includes(r1.body.desktop.id));
  assert.equal(r1.body.desktop.host, undefined, 'users do not see hypervisor details');
  const again = await alice.post('/me/pools/flt/request');
  assert.equal(again.body.outcome, 'existing');
  assert.equal(again.body.desktop.id, r1.body.desktop.id);
  assert.equal(again.body.session.id, r1.body.session.id);

  const bob = new ApiClient(tb.url);
  await bob.login('bob');
  const rb = await bob.post('/me/pools/flt/request');
  assert.equal(rb.status, 200);
  assert.notEqual(rb.body.desktop.id, r1.body.desktop.id);

  const carol = new ApiClient(tb.url);
  await carol.login('carol');
  const rc = await carol.post('/me/pools/flt/request');
  assert.equal(rc.status, 503);
  assert.equal(rc.body.error.code, 'pool_exhausted');
  assert.ok(rc.headers.get('retry-after'));

  const off = await alice.post(`/me/sessions/${r1.body.session.id}/logoff`);
  assert.equal(off.status, 200);
  assert.equal(off.body.session.state, 'ended');
  const d = await tb.app.store.desktops.get(r1.body.desktop.id);
  assert.equal(d?.state, 'refreshing');
  assert.equal(d?.user, '');
  assert.equal(await tb.app.store.desktops.assignmentOf('flt', 'alice'), null);
  // carol still gets nothing until the refresh completes
  assert.equal((await carol.post('/me/pools/flt/request')).status, 503);
  await tb.app.store.desktops.transition(r1.body.desktop.id, 'settled', { expect: ['refreshing'] });
  const rc2 = await carol.post('/me/pools/flt/request');
  assert.equal(rc2.status, 200);
  assert.equal(rc2.body.desktop.id, r1.body.desktop.id);
});

test('provisioning slot when no desktop is ready, 202 until it is ready', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'grow', size: { min: 0, max: 1, spare: 0 }, entitlements: { users: ['alice', 'bob'], groups: [] } }), admin());
  const alice = new ApiClient(tb.url);
  await alice.login('alice');
  const r = await alice.post('/me/pools/grow/request');
  assert.equal(r.status, 202);
  assert.equal(r.body.outcome, 'provisioning');
  assert.equal(r.body.state, 'provisioning');
  assert.match(r.body.desktop.name, /^grow-001$/);
  const bob = new ApiClient(tb.url);
  await bob.login('bob');
  assert.equal((await bob.post('/me/pools/grow/request')).body.error.code, 'pool_exhausted');
  const t = await tb.app.store.desktops.transition(r.body.desktop.id, 'settled', { expect: ['provisioning'] });
  assert.ok(t.ok && t.to === 'in_use', JSON.stringify(t));
  const again = await alice.post('/me/pools/grow/request');
  assert.equal(again.status, 200);
  assert.equal(again.body.outcome, 'existing');
});

test('dedicated persistent pool keeps the desktop across logins', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'ded', assignment: 'dedicated', persistence: 'persistent', size: { min: 0, max: 3, spare: 0 }, entitlements: { users: ['alice', 'bob'], groups: [] } }), admin());
  await readyDesktops('ded', 2);
  const alice = new ApiClient(tb.url);
  await alice.login('alice');
  const r1 = await alice.post('/me/pools/ded/request');
  assert.equal(r1.status, 200);
  await alice.post(`/me/sessions/${r1.body.session.id}/logoff`);
  const d = await tb.app.store.desktops.get(r1.body.desktop.id);
  assert.equal(d?.state, 'assigned');
  assert.equal(d?.user, 'alice');
  const r2 = await alice.post('/me/pools/ded/request');
  assert.equal(r2.body.desktop.id, r1.body.desktop.id);
  assert.notEqual(r2.body.session.id, r1.body.session.id);
  assert.equal(r2.body.state, 'in_use');
});

test('floating persistent pool returns the desktop to ready; delete pool deletes at logoff', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'pers', persistence: 'persistent', entitlements: { users: ['alice'], groups: [] } }), admin());
  await tb.app.broker.pools.create(tb.pool({ name: 'del', persistence: 'delete', entitlements: { users: ['alice'], groups: [] } }), admin());
  await readyDesktops('pers', 1);
  await readyDesktops('del', 1);
  const alice = new ApiClient(tb.url);
  await alice.login('alice');
  const a = await alice.post('/me/pools/pers/request');
  const b = await alice.post('/me/pools/del/request');
  await alice.post(`/me/sessions/${a.body.session.id}/logoff`);
  await alice.post(`/me/sessions/${b.body.session.id}/logoff`);
  assert.equal((await tb.app.store.desktops.get(a.body.desktop.id))?.state, 'ready');
  assert.equal((await tb.app.store.desktops.get(b.body.desktop.id))?.state, 'deleting');
});

test('group entitlement; not entitled looks like not found', async () => {
  await tb.app.identity.createGroup(admin(), { name: 'lab', members: ['bob'] });
  await tb.app.broker.pools.create(tb.pool({ name: 'grp', entitlements: { users: [], groups: ['lab'] } }), admin());
  await readyDesktops('grp', 1);
  const bob = new ApiClient(tb.url);
  await bob.login('bob');
  assert.equal((await bob.post('/me/pools/grp/request')).status, 200);
  const carol = new ApiClient(tb.url);
  await carol.login('carol');
  const r = await carol.post('/me/pools/grp/request');
  assert.equal(r.status, 404);
  assert.equal(r.body.error.code, 'not_found');
  assert.equal((await carol.post('/me/pools/nosuch/request')).body.error.code, 'not_found');
  const pools = await carol.get('/me/pools');
  assert.ok(!pools.body.pools.some((p: { name: string }) => p.name === 'grp'));
});

test('illegal transitions are refused and leave the desktop as it was', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'ill' }), admin());
  const [id] = await readyDesktops('ill', 1);
  const r = await tb.app.store.desktops.transition(id!, 'deleted');
  assert.deepEqual(r, { ok: false, code: 'illegal_transition', current: 'ready' });
  assert.equal((await tb.app.store.desktops.get(id!))?.state, 'ready');
  const c = await tb.app.store.pools.counts('ill');
  assert.equal(c.ready, 1);
  assert.equal(c.total, 1);
  await assert.rejects(tb.app.broker.desktops.unassign(admin(), id!), /cannot go to ready/);
});

test('maintenance and disabled pools refuse new sessions with clear codes', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'mnt', maintenance: true, entitlements: { users: ['alice'], groups: [] } }), admin());
  await tb.app.broker.pools.create(tb.pool({ name: 'off', enabled: false, entitlements: { users: ['alice'], groups: [] } }), admin());
  const alice = new ApiClient(tb.url);
  await alice.login('alice');
  assert.equal((await alice.post('/me/pools/mnt/request')).body.error.code, 'pool_maintenance');
  assert.equal((await alice.post('/me/pools/off/request')).body.error.code, 'pool_disabled');
});

test('names are unique across pools sharing a pattern prefix; MACs unique', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'na', naming: 'same-{n:02}' }), admin());
  await tb.app.broker.pools.create(tb.pool({ name: 'nb', naming: 'same-{n:02}' }), admin());
  const a = await readyDesktops('na', 2);
  const b = await readyDesktops('nb', 2);
  const ds = await tb.app.store.desktops.getMany([...a, ...b]);
  assert.deepEqual(ds.map((d) => d.name).sort(), ['same-01', 'same-02', 'same-03', 'same-04']);
  assert.equal(new Set(ds.map((d) => d.mac)).size, 4);
  for (const d of ds) assert.match(d.mac, /^02:56:44:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
});
