// The tunnel with an instrumented guacd: tickets (single use, expiry, binding, nothing in
// clear), guacamole-lite 1.2.0's defects (each one covered), session tracking, takeover and
// shadowing. Real broker, real Redis, real guacamole-lite, real WebSockets on loopback.
// Logins and Origins on the upgrade: binding.test.ts. Memory under garbage: memory.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TestBroker } from '../support/harness.ts';
import { FakeGuacd } from './support/fake-guacd.ts';
import { TunnelClient, WebSocket, type OpenOptions } from './support/tunnel-client.ts';
import { CONSOLE_PASSWORD, connectTicket, liveSession, login, sleep, streamingBroker, until } from './support/fixtures.ts';
import { TicketService } from '../../server/tunnel/index.ts';

let guacd: FakeGuacd;
let tb: TestBroker;
const clients: TunnelClient[] = [];
const open = (o: OpenOptions) => {
  const c = new TunnelClient(tb.url, o);
  clients.push(c);
  return c;
};
const UNAUTHORIZED = 0x0301;

before(async () => {
  guacd = await FakeGuacd.start();
  tb = await streamingBroker('tunnel', { guacd: { host: '127.0.0.1', port: guacd.port }, tunnel: { ticketTtlSeconds: 30 } });
});
after(async () => {
  for (const c of clients) c.close();
  await tb?.close();
  await guacd?.close();
});

/** The socket ended with `error <status>` and a numeric close reason equal to it. */
async function refusedWith(c: TunnelClient, status: number): Promise<string> {
  const e = await c.ended();
  assert.ok(e.error, `an error instruction before the close (got ${JSON.stringify(c.received)})`);
  assert.equal(Number(e.error.args[1]), status, `status ${e.error.args[1]}: ${e.error.args[0]}`);
  assert.equal(e.reason, String(status), 'close reason is the numeric status (guacamole-common-js parses it)');
  assert.equal(e.code, 1008);
  return e.error.args[0]!;
}

