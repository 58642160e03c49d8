// The tunnel with an instrumented guacd: tickets (single use, expiry, binding, nothing in
// clear), guacamole-lite 1.2.0's defects (each one covered), session tracking, takeover and
// shadowing. Real broker, real Redis, real guacamole-lite, real WebSockets on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { TestBroker } from '../support/harness.ts';
import { FakeGuacd } from './support/fake-guacd.ts';
import { TunnelClient, WebSocket } from './support/tunnel-client.ts';
import { CONSOLE_PASSWORD, connectTicket, liveSession, login, sleep, streamingBroker, until } from './support/fixtures.ts';
import { TicketService } from '../../server/tunnel/index.ts';

let guacd: FakeGuacd;
let tb: TestBroker;
const clients: TunnelClient[] = [];
const open = (query: string) => {
  const c = new TunnelClient(tb.url, query);
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

/** A hand-made upgrade request (then `junk` bytes); resolves with what the server answered, once it closed. */
function rawUpgrade(port: number, key: string, junk: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, 10_000);
    s.on('error', done);
    s.on('close', done);
    s.on('data', (d: Buffer) => {
      if (!got) s.write(junk);
      got += d.toString('latin1');
    });
    s.write(`GET /api/v1/tunnel?token=${'y'.repeat(43)} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${key ? `Sec-WebSocket-Key: ${key}\r\n` : ''}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: guacamole\r\n\r\n`);
  });
}

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
  assert.deepEqual(Object.keys(r.body).sort(), ['expiresAt', 'readOnly', 'ticket', 'tunnel']);
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
  const cases = [
    '',
    'token=',
    'token=nonsense',
    `token=${good.slice(0, 20)}`, // truncated
    `token=${'A'.repeat(43)}`, // well-formed, unknown
    `token=${encodeURIComponent('{"iv":"x","value":"y"}')}`, // guacamole-lite's own format
    `token=${encodeURIComponent('%ff%00\u00e9\u{1F600}')}`,
    `token=${'x'.repeat(5000)}`,
  ];
  for (const q of cases) assert.match(await refusedWith(open(q), UNAUTHORIZED), /ticket/i, q);
  assert.equal(guacd.accepted, before, 'no guacd connection for a refused ticket');

  // Used once: the second use is refused.
  const first = open(`token=${good}`);
  await first.ready();
  const replay = open(`token=${good}`);
  assert.match(await refusedWith(replay, UNAUTHORIZED), /already used|unknown|expired/);
  first.close();

  // Expired in Redis (TTL) ...
  const t2 = await connectTicket(alice, session);
  await tb.app.store.redis.pexpire(tb.app.store.keys.ticket(createHash('sha256').update(t2).digest('base64url')), 1);
  await sleep(20);
  await refusedWith(open(`token=${t2}`), UNAUTHORIZED);
  // ... and by its own sealed expiry, even if Redis still had it.
  const past = new TicketService({ store: tb.app.store, broker: tb.app.broker, providers: tb.app.providers, config: tb.config, now: () => Date.now() - 120_000 });
  const old = await past.issueConnect({ principal: { kind: 'user', id: 'alice', role: 'user', groups: [] }, address: '' }, session);
  assert.match(await refusedWith(open(`token=${old.ticket}`), UNAUTHORIZED), /expired/);
  // A ticket whose session ended meanwhile: forbidden.
  const t3 = await connectTicket(alice, session);
  assert.equal((await alice.post(`/me/sessions/${session}/logoff`)).status, 200);
  await refusedWith(open(`token=${t3}`), 0x0303);
  // Other paths on the same server are not WebSockets.
  const other = new TunnelClient(tb.url, 'token=x', '/api/v1/other');
  clients.push(other);
  assert.equal(await other.opened, false);
  assert.equal(other.httpStatus, 404);
});

