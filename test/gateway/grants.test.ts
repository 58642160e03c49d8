// Only the broker can use the gateway: every connection needs a grant the broker issued for
// exactly that connection (issue 9). Without one, nothing is contacted and every target gets
// the same answer; a grant works once, expires, reaches only what it names, and its
// read-only flag holds. By default the gateway is a unix socket (0600 in a 0700 directory).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import pino from 'pino';
import { GRANT_TTL_MS, grantKey, issueGrant, type Gateway } from '../../server/gateway/index.ts';
import { encode, Status, type Instruction } from '../../server/gateway/protocol.ts';
import { FakeRfbServer, solidRawRect, type FakeRfbConnection } from './support/fake-rfb.ts';
import { grantedGateway, type GrantedGateway } from './support/granted.ts';
import { GuacTestClient } from './support/guac-client.ts';
import { freePort } from './support/xvnc.ts';

/** A real TCP server that only counts who connects to it (an SSRF target). */
async function recorder(t: TestContext): Promise<{ port: number; connections: () => number }> {
  let n = 0;
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    n++;
    socks.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    for (const s of socks) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as net.AddressInfo).port, connections: () => n };
}

async function setup(t: TestContext, opts: Parameters<typeof grantedGateway>[0] = {}) {
  const rfb = await FakeRfbServer.start({ width: 200, height: 100 });
  const g = await grantedGateway(opts);
  const clients: GuacTestClient[] = [];
  t.after(async () => {
    clients.forEach((c) => c.close());
    await g.gw.close();
    await rfb.close();
  });
  const client = async (gw: Gateway = g.gw) => {
    const c = await GuacTestClient.connect(gw.endpoint);
    clients.push(c);
    return c;
  };
  const upstream = async (index = 0): Promise<FakeRfbConnection> => {
    await until(() => !!rfb.connections[index]?.messages.some((m) => m.type === 'request'));
    return rfb.connections[index]!;
  };
  return { rfb, g, client, upstream };
}

const until = async (cond: () => boolean, ms = 5000) => {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail('condition not met in time');
};

/**
 * What an attacker does: `select`, and if the gateway answers `args`, the rest of the
 * handshake naming `target`. Returns everything the gateway sent until it closed.
 */
async function attempt(c: GuacTestClient, select: string, target: Record<string, string> = {}): Promise<Instruction[]> {
  c.send('select', select);
  const first = await c.next((i) => i.opcode === 'args' || i.opcode === 'error');
  if (first.opcode === 'args') {
    c.send('size', 1024, 768, 96);
    c.send('connect', ...first.args.map((n) => (n.startsWith('VERSION_') ? n : (target[n] ?? ''))));
    const end = await c.next((i) => i.opcode === 'error' || i.opcode === 'ready');
    if (end.opcode === 'ready') return c.received; // got in
  }
  await until(() => c.closed);
  return c.received;
}

const refusal = [
  { opcode: 'error', args: ['This gateway serves only connections the broker granted', String(Status.CLIENT_FORBIDDEN)] },
  { opcode: 'disconnect', args: [] },
];

