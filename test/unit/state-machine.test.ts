import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { DESKTOP_STATES, TRANSITIONS, canTransition, stateDiagramMermaid, type DesktopState } from '../../server/broker/state-machine.ts';
import { Store } from '../../server/store/index.ts';
import type { Pool } from '../../server/broker/model.ts';
import { SHARED_REDIS_URL, uniquePrefix, dropPrefix } from '../support/redis.ts';

test('every state is in the table and every target is a state', () => {
  for (const s of DESKTOP_STATES) {
    assert.ok(Array.isArray(TRANSITIONS[s]));
    for (const t of TRANSITIONS[s]) assert.ok(DESKTOP_STATES.includes(t), `${s} -> ${t}`);
  }
});

test('the lifecycle rules users rely on', () => {
  assert.ok(canTransition('provisioning', 'ready'));
  assert.ok(canTransition('ready', 'in_use'));
  assert.ok(canTransition('in_use', 'refreshing'));
  assert.ok(canTransition('refreshing', 'ready'));
  assert.ok(canTransition('deleting', 'deleted'));
  assert.ok(!canTransition('deleted', 'ready'), 'deleted is final');
  assert.ok(!canTransition('ready', 'deleted'), 'nothing is deleted without going through deleting');
  assert.ok(!canTransition('error', 'ready'), 'a quarantined desktop is rebuilt before it is used');
  assert.ok(!canTransition('error', 'in_use'));
  for (const s of DESKTOP_STATES) if (s !== 'deleted' && s !== 'deleting') assert.ok(canTransition(s, 'deleting'), `${s} can be deleted`);
  for (const s of DESKTOP_STATES) assert.ok(!canTransition(s, s), `${s} -> ${s} is no transition`);
});

// Behaviour, not text: the store's transition script (lua/transition.lua via the desktops
// repository) runs in a real Redis under a key prefix of this test's own. Each desktop is
// owned by a user and held by a live session, so the script's other guards (no owner for
// `assigned`, no session for `in_use`) never fire and only the transition table decides.
test('the store refuses every transition the table forbids, leaving the desktop as it was, and makes every one it allows', async () => {
  const prefix = uniquePrefix('state-machine');
  const redis = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    const store = new Store(redis, { keyPrefix: prefix, macs: { prefix: '02:56:44', size: 4096 }, deletedRetentionSeconds: 60, auditMaxEntries: 10 });
    const k = store.keys;
    const pool = 'sm';
    const ts = new Date(0).toISOString();
    assert.equal(await store.pools.save({
      name: pool, displayName: 'State machine', description: '', assignment: 'dedicated', persistence: 'persistent',
      size: { min: 0, max: 100, spare: 0 }, naming: 'sm-{n:03}', resources: { vcpu: 1, memoryMiB: 256, diskGiB: 4, network: 'default', graphics: 'vga' },
      image: 'demo', provider: 'fake', clone: 'linked', entitlements: { users: ['u'], groups: [] },
      sessionPolicy: { idleTimeoutSeconds: 0, logoffAfterDisconnectSeconds: 900, maxSessionSeconds: 0 },
      enabled: true, maintenance: false, createdAt: ts, updatedAt: ts,
    } as Pool, 'create'), 'ok');

    /** A desktop of user u in state `from`, held by u's live session. */
    const put = async (n: number, from: DesktopState) => {
      const id = `d-${n}`;
      const sid = `s-${n}`;
      const user = `u${n}`;
      await redis.multi()
        .hset(k.desktop(id), { id, pool, name: `sm-${n}`, state: from, provider: 'fake', host: 'h', mac: `02:56:44:00:00:${n.toString(16).padStart(2, '0')}`, user, session: sid, image: 'demo:1', createdAt: 1, updatedAt: 1, stateSince: 1, failures: 0, nextAttemptAt: 0, lastError: '' })
        .sadd(k.poolDesktops(pool), id)
        .sadd(k.poolState(pool, from), id)
        .hset(k.poolAssignments(pool), user, id)
        .hset(`${prefix}session:${sid}`, { id: sid, user, desktop: id, pool, state: 'connected', clientAddress: '127.0.0.1', createdAt: 1, connectedAt: 1, disconnectedAt: 0, lastActivityAt: 1, endedAt: 0, endReason: '' })
        .exec();
      return id;
    };
    /** Everything the script could touch for desktop n: its record, state sets, owner claim, session. */
    const snapshot = async (n: number) => {
      const m = redis.multi().hgetall(k.desktop(`d-${n}`)).hget(k.poolAssignments(pool), `u${n}`).hgetall(`${prefix}session:s-${n}`);
      for (const s of DESKTOP_STATES) m.sismember(k.poolState(pool, s), `d-${n}`);
      return (await m.exec())!.map(([err, v]) => (err ? String(err) : v));
    };

    let n = 0;
    let refused = 0;
    let made = 0;
    for (const from of DESKTOP_STATES) {
      for (const to of DESKTOP_STATES) {
        n += 1;
        const id = await put(n, from);
        const before = await snapshot(n);
        const r = await store.desktops.transition(id, to, { now: 1000 });
        if (canTransition(from, to)) {
          assert.deepEqual(r, { ok: true, from, to }, `${from} -> ${to} is allowed`);
          if (to === 'deleted') assert.equal(await redis.sismember(k.poolDesktops(pool), id), 0, `${from} -> deleted leaves the pool`);
          else {
            assert.equal((await store.desktops.get(id))?.state, to, `${from} -> ${to}: new state stored`);
            assert.equal(await redis.sismember(k.poolState(pool, to), id), 1, `${from} -> ${to}: in the ${to} set`);
          }
          assert.equal(await redis.sismember(k.poolState(pool, from), id), 0, `${from} -> ${to}: out of the ${from} set`);
          made += 1;
        } else {
          // A deleted desktop is gone to the store: refused as not_found rather than illegal.
          const code = from === 'deleted' ? 'not_found' : 'illegal_transition';
          assert.deepEqual(r, { ok: false, code, current: from }, `${from} -> ${to} is refused`);
          assert.deepEqual(await snapshot(n), before, `${from} -> ${to}: desktop, owner and session unchanged`);
          refused += 1;
        }
      }
    }
    assert.equal(made + refused, DESKTOP_STATES.length ** 2);
    assert.ok(made > 0 && refused > 0);
  } finally {
    await dropPrefix(SHARED_REDIS_URL, prefix);
    redis.disconnect();
  }
});

test('docs/state-machine.md shows the current diagram', () => {
  const doc = readFileSync(new URL('../../docs/state-machine.md', import.meta.url), 'utf8');
  assert.ok(doc.includes(stateDiagramMermaid()), 'regenerate the mermaid block: node --import tsx scripts/docs.ts');
});
