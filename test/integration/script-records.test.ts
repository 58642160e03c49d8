// The hot-path scripts (assignment, release, the login's session-and-user read, the user read)
// return records as one JSON object each (prelude hash_json), not as lists of fields and values.
// Whatever text a field holds, the record the broker gets must equal what HGETALL reads: quotes,
// backslashes, slashes, control characters, non-ASCII text, numbers as text, bytes that are not
// UTF-8, empty values. A record that is not there comes back as none. And the logon timeline
// script, written on every desktop request: each field once, its derived phases in either order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../support/harness.ts';
import { hashOfJson, toDesktop, toSession } from '../../server/store/records.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

let tb: TestBroker;

// Every awkward kind of text a record field can hold.
const AWKWARD = [
  'say "hi" \\ back/slash',
  'line\nbreak\ttab\r\u0001\u001f\u007f',
  'Müller 東京 🖥️ \u2028\u2029',
  '0123', '1e3', '-0', 'null', 'true', '{"a":1}', '[1,2]', '',
];

before(async () => {
  tb = await startTestBroker({ name: 'script-records', config: { jobs: { enabled: false } } });
  await tb.addUser('sr-user');
  await tb.app.broker.pools.create(tb.pool({ name: 'sr', persistence: 'persistent', size: { min: 0, max: 5, spare: 0 }, naming: 'sr-{n:03}', entitlements: { users: ['sr-user'], groups: [] } }), SYSTEM_ACTOR);
  await tb.readyDesktops('sr', 2);
});
after(async () => {
  await tb?.close();
});

/** HGETALL's view of a hash, field by field (ioredis decodes values as UTF-8, as the scripts' JSON is). */
async function stored(key: string): Promise<Record<string, string>> {
  return tb.app.store.redis.hgetall(key);
}

test('the assignment and release scripts return the session and desktop records exactly as HGETALL reads them, whatever text their fields hold', async () => {
  const { store } = tb.app;
  const k = store.keys;
  const desktops = await store.desktops.listByPool('sr');
  // Awkward text in fields the records carry through (lastError is any text; an extra field rides along in the hash).
  for (const [i, d] of desktops.entries()) {
    await store.redis.hset(k.desktop(d.id), 'lastError', AWKWARD.join('|'), 'awkward', AWKWARD[i % AWKWARD.length]!);
    // Bytes that are not UTF-8 (a value written by something else): both paths decode them the same way.
    await store.redis.hset(k.desktop(d.id), Buffer.from('raw'), Buffer.from([0x61, 0xff, 0xfe, 0x62]));
  }
  const r = await store.sessions.assign('sr', 'sr-user', '127.0.0.1', Date.now());
  if (r.outcome === 'error') assert.fail(`assignment refused: ${r.code}`);
  assert.equal(r.outcome, 'assigned');
  const desktopHash = await stored(k.desktop(r.desktopId));
  assert.equal(desktopHash.lastError, AWKWARD.join('|'));
  assert.equal(desktopHash.raw, 'a\ufffd\ufffdb');
  assert.equal(r.desktop?.lastError, AWKWARD.join('|'));
  assert.deepEqual(r.desktop, toDesktop(desktopHash));
  assert.deepEqual(r.session, toSession(await stored(k.session(r.sessionId))));

  // The release's reason is free text: it comes back in the session record exactly.
  const reason = `logoff ${AWKWARD.join(' ')}`;
  const rel = await store.sessions.release(r.sessionId, reason, Date.now());
  assert.ok(rel);
  assert.equal(rel.session?.endReason, reason);
  assert.equal(rel.desktop?.lastError, AWKWARD.join('|'));
  assert.deepEqual(rel.session, toSession(await stored(k.session(r.sessionId))));
  assert.deepEqual(rel.desktop, toDesktop(await stored(k.desktop(r.desktopId))));

  // A session that is not live: the record as it is; one that does not exist: none.
  const again = await store.sessions.releaseOwn(r.sessionId, 'again', Date.now(), '');
  assert.equal(again.outcome, 'not_live');
  assert.equal(again.outcome === 'not_live' && again.session?.endReason, reason);
  const missing = await store.sessions.releaseOwn('no-such-session', 'x', Date.now(), '');
  assert.deepEqual(missing, { outcome: 'not_live', session: null });
});

