// The tests' port picker (test/support/redis.ts): a port handed out for a server started later
// must not be one the kernel hands out again to someone else's listen(0) or outgoing connection
// (CI once lost haproxy's stats port that way between the pick and haproxy's bind).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { ephemeralRange, freePort } from '../support/redis.ts';

test('freePort picks below the ephemeral range, never a port something listens on, never the same port twice in a process', async () => {
  const [low] = ephemeralRange();
  const seen = new Set<number>();
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    assert.ok(p >= 1024 && p < low, `port ${p} is outside 1024-${low - 1}`);
    assert.ok(!seen.has(p), `port ${p} handed out twice`);
    seen.add(p);
    // Nothing listens there: a server can bind it now.
    const s = net.createServer();
    await new Promise<void>((resolve, reject) => s.once('error', reject).listen({ port: p, host: '127.0.0.1', exclusive: true }, resolve));
    await new Promise((r) => s.close(r));
  }
});
