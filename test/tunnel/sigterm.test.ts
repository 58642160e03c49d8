// SIGTERM with a tunnel open: the broker process (server/runtime.ts) ends the tunnel with a
// status the browser understands, marks the session disconnected and exits 0 at once (it does
// not wait out the HTTP grace period for the WebSocket). guacamole-lite's own SIGTERM/SIGINT
// handlers (installed by its Server class) are never installed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, ApiClient, type TestBroker } from '../support/harness.ts';
import { uniquePrefix, freePort, SHARED_REDIS_URL, dropPrefix } from '../support/redis.ts';
import { startBrokerProcess, type BrokerProcess } from '../support/process.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { FakeGuacd } from './support/fake-guacd.ts';
import { TunnelClient } from './support/tunnel-client.ts';
import { until } from './support/fixtures.ts';

const prefix = uniquePrefix('tunnel-sigterm');
let admin: TestBroker | undefined;
let guacd: FakeGuacd | undefined;
let child: BrokerProcess | undefined;
let client: TunnelClient | undefined;

after(async () => {
  client?.close();
  await child?.kill('SIGKILL');
  await admin?.close();
  await guacd?.close();
  await dropPrefix(SHARED_REDIS_URL, prefix);
});

test('SIGTERM with an open tunnel: numeric status to the browser, session disconnected, exit 0 without waiting out the grace period', async () => {
  guacd = await FakeGuacd.start();
  admin = await startTestBroker({ name: 'tunnel-sigterm-admin', prefix, keepKeys: true });
  await admin.addUser('alice');
  await admin.app.broker.pools.create(admin.pool({ name: 'p1', entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  const d = await admin.app.store.desktops.provisionSpare('p1', Date.now());
  assert.ok('id' in d);
  await admin.app.store.desktops.transition(d.id, 'settled', { expect: ['provisioning'] });

  const port = await freePort();
  child = await startBrokerProcess('test/support/broker-process.ts', {
    VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(port), VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: prefix,
    VDI_AUTH_ARGON2_MEMORY_KIB: '1024', VDI_AUTH_ARGON2_TIME_COST: '1', VDI_LOGGING_LEVEL: 'info', VDI_JOBS_ENABLED: 'false',
    VDI_SERVER_SHUTDOWN_GRACE_SECONDS: '20',
    VDI_GUACD_HOST: '127.0.0.1', VDI_GUACD_PORT: String(guacd.port),
    VDI_TEST_CONSOLE: JSON.stringify({ protocol: 'vnc', host: '127.0.0.1', port: 5999, password: 'secret' }),
  });
  const alice = new ApiClient(child.url);
  assert.equal((await alice.login('alice')).status, 200);
  const r = await alice.post('/me/pools/p1/request');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const session = r.body.session.id as string;
  const t = await alice.post(`/me/sessions/${session}/connect`);
  assert.equal(t.status, 200, JSON.stringify(t.body));
  client = new TunnelClient(child.url, { ticket: t.body.ticket, as: alice });
  await client.ready();
  await until(async () => (await admin!.app.store.sessions.get(session))?.state === 'connected');

  const started = Date.now();
  const code = await child.kill('SIGTERM');
  const took = Date.now() - started;
  assert.equal(code, 0, child.output());
  assert.ok(took < 8000, `stopped in ${took} ms (the HTTP grace period is 20 s)`);
  const e = await client.ended(5000);
  assert.equal(Number(e.error?.args[1]), 0x0208, JSON.stringify(client.received.slice(-3)));
  assert.equal(e.reason, String(0x0208));
  assert.equal((await admin.app.store.sessions.get(session))?.state, 'disconnected');
  assert.match(child.output(), /"msg":"stopped"/);
  assert.doesNotMatch(child.output(), /Closing all connections and exiting|unhandled/i);
});
