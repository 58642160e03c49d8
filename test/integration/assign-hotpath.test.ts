// The assignment cycle's Redis traffic (issue 14): a desktop request and its logoff through the
// HTTP API, counted with MONITOR. The session and the user behind a cookie are one read, the
// logoff checks ownership inside its script, images without a guest agent are not asked about on
// every request and logoff. The security checks those reads serve still hold at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startTestBroker, ApiClient, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

let tb: TestBroker;

before(async () => {
  tb = await startTestBroker({ name: 'assign-hp', config: { jobs: { enabled: false } } });
  for (const u of ['ah-user', 'ah-other', 'ah-demoted']) await tb.addUser(u);
  await tb.addUser('ah-admin', 'admin');
  await tb.app.identity.createGroup(SYSTEM_ACTOR, { name: 'ah', members: ['ah-user', 'ah-other', 'ah-demoted'] });
  await tb.app.broker.pools.create(tb.pool({ name: 'ah', persistence: 'persistent', size: { min: 0, max: 5, spare: 0 }, naming: 'ah-{n:03}', entitlements: { users: [], groups: ['ah'] } }), SYSTEM_ACTOR);
  await tb.readyDesktops('ah', 3);
});
after(async () => {
  await tb?.close();
});

/** The commands this broker's clients send while `fn` runs (not the ones scripts run inside Redis). */
async function commandsDuring(fn: () => Promise<void>): Promise<string[]> {
  const mon = new Redis(tb.config.redis.url, { lazyConnect: true });
  const seen: string[] = [];
  // monitor() opens a connection of its own (closed below with the client).
  let m: Redis | undefined;
  try {
    m = await mon.monitor();
    m.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some((a) => a.includes(tb.prefix))) seen.push(args.join(' ').slice(0, 120));
    });
    // MONITOR is live once a command sent after it shows up.
    const probe = `${tb.prefix}monitor-probe`;
    const deadline = Date.now() + 5000;
    while (!seen.some((s) => s.includes(probe))) {
      assert.ok(Date.now() < deadline, 'MONITOR did not start');
      await tb.app.store.redis.exists(probe);
      await new Promise((r) => setImmediate(r));
    }
    seen.length = 0;
    await fn();
    // Everything fn caused was sent before its answers came back; one more probe flushes the stream.
    const end = `${tb.prefix}monitor-end`;
    await tb.app.store.redis.exists(end);
    while (!seen.some((s) => s.includes(end))) {
      assert.ok(Date.now() < deadline + 5000, 'MONITOR stream did not catch up');
      await new Promise((r) => setImmediate(r));
    }
    return seen.filter((s) => !s.includes(end));
  } finally {
    m?.disconnect();
    mon.disconnect();
  }
}

test('a desktop request and its logoff through the HTTP API take 5 Redis commands: session and user in one read, the pool as read before (its revision checked by the assignment), no agent look-ups for an image without one, no live-session look-up when the user\'s folder was verified a moment ago, session.start audited in the logon timeline\'s command and the logoff inside its script', async () => {
  const c = new ApiClient(tb.url);
  assert.equal((await c.login('ah-user')).status, 200);
  // Warm: the first request after login may write the session (its expiry), make the user's folder and read the pool.
  const warm = await c.post('/me/pools/ah/request');
  assert.equal(warm.status, 200);
  assert.equal((await c.post(`/me/sessions/${warm.body.session.id}/logoff`)).status, 200);

  let sessionId = '';
  const cmds = await commandsDuring(async () => {
    const r = await c.post('/me/pools/ah/request');
    assert.equal(r.status, 200);
    sessionId = r.body.session.id;
    const off = await c.post(`/me/sessions/${sessionId}/logoff`);
    assert.equal(off.status, 200);
    assert.equal(off.body.session.state, 'ended', 'the logoff answers with the ended session');
  });
  const list = cmds.join('\n');
  assert.ok(cmds.length <= 5, `at most 5 commands, got ${cmds.length}:\n${list}`);
  assert.equal(cmds.filter((s) => /^hmget .*pool:ah /i.test(s)).length, 0, `no pool read:\n${list}`);
  assert.equal(cmds.filter((s) => /^hget .*:assign /i.test(s)).length, 0, `no look-up of the user's live session when the folder is verified:\n${list}`);
  assert.equal(cmds.filter((s) => /^hgetall .*desktop:/i.test(s)).length, 0, `no desktop read for agent questions:\n${list}`);
  assert.equal(cmds.filter((s) => /^(multi|exec)\b/i.test(s)).length, 0, 'no MULTI for the user read');
  assert.equal(cmds.filter((s) => /^xadd\b/i.test(s)).length, 0, `session.start is audited in the logon timeline's command, session.logoff inside the release script:\n${list}`);
  const ended = await tb.app.store.sessions.get(sessionId);
  assert.equal(ended?.state, 'ended');
  for (const action of ['session.start', 'session.logoff']) {
    const trail = await tb.app.broker.audit.query({ action, target: sessionId, limit: 10 });
    assert.equal(trail.entries.length, 1, `${action} audited once`);
    const e = trail.entries[0]!;
    assert.deepEqual({ actor: e.actor, role: e.role, targetType: e.targetType, address: e.address, outcome: e.outcome }, { actor: 'ah-user', role: 'user', targetType: 'session', address: '127.0.0.1', outcome: 'ok' });
  }
  const start = (await tb.app.broker.audit.query({ action: 'session.start', target: sessionId, limit: 1 })).entries[0]!;
  assert.deepEqual(start.details, { pool: 'ah', desktop: (await tb.app.store.desktops.get(ended!.desktop))?.name, outcome: 'assigned' });
  const off = (await tb.app.broker.audit.query({ action: 'session.logoff', target: sessionId, limit: 1 })).entries[0]!;
  assert.deepEqual(off.details, { reason: 'logoff', desktop: ended!.desktop, desktopState: 'ready' });
});

