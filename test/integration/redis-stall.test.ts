// A stalled Redis (alive but not answering: SIGSTOP on a redis-server the test started) is an
// outage like a dead one: every request answers 503 redis_unavailable with Retry-After within
// the command timeout (never 500, never hanging), and after SIGCONT everything works again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

const COMMAND_TIMEOUT_MS = 1000;
/** The longest a request may take while Redis is stalled: one command timeout and a little. */
const BOUND_MS = COMMAND_TIMEOUT_MS + 1000;

let redis: TestRedisServer;
let tb: TestBroker;
let apiKey = '';

before(async () => {
  redis = await startRedisServer();
  tb = await startTestBroker({ name: 'stall', redisUrl: redis.url, config: { redis: { commandTimeoutMs: COMMAND_TIMEOUT_MS } } });
  await tb.addUser('alice');
  await tb.addUser('root', 'admin');
  await tb.app.broker.pools.create(tb.pool({ name: 'st', size: { min: 0, max: 5, spare: 0 }, entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  await tb.readyDesktops('st', 2);
  apiKey = (await tb.app.identity.createApiKey(SYSTEM_ACTOR, { name: 'ops', role: 'admin' })).token;
});
after(async () => {
  await tb?.close();
  await redis?.stop();
});

interface Timed {
  status: number;
  code: string | undefined;
  retryAfter: string | null;
  ms: number;
}

async function timed(what: Promise<{ status: number; body: any; headers: Headers }>): Promise<Timed> {
  const t0 = Date.now();
  const r = await what;
  return { status: r.status, code: r.body?.error?.code, retryAfter: r.headers.get('retry-after'), ms: Date.now() - t0 };
}

async function timedFetch(url: string, init?: RequestInit): Promise<Timed> {
  const t0 = Date.now();
  const r = await fetch(url, init);
  const text = await r.text();
  let code: string | undefined;
  try {
    code = JSON.parse(text)?.error?.code;
  } catch {
    // not JSON
  }
  return { status: r.status, code, retryAfter: r.headers.get('retry-after'), ms: Date.now() - t0 };
}

function assertUnavailable(name: string, r: Timed): void {
  assert.equal(r.status, 503, `${name}: ${JSON.stringify(r)}`);
  assert.equal(r.code, 'redis_unavailable', `${name}: ${JSON.stringify(r)}`);
  assert.ok(Number(r.retryAfter) > 0, `${name}: Retry-After`);
  assert.ok(r.ms < BOUND_MS, `${name}: answered in ${r.ms} ms (bound ${BOUND_MS})`);
}

test('SIGSTOP on Redis: anonymous, cookie, API key, login and a state-changing POST all answer 503 redis_unavailable with Retry-After in bounded time; SIGCONT: all works again', async () => {
  const alice = new ApiClient(tb.url);
  assert.equal((await alice.login('alice')).status, 200);
  const ops = new ApiClient(tb.url);
  ops.bearer = apiKey;
  assert.equal((await ops.get('/pools')).status, 200);
  const anonymous = new ApiClient(tb.url);

  redis.pause();
  try {
    // The first burst reaches the stalled server and waits out one command timeout at most.
    const first = await Promise.all([
      timed(alice.get('/me/sessions')),
      timed(ops.get('/pools')),
      timed(new ApiClient(tb.url).login('alice')),
      timed(alice.post('/me/pools/st/request')),
      timed(ops.post('/pools/st/resize', { min: 0, max: 6, spare: 0 })),
    ]);
    for (const [i, r] of first.entries()) assertUnavailable(`first burst #${i}`, r);

    // From then on the broker knows and every request answers without waiting.
    const second: [string, Timed][] = [
      ['anonymous', await timed(anonymous.get('/me'))],
      ['cookie', await timed(alice.get('/me/sessions'))],
      ['api key', await timed(ops.get('/pools'))],
      ['login', await timed(new ApiClient(tb.url).login('alice'))],
      ['state-changing POST', await timed(alice.post('/me/pools/st/request'))],
      ['metrics', await timed(ops.get('/metrics'))],
    ];
    for (const [name, r] of second) assertUnavailable(name, r);
    const readyz = await timedFetch(`${tb.url}/readyz`);
    assert.equal(readyz.status, 503);
    assert.ok(readyz.ms < BOUND_MS, `/readyz answered in ${readyz.ms} ms`);
    assert.ok(Number(readyz.retryAfter) > 0);
    assert.equal((await fetch(`${tb.url}/healthz`)).status, 200, 'the process is up');
  } finally {
    redis.resume();
  }

  await waitFor(async () => (await fetch(`${tb.url}/readyz`)).status === 200, 10_000, 50);
  // The old login, the API key and a fresh login work; the state is whole.
  const me = await alice.get('/me/sessions');
  assert.equal(me.status, 200, JSON.stringify(me.body));
  assert.equal((await ops.get('/pools')).status, 200);
  assert.equal((await new ApiClient(tb.url).login('alice')).status, 200);
  // A request that timed out during the stall may have run when Redis woke up: either way
  // alice ends up with exactly one session on one desktop, and asking again finds it.
  const r = await alice.post('/me/pools/st/request');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const again = await alice.post('/me/pools/st/request');
  assert.equal(again.body.outcome, 'existing');
  assert.equal(again.body.desktop.id, r.body.desktop.id);
  const live = (await alice.get('/me/sessions')).body.sessions.filter((s: { state: string }) => s.state !== 'ended');
  assert.equal(live.length, 1, JSON.stringify(live));
  const counts = await tb.app.store.pools.counts('st');
  assert.deepEqual([counts.total, counts.ready, counts.in_use, counts.sessions], [2, 1, 1, 1], JSON.stringify(counts));
  // the resize either ran or did not; the pool is readable and changes again
  const pool = (await ops.get('/pools/st')).body.pool;
  assert.ok([5, 6].includes(pool.size.max), JSON.stringify(pool.size));
  assert.equal((await ops.post('/pools/st/resize', { min: 0, max: 4, spare: 0 })).status, 200);
});
