// A host that stops answering (issue 10): the inventory reconciler marks its desktops
// unreachable (a mark, not a state: not error, not deleted), assignment does not hand them out
// (another desktop or pool_exhausted; a user's own dedicated desktop: desktop_unavailable),
// pool sizing builds spares elsewhere, and the mark goes when the host answers again.
// The hypervisor is the test double with two hosts; "unreachable" is what a libvirt host whose
// daemon is down reports (test/libvirt/desktops.test.ts does that with a real libvirtd).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { FakeProvider } from '../support/fake-provider.ts';

let tb: TestBroker;
let admin: ApiClient;
const fake = new FakeProvider('fake', ['host-a', 'host-b']);
// the inventory reconciler's rounds (it asks the provider every 200 ms here)
let rounds = 0;
const inventory = fake.inventory.bind(fake);
fake.inventory = () => {
  rounds += 1;
  return inventory();
};

interface DesktopView { id: string; state: string; host: string; unreachableSince: number }

before(async () => {
  tb = await startTestBroker({ name: 'unreachable', providers: [fake], config: { jobs: { enabled: true } } });
  for (const u of ['alice', 'bob', 'carol']) await tb.addUser(u);
  admin = new ApiClient(tb.url);
  admin.bearer = (await tb.app.identity.createApiKey(SYSTEM_ACTOR, { name: 'unreachable-test', role: 'admin' })).token;
  tb.app.startJobs();
});
after(async () => tb.close());

const desktop = async (id: string) => (await admin.get(`/desktops/${id}`)).body.desktop as DesktopView;
const marked = (id: string, on: boolean) => waitFor(async () => ((await desktop(id)).unreachableSince > 0) === on, 10_000);
const audit = async (id: string) =>
  ((await admin.get(`/audit?target=${id}&limit=100`)).body.entries as { action: string }[]).map((e) => e.action).filter((a) => a.startsWith('desktop.') && a.endsWith('reachable'));
const user = async (id: string) => {
  const c = new ApiClient(tb.url);
  await c.login(id);
  return c;
};

test('a ready desktop whose host does not answer is marked, not handed out, not error or deleted; when it answers again it is unmarked and handed out', async () => {
  // max 1: the only desktop sits on host-a, so a request during the outage has nowhere else to go.
  await tb.app.broker.pools.create(tb.pool({ name: 'solo', size: { min: 0, max: 1, spare: 1 }, entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  const [d] = await waitFor(async () => {
    const list = (await admin.get('/desktops?pool=solo')).body.desktops as DesktopView[];
    return list.length === 1 && list[0]!.state === 'ready' ? list : null;
  }, 10_000);
  assert.equal(d!.host, 'host-a');
  assert.equal(d!.unreachableSince, 0);

  const t0 = Date.now();
  fake.unreachable.add('host-a');
  try {
    await marked(d!.id, true);
    const during = await desktop(d!.id);
    assert.equal(during.state, 'ready', 'a mark, not a state: not error');
    // the inventory pass that saw it may have started (and taken its clock) just before t0
    assert.ok(during.unreachableSince >= t0 - 1000 && during.unreachableSince <= Date.now(), 'unreachableSince is when it was first seen unreachable');
    assert.ok(((await admin.get('/desktops?pool=solo')).body.desktops as DesktopView[]).some((x) => x.id === d!.id && x.unreachableSince > 0), 'the list shows the mark');

    const alice = await user('alice');
    const r = await alice.post('/me/pools/solo/request');
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'pool_exhausted', 'the unreachable desktop is not handed out');
    // several more inventory rounds: still ready, still marked, still there, audited once
    const first = (await desktop(d!.id)).unreachableSince;
    const seen = rounds;
    await waitFor(async () => rounds >= seen + 3, 10_000);
    const later = await desktop(d!.id);
    assert.equal(later.state, 'ready');
    assert.equal(later.unreachableSince, first, 'the mark keeps the time it was first seen');
    assert.ok(fake.vms.has(d!.id), 'not deleted from the hypervisor');
  } finally {
    fake.unreachable.delete('host-a');
  }
  await marked(d!.id, false);
  assert.equal((await desktop(d!.id)).state, 'ready');
  const alice = await user('alice');
  const r = await alice.post('/me/pools/solo/request');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.desktop.id, d!.id, 'handed out again');
  assert.deepEqual((await audit(d!.id)).slice().sort(), ['desktop.reachable', 'desktop.unreachable'], 'one audit entry per change');
});

test('pool sizing does not count an unreachable ready desktop as a spare: a request gets the one built on the host that answers', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'two', size: { min: 0, max: 3, spare: 1 }, entitlements: { users: ['bob'], groups: [] } }), SYSTEM_ACTOR);
  const list = async () => (await admin.get('/desktops?pool=two')).body.desktops as DesktopView[];
  const [first] = await waitFor(async () => {
    const l = await list();
    return l.length === 1 && l[0]!.state === 'ready' ? l : null;
  }, 10_000);
  const deadHost = first!.host;
  fake.unreachable.add(deadHost);
  try {
    await marked(first!.id, true);
    const spare = await waitFor(async () => (await list()).find((x) => x.id !== first!.id && x.state === 'ready') ?? null, 10_000);
    assert.notEqual(spare.host, deadHost, 'the new spare is placed on the host that answers');
    const bob = await user('bob');
    const r = await bob.post('/me/pools/two/request');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.desktop.id, spare.id, 'the reachable desktop, not the marked one');
    const still = await desktop(first!.id);
    assert.equal(still.state, 'ready');
    assert.ok(still.unreachableSince > 0);
  } finally {
    fake.unreachable.delete(deadHost);
  }
  await marked(first!.id, false);
});

test("a user's own dedicated desktop on a host that does not answer: 503 desktop_unavailable, then back", async () => {
  await tb.app.broker.pools.create(
    tb.pool({ name: 'mine', assignment: 'dedicated', persistence: 'persistent', size: { min: 0, max: 1, spare: 1 }, entitlements: { users: ['carol'], groups: [] } }),
    SYSTEM_ACTOR,
  );
  await waitFor(async () => ((await admin.get('/desktops?pool=mine&state=ready')).body.desktops as DesktopView[]).length === 1, 10_000);
  const carol = await user('carol');
  const got = await carol.post('/me/pools/mine/request');
  assert.equal(got.status, 200, JSON.stringify(got.body));
  const id = got.body.desktop.id as string;
  const host = (await desktop(id)).host;
  fake.unreachable.add(host);
  try {
    await marked(id, true);
    const r = await carol.post('/me/pools/mine/request');
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'desktop_unavailable');
    const d = await desktop(id);
    assert.ok(['assigned', 'in_use'].includes(d.state), `still hers (${d.state}), not error`);
  } finally {
    fake.unreachable.delete(host);
  }
  await marked(id, false);
  const back = await carol.post('/me/pools/mine/request');
  assert.equal(back.status, 200, JSON.stringify(back.body));
  assert.equal(back.body.desktop.id, id);
});
