// Property/fuzz tests: random and mutated byte streams from Guacamole clients never crash
// the process, every connection ends or keeps working, and memory stays bounded.
// Bounded: a fixed number of iterations and a time cap.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { GuacdEndpoint } from '../../server/gateway/index.ts';
import { encode, InstructionParser } from '../../server/gateway/protocol.ts';
import { VNC_ARGS } from '../../server/gateway/settings.ts';
import { RfbClient } from '../../server/gateway/rfb.client.ts';
import { FakeRfbServer, solidRawRect } from './support/fake-rfb.ts';
import { grantedGateway } from './support/granted.ts';
import { GuacTestClient } from './support/guac-client.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Deterministic PRNG so failures reproduce (mulberry32). */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A whole valid client session, opened with `grant`. */
function transcript(port: number, grant: string): string {
  const values = VNC_ARGS.map((n) => (n === 'hostname' ? '127.0.0.1' : n === 'port' ? String(port) : n === 'read-only' ? 'false' : ''));
  return (
    encode('select', grant) +
    encode('size', 1024, 768, 96) +
    encode('audio', 'audio/L16') +
    encode('video') +
    encode('image', 'image/png', 'image/jpeg') +
    encode('timezone', 'Europe/Berlin') +
    encode('connect', 'VERSION_1_1_0', ...values) +
    encode('key', 65, 1) +
    encode('mouse', 10, 10, 1) +
    encode('clipboard', 1, 'text/plain') +
    encode('blob', 1, Buffer.from('hé 😀').toString('base64')) +
    encode('end', 1) +
    encode('sync', 1) +
    encode('size', 800, 600) +
    encode('nop') +
    encode('disconnect')
  );
}

function mutate(src: Buffer, r: () => number): Buffer {
  const b = Buffer.from(src);
  const out: number[] = [...b];
  const n = 1 + Math.floor(r() * 6);
  for (let k = 0; k < n; k++) {
    const i = Math.floor(r() * out.length);
    const op = Math.floor(r() * 5);
    if (op === 0) out[i] = Math.floor(r() * 256);
    else if (op === 1) out.splice(i, 1);
    else if (op === 2) out.splice(i, 0, ...Buffer.from(String(Math.floor(r() * 1e6))));
    else if (op === 3) out.splice(i, 0, ...out.slice(i, i + Math.floor(r() * 50)));
    else out.length = i; // truncate
  }
  return Buffer.from(out);
}

async function setup(t: TestContext) {
  const rfb = await FakeRfbServer.start({ width: 64, height: 48 });
  rfb.onConnection = (c) => {
    c.onRequest = (cc) => cc.sendUpdate([solidRawRect(0, 0, 64, 48, [1, 2, 3])]);
  };
  const granted = await grantedGateway({
    allowUpstream: (host, port) => host === '127.0.0.1' && port === rfb.port,
    timings: { handshakeTimeoutMs: 1000, idleTimeoutMs: 1000, keepAliveMs: 200 },
  });
  const gw = granted.gw;
  t.after(async () => {
    await gw.close();
    await rfb.close();
  });
  return { rfb, gw, grant: () => granted.vnc(rfb.port) };
}

async function feed(to: GuacdEndpoint, data: Buffer, r: () => number): Promise<void> {
  const c = await GuacTestClient.connect(to);
  let off = 0;
  while (off < data.length) {
    const n = 1 + Math.floor(r() * 300);
    c.socket.write(data.subarray(off, off + n));
    off += n;
  }
  await new Promise((res) => setTimeout(res, 5 + Math.floor(r() * 20)));
  c.close();
}