test('a connect ticket is opaque: no console host, port or password reaches the browser or sits in Redis in clear', async () => {
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  const r = await alice.post(`/me/sessions/${session}/connect`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.deepEqual(Object.keys(r.body).sort(), ['expiresAt', 'readOnly', 'recording', 'ticket', 'tunnel']);
  assert.equal(r.body.recording, false);
  assert.match(r.body.ticket, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(r.body.tunnel, '/api/v1/tunnel');
  const text = JSON.stringify(r.body) + [...r.headers.entries()].join();
  for (const secret of [CONSOLE_PASSWORD, '5999', '127.0.0.1']) assert.ok(!text.includes(secret), `${secret} in the answer`);
  const ttl = (Date.parse(r.body.expiresAt) - Date.now()) / 1000;
  assert.ok(ttl > 25 && ttl <= 30, `expires in ${ttl}s`);
  // In Redis: under a hash of the ticket, encrypted, with a TTL.
  const key = tb.app.store.keys.ticket(createHash('sha256').update(r.body.ticket).digest('base64url'));
  const stored = await tb.app.store.redis.get(key);
  assert.ok(stored && !stored.includes(r.body.ticket));
  const decoded = Buffer.from(stored, 'base64url').toString('latin1') + stored;
  for (const secret of ['pässwörd', 'p\u00e4ssw', CONSOLE_PASSWORD, '5999', 'hostname', 'password']) assert.ok(!decoded.includes(secret), `${secret} readable in Redis`);
  const pttl = await tb.app.store.redis.pttl(key);
  assert.ok(pttl > 0 && pttl <= 30_000);
  // Nothing else under the prefix holds the password in clear either.
  for (const k of await tb.app.store.redis.keys(`${tb.prefix}*`)) {
    const type = await tb.app.store.redis.type(k);
    const v = type === 'string' ? await tb.app.store.redis.get(k) : type === 'hash' ? JSON.stringify(await tb.app.store.redis.hgetall(k)) : '';
    assert.ok(!String(v).includes(CONSOLE_PASSWORD), `password in clear at ${k}`);
  }
});

test("binding: someone else's session is 404 like a missing one; API keys and ended sessions get none", async () => {
  const alice = await login(tb, 'alice');
  const bob = await login(tb, 'bob');
  const { session } = await liveSession(tb, bob);
  const r = await alice.post(`/me/sessions/${session}/connect`);
  assert.equal(r.status, 404);
  assert.equal(r.body.error.code, 'not_found');
  const missing = await alice.post('/me/sessions/8a3c1a2e-0000-4000-8000-000000000000/connect');
  assert.deepEqual(missing.body, r.body);
  // A helpdesk may not open a user's session as that user either (only shadow it).
  const helen = await login(tb, 'helen');
  assert.equal((await helen.post(`/me/sessions/${session}/connect`)).status, 404);
  assert.equal((await bob.post(`/me/sessions/${session}/logoff`)).status, 200);
  assert.equal((await bob.post(`/me/sessions/${session}/connect`)).status, 404);
});

test('bad, truncated, garbage, replayed and expired tickets close that socket with a numeric status; guacd is never contacted', async () => {
  const before = guacd.accepted;
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  const good = await connectTicket(alice, session);
  const cases: OpenOptions[] = [
    { ticket: '' },
    { ticket: 'nonsense' },
    { ticket: good.slice(0, 20) }, // truncated
    { ticket: 'A'.repeat(43) }, // well-formed, unknown
    { ticket: '{"iv":"x","value":"y"}' }, // guacamole-lite's own format
    { ticket: '%ff%00\u00e9\u{1F600}' },
    { ticket: 'x'.repeat(5000) },
    { first: 'garbage' }, // a first message that is no ticket instruction
    { first: `5.hello;${'0.,6.ticket,43.'}${good};` }, // the ticket, but not first
  ];
  for (const o of cases) assert.match(await refusedWith(open({ ...o, as: alice }), UNAUTHORIZED), /ticket/i, JSON.stringify(o));
  assert.equal(guacd.accepted, before, 'no guacd connection for a refused ticket');

  // Used once: the second use is refused.
  const first = open({ ticket: good, as: alice });
  await first.ready();
  const replay = open({ ticket: good, as: alice });
  assert.match(await refusedWith(replay, UNAUTHORIZED), /already used|unknown|expired/);
  first.close();

  // Expired in Redis (TTL) ...
  const t2 = await connectTicket(alice, session);
  await tb.app.store.redis.pexpire(tb.app.store.keys.ticket(createHash('sha256').update(t2).digest('base64url')), 1);
  await sleep(20);
  await refusedWith(open({ ticket: t2, as: alice }), UNAUTHORIZED);
  // ... and by its own sealed expiry, even if Redis still had it.
  const past = new TicketService({ store: tb.app.store, broker: tb.app.broker, providers: tb.app.providers, config: tb.config, now: () => Date.now() - 120_000 });
  const aliceLogin = await tb.app.auth.loginOfUpgrade({ headers: { cookie: alice.cookie } } as IncomingMessage);
  const old = await past.issueConnect({ principal: { kind: 'user', id: 'alice', role: 'user', groups: [] }, address: '' }, aliceLogin, session);
  assert.match(await refusedWith(open({ ticket: old.ticket, as: alice }), UNAUTHORIZED), /expired/);
  // A ticket whose session ended meanwhile: forbidden.
  const t3 = await connectTicket(alice, session);
  assert.equal((await alice.post(`/me/sessions/${session}/logoff`)).status, 200);
  await refusedWith(open({ ticket: t3, as: alice }), 0x0303);
  // Other paths on the same server are not WebSockets.
  const other = new TunnelClient(tb.url, { ticket: 'x', path: '/api/v1/other' });
  clients.push(other);
  assert.equal(await other.opened, false);
  assert.equal(other.httpStatus, 404);
});

test('single use under concurrency: two upgrades race with one ticket, exactly one streams', async () => {
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  for (let round = 0; round < 5; round++) {
    const before = guacd.streamed;
    const ticket = await connectTicket(alice, session);
    const a = open({ ticket, as: alice });
    const b = open({ ticket, as: alice });
    const results = await Promise.allSettled([a.ready(5000), b.ready(5000)]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
    const loser = results[0]!.status === 'fulfilled' ? b : a;
    await refusedWith(loser, UNAUTHORIZED);
    assert.equal(guacd.streamed - before, 1);
    a.close();
    b.close();
  }
});

test('what a client sends right after its ticket is held and relayed in order; more than 64 KiB of it is refused (CLIENT_OVERRUN)', async () => {
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  // Sent in the same breath as the ticket, before the broker has checked it.
  const c = open({ ticket: await connectTicket(alice, session), as: alice });
  assert.equal(await c.opened, true);
  for (let i = 0; i < 5; i++) c.send('key', 65 + i, 1);
  const id = await c.ready();
  const g = guacd.connections.find((x) => x.id === id)!;
  await until(() => g.received.filter((x) => x.opcode === 'key').length === 5, 5000, 'keys relayed');
  assert.deepEqual(g.received.filter((x) => x.opcode === 'key').map((x) => x.args[0]), ['65', '66', '67', '68', '69']);
  c.close();
  // A flood behind the ticket is refused, not silently cut (a dropped instruction corrupts the stream).
  // The ticket and 80 KiB behind it leave in one write (corked), so all of it is there before the ticket is checked.
  const ticket = await connectTicket(alice, session);
  const flood = open({ as: alice });
  assert.equal(await flood.opened, true);
  const sock = (flood.ws as unknown as { _socket: { cork(): void; uncork(): void } });
  sock._socket.cork();
  flood.send('', 'ticket', ticket);
  for (let i = 0; i < 80; i++) flood.send('key', 65, '1'.repeat(1000));
  sock._socket.uncork();
  const e = await flood.ended();
  assert.equal(Number(e.error?.args[1]), 0x030d, JSON.stringify(flood.received.slice(-3)));
  await until(async () => (await tb.app.broker.audit.query({ action: 'tunnel.refused', target: session, limit: 10 })).entries.some((x) => x.details.reason === 'overrun'), 5000, 'refused before the tunnel opened, audited');
});

test('settings false and 0 and a non-ASCII password reach guacd intact; browser size passes, secrets do not leak back', async () => {
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  const c = open({ ticket: await connectTicket(alice, session), as: alice, query: 'width=1280&height=720&dpi=120&hostname=evil.example&password=x' });
  const id = await c.ready();
  const g = guacd.connections.find((x) => x.id === id)!;
  assert.equal(g.select, 'vnc');
  assert.equal(g.args.password, CONSOLE_PASSWORD);
  assert.equal(g.args.hostname, '127.0.0.1', 'the browser cannot override the host');
  assert.equal(g.args.port, '5999');
  assert.equal(g.args['read-only'], 'false');
  assert.equal(g.args.autoretry, '0');
  assert.equal(g.args['disable-copy'], 'false');
  assert.equal(g.args['swap-red-blue'], 'false');
  const all = JSON.stringify(c.received);
  assert.ok(!all.includes(CONSOLE_PASSWORD) && !all.includes('5999'));
  c.close();
});

test('keep-alive: the browser ping is answered at once and not relayed; an idle tunnel stays open', async () => {
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  const c = open({ ticket: await connectTicket(alice, session), as: alice });
  const id = await c.ready();
  // Like guacamole-common-js: a ping every 500 ms; it marks the tunnel unstable after 1.5 s without data.
  let worstGap = 0;
  for (let i = 0; i < 8; i++) {
    const ts = String(Date.now());
    const sent = Date.now();
    c.send('', 'ping', ts);
    await c.next((x) => x.opcode === '' && x.args[0] === 'ping' && x.args[1] === ts, 1500);
    worstGap = Math.max(worstGap, Date.now() - sent);
    await sleep(500);
  }
  assert.ok(worstGap < 1500, `ping answered within ${worstGap} ms`);
  const g = guacd.connections.find((x) => x.id === id)!;
  assert.ok(!g.received.some((x) => x.opcode === ''), 'internal pings are not relayed to guacd');
  assert.ok(!c.isClosed);
  c.close();
});

test('session tracking: connected on open, activity (throttled), disconnected with bytes and duration on close', async () => {
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  const c = open({ ticket: await connectTicket(alice, session), as: alice });
  const id = await c.ready();
  const s1 = await until(async () => {
    const s = await tb.app.store.sessions.get(session);
    return s?.state === 'connected' ? s : null;
  });
  const tun = await tb.app.store.tickets.tunnel(session);
  assert.equal(tun?.guacConnection, id);
  await sleep(20);
  for (let i = 0; i < 20; i++) c.send('key', 65, i % 2);
  const g = guacd.connections.find((x) => x.id === id)!;
  await until(() => g.received.filter((x) => x.opcode === 'key').length === 20, 5000, 'keys relayed');
  const s2 = await until(async () => {
    const s = await tb.app.store.sessions.get(session);
    return s && s.lastActivityAt > s1.connectedAt ? s : null;
  });
  await sleep(300);
  assert.equal((await tb.app.store.sessions.get(session))!.lastActivityAt, s2.lastActivityAt, 'at most one activity write per interval');
  c.ws.close();
  const s3 = await until(async () => {
    const s = await tb.app.store.sessions.get(session);
    return s?.state === 'disconnected' ? s : null;
  });
  assert.ok(s3.disconnectedAt >= s1.connectedAt);
  const after = await tb.app.store.tickets.tunnel(session);
  assert.ok(after!.bytesIn > 100 && after!.bytesOut > 50 && after!.ms > 0, JSON.stringify(after));
  assert.equal(after!.owner, '');
  assert.equal(after!.guacConnection, '');
});

test('a second tab takes the session over: the first is closed with SESSION_CONFLICT and a reason; the session stays connected', async () => {
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  const first = open({ ticket: await connectTicket(alice, session), as: alice });
  await first.ready();
  await until(async () => (await tb.app.store.sessions.get(session))?.state === 'connected');
  const second = open({ ticket: await connectTicket(alice, session), as: alice });
  const id2 = await second.ready();
  const e = await first.ended();
  assert.equal(Number(e.error?.args[1]), 0x0209);
  assert.match(e.error!.args[0]!, /another window or tab/);
  assert.equal(e.reason, String(0x0209));
  await sleep(200);
  const s = await tb.app.store.sessions.get(session);
  assert.equal(s?.state, 'connected', 'the old tab closing does not disconnect the new one');
  assert.equal((await tb.app.store.tickets.tunnel(session))?.guacConnection, id2);
  assert.ok(!second.isClosed);
  second.close();
  await until(async () => (await tb.app.store.sessions.get(session))?.state === 'disconnected');
});

test('a takeover on another replica (pub/sub) closes the tab here', async () => {
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  const c = open({ ticket: await connectTicket(alice, session), as: alice });
  await c.ready();
  await until(async () => (await tb.app.store.tickets.tunnel(session))?.owner);
  // What another replica does when a tab opens there.
  const seq = await tb.app.store.tickets.claim(session, 'other-replica-tab', '$elsewhere', '10.0.0.2:4822');
  await tb.app.store.tickets.publish({ type: 'takeover', session, owner: 'other-replica-tab', seq });
  const e = await c.ended();
  assert.equal(Number(e.error?.args[1]), 0x0209);
  await sleep(100);
  assert.equal((await tb.app.store.sessions.get(session))?.state, 'connected');
});

test('helpdesk shadow: read-only join of the live connection by its id, audited; its input never reaches guacd', async () => {
  const alice = await login(tb, 'alice');
  const helen = await login(tb, 'helen');
  const { session } = await liveSession(tb, alice);
  assert.equal((await helen.post(`/sessions/${session}/shadow`)).status, 409, 'nothing to shadow before the user connects');
  assert.equal((await alice.post(`/sessions/${session}/shadow`)).status, 403);
  const user = open({ ticket: await connectTicket(alice, session), as: alice });
  const id = await user.ready();
  await until(async () => (await tb.app.store.tickets.tunnel(session))?.guacConnection);
  const r = await helen.post(`/sessions/${session}/shadow`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.readOnly, true);
  assert.ok(!JSON.stringify(r.body).includes(id), 'the connection id stays server-side');
  const shadow = open({ ticket: r.body.ticket, as: helen });
  await shadow.ready();
  const g = guacd.connections.filter((x) => x.select === id);
  assert.equal(g.length, 1, 'joined with select $id');
  assert.equal(g[0]!.args['read-only'], 'true');
  shadow.send('key', 65, 1);
  shadow.send('mouse', 1, 1, 1);
  shadow.send('sync', 1);
  await until(() => g[0]!.received.some((x) => x.opcode === 'sync'), 5000, 'sync relayed');
  assert.ok(!g[0]!.received.some((x) => x.opcode === 'key' || x.opcode === 'mouse'), 'shadow input dropped');
  const audit = await tb.app.broker.audit.query({ action: 'session.shadow', limit: 50 });
  assert.ok(JSON.stringify(audit).includes(session));
  // The shadow does not own the session: closing it changes nothing; the user leaving ends it.
  assert.equal((await tb.app.store.sessions.get(session))?.state, 'connected');
  user.close();
  const e = await shadow.ended();
  assert.equal(Number(e.error?.args[1]), 0x020b);
  // A shadow ticket works once too.
  const replay = open({ ticket: r.body.ticket, as: helen });
  await refusedWith(replay, UNAUTHORIZED);
});

test('logging the session off closes its open tunnel', async () => {
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  const c = open({ ticket: await connectTicket(alice, session), as: alice });
  await c.ready();
  assert.equal((await alice.post(`/me/sessions/${session}/logoff`)).status, 200);
  const e = await c.ended(12_000);
  assert.equal(Number(e.error?.args[1]), 0x020b);
});

test('guacd unreachable: numeric status, no crash; guacamole-lite installs no signal handlers', async () => {
  assert.equal(process.listenerCount('SIGTERM'), 0);
  assert.equal(process.listenerCount('SIGINT'), 0);
  const dead = await FakeGuacd.start();
  const port = dead.port;
  await dead.close();
  const tb2 = await streamingBroker('tunnel-dead', { guacd: { host: '127.0.0.1', port } });
  try {
    const alice = await login(tb2, 'alice');
    const { session } = await liveSession(tb2, alice);
    const c = new TunnelClient(tb2.url, { ticket: await connectTicket(alice, session), as: alice });
    clients.push(c);
    const e = await c.ended();
    assert.equal(Number(e.error?.args[1]), 0x0207, JSON.stringify(c.received));
    assert.equal(e.reason, String(0x0207));
  } finally {
    await tb2.close();
  }
  // Oversized and malformed client input closes only that tunnel.
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  const c = open({ ticket: await connectTicket(alice, session), as: alice });
  await c.ready();
  c.ws.send('4.key,garbage;');
  const e = await c.ended();
  assert.equal(Number(e.error?.args[1]), 0x0300);
  const big = open({ ticket: await connectTicket(alice, session), as: alice });
  await big.ready();
  big.ws.send('x'.repeat(600 * 1024));
  await big.ended();
  assert.equal((await fetch(`${tb.url}/healthz`)).status, 200);
  void WebSocket;
});
