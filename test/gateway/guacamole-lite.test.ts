// The production path in miniature: a WebSocket client (like guacamole-common-js) →
// guacamole-lite 1.2.0 → our gateway (in guacd's place) → a scripted RFB server.
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { it } from 'node:test';
import pino from 'pino';
import { startGateway } from '../../server/gateway/index.ts';
import { encode, InstructionParser, type Instruction } from '../../server/gateway/protocol.ts';
import { FakeRfbServer, solidRawRect } from './support/fake-rfb.ts';
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
  const gw = await startGateway({ host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }) });
  const key = randomBytes(32);
  const wsPort = await freePort();
  const lite = new GuacamoleLite({ port: wsPort, host: '127.0.0.1' }, { host: '127.0.0.1', port: gw.port }, { crypt: { cypher: 'AES-256-CBC', key }, log: { level: 0, stdLog: () => undefined, errorLog: () => undefined } });
  const ws = new WebSocket(
    `ws://127.0.0.1:${wsPort}/?token=${encodeURIComponent(
      token(key, { connection: { type: 'vnc', settings: { hostname: '127.0.0.1', port: String(rfb.port), 'read-only': false, autoretry: 0 } } }),
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
  // guacamole-lite relays `ready` as the empty-opcode instruction carrying the connection id.
  assert.equal(got[0]?.opcode, '');
  assert.match(got[0]?.args[0] ?? '', /^\$/);
  assert.ok(got.some((g) => g.opcode === 'size' && g.args.join() === '0,120,80'));
  assert.ok(got.some((g) => g.opcode === 'cfill' && g.args.slice(2, 5).join() === '200,100,50'));
  ws.send(encode('key', 65, 1));
  const up = rfb.connections[0]!;
  for (let i = 0; i < 300 && !up.messages.some((m) => m.type === 'key'); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(up.messages.some((m) => m.type === 'key' && m.keysym === 65));
});
