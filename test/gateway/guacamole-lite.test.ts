// The production path in miniature: a WebSocket client (like guacamole-common-js) →
// guacamole-lite 1.2.0 → our gateway (in guacd's place) → a scripted RFB server. Stock
// guacamole-lite opens the gateway with a grant where it puts a join id; the broker's own
// TunnelConnection (server/tunnel/lite.ts) does the same over the gateway's unix socket.
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { it } from 'node:test';
import { encode, InstructionParser, type Instruction } from '../../server/gateway/protocol.ts';
import { TunnelConnection, type WsSocket } from '../../server/tunnel/lite.ts';
import { FakeRfbServer, solidRawRect } from './support/fake-rfb.ts';
import { grantedGateway } from './support/granted.ts';
import { freePort } from './support/xvnc.ts';

const require = createRequire(import.meta.url);

type Ws = {
  on(ev: 'message', f: (d: Buffer) => void): void;
  on(ev: 'open' | 'close', f: () => void): void;
  on(ev: 'error', f: (e: Error) => void): void;
  send(s: string): void;
  close(): void;
};
type GuacLiteServer = { close(): void };
const WebSocket = require('ws') as { new (url: string): Ws };
const GuacamoleLite = require('guacamole-lite') as {
  new (ws: { port: number; host: string }, guacd: { host: string; port: number }, client: object): GuacLiteServer;
};

function token(key: Buffer, settings: object): string {
  const iv = randomBytes(16);
  const c = createCipheriv('aes-256-cbc', key, iv);
  const value = Buffer.concat([c.update(JSON.stringify(settings), 'utf8'), c.final()]);
  return Buffer.from(JSON.stringify({ iv: iv.toString('base64'), value: value.toString('base64') })).toString('base64');
}