test('1,000 garbage upgrades in a row: the process stays up and its memory flat', async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  const sample = async () => {
    gc?.();
    await sleep(50);
    return process.memoryUsage();
  };
  const port = Number(new URL(tb.url).port);
  const round = async (n: number) => {
    for (let i = 0; i < n; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, j) => {
          const kind = (i + j) % 6;
          if (kind >= 4) {
            // Below the WebSocket layer: a handshake without a key, or a good one followed by junk frames.
            const r = await rawUpgrade(port, kind === 4 ? '' : 'dGhlIHNhbXBsZSBub25jZQ==', Buffer.from([0xff, 0xff, 0x00, 0x13, 0x37, 0x00]));
            assert.match(r, kind === 4 ? /^HTTP\/1\.1 400/ : /^HTTP\/1\.1 101/);
            return;
          }
          const q = kind === 0 ? `token=${'x'.repeat(43)}` : kind === 1 ? 'token=%%%' : kind === 2 ? `token=${Math.random().toString(36)}` : '';
          const c = new TunnelClient(tb.url, q);
          await c.ended(10_000);
          assert.equal(c.closeReason, String(UNAUTHORIZED));
        }),
      );
    }
  };
  await round(200); // warm-up (JIT, pools)
  const m0 = await sample();
  await round(1000);
  await sleep(200);
  const m1 = await sample();
  const heapGrowth = m1.heapUsed - m0.heapUsed;
  const rssGrowth = m1.rss - m0.rss;
  assert.ok(heapGrowth < 32 * 1024 * 1024, `heap grew ${heapGrowth} bytes`);
  assert.ok(rssGrowth < 96 * 1024 * 1024, `rss grew ${rssGrowth} bytes`);
  assert.equal(tb.tunnel.count(), 0);
  // Still serving.
  assert.equal((await fetch(`${tb.url}/healthz`)).status, 200);
});

test('single use under concurrency: two upgrades race with one ticket, exactly one streams', async () => {
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  for (let round = 0; round < 5; round++) {
    const before = guacd.streamed;
    const ticket = await connectTicket(alice, session);
    const a = open(`token=${ticket}`);
    const b = open(`token=${ticket}`);
    const results = await Promise.allSettled([a.ready(5000), b.ready(5000)]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
    const loser = results[0]!.status === 'fulfilled' ? b : a;
    await refusedWith(loser, UNAUTHORIZED);
    assert.equal(guacd.streamed - before, 1);
    a.close();
    b.close();
  }
});

test('settings false and 0 and a non-ASCII password reach guacd intact; browser size passes, secrets do not leak back', async () => {
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  const c = open(`token=${await connectTicket(alice, session)}&width=1280&height=720&dpi=120&hostname=evil.example&password=x`);
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
  const c = open(`token=${await connectTicket(alice, session)}`);
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
  const c = open(`token=${await connectTicket(alice, session)}`);
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
  const first = open(`token=${await connectTicket(alice, session)}`);
  await first.ready();
  await until(async () => (await tb.app.store.sessions.get(session))?.state === 'connected');
  const second = open(`token=${await connectTicket(alice, session)}`);
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
  const c = open(`token=${await connectTicket(alice, session)}`);
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
  const user = open(`token=${await connectTicket(alice, session)}`);
  const id = await user.ready();
  await until(async () => (await tb.app.store.tickets.tunnel(session))?.guacConnection);
  const r = await helen.post(`/sessions/${session}/shadow`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.readOnly, true);
  assert.ok(!JSON.stringify(r.body).includes(id), 'the connection id stays server-side');
  const shadow = open(`token=${r.body.ticket}`);
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
  const replay = open(`token=${r.body.ticket}`);
  await refusedWith(replay, UNAUTHORIZED);
});

test('logging the session off closes its open tunnel', async () => {
  const alice = await login(tb, 'alice');
  const { session } = await liveSession(tb, alice);
  const c = open(`token=${await connectTicket(alice, session)}`);
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
    const c = new TunnelClient(tb2.url, `token=${await connectTicket(alice, session)}`);
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
  const c = open(`token=${await connectTicket(alice, session)}`);
  await c.ready();
  c.ws.send('4.key,garbage;');
  const e = await c.ended();
  assert.equal(Number(e.error?.args[1]), 0x0300);
  const big = open(`token=${await connectTicket(alice, session)}`);
  await big.ready();
  big.ws.send('x'.repeat(600 * 1024));
  await big.ended();
  assert.equal((await fetch(`${tb.url}/healthz`)).status, 200);
  void WebSocket;
});
