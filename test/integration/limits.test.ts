// Running out: of MAC addresses, of names, of pool slots: clear codes, nothing half-made.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, ApiClient, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

let tb: TestBroker;
before(async () => {
  tb = await startTestBroker({ name: 'limits', config: { desktops: { macPoolSize: 2 } } });
  for (const u of ['u1', 'u2', 'u3']) await tb.addUser(u);
});
after(async () => tb.close());

test('an exhausted MAC range answers mac_exhausted and creates nothing', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'macs', size: { min: 0, max: 5, spare: 0 }, entitlements: { users: ['u1', 'u2', 'u3'], groups: [] } }), SYSTEM_ACTOR);
  const results = [];
  for (const u of ['u1', 'u2', 'u3']) {
    const c = new ApiClient(tb.url);
    await c.login(u);
    results.push(await c.post('/me/pools/macs/request'));
  }
  assert.deepEqual(results.map((r) => r.status), [202, 202, 503]);
  assert.equal(results[2]!.body.error.code, 'mac_exhausted');
  const c = await tb.app.store.pools.counts('macs');
  assert.equal(c.total, 2);
  assert.equal(await tb.app.store.desktops.assignmentOf('macs', 'u3'), null);
  assert.equal((await tb.app.store.sessions.liveIdsOfUser('u3')).length, 0);
});

test('a naming pattern with no free name left answers name_exhausted', async () => {
  await tb.app.broker.pools.create(tb.pool({ name: 'names', naming: 'one-{n:1}', size: { min: 0, max: 20, spare: 0 }, entitlements: { users: ['u1'], groups: [] } }), SYSTEM_ACTOR);
  // nine names (one-1 .. one-9) exist; take them all from another pool first
  await tb.app.broker.pools.create(tb.pool({ name: 'hog', naming: 'one-{n:1}', size: { min: 0, max: 20, spare: 0 } }), SYSTEM_ACTOR);
  const big = await startTestBroker({ name: 'limits-names', prefix: tb.prefix, keepKeys: true, config: { desktops: { macPoolSize: 100 } } });
  try {
    for (let i = 0; i < 9; i++) assert.ok('id' in (await big.app.store.desktops.provisionSpare('hog', Date.now())));
    assert.deepEqual(await big.app.store.desktops.provisionSpare('hog', Date.now()), { error: 'name_exhausted' });
  } finally {
    await big.close();
  }
});
