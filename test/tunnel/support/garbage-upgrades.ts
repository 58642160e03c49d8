// The measured part of memory.test.ts, in its own process started with `--expose-gc` so every
// sample is taken after a full GC: a test broker (real Redis, built-in gateway) takes 200
// warm-up and then GARBAGE_ROUNDS garbage upgrades, every one refused; prints one JSON line
// `{heapGrowth, buffersGrowth, rssGrowth, open, healthz}`.
// Usage: VDI_TEST_HEAP_LIMIT=<bytes> node --expose-gc --import tsx <this file>
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { TunnelClient } from './tunnel-client.ts';
import { login, streamingBroker } from './fixtures.ts';

const ROUNDS = Number(process.env.VDI_TEST_GARBAGE_ROUNDS ?? 1000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('run with --expose-gc\n');
  process.exit(2);
}

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
    s.write(`GET /api/v1/tunnel HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: http://127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${key ? `Sec-WebSocket-Key: ${key}\r\n` : ''}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: guacamole\r\n\r\n`);
  });
}

/** Memory after a full GC (twice, with a pause: finalizers and socket teardown free more on the second pass). */
async function sample(): Promise<NodeJS.MemoryUsage> {
  gc!();
  await sleep(50);
  gc!();
  return process.memoryUsage();
}

const growth = (a: NodeJS.MemoryUsage, b: NodeJS.MemoryUsage) => ({ heapGrowth: b.heapUsed - a.heapUsed, buffersGrowth: b.arrayBuffers - a.arrayBuffers, rssGrowth: b.rss - a.rss });

const tb = await streamingBroker('tunnel-memory');
try {
  const alice = await login(tb, 'alice');
  // The test's own check that it can fail: keep every upgrade's request and socket, as a leaking
  // tunnel would (the WebSocket and its buffers hang off the socket).
  const leaked: unknown[] = [];
  if (process.env.VDI_TEST_SIMULATE_LEAK === '1') tb.server.prependListener('upgrade', (req, socket) => void leaked.push(req, socket));
  const port = Number(new URL(tb.url).port);
  const round = async (n: number) => {
    for (let i = 0; i < n; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, j) => {
          const kind = (i + j) % 7;
          if (kind >= 5) {
            // Below the WebSocket layer: a handshake without a key, or a good one followed by junk frames.
            const r = await rawUpgrade(port, kind === 5 ? '' : 'dGhlIHNhbXBsZSBub25jZQ==', Buffer.from([0xff, 0xff, 0x00, 0x13, 0x37, 0x00]));
            assert.match(r, kind === 5 ? /^HTTP\/1\.1 400/ : /^HTTP\/1\.1 101/);
            return;
          }
          const random = Math.random().toString(36);
          const c = new TunnelClient(tb.url, [
            { ticket: 'x'.repeat(43), as: alice }, // unknown ticket, right login
            { first: `%%%${random}`, as: alice }, // no ticket instruction
            { query: `token=${random}`, as: alice }, // a ticket in the URL
            { ticket: random }, // no login
            { ticket: 'y'.repeat(43), as: alice, origin: 'https://evil.example' }, // foreign Origin
          ][kind]);
          await c.ended(10_000);
          assert.match(c.closeReason, /^(769|771)$/, `refused with 0x0301/0x0303, got ${c.closeReason}`);
        }),
      );
    }
  };
  await round(200); // warm-up (JIT, pools, the audit stream)
  const m0 = await sample();
  await round(ROUNDS);
  // A refused socket is kept until its peer answers the close, at most 2 s (server/tunnel/lite.ts
  // refuse(), an unref'd timer): sample until the heap is back under the limit, for at most 5 s.
  // Sockets in that window come back; a leak never does.
  const limit = Number(process.env.VDI_TEST_HEAP_LIMIT ?? 0);
  const deadline = Date.now() + 5_000;
  let g = growth(m0, await sample());
  while (g.heapGrowth >= limit && Date.now() < deadline) {
    await sleep(250);
    g = growth(m0, await sample());
  }
  const healthz = (await fetch(`${tb.url}/healthz`)).status;
  process.stdout.write(`${JSON.stringify({ ...g, open: tb.tunnel.count(), healthz })}\n`);
} finally {
  await tb.close();
}
