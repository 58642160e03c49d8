// The request id through a real broker process: an X-Request-Id the caller sends comes back on
// the answer and is on the request's log line; one that is not a plain token is replaced; a
// desktop request's line names the session it made.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ApiClient, startTestBroker, waitFor, type TestBroker } from '../support/harness.ts';
import { startBrokerProcess, type BrokerProcess } from '../support/process.ts';
import { SHARED_REDIS_URL, freePort } from '../support/redis.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

let seed: TestBroker;
let proc: BrokerProcess | undefined;

before(async () => {
  // An in-process broker on the same prefix seeds the user, the pool and a ready desktop.
  seed = await startTestBroker({ name: 'request-id' });
  await seed.addUser('alice');
  await seed.app.broker.pools.create(seed.pool({ name: 'p1', entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  await seed.readyDesktops('p1', 1);
  proc = await startBrokerProcess('server/main.ts', {
    VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(await freePort()), VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: seed.prefix,
    VDI_LOGGING_LEVEL: 'debug', VDI_JOBS_ENABLED: 'false',
  });
});
after(async () => {
  await proc?.kill('SIGKILL');
  await seed?.close();
});

const lines = () => proc!.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

test('an X-Request-Id is echoed and logged, a malformed one replaced, and a desktop request\'s line names its session', async () => {
  const api = new ApiClient(proc!.url);
  const sent = await api.request('GET', '/me', undefined, { 'x-request-id': 'trace-abc-12345' });
  assert.equal(sent.headers.get('x-request-id'), 'trace-abc-12345');
  await waitFor(async () => lines().some((l) => l.reqId === 'trace-abc-12345' && l.msg === 'request' && l.status === 401), 5000);

  const bad = await api.request('GET', '/me', undefined, { 'x-request-id': 'bad id {"forged":1}' });
  const replaced = bad.headers.get('x-request-id')!;
  assert.match(replaced, /^[0-9a-f-]{36}$/);
  assert.ok(!proc!.output().includes('forged'));

  assert.equal((await api.login('alice')).status, 200);
  const r = await api.request('POST', '/me/pools/p1/request', {}, { 'x-request-id': 'launch-0000001' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const line = await waitFor(async () => lines().find((l) => l.reqId === 'launch-0000001' && l.msg === 'request'), 5000);
  assert.equal(line.session, r.body.session.id);
});