it('works behind guacamole-lite 1.2.0 like guacd does', async (t) => {
  const rfb = await FakeRfbServer.start({ width: 120, height: 80 });
  rfb.onConnection = (c) => {
    c.onRequest = (cc) => {
      if (cc.messages.filter((m) => m.type === 'request').length === 1) cc.sendUpdate([solidRawRect(0, 0, 120, 80, [200, 100, 50])]);
    };
  };
  const g = await grantedGateway();
  const gw = g.gw;
  assert.ok('port' in gw.endpoint);
  const key = randomBytes(32);
  const wsPort = await freePort();
  const lite = new GuacamoleLite({ port: wsPort, host: '127.0.0.1' }, { host: '127.0.0.1', port: gw.endpoint.port }, { crypt: { cypher: 'AES-256-CBC', key }, log: { level: 0, stdLog: () => undefined, errorLog: () => undefined } });
  const ws = new WebSocket(
    `ws://127.0.0.1:${wsPort}/?token=${encodeURIComponent(
      token(key, { connection: { join: g.vnc(rfb.port), settings: { hostname: '127.0.0.1', port: String(rfb.port), 'read-only': false, autoretry: 0 } } }),
    )}`,
  );
  t.after(async () => {
    ws.close();
    lite.close();
    await gw.close();
    await rfb.close();
  });

  const parser = new InstructionParser(1 << 22);
  const got: Instruction[] = [];
  let closed = false;
  ws.on('message', (d) => {
    for (const ins of parser.push(d)) {
      got.push(ins);
      if (ins.opcode === 'sync') ws.send(encode('sync', ins.args[0]!));
    }
  });
  ws.on('close', () => (closed = true));
  ws.on('error', () => (closed = true));
  for (let i = 0; i < 500 && !closed && !got.some((g) => g.opcode === 'sync'); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(!got.some((g) => g.opcode === 'error'), JSON.stringify(got.find((g) => g.opcode === 'error')));
  // Stock guacamole-lite relays `ready` as the empty-opcode instruction carrying the connection id.
  assert.equal(got[0]?.opcode, '');
  assert.match(got[0]?.args[0] ?? '', /^\$/);
  assert.ok(got.some((g) => g.opcode === 'size' && g.args.join() === '0,120,80'));
  assert.ok(got.some((g) => g.opcode === 'cfill' && g.args.slice(2, 5).join() === '200,100,50'));
  ws.send(encode('key', 65, 1));
  const up = rfb.connections[0]!;
  for (let i = 0; i < 300 && !up.messages.some((m) => m.type === 'key'); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(up.messages.some((m) => m.type === 'key' && m.keysym === 65));
});

it("the broker's TunnelConnection reaches the gateway's unix socket with grants (own connection, read-only join); browsers get a tunnel UUID, not the connection id", async (t) => {
  const rfb = await FakeRfbServer.start({ width: 64, height: 32 });
  rfb.onConnection = (c) => {
    c.onRequest = (cc) => {
      if (cc.messages.filter((m) => m.type === 'request').length === 1) cc.sendUpdate([solidRawRect(0, 0, 64, 32, [10, 20, 30])]);
    };
  };
  const g = await grantedGateway({ listen: { socketDir: '' } });
  assert.ok('path' in g.gw.endpoint);
  type Wss = { on(ev: 'connection', f: (ws: WsSocket, req: { url?: string }) => void): void; close(cb: () => void): void };
  const WsServer = (require('ws') as { WebSocketServer: new (o: object) => Wss }).WebSocketServer;
  const wsPort = await freePort();
  const wss = new WsServer({ port: wsPort, host: '127.0.0.1' });
  const conns: TunnelConnection[] = [];
  const log = { debug: () => undefined, warn: () => undefined };
  // What server/tunnel/index.ts does for a connect ticket (/own) and a shadow ticket (/shadow?id).
  wss.on('connection', (sock, req) => {
    const url = new URL(req.url ?? '/', 'http://x');
    let conn: TunnelConnection;
    if (url.pathname === '/own') {
      conn = new TunnelConnection(1, sock, { type: 'vnc', settings: { hostname: '127.0.0.1', port: String(rfb.port), 'read-only': 'false' } }, {}, { maxInactivityMs: 10_000, log });
      conn.connect(g.gw.endpoint, g.vnc(rfb.port));
    } else {
      const join = url.searchParams.get('id')!;
      conn = new TunnelConnection(2, sock, { join, settings: { 'read-only': 'true' } }, {}, { maxInactivityMs: 10_000, log });
      conn.readOnly = true;
      conn.connect(g.gw.endpoint, g.grant({ join }, { readOnly: true }));
    }
    conns.push(conn);
  });
  const browsers: Ws[] = [];
  t.after(async () => {
    browsers.forEach((b) => b.close());
    conns.forEach((c) => c.close());
    await new Promise<void>((r) => wss.close(() => r()));
    await g.gw.close();
    await rfb.close();
  });
  const browser = async (path: string) => {
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}${path}`);
    browsers.push(ws);
    const parser = new InstructionParser(1 << 22);
    const got: Instruction[] = [];
    ws.on('message', (d) => {
      for (const ins of parser.push(d)) {
        got.push(ins);
        if (ins.opcode === 'sync') ws.send(encode('sync', ins.args[0]!));
      }
    });
    for (let i = 0; i < 500 && !got.some((x) => x.opcode === 'cfill' || x.opcode === 'error'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(!got.some((x) => x.opcode === 'error'), JSON.stringify(got.find((x) => x.opcode === 'error')));
    assert.ok(got.some((x) => x.opcode === 'cfill' && x.args.slice(2, 5).join() === '10,20,30'), `${path}: the desktop arrived`);
    return got;
  };
  const own = await browser('/own');
  const id = conns[0]?.guacamoleConnectionId ?? '';
  assert.match(id, /^\$/, 'the tunnel knows the gateway connection id (a shadow joins it)');
  const shadow = await browser(`/shadow?id=${encodeURIComponent(id)}`);
  assert.equal(conns[1]?.guacamoleConnectionId, id, 'the shadow joined that connection');
  for (const got of [own, shadow]) {
    assert.equal(got[0]?.opcode, '');
    assert.match(got[0]?.args[0] ?? '', /^[0-9a-f-]{36}$/, 'the browser gets a UUID');
    assert.ok(!JSON.stringify(got).includes(id), 'the connection id never reaches the browser');
  }
  assert.notEqual(own[0]?.args[0], shadow[0]?.args[0]);
});
