// The broker process is killed mid-way (SIGKILL, while a desktop is being provisioned) and
// started again: every assignment, session and login survives, and the half-done desktop is finished.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { uniquePrefix, freePort, SHARED_REDIS_URL, dropPrefix } from '../support/redis.ts';
import { startBrokerProcess, type BrokerProcess } from '../support/process.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

const prefix = uniquePrefix('restart');
const dir = mkdtempSync(join(tmpdir(), 'vdi-restart-'));
let admin: TestBroker | undefined;
const procs: BrokerProcess[] = [];

after(async () => {
  for (const p of procs) await p.kill('SIGKILL');
  await admin?.close();
  await dropPrefix(SHARED_REDIS_URL, prefix);
  rmSync(dir, { recursive: true, force: true });
});

test('SIGKILL and restart keep assignments, sessions and logins; a half-provisioned desktop completes', async () => {
  // an in-process broker without jobs, sharing the prefix, to set things up
  admin = await startTestBroker({ name: 'restart-admin', prefix, keepKeys: true });
  for (const u of ['alice', 'bob', 'carol']) await admin.addUser(u);
  await admin.app.broker.pools.create(admin.pool({ name: 'rs', size: { min: 0, max: 5, spare: 2 }, entitlements: { users: ['alice', 'bob', 'carol'], groups: [] } }), SYSTEM_ACTOR);

  const port = await freePort();
  const env = {
    VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(port), VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: prefix,
    VDI_AUTH_ARGON2_MEMORY_KIB: '1024', VDI_AUTH_ARGON2_TIME_COST: '1', VDI_LOGGING_LEVEL: 'warn',
    VDI_JOBS_POOL_SIZING_INTERVAL_MS: '100', VDI_JOBS_LIFECYCLE_INTERVAL_MS: '50', VDI_JOBS_LEASE_TTL_MS: '1000',
    VDI_TEST_PROVIDER_STATE: join(dir, 'vms.json'), VDI_TEST_PROVIDER_DELAY_MS: '300',
  };
  let p = await startBrokerProcess('test/support/broker-process.ts', env);
  procs.push(p);
  const store = admin.app.store;
  await waitFor(async () => (await store.pools.counts('rs')).ready >= 2, 20_000);

  const alice = new ApiClient(p.url);
  const bob = new ApiClient(p.url);
  const carol = new ApiClient(p.url);
  await alice.login('alice');
  await bob.login('bob');
  await carol.login('carol');
  const ra = await alice.post('/me/pools/rs/request');
  const rb = await bob.post('/me/pools/rs/request');
  assert.equal(ra.status, 200);
  assert.equal(rb.status, 200);
  await bob.request('POST', `/me/sessions/${rb.body.session.id}/logoff`);
  // carol: probably a fresh desktop while the spares are replaced; kill while something is provisioning
  const rc = await carol.post('/me/pools/rs/request');
  assert.ok([200, 202].includes(rc.status), JSON.stringify(rc.body));
  await waitFor(async () => (await store.pools.counts('rs')).provisioning + (await store.pools.counts('rs')).refreshing > 0, 10_000, 5);
  const before = await store.pools.counts('rs');
  assert.equal(await p.kill('SIGKILL'), null);

  p = await startBrokerProcess('test/support/broker-process.ts', env);
  procs.push(p);

  // logins survived (sessions in Redis), and so did the desktop sessions
  const me = await alice.get('/me/sessions');
  assert.equal(me.status, 200);
  assert.deepEqual(me.body.sessions.map((s: { id: string }) => s.id), [ra.body.session.id]);
  const again = await alice.post('/me/pools/rs/request');
  assert.equal(again.body.outcome, 'existing');
  assert.equal(again.body.desktop.id, ra.body.desktop.id);
  assert.equal(again.body.session.id, ra.body.session.id);
  assert.deepEqual((await bob.get('/me/sessions')).body.sessions, []);

  // the half-done work completes after the restart; counters still add up
  await waitFor(async () => {
    const c = await store.pools.counts('rs');
    return c.provisioning === 0 && c.refreshing === 0 && c.ready >= 2 ? c : null;
  }, 20_000);
  const c = await store.pools.counts('rs');
  assert.equal(c.provisioning + c.ready + c.assigned + c.in_use + c.refreshing + c.deleting + c.error, c.total);
  assert.equal(c.error, 0);
  assert.ok(before.total <= 5 && c.total <= 5);
  const carolDesk = await store.desktops.get(rc.body.desktop.id);
  assert.equal(carolDesk?.state, 'in_use');
  assert.equal(carolDesk?.user, 'carol');
  assert.equal(await p.kill('SIGTERM'), 0, 'SIGTERM stops the broker cleanly');
});
