// Sessions ended from inside the guest, on a real broker with real Redis and its reconcilers
// running (desktops of the fake driver): the guest agent's session_end and poweroff events (fed
// to the broker's guest-event handler the way server/agent delivers them) and a desktop the
// inventory finds powered off end the session, audited, and the desktop goes back per pool
// policy. Events about another user, an older session or an ended one change nothing; idle
// reports land on the session. The same through a real guest: test/agent/guest-events.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker, type ApiClient } from '../support/harness.ts';
import { login, until } from '../tunnel/support/fixtures.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

let tb: TestBroker;
let alice: ApiClient;
let helen: ApiClient;

before(async () => {
  tb = await startTestBroker({ name: 'guest-logoff', config: { jobs: { enabled: true } } });
  await tb.addUser('alice');
  await tb.addUser('helen', 'helpdesk');
  // refresh: a non-persistent desktop; keep: a persistent floating one (goes back to ready).
  await tb.app.broker.pools.create(tb.pool({ name: 'np', persistence: 'refresh', size: { min: 0, max: 3, spare: 1 }, entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  await tb.app.broker.pools.create(tb.pool({ name: 'pf', persistence: 'persistent', size: { min: 0, max: 3, spare: 1 }, entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  tb.app.startJobs();
  [alice, helen] = await Promise.all([login(tb, 'alice'), login(tb, 'helen')]);
});
after(async () => {
  await tb?.close();
});

/** Alice gets a desktop of the pool (a ready spare, made by the reconcilers). */
async function launch(pool: string): Promise<{ session: string; desktop: string; createdAt: number }> {
  await until(async () => (await tb.app.store.desktops.listByPool(pool)).some((d) => d.state === 'ready'), 20_000, `a ready spare in ${pool}`);
  const r = await alice.post(`/me/pools/${pool}/request`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { session: r.body.session.id, desktop: r.body.desktop.id, createdAt: r.body.session.createdAt };
}

async function logoffAudit(session: string): Promise<Record<string, unknown> | undefined> {
  const r = await helen.get(`/audit?action=session.logoff&target=${session}`);
  return r.body.entries[0]?.details;
}

test('the user logging off inside the guest ends the session (audited "guest logoff"); the non-persistent desktop is refreshed', async () => {
  const { session, desktop } = await launch('np');
  const guest = tb.app.guestEvents;
  // Stragglers: another user's, from before this session, about an idle user: the session lives on.
  await guest.handle({ desktop, event: 'session_end', user: 'bob', at: Date.now() });
  await guest.handle({ desktop, event: 'session_end', user: 'alice', at: Date.now() - 3_600_000 });
  await guest.handle({ desktop, event: 'idle', user: 'alice', idleSeconds: 42, at: Date.now() });
  let s = await tb.app.store.sessions.get(session);
  assert.equal(s?.state, 'starting');
  assert.equal(s?.guestIdleSeconds, 42, 'idle time reported by the agent lands on the session');

  await guest.handle({ desktop, event: 'session_end', user: 'alice', at: Date.now() });
  s = await tb.app.store.sessions.get(session);
  assert.equal(s?.state, 'ended');
  assert.equal(s?.endReason, 'guest logoff');
  const details = await logoffAudit(session);
  assert.equal(details?.reason, 'guest logoff');
  assert.equal(details?.desktop, desktop);
  assert.equal(details?.desktopState, 'refreshing', 'refresh pool: the desktop is refreshed');
  await until(async () => (await tb.app.store.desktops.get(desktop))?.state === 'ready', 20_000, 'refreshed desktop back to ready');
  // A repeated event is harmless: nothing more is audited.
  await guest.handle({ desktop, event: 'session_end', user: 'alice', at: Date.now() });
  assert.equal((await helen.get(`/audit?action=session.logoff&target=${session}`)).body.entries.length, 1);
});

test('the guest powering off ends the session ("guest powered off"); a persistent floating desktop is kept and goes back to ready', async () => {
  const { session, desktop } = await launch('pf');
  await tb.app.guestEvents.handle({ desktop, event: 'poweroff', at: Date.now() });
  const s = await tb.app.store.sessions.get(session);
  assert.equal(s?.state, 'ended');
  assert.equal(s?.endReason, 'guest powered off');
  const details = await logoffAudit(session);
  assert.equal(details?.reason, 'guest powered off');
  assert.equal(details?.desktopState, 'ready', 'persistent floating: kept, back to the pool');
});

test('a desktop in use that the inventory finds powered off ends its session, and is started again for the pool', async () => {
  const { session, desktop } = await launch('pf');
  await tb.provider.stop(desktop);
  await until(async () => (await tb.app.store.sessions.get(session))?.state === 'ended', 20_000, 'session ended by the inventory');
  const s = await tb.app.store.sessions.get(session);
  assert.equal(s?.endReason, 'guest powered off');
  const details = await logoffAudit(session);
  assert.equal(details?.reason, 'guest powered off');
  assert.equal(details?.source, 'inventory');
  await until(async () => (await tb.provider.power(desktop)) === 'running', 20_000, 'the kept desktop started again');
});

test('a desktop being live-migrated that the inventory sees stopped (the source at the switch-over) keeps its session and is not started; once the migration is over, a stopped desktop ends it as before', async () => {
  const { session, desktop } = await launch('pf');
  const now = Date.now();
  await tb.app.store.desktops.setMigration(desktop, { toHost: 'elsewhere', startedAt: now, percent: 99, transferredBytes: 1, remainingBytes: 0, updatedAt: now });
  await tb.provider.stop(desktop);
  // Three inventory passes that saw it stopped (the counter moves after each pass).
  const passes = async () => (await tb.app.metrics.reconcileRuns.get()).values.filter((v) => v.labels.job === 'inventory').reduce((n, v) => n + v.value, 0);
  const from = await passes();
  await until(async () => (await passes()) >= from + 3, 20_000, 'three inventory passes');
  assert.equal((await tb.app.store.sessions.get(session))?.state !== 'ended', true, 'the session survives the migration');
  assert.equal(await tb.provider.power(desktop), 'stopped', 'not started behind the migration\'s back');
  assert.equal((await tb.app.store.desktops.get(desktop))?.state, 'in_use');
  // The migration is over and the desktop is still stopped: the guest is off, the session ends.
  await tb.app.store.desktops.setMigration(desktop, null);
  await until(async () => (await tb.app.store.sessions.get(session))?.state === 'ended', 20_000, 'session ended by the inventory');
  assert.equal((await tb.app.store.sessions.get(session))?.endReason, 'guest powered off');
});

test('the guest logon fills guest_logon, also when the agent reports it before the request was answered', async () => {
  const { session, desktop } = await launch('np');
  const at = Date.now();
  await tb.app.guestEvents.handle({ desktop, event: 'logon_complete', user: 'alice', at });
  const s = await tb.app.store.sessions.get(session);
  const m = await tb.app.store.sessions.logonMarkers(session);
  assert.equal(s?.logon.guest_logon, at - m.requestedAt);
  // Reported first, request answered after (the agent is faster than the HTTP answer).
  await alice.post(`/me/sessions/${session}/logoff`);
  const { session: s2, desktop: d2 } = await launch('np');
  const key = tb.app.store.keys.session(s2);
  const requestedAt = Number(await tb.app.store.redis.hget(key, 'requestedAt'));
  await tb.app.store.redis.hdel(key, 'requestedAt', 'logon:guest_logon');
  await tb.app.guestEvents.handle({ desktop: d2, event: 'logon_complete', user: 'alice', at: requestedAt + 700 });
  assert.equal((await tb.app.store.sessions.get(s2))?.logon.guest_logon, undefined, 'not derivable yet');
  await tb.app.store.sessions.recordLogon(s2, {}, { requestedAt });
  assert.equal((await tb.app.store.sessions.get(s2))?.logon.guest_logon, 700);
});