test("another user's session: the logoff answers 404 and ends nothing; an ended session of one's own answers 200 as it is", async () => {
  const owner = new ApiClient(tb.url);
  const other = new ApiClient(tb.url);
  assert.equal((await owner.login('ah-user')).status, 200);
  assert.equal((await other.login('ah-other')).status, 200);
  const r = await owner.post('/me/pools/ah/request');
  assert.equal(r.status, 200);
  const id = r.body.session.id as string;
  const foreign = await other.post(`/me/sessions/${id}/logoff`);
  assert.equal(foreign.status, 404);
  assert.equal(foreign.body.error.code, 'not_found');
  assert.equal((await tb.app.store.sessions.get(id))?.state !== 'ended', true, 'the session is still live');
  assert.equal((await other.post('/me/sessions/00000000-0000-4000-8000-000000000000/logoff')).status, 404);
  assert.equal((await owner.post(`/me/sessions/${id}/logoff`)).status, 200);
  const again = await owner.post(`/me/sessions/${id}/logoff`);
  assert.equal(again.status, 200);
  assert.equal(again.body.session.state, 'ended');
  const trail = await tb.app.broker.audit.query({ action: 'session.logoff', target: id, limit: 10 });
  assert.equal(trail.entries.length, 1, 'one logoff audited: not the refused one, not the repeat');
  assert.equal(trail.entries[0]!.actor, 'ah-user');
});

test('a role taken away applies on the next request (the user is read with the session, not kept)', async () => {
  const admin = new ApiClient(tb.url);
  assert.equal((await admin.login('ah-admin')).status, 200);
  await tb.app.store.users.update('ah-demoted', { role: 'helpdesk' });
  const c = new ApiClient(tb.url);
  assert.equal((await c.login('ah-demoted')).status, 200);
  assert.equal((await c.get('/sessions')).status, 200, 'helpdesk may list sessions');
  assert.equal((await admin.patch('/users/ah-demoted', { role: 'user' })).status, 200);
  assert.equal((await c.get('/sessions')).status, 403, 'refused on the very next request');
  assert.equal((await admin.patch('/users/ah-demoted', { disabled: true })).status, 200);
  assert.equal((await c.get('/me')).status, 401, 'a disabled user is logged out on the next request');
});

test('session.start is written once whoever writes it: with the logon timeline (the HTTP route), by itself when the caller has no bookkeeping or leaves the entry unwritten, never for a live session handed back', async () => {
  const actor = { principal: { kind: 'user' as const, id: 'ah-other', role: 'user' as const, groups: ['ah'] }, address: '127.0.0.1' };
  const startsOf = async (id: string) => (await tb.app.broker.audit.query({ action: 'session.start', target: id, limit: 10 })).entries;
  // No bookkeeping at all.
  const a = await tb.app.broker.assignment.request(actor, 'ah');
  assert.equal(a.outcome, 'assigned');
  assert.equal((await startsOf(a.session.id)).length, 1);
  // Handed back: no second entry.
  const again = await tb.app.broker.assignment.request(actor, 'ah', { alongside: async (_r, entry) => assert.equal(entry, undefined, 'no entry for a live session') });
  assert.equal(again.outcome, 'existing');
  assert.equal((await startsOf(a.session.id)).length, 1);
  await tb.app.broker.sessions.logoff(actor, a.session.id);
  // Bookkeeping that does not write the entry: written by itself, once, with its details.
  let given = false;
  const b = await tb.app.broker.assignment.request(actor, 'ah', { alongside: async (_r, entry) => void (given = entry !== undefined) });
  assert.ok(given, 'the bookkeeping was offered the entry');
  const entries = await startsOf(b.session.id);
  assert.equal(entries.length, 1);
  assert.deepEqual(entries[0]!.details, { pool: 'ah', desktop: b.desktop.name, outcome: 'assigned' });
  await tb.app.broker.sessions.logoff(actor, b.session.id);
});