describe('gateway fuzzing', () => {
  it('survives random and mutated client streams with bounded memory', async (t) => {
    const { rfb, gw, grant } = await setup(t);
    const r = rng(0x5eed);
    // Each mutated session starts from a fresh grant (a grant works once), so mutations
    // reach the connected state too, not only the grant check.
    gc();
    const before = process.memoryUsage().heapUsed;
    const deadline = Date.now() + 6000;
    let iterations = 0;
    for (; iterations < 400 && Date.now() < deadline; iterations += 8) {
      const batch: Promise<void>[] = [];
      for (let k = 0; k < 8; k++) {
        const kind = r();
        let data: Buffer;
        if (kind < 0.3) data = Buffer.from(Array.from({ length: Math.floor(r() * 3000) }, () => Math.floor(r() * 256)));
        else if (kind < 0.4) {
          // Plausible-looking but random instructions.
          const ops = ['select', 'connect', 'size', 'key', 'mouse', 'blob', 'end', 'sync', 'clipboard', 'ack', '💥'];
          let s = '';
          for (let i = 0; i < 20; i++) s += encode(ops[Math.floor(r() * ops.length)]!, ...Array.from({ length: Math.floor(r() * 4) }, () => String(Math.floor(r() * 1e9))));
          data = Buffer.from(s);
        } else data = mutate(Buffer.from(transcript(rfb.port, grant()), 'utf8'), r);
        batch.push(feed(gw.endpoint, data, r));
      }
      await Promise.all(batch);
    }
    assert.ok(iterations >= 40, `only ${iterations} iterations`);
    // Everything closes by itself (client gone, or idle/handshake timeouts).
    for (let i = 0; i < 300 && gw.connections() > 0; i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(gw.connections(), 0);
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    assert.ok(grown < 64 * 1024 * 1024, `heap grew by ${(grown / 1048576).toFixed(1)} MiB`);
    // And the gateway still serves a proper client.
    const c = await GuacTestClient.connect(gw.endpoint);
    t.after(() => c.close());
    await c.handshake({}, grant());
    await c.frame();
  });

  it('ends a never-terminated flood with CLIENT_OVERRUN without buffering it', async (t) => {
    const { gw, grant } = await setup(t);
    const c = await GuacTestClient.connect(gw.endpoint);
    t.after(() => c.close());
    await c.handshake({}, grant());
    // 40000-code-point elements are fine; an endless element is not.
    c.send('blob', 1, 'A'.repeat(40_000));
    const chunk = Buffer.alloc(1 << 20, 0x61);
    c.socket.write('99999.');
    for (let i = 0; i < 8 && !c.closed; i++) c.socket.write(chunk);
    const err = await c.next((i) => i.opcode === 'error');
    assert.equal(Number(err.args[1]), 0x030d);
  });

  it('parser: random byte streams either parse or throw GuacError, never anything else', () => {
    const r = rng(42);
    for (let i = 0; i < 2000; i++) {
      const p = new InstructionParser(512);
      const len = Math.floor(r() * 200);
      const alphabet = '0123456789.,;ab😀é';
      const chars = Array.from({ length: len }, () => alphabet[Math.floor(r() * alphabet.length)]);
      try {
        for (const ins of p.push(Buffer.from(chars.join(''), 'utf8'))) assert.equal(typeof ins.opcode, 'string');
      } catch (e) {
        assert.equal((e as Error).name, 'GuacError');
      }
    }
  });
});

/** Waits for a condition (3 s at most). */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); ) {
    if (Date.now() > end) assert.fail('condition not met within ' + ms + ' ms');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('a hostile VNC server', () => {
  it('a ZRLE rectangle with corrupt zlib data ends that connection with an error, and the next connection decodes ZRLE', async () => {
    const rfb = await FakeRfbServer.start({ width: 64, height: 32 });
    const clients: RfbClient[] = [];
    try {
      const sink = (c: RfbClient) => ({ resized() {}, damaged() {}, copied() {}, cursor() {}, clipboard() {}, updateDone: () => c.requestUpdate(true) });
      // As to a remote server: ZRLE offered (loopback would get Raw).
      const bad = await RfbClient.connect({ host: '127.0.0.1', port: rfb.port, encodings: [16, 0], loopbackRaw: false });
      clients.push(bad);
      const ran = bad.run(sink(bad));
      bad.requestUpdate(false);
      await until(() => rfb.connections.length > 0);
      const rect = Buffer.alloc(12 + 4 + 64);
      rect.writeUInt16BE(16, 4); // w
      rect.writeUInt16BE(16, 6); // h
      rect.writeInt32BE(16, 8); // ZRLE
      rect.writeUInt32BE(64, 12);
      for (let i = 16; i < rect.length; i++) rect[i] = (i * 37) & 0xff; // not a zlib stream
      rfb.connections[0]!.sendUpdate([rect]);
      await assert.rejects(ran, /zlib|ZRLE|header/i);
      // The process and other connections are unaffected: a new one decodes a proper ZRLE rectangle.
      const good = await RfbClient.connect({ host: '127.0.0.1', port: rfb.port, encodings: [16, 0], loopbackRaw: false });
      clients.push(good);
      let damaged = 0;
      void good.run({ ...sink(good), damaged: () => void damaged++ });
      good.requestUpdate(false);
      await until(() => rfb.connections.length > 1);
      const pixels = Buffer.alloc(64 * 32 * 4, 0x7f);
      rfb.connections[1]!.sendZrle(0, 0, 64, 32, pixels, 64);
      await until(() => damaged > 0);
      assert.equal(good.rectangles.get(16), 1);
    } finally {
      clients.forEach((c) => c.close());
      await rfb.close();
    }
  });
});
