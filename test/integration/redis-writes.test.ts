// The broker's Redis client (createRedis) sends the commands issued in one turn of the event
// loop (one tick, or several callbacks of one turn, as a loaded broker handles many requests'
// reads in one turn) in one socket write, sends each turn's commands in that turn (never held back until an earlier command is
// answered, as ioredis's auto-pipelining did), and keeps doing both on the socket of a new
// connection. Counted on the client's own socket, against a redis-server of the test's own
// that it can stop (SIGSTOP), so "not answered yet" is a fact, not a race.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { createRedis, connectRedis, redisTarget } from '../../server/store/index.ts';
import { waitFor } from '../support/harness.ts';

let server: TestRedisServer;
let client: Redis;
const silent = { warn: () => undefined, info: () => undefined } as never;

before(async () => {
  server = await startRedisServer();
  client = createRedis({ ...redisTarget({ url: server.url }), commandTimeoutMs: 5000, logger: silent });
  assert.ok(await connectRedis(client, 5000), 'connects');
});
after(async () => {
  client?.disconnect();
  await server?.stop();
});

/** Counts the writes that reach the client's current socket from now on. */
function countWrites(): { readonly writes: number } {
  const sock = client.stream as Socket & { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
  const counter = { writes: 0 };
  for (const m of ['_write', '_writev'] as const) {
    const orig = sock[m];
    sock[m] = function (this: Socket, ...a: unknown[]) {
      counter.writes++;
      return orig.apply(this, a);
    };
  }
  return counter;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

test('the commands issued in one tick leave the socket in one write, and all are answered', async () => {
  const c = countWrites();
  const keys = Array.from({ length: 50 }, (_, i) => `batch:${i}`);
  const answers = Promise.all(keys.map((k, i) => client.set(k, String(i)).then(() => client.get(k))));
  await tick();
  assert.equal(c.writes, 1, 'the 50 SETs of the first tick went out in one write');
  assert.deepEqual(await answers, keys.map((_, i) => String(i)));
});

test('the commands of several callbacks of one event-loop turn (two timers due together) leave in one write', async () => {
  const c = countWrites();
  const answers: Promise<string | null>[] = [];
  // Two timers of the same duration, set together, fire in the same timers phase: two callbacks,
  // each with its own ticks, in one turn (as two requests read in one poll are).
  await new Promise<void>((resolve) => {
    setTimeout(() => answers.push(client.set('turn:a', 'a').then(() => client.get('turn:a'))), 5);
    setTimeout(() => answers.push(client.set('turn:b', 'b').then(() => client.get('turn:b'))), 5);
    setTimeout(() => setImmediate(resolve), 5);
  });
  assert.equal(answers.length, 2, 'both timers fired');
  assert.equal(c.writes, 1, 'the two callbacks\' SETs went out in one write');
  assert.deepEqual(await Promise.all(answers), ['a', 'b']);
});

test('a command issued in a later tick is sent in that tick, while an earlier one is still unanswered', async () => {
  const c = countWrites();
  server.pause();
  const first = client.set('held:a', '1');
  let second: Promise<string | null> | undefined;
  try {
    await tick();
    second = client.get('held:a');
    await tick();
    // Redis is stopped: nothing is answered, and both commands have left anyway.
    assert.equal(c.writes, 2, 'the second tick\'s command was written without waiting for the first\'s answer');
    server.resume();
    assert.equal(await first, 'OK');
    assert.equal(await second, '1');
  } finally {
    server.resume();
    // Settled before the next test, whatever happened here.
    await Promise.allSettled([first, second]);
  }
});

test('after a reconnect the new socket gets the same one write per tick', async () => {
  const old = client.stream;
  client.disconnect(true);
  await waitFor(async () => client.status === 'ready' && client.stream !== old);
  const c = countWrites();
  const answers = Promise.all(Array.from({ length: 20 }, () => client.ping()));
  await tick();
  assert.equal(c.writes, 1);
  assert.deepEqual(await answers, Array(20).fill('PONG'));
});
