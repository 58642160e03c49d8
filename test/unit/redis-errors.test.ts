// Every way Redis can fail, produced for real (redis-servers this test starts and stops) and fed
// through the API's error middleware: each answers 503 redis_unavailable with Retry-After, while
// a Redis error that is the broker's own bug (WRONGTYPE, a bad command) stays a 500.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { Redis } from 'ioredis';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { freePort } from '../support/redis.ts';
import { errorHandler } from '../../server/api/errors.middleware.ts';
import { createRedis } from '../../server/store/redis.ts';
import { createLogger } from '../../server/observability/index.ts';

const logger = createLogger('silent');
const servers: TestRedisServer[] = [];
const clients: Redis[] = [];

async function server(args: string[] = []) {
  const s = await startRedisServer(args);
  servers.push(s);
  return s;
}

/** A client like the broker's (createRedis), connected. */
async function brokerClient(url: string, commandTimeoutMs = 500): Promise<Redis> {
  const c = createRedis({ url, commandTimeoutMs, logger });
  clients.push(c);
  await c.connect().catch(() => undefined);
  return c;
}

/** Runs `fail` inside an express route and returns what the error middleware answered. */
async function answerFor(fail: () => Promise<unknown>) {
  const app = express();
  app.get('/x', async (_req, res, next) => {
    try {
      res.json(await fail());
    } catch (err) {
      next(err);
    }
  });
  app.use(errorHandler(logger));
  const r = await request(app).get('/x');
  return { status: r.status, code: r.body?.error?.code as string | undefined, retryAfter: r.headers['retry-after'] as string | undefined };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the command to fail');
}

async function assertUnavailable(name: string, err: Error) {
  const r = await answerFor(() => Promise.reject(err));
  assert.deepEqual(r, { status: 503, code: 'redis_unavailable', retryAfter: r.retryAfter && Number(r.retryAfter) > 0 ? r.retryAfter : 'missing' }, `${name}: ${err.name}: ${err.message}`);
}

let primary: TestRedisServer;

before(async () => {
  primary = await server();
});
after(async () => {
  for (const c of clients) c.disconnect();
  for (const s of servers) await s.stop();
});

test('READONLY: a write to a replica answers 503 redis_unavailable', async () => {
  const replica = await server();
  await replica.admin.call('REPLICAOF', '127.0.0.1', String(primary.port));
  const c = new Redis(replica.url, { maxRetriesPerRequest: 0, reconnectOnError: () => false });
  clients.push(c);
  const err = await rejection(c.set('k', 'v'));
  assert.match(err.message, /^READONLY/);
  await assertUnavailable('READONLY', err);
});

test('OOM: a write over maxmemory (noeviction) answers 503 redis_unavailable, also from inside a Lua script', async () => {
  const full = await server(['--maxmemory', '1', '--maxmemory-policy', 'noeviction']);
  const c = await brokerClient(full.url);
  const err = await rejection(c.set('k', 'v'));
  assert.match(err.message, /^OOM/);
  await assertUnavailable('OOM', err);
  const scripted = await rejection(c.eval("return redis.call('set', KEYS[1], 'v')", 1, 'k'));
  assert.match(scripted.message, /OOM/);
  await assertUnavailable('OOM in a script', scripted);
});

test('MASTERDOWN: a replica cut off from its primary (replica-serve-stale-data no) answers 503 redis_unavailable', async () => {
  const orphan = await server(['--replica-serve-stale-data', 'no']);
  await orphan.admin.call('REPLICAOF', '127.0.0.1', String(await freePort()));
  const c = new Redis(orphan.url, { maxRetriesPerRequest: 0, enableReadyCheck: false });
  clients.push(c);
  const err = await rejection(c.get('k'));
  assert.match(err.message, /^MASTERDOWN/);
  await assertUnavailable('MASTERDOWN', err);
});

test('LOADING: a server still loading its data set answers 503 redis_unavailable', async () => {
  const s = await server();
  await s.admin.eval("for i = 1, 3000 do redis.call('set', 'k' .. i, string.rep('x', 100)) end return 1", 0);
  await s.admin.call('SAVE');
  // 3000 keys at 1 ms each: three seconds of loading, answering LOADING meanwhile
  await s.restart(['--key-load-delay', '1000', '--loading-process-events-interval-bytes', '1024']);
  const c = new Redis(s.url, { maxRetriesPerRequest: 0, enableReadyCheck: false });
  clients.push(c);
  const err = await rejection(c.get('k1'));
  assert.match(err.message, /^LOADING/);
  await assertUnavailable('LOADING', err);
});

test('a stalled server (SIGSTOP): "Command timed out", then fail-fast errors, all 503 redis_unavailable', async () => {
  const s = await server();
  const c = await brokerClient(s.url, 300);
  assert.equal(await c.ping(), 'PONG');
  s.pause();
  try {
    const t0 = Date.now();
    const timedOut = await rejection(c.get('k'));
    assert.match(timedOut.message, /Command timed out/);
    assert.ok(Date.now() - t0 < 1500);
    await assertUnavailable('timeout', timedOut);
    const next = await rejection(c.get('k'));
    await assertUnavailable('after the timeout', next);
  } finally {
    s.resume();
  }
  await new Promise<void>((r) => (c.status === 'ready' ? r() : c.once('ready', () => r())));
  assert.equal(await c.ping(), 'PONG');
});

test('refused, closed and out-of-retries connections answer 503 redis_unavailable', async () => {
  const nowhere = `redis://127.0.0.1:${await freePort()}/0`;
  const refused = await brokerClient(nowhere);
  await assertUnavailable('refused', await rejection(refused.get('k')));
  const queued = new Redis(nowhere, { maxRetriesPerRequest: 1, retryStrategy: () => 20 });
  queued.on('error', () => undefined);
  clients.push(queued);
  const retries = await rejection(queued.get('k'));
  assert.equal(retries.name, 'MaxRetriesPerRequestError');
  await assertUnavailable('max retries', retries);
  const closed = await brokerClient(primary.url);
  const ended = new Promise((r) => closed.once('end', r));
  closed.disconnect();
  await ended;
  const e = await rejection(closed.get('k'));
  assert.match(e.message, /Connection is closed/);
  await assertUnavailable('closed', e);
  // a connection killed by the server while a command waits on it
  const victim = new Redis(primary.url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
  victim.on('error', () => undefined);
  clients.push(victim);
  const id = await victim.client('ID');
  const pending = rejection(victim.blpop('never', 5));
  await primary.admin.client('KILL', 'ID', String(id));
  await assertUnavailable('killed connection', await pending);
});

test('Redis errors that are the broker\'s own bug stay 500 internal_error', async () => {
  const c = await brokerClient(primary.url);
  await c.set('str', 'v');
  const wrongType = await rejection(c.lpush('str', 'x'));
  assert.match(wrongType.message, /^WRONGTYPE/);
  assert.deepEqual(await answerFor(() => Promise.reject(wrongType)), { status: 500, code: 'internal_error', retryAfter: undefined });
  const unknown = await rejection(c.call('NOSUCHCOMMAND'));
  assert.deepEqual(await answerFor(() => Promise.reject(unknown)), { status: 500, code: 'internal_error', retryAfter: undefined });
});