describe('gateway grants', () => {
  it('a local client without a grant cannot join a live connection by its $id', async (t) => {
    const { g, client, upstream, rfb } = await setup(t);
    const owner = await client();
    const { id } = await owner.handshake({}, g.vnc(rfb.port));
    assert.match(id, /^\$/);
    const up = await upstream();
    up.sendUpdate([solidRawRect(0, 0, 200, 100, [7, 7, 7])]);
    await owner.frame();
    // The attacker knows the id (it used to reach the browser and the info log) and asks to write.
    const intruder = await client();
    const got = await attempt(intruder, id, { 'read-only': 'false' });
    assert.deepEqual(got, refusal);
    assert.ok(!got.some((i) => i.opcode === 'ready' || i.opcode === 'size'), 'no frame of the desktop');
    // The owner is still alone on the connection and unaffected.
    owner.send('key', 65, 1);
    await until(() => up.messages.some((m) => m.type === 'key'));
    assert.deepEqual(up.messages.filter((m) => m.type === 'key'), [{ type: 'key', down: true, keysym: 65 }]);
  });

  it('select vnc with an arbitrary host/port contacts nothing and gets the same error for an open port, a closed port, a live $id and an unknown $id', async (t) => {
    const { g, client, upstream, rfb } = await setup(t);
    const open = await recorder(t);
    const closed = await freePort();
    const owner = await client();
    const { id } = await owner.handshake({}, g.vnc(rfb.port));
    await upstream();
    const answers: Record<string, Instruction[]> = {};
    answers.open = await attempt(await client(), 'vnc', { hostname: '127.0.0.1', port: String(open.port) });
    answers.closed = await attempt(await client(), 'vnc', { hostname: '127.0.0.1', port: String(closed) });
    answers.liveId = await attempt(await client(), id, {});
    answers.unknownId = await attempt(await client(), `$${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}`, {});
    answers.otherProtocol = await attempt(await client(), 'rdp', { hostname: '127.0.0.1', port: String(open.port) });
    for (const [what, got] of Object.entries(answers)) assert.deepEqual(got, refusal, what);
    // Every refused client is gone and nothing ever connected to the listening target.
    await until(() => g.gw.connections() === 1);
    assert.equal(open.connections(), 0, 'the gateway made no TCP connection to the target');
    assert.equal(rfb.connections.length, 1, 'only the granted connection reached the VNC server');
  });

  it('refuses grants that are forged, tampered with, or for another gateway, with the same error', async (t) => {
    const { g, client, rfb } = await setup(t);
    const target = await recorder(t);
    const good = g.vnc(target.port);
    // "<prefix>.<payload>.<signature>": the payload re-encoded with another port, same signature.
    const sigAt = good.lastIndexOf('.');
    const payloadAt = good.lastIndexOf('.', sigAt - 1) + 1;
    const [head, payload, sig] = [good.slice(0, payloadAt), good.slice(payloadAt, sigAt), good.slice(sigAt + 1)];
    const body = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
    const tampered = `${head}${Buffer.from(JSON.stringify({ ...body, port: rfb.port })).toString('base64url')}.${sig}`;
    const otherKey = issueGrant(randomBytes(32), { gateway: g.gw.address, host: '127.0.0.1', port: target.port, readOnly: false });
    const otherGateway = issueGrant(g.key, { gateway: '127.0.0.1:1', host: '127.0.0.1', port: target.port, readOnly: false });
    for (const [what, grant] of Object.entries({ tampered, otherKey, otherGateway, truncated: good.slice(0, -2) })) {
      assert.deepEqual(await attempt(await client(), grant), refusal, what);
    }
    assert.equal(target.connections(), 0);
    assert.equal(rfb.connections.length, 0);
  });

  it('a shadow grant from another replica (same tunnel secret) joins on the gateway it names, and only there', async (t) => {
    const secret = randomBytes(48).toString('base64url');
    const { g: b, client, rfb, upstream } = await setup(t, { grantKey: grantKey(secret) });
    const a = await grantedGateway({ grantKey: grantKey(secret) });
    t.after(() => a.gw.close());
    const owner = await client();
    const { id } = await owner.handshake({}, b.vnc(rfb.port));
    const up = await upstream();
    up.sendUpdate([solidRawRect(0, 0, 200, 100, [5, 6, 7])]);
    await owner.frame();
    // Replica A's tunnel issues the grant with its own copy of the key, naming B's gateway.
    const replicaKey = grantKey(secret);
    const shadow = await client();
    await shadow.handshake({}, issueGrant(replicaKey, { gateway: b.gw.address, join: id, readOnly: true }));
    assert.ok((await shadow.frame()).instructions.some((i) => i.opcode === 'cfill' && i.args.slice(2, 5).join() === '5,6,7'));
    // The same kind of grant presented to A (not the gateway it names) is refused.
    const atA = await GuacTestClient.connect(a.gw.endpoint);
    t.after(() => atA.close());
    assert.deepEqual(await attempt(atA, issueGrant(replicaKey, { gateway: b.gw.address, join: id, readOnly: true })), refusal);
  });

  it('a grant works once only', async (t) => {
    const { g, client, rfb, upstream } = await setup(t);
    const grant = g.vnc(rfb.port);
    const first = await client();
    await first.handshake({}, grant);
    await upstream();
    assert.deepEqual(await attempt(await client(), grant), refusal);
    assert.equal(rfb.connections.length, 1);
  });

  it('a grant expires', async (t) => {
    let now = Date.now();
    const { g, client, rfb } = await setup(t, { now: () => now });
    const stale = g.grant({ host: '127.0.0.1', port: rfb.port }, { now });
    const fresh = g.grant({ host: '127.0.0.1', port: rfb.port }, { now });
    now += GRANT_TTL_MS + 1;
    assert.deepEqual(await attempt(await client(), stale), refusal);
    // One issued now still works (the clock, not the gateway, refused the first).
    const ok = await client();
    await ok.handshake({}, g.grant({ host: '127.0.0.1', port: rfb.port }, { now }));
    assert.deepEqual(await attempt(await client(), fresh), refusal);
    // A grant claiming a lifetime beyond a minute is refused too.
    assert.deepEqual(await attempt(await client(), g.grant({ host: '127.0.0.1', port: rfb.port }, { now, ttlMs: 10 * 60_000 })), refusal);
  });

  it('a grant for endpoint X does not reach endpoint Y, whatever connect says', async (t) => {
    const { g, client, rfb, upstream } = await setup(t);
    const y = await recorder(t);
    const c = await client();
    await c.handshake({ hostname: '127.0.0.1', port: String(y.port) }, g.vnc(rfb.port));
    await upstream();
    assert.equal(rfb.connections.length, 1, 'X, the granted endpoint, was reached');
    assert.equal(y.connections(), 0, 'Y, the one connect named, was not');
  });

  it('a read-only grant cannot send input, whatever connect says', async (t) => {
    const { g, client, rfb, upstream } = await setup(t);
    const c = await client();
    await c.handshake({ 'read-only': 'false' }, g.vnc(rfb.port, true));
    const up = await upstream();
    up.sendUpdate([solidRawRect(0, 0, 200, 100, [1, 2, 3])]);
    await c.frame();
    c.send('key', 65, 1);
    c.send('mouse', 5, 5, 1);
    c.send('size', 300, 200);
    c.send('clipboard', 3, 'text/plain');
    c.send('blob', 3, Buffer.from('typed').toString('base64'));
    c.send('end', 3);
    const ack = await c.next((i) => i.opcode === 'ack' && i.args[0] === '3');
    assert.equal(Number(ack.args[2]), Status.UNSUPPORTED);
    // A frame round trip: its update request reaches the server after anything the input caused.
    const requests = up.messages.filter((m) => m.type === 'request').length;
    up.sendUpdate([solidRawRect(0, 0, 10, 10, [9, 9, 9])]);
    await c.frame();
    await until(() => up.messages.filter((m) => m.type === 'request').length > requests);
    assert.deepEqual(up.messages.filter((m) => ['key', 'pointer', 'cut', 'setsize'].includes(m.type)), []);
  });

  it('listens on a unix socket 0600 in a 0700 directory, serves granted connections there, and removes both at close', async (t) => {
    const rfb = await FakeRfbServer.start({ width: 200, height: 100 });
    const gateways: GrantedGateway[] = [];
    const dir = await mkdtemp(path.join(tmpdir(), 'gw-sock-test-'));
    const configured = path.join(dir, 'run');
    t.after(async () => {
      for (const x of gateways) await x.gw.close();
      await rfb.close();
      await rm(dir, { recursive: true, force: true });
    });
    // A fresh private directory, and a configured one (made 0700 even if it was wider).
    const fresh = await grantedGateway({ listen: { socketDir: '' } });
    gateways.push(fresh);
    await mkdir(configured, { mode: 0o755 });
    const given = await grantedGateway({ listen: { socketDir: configured } });
    gateways.push(given);
    for (const x of [fresh, given]) {
      assert.ok('path' in x.gw.endpoint, 'a unix socket');
      const file = x.gw.endpoint.path;
      assert.equal(x.gw.address, `unix:${file}`);
      const st = await stat(file);
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, 0o600, 'socket mode');
      assert.equal((await stat(path.dirname(file))).mode & 0o777, 0o700, 'directory mode');
      const c = await GuacTestClient.connect(x.gw.endpoint);
      t.after(() => c.close());
      await c.handshake({}, x.vnc(rfb.port));
      await until(() => rfb.connections.some((u) => u.messages.some((m) => m.type === 'request')));
      c.close();
    }
    assert.equal(path.dirname((given.gw.endpoint as { path: string }).path), configured);
    // A second gateway on the same directory does not steal a live socket.
    await assert.rejects(grantedGateway({ listen: { socketDir: configured } }), /another gateway listens/);
    const freshFile = (fresh.gw.endpoint as { path: string }).path;
    await fresh.gw.close();
    gateways.shift();
    await assert.rejects(stat(freshFile), { code: 'ENOENT' });
    await assert.rejects(stat(path.dirname(freshFile)), { code: 'ENOENT' }, 'its own temp directory is removed');
  });

  it('connection ids are not logged at info level', async (t) => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const { g, client, rfb, upstream } = await setup(t, { logger });
    const owner = await client();
    const { id } = await owner.handshake({}, g.vnc(rfb.port));
    const up = await upstream();
    up.sendUpdate([solidRawRect(0, 0, 200, 100, [3, 3, 3])]);
    await owner.frame();
    const viewer = await client();
    await viewer.handshake({}, g.grant({ join: id }, { readOnly: true }));
    await viewer.frame();
    await attempt(await client(), id);
    owner.close();
    viewer.close();
    await until(() => lines.some((l) => l.includes('VNC session ended')));
    assert.ok(lines.some((l) => l.includes('user connected')), 'the gateway did log at info');
    assert.deepEqual(lines.filter((l) => l.includes(id)), []);
  });

  it('a stock client handshake shape still works: select <grant>, args, connect, ready', async (t) => {
    const { g, client, rfb } = await setup(t);
    const c = await client();
    c.socket.write(encode('select', g.vnc(rfb.port)));
    const args = await c.next((i) => i.opcode === 'args');
    assert.equal(args.args[0], 'VERSION_1_5_0');
    c.send('size', 1024, 768, 96);
    c.send('audio');
    c.send('video');
    c.send('image', 'image/png');
    c.send('connect', 'VERSION_1_1_0');
    const ready = await c.next((i) => i.opcode === 'ready' || i.opcode === 'error');
    assert.equal(ready.opcode, 'ready');
  });
});