test('the user read and the login\'s session-and-user read return the user record exactly as HGETALL reads it, and none for a user that is not there', async () => {
  const { store } = tb.app;
  const k = store.keys;
  for (const [i, text] of AWKWARD.entries()) {
    await store.redis.hset(k.user('sr-user'), 'displayName', text);
    const viaGet = await store.users.get('sr-user');
    assert.equal(viaGet?.displayName, text, `displayName #${i}`);
    const sessionKey = `${k.httpSessionPrefix}sr-${i}`;
    await store.redis.set(sessionKey, JSON.stringify({ cookie: {}, passport: { user: 'sr-user' } }), 'EX', 60);
    const viaSession = await store.users.withSession(sessionKey);
    assert.equal(viaSession.userId, 'sr-user');
    assert.deepEqual(viaSession.user, viaGet);
  }
  // The stored hash is what both reads decoded.
  const h = await stored(k.user('sr-user'));
  assert.equal((await store.users.get('sr-user'))?.passwordHash, h.passwordHash);

  assert.equal(await store.users.get('sr-nobody'), null);
  const gone = `${k.httpSessionPrefix}sr-gone`;
  await store.redis.set(gone, JSON.stringify({ cookie: {}, passport: { user: 'sr-nobody' } }), 'EX', 60);
  assert.deepEqual(await store.users.withSession(gone), { session: await store.redis.get(gone), userId: 'sr-nobody', user: null });
  assert.deepEqual(await store.users.withSession(`${k.httpSessionPrefix}sr-none`), { session: null });
});

test('hashOfJson reads the scripts\' JSON records: an empty one and a missing reply are no fields', () => {
  assert.deepEqual(hashOfJson('{}'), {});
  assert.deepEqual(hashOfJson(undefined), {});
  assert.deepEqual(hashOfJson('{"a":"1","b":"x\\/y"}'), { a: '1', b: 'x/y' });
});

test('the logon timeline script records each field once, derives guest_logon whichever of the request and the guest\'s logon comes second, and click-to-usable as the later of the first frame and the guest logon', async () => {
  const { store } = tb.app;
  const k = store.keys;
  const sessions = store.sessions;
  const start = async () => {
    const r = await sessions.assign('sr', 'sr-user', '127.0.0.1', Date.now());
    if (r.outcome === 'error') assert.fail(`assignment refused: ${r.code}`);
    return r.sessionId;
  };

  // The request first, then the guest's logon, then the first frame.
  let sid = await start();
  assert.deepEqual(await sessions.recordLogon(sid, { assignment: 5.4 }, { requestedAt: 1000, logonExpectsGuest: '1' }), { recorded: ['requestedAt', 'logonExpectsGuest', 'logon:assignment'], derived: {} });
  assert.deepEqual(await sessions.recordLogon(sid, { assignment: 99 }, { requestedAt: 5 }), { recorded: [], derived: {} }, 'a reconnect does not rewrite the first timeline');
  assert.deepEqual(await sessions.recordLogon(sid, {}, { guestLogonAt: 1500 }), { recorded: ['guestLogonAt'], derived: { guest_logon: 500 } });
  assert.deepEqual(await sessions.firstFrame(sid, 900), { ok: true, recorded: true, usableMs: 900 });
  let h = await store.redis.hgetall(k.session(sid));
  assert.equal(h['logon:assignment'], '5');
  assert.equal(h['logon:guest_logon'], '500');
  assert.equal(h['logon:click_to_usable'], '900', 'usable: the later of the first frame (900) and the guest logon (500)');
  await sessions.release(sid, 'test', Date.now());

  // The guest's logon reported before the request was answered, then the first frame.
  sid = await start();
  assert.deepEqual(await sessions.recordLogon(sid, {}, { guestLogonAt: 2000 }), { recorded: ['guestLogonAt'], derived: {} });
  assert.deepEqual(await sessions.recordLogon(sid, { assignment: 1, desktop_ready: 0 }, { requestedAt: 1200, logonExpectsGuest: '1' }), {
    recorded: ['requestedAt', 'logonExpectsGuest', 'logon:assignment', 'logon:desktop_ready'], derived: { guest_logon: 800 },
  });
  assert.deepEqual(await sessions.firstFrame(sid, 300), { ok: true, recorded: true, usableMs: 800 });
  h = await store.redis.hgetall(k.session(sid));
  assert.equal(h['logon:guest_logon'], '800');
  assert.equal(h['logon:click_to_usable'], '800');
  assert.deepEqual(await sessions.recordLogon(sid, { home_mapped: 7 }), { recorded: ['logon:home_mapped'], derived: {} }, 'usable and guest_logon are set once');
  await sessions.release(sid, 'test', Date.now());

  // No guest agent: usable at the first frame.
  sid = await start();
  assert.deepEqual(await sessions.recordLogon(sid, { assignment: 2 }, { requestedAt: 10, logonExpectsGuest: '0' }), { recorded: ['requestedAt', 'logonExpectsGuest', 'logon:assignment'], derived: {} });
  assert.deepEqual(await sessions.firstFrame(sid, 250), { ok: true, recorded: true, usableMs: 250 });
  await sessions.release(sid, 'test', Date.now());

  // A session that is not there gets nothing (no partial hash appears).
  assert.deepEqual(await sessions.recordLogon('sr-no-session', { assignment: 1 }, { requestedAt: 1 }), { recorded: [], derived: {} });
  assert.equal(await store.redis.exists(k.session('sr-no-session')), 0);
});
