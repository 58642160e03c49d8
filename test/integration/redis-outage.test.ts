// Redis goes away under a running broker: clear 503s with Retry-After, no crash, and it
// recovers by itself when Redis is back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPrivateRedis, type PrivateRedis } from '../support/redis.ts';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

let redis: PrivateRedis;
let tb: TestBroker;

before(async () => {
  redis = await startPrivateRedis();
  tb = await startTestBroker({ name: 'outage', redisUrl: redis.url, config: { jobs: { enabled: true } } });
  tb.app.startJobs();
  await tb.addUser('alice');
  await tb.app.broker.pools.create(tb.pool({ name: 'out', size: { min: 0, max: 3, spare: 1 }, entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
});
after(async () => {
  await tb?.close();
  await redis?.destroy();
});

test('stop Redis: 503 redis_unavailable with Retry-After; start it: the broker recovers', async () => {
  const alice = new ApiClient(tb.url);
  assert.equal((await alice.login('alice')).status, 200);
  await waitFor(async () => (await tb.app.store.pools.counts('out')).ready === 1);
  const r1 = await alice.post('/me/pools/out/request');
  assert.equal(r1.status, 200);

  await redis.stop();
  await waitFor(async () => !tb.app.store.available, 5000);
  for (const [method, path] of [['GET', '/me/sessions'], ['POST', '/me/pools/out/request'], ['GET', '/me']] as const) {
    const t0 = Date.now();
    const r = await alice.request(method, path, method === 'POST' ? {} : undefined);
    assert.equal(r.status, 503, `${method} ${path}`);
    assert.equal(r.body.error.code, 'redis_unavailable');
    assert.ok(Number(r.headers.get('retry-after')) > 0);
    assert.ok(Date.now() - t0 < 3000, 'answers at once, does not hang');
  }
  const fresh = new ApiClient(tb.url);
  assert.equal((await fresh.login('alice')).status, 503);
  const ready = await fetch(`${tb.url}/readyz`);
  assert.equal(ready.status, 503);
  assert.equal((await fetch(`${tb.url}/healthz`)).status, 200, 'the process is up');
  // let the reconcilers run against the missing Redis for a while
  await new Promise((r) => setTimeout(r, 500));

  await redis.start();
  await waitFor(async () => (await fetch(`${tb.url}/readyz`)).status === 200, 15_000, 100);
  // state survived (AOF) and the old login still works
  const me = await alice.get('/me/sessions');
  assert.equal(me.status, 200);
  assert.equal(me.body.sessions[0].id, r1.body.session.id);
  const r2 = await alice.post('/me/pools/out/request');
  assert.equal(r2.body.outcome, 'existing');
  assert.equal(r2.body.desktop.id, r1.body.desktop.id);
  // scripts were reloaded after the restart (NOSCRIPT handled): a new login works too
  assert.equal((await new ApiClient(tb.url).login('alice')).status, 200);
});
