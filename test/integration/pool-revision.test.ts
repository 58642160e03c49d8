// A desktop request decides entitlements on the pool as its replica read it before (no Redis
// read per request); the assignment script commits only while the pool still has that revision
// (assign.lua: pool_changed otherwise), and a refusal (entitlement, location, share) is never
// decided on a remembered record.
// Two brokers on one Redis: A changes the pool, B serves the user, who must see every change at
// once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestBroker, ApiClient, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

let a: TestBroker;
let b: TestBroker;
const entitled = { users: [], groups: ['pr'] };

before(async () => {
  a = await startTestBroker({ name: 'pool-rev', config: { jobs: { enabled: false } } });
  b = await startTestBroker({ name: 'pool-rev-b', prefix: a.prefix, keepKeys: true, config: { jobs: { enabled: false } } });
  for (const u of ['pr-user', 'pr-late']) await a.addUser(u);
  await a.app.identity.createGroup(SYSTEM_ACTOR, { name: 'pr', members: ['pr-user'] });
  await a.app.broker.pools.create(a.pool({ name: 'pr', persistence: 'persistent', size: { min: 0, max: 4, spare: 0 }, naming: 'pr-{n:03}', entitlements: entitled }), SYSTEM_ACTOR);
  await a.readyDesktops('pr', 2);
});
after(async () => {
  await b?.close();
  await a?.close();
});

/** A request and, when it got one, its logoff: the status of the request. */
async function cycle(c: ApiClient): Promise<{ status: number; code?: string }> {
  const r = await c.post('/me/pools/pr/request');
  if (r.status === 200) assert.equal((await c.post(`/me/sessions/${r.body.session.id}/logoff`)).status, 200);
  return { status: r.status, code: r.body?.error?.code };
}

test('entitlements taken away, given, a pool disabled, marked for deletion and made again under its name on another replica all apply to the next request', async () => {
  const user = new ApiClient(b.url);
  assert.equal((await user.login('pr-user')).status, 200);
  const late = new ApiClient(b.url);
  assert.equal((await late.login('pr-late')).status, 200);
  // B remembers the pool (entitling group pr only).
  assert.deepEqual(await cycle(user), { status: 200, code: undefined });
  assert.deepEqual(await cycle(late), { status: 404, code: 'not_found' });

  // Taken away on A: refused on B at once (the script sees another revision).
  await a.app.broker.pools.update('pr', { entitlements: { users: ['pr-late'], groups: [] } }, SYSTEM_ACTOR);
  assert.deepEqual(await cycle(user), { status: 404, code: 'not_found' });
  // Given on A: B's remembered pool (read just now) would refuse pr-late, but a refusal is read again.
  assert.deepEqual(await cycle(late), { status: 200, code: undefined });

  await a.app.broker.pools.update('pr', { entitlements: entitled, enabled: false }, SYSTEM_ACTOR);
  assert.deepEqual(await cycle(user), { status: 409, code: 'pool_disabled' });
  await a.app.broker.pools.update('pr', { enabled: true }, SYSTEM_ACTOR);
  assert.deepEqual(await cycle(user), { status: 200, code: undefined });

  // Marked for deletion on A, then emptied and removed, then made again under the same name
  // entitling someone else: B decides on the new pool, never on what it remembers.
  await a.app.broker.pools.remove('pr', SYSTEM_ACTOR);
  assert.deepEqual(await cycle(user), { status: 404, code: 'not_found' });
  for (const d of await a.app.store.desktops.listByPool('pr')) {
    for (const to of ['deleting', 'deleted'] as const) assert.equal((await a.app.store.desktops.transition(d.id, to)).ok, true, `${d.name} ${to}`);
  }
  assert.equal(await a.app.store.pools.removeIfEmpty('pr'), true);
  assert.deepEqual(await cycle(user), { status: 404, code: 'not_found' });
  await a.app.broker.pools.create(a.pool({ name: 'pr', persistence: 'persistent', size: { min: 0, max: 4, spare: 0 }, naming: 'pr-{n:03}', entitlements: { users: ['pr-late'], groups: [] } }), SYSTEM_ACTOR);
  await a.readyDesktops('pr', 1);
  assert.deepEqual(await cycle(late), { status: 200, code: undefined });
  // B now remembers the new pool; a namesake's entitlements do not carry over.
  assert.deepEqual(await cycle(user), { status: 404, code: 'not_found' });
});

test('a pool stored before revisions existed is read on every request, and its first save gives it one', async () => {
  await a.app.broker.pools.create(a.pool({ name: 'pr-old', persistence: 'persistent', size: { min: 0, max: 2, spare: 0 }, naming: 'pro-{n:03}', entitlements: entitled }), SYSTEM_ACTOR);
  await a.readyDesktops('pr-old', 1);
  await a.app.store.redis.hdel(`${a.prefix}pool:pr-old`, 'rev');
  const user = new ApiClient(b.url);
  assert.equal((await user.login('pr-user')).status, 200);
  const request = async () => {
    const r = await user.post('/me/pools/pr-old/request');
    if (r.status === 200) assert.equal((await user.post(`/me/sessions/${r.body.session.id}/logoff`)).status, 200);
    return r.status;
  };
  assert.equal(await request(), 200);
  // Changed behind every broker's back (no revision to compare): still seen at once.
  const spec = JSON.parse((await a.app.store.redis.hget(`${a.prefix}pool:pr-old`, 'spec'))!);
  await a.app.store.redis.hset(`${a.prefix}pool:pr-old`, 'spec', JSON.stringify({ ...spec, entitlements: { users: [], groups: [] } }));
  assert.equal(await request(), 404);
  await a.app.broker.pools.update('pr-old', { entitlements: entitled }, SYSTEM_ACTOR);
  assert.ok(await a.app.store.redis.hget(`${a.prefix}pool:pr-old`, 'rev'), 'the save gave it a revision');
  assert.equal(await request(), 200);
});

test('a pool moved off a broken share on another replica: the next request checks the share the pool names now, not the one remembered', async () => {
  const good = mkdtempSync(join(tmpdir(), 'vdi-share-good-'));
  const shares = { list: [{ name: 'home', root: good, unc: '', guacdPath: '', createRoot: true }, { name: 'gone', root: join(good, 'missing', 'deeper'), unc: '', guacdPath: '', createRoot: false }] };
  const c1 = await startTestBroker({ name: 'pool-rev-share', config: { jobs: { enabled: false }, shares } });
  const c2 = await startTestBroker({ name: 'pool-rev-share-b', prefix: c1.prefix, keepKeys: true, config: { jobs: { enabled: false }, shares } });
  try {
    await c1.addUser('prs-user');
    await c1.app.broker.pools.create(c1.pool({ name: 'prs', share: 'gone', persistence: 'persistent', size: { min: 0, max: 2, spare: 0 }, naming: 'prs-{n:03}', entitlements: { users: ['prs-user'], groups: [] } }), SYSTEM_ACTOR);
    await c1.readyDesktops('prs', 1);
    const user = new ApiClient(c2.url);
    assert.equal((await user.login('prs-user')).status, 200);
    const refused = await user.post('/me/pools/prs/request');
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'share_unavailable');
    await c1.app.broker.pools.update('prs', { share: 'home' }, SYSTEM_ACTOR);
    const r = await user.post('/me/pools/prs/request');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await user.post(`/me/sessions/${r.body.session.id}/logoff`)).status, 200);
  } finally {
    await c2.close();
    await c1.close();
    rmSync(good, { recursive: true, force: true });
  }
});
