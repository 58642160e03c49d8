// A disabled pool or one in maintenance refuses NEW sessions only: a user who holds a live
// session there (connected or disconnected) gets it back, can open it and can log it off,
// through the real API against a real broker and Redis. Dedicated users whose own desktop has
// no live session are refused like anyone else, and keep their desktop for later.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, ApiClient, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

let tb: TestBroker;
let admin: ApiClient;

before(async () => {
  tb = await startTestBroker({ name: 'maint' });
  for (const u of ['alice', 'bob', 'carol']) await tb.addUser(u);
  await tb.addUser('ada', 'admin');
  admin = await login('ada');
});
after(async () => tb.close());

async function login(user: string): Promise<ApiClient> {
  const c = new ApiClient(tb.url);
  assert.equal((await c.login(user)).status, 200);
  return c;
}

const GATES = [
  { gate: 'maintenance', patch: { maintenance: true }, reopen: { maintenance: false }, code: 'pool_maintenance', status: 503 },
  { gate: 'disabled', patch: { enabled: false }, reopen: { enabled: true }, code: 'pool_disabled', status: 409 },
] as const;

async function setGate(pool: string, patch: object): Promise<void> {
  const r = await admin.patch(`/pools/${pool}`, patch);
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

const myPool = async (c: ApiClient, pool: string) => ((await c.get('/me/pools')).body.pools as { name: string; available: boolean; desktop: { id: string; session: string | null } | null }[]).find((p) => p.name === pool)!;

for (const g of GATES) {
  test(`floating pool ${g.gate}: the holder reconnects to the same session and desktop, gets a ticket and logs off; a new user is refused with ${g.code}`, async () => {
    const pool = `flt-${g.gate}`;
    await tb.app.broker.pools.create(tb.pool({ name: pool, size: { min: 0, max: 4, spare: 0 }, entitlements: { users: ['alice', 'bob'], groups: [] } }), { ...SYSTEM_ACTOR });
    await tb.readyDesktops(pool, 2);
    const alice = await login('alice');
    const first = await alice.post(`/me/pools/${pool}/request`);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const { session, desktop } = { session: first.body.session.id as string, desktop: first.body.desktop.id as string };
    // She closed the tab: the session is disconnected, the desktop keeps running.
    await tb.app.broker.sessions.connected(session);
    await tb.app.broker.sessions.disconnected(session);
    assert.equal((await tb.app.store.sessions.get(session))?.state, 'disconnected');
    await setGate(pool, g.patch);

    const back = await alice.post(`/me/pools/${pool}/request`);
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.equal(back.body.outcome, 'existing');
    assert.equal(back.body.session.id, session);
    assert.equal(back.body.desktop.id, desktop);
    assert.equal(back.body.state, 'in_use');
    assert.equal(back.body.session.state, 'disconnected');
    const ticket = await alice.post(`/me/sessions/${session}/connect`);
    assert.equal(ticket.status, 200, JSON.stringify(ticket.body));
    assert.match(ticket.body.ticket, /^[A-Za-z0-9_-]{43}$/);
    assert.equal((await myPool(alice, pool)).available, true, 'the portal lets her launch (reconnect)');

    const bob = await login('bob');
    const refused = await bob.post(`/me/pools/${pool}/request`);
    assert.equal(refused.status, g.status);
    assert.equal(refused.body.error.code, g.code);
    assert.equal(await tb.app.store.desktops.assignmentOf(pool, 'bob'), null, 'bob got no desktop');
    assert.equal((await tb.app.store.pools.counts(pool)).ready, 1, 'the spare stays ready');
    assert.equal((await myPool(bob, pool)).available, false);

    const off = await alice.post(`/me/sessions/${session}/logoff`);
    assert.equal(off.status, 200, JSON.stringify(off.body));
    assert.equal(off.body.session.state, 'ended');
    assert.equal((await tb.app.store.desktops.get(desktop))?.state, 'refreshing');
    // Her session is gone: a new one is new work the pool refuses.
    assert.equal((await alice.post(`/me/pools/${pool}/request`)).body.error.code, g.code);
    assert.equal((await myPool(alice, pool)).available, false);
  });

  test(`dedicated pool ${g.gate}: the owner reconnects to her live session, gets a ticket and logs off keeping her desktop; an owner without a live session and a new user are refused with ${g.code}`, async () => {
    const pool = `ded-${g.gate}`;
    await tb.app.broker.pools.create(tb.pool({ name: pool, assignment: 'dedicated', persistence: 'persistent', size: { min: 0, max: 5, spare: 0 }, entitlements: { users: ['alice', 'bob', 'carol'], groups: [] } }), { ...SYSTEM_ACTOR });
    await tb.readyDesktops(pool, 3);
    const alice = await login('alice');
    const carol = await login('carol');
    const a = await alice.post(`/me/pools/${pool}/request`);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    const c = await carol.post(`/me/pools/${pool}/request`);
    assert.equal((await carol.post(`/me/sessions/${c.body.session.id}/logoff`)).status, 200);
    assert.equal((await tb.app.store.desktops.get(c.body.desktop.id))?.state, 'assigned', 'carol owns her desktop between logins');
    await tb.app.broker.sessions.connected(a.body.session.id);
    await tb.app.broker.sessions.disconnected(a.body.session.id);
    await setGate(pool, g.patch);

    const back = await alice.post(`/me/pools/${pool}/request`);
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.equal(back.body.outcome, 'existing');
    assert.equal(back.body.session.id, a.body.session.id);
    assert.equal(back.body.desktop.id, a.body.desktop.id);
    assert.equal((await alice.post(`/me/sessions/${a.body.session.id}/connect`)).status, 200);

    // Carol's own desktop has no live session: starting one is refused, her desktop stays hers.
    const rc = await carol.post(`/me/pools/${pool}/request`);
    assert.equal(rc.status, g.status);
    assert.equal(rc.body.error.code, g.code);
    assert.equal(await tb.app.store.desktops.assignmentOf(pool, 'carol'), c.body.desktop.id);
    assert.equal((await tb.app.store.desktops.get(c.body.desktop.id))?.state, 'assigned');
    const bob = await login('bob');
    assert.equal((await bob.post(`/me/pools/${pool}/request`)).body.error.code, g.code);
    assert.equal(await tb.app.store.desktops.assignmentOf(pool, 'bob'), null);

    const off = await alice.post(`/me/sessions/${a.body.session.id}/logoff`);
    assert.equal(off.status, 200);
    assert.equal(off.body.session.state, 'ended');
    const d = await tb.app.store.desktops.get(a.body.desktop.id);
    assert.equal(d?.state, 'assigned');
    assert.equal(d?.user, 'alice');

    // Reopened: both owners get their own desktops back with new sessions.
    await setGate(pool, g.reopen);
    const again = await alice.post(`/me/pools/${pool}/request`);
    assert.equal(again.status, 200);
    assert.equal(again.body.desktop.id, a.body.desktop.id);
    assert.notEqual(again.body.session.id, a.body.session.id);
    assert.equal((await carol.post(`/me/pools/${pool}/request`)).body.desktop.id, c.body.desktop.id);
  });
}
