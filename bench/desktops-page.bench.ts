// npm run bench:desktops-page [-- --desktops 10000 --n 50]
// The helpdesk's desktop table at scale: a pool of 10,000 desktops seeded into Redis (a unique
// key prefix, removed at the end), a real broker process (test/support/broker-process.ts, no
// background jobs) and a logged-in helpdesk user timing the first page of the table through
// HTTP, as the console asks for it: GET /desktops?pool=&sort=&order=&limit=50&offset=0, once
// sorted by name, once sorted by state descending, once with a free-text search.
// Prints ONE JSON line: p50/p95/max in ms per kind over n requests each; target p95 < 300 ms.
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { startTestBroker, ApiClient } from '../test/support/harness.ts';
import { startBrokerProcess } from '../test/support/process.ts';
import { SHARED_REDIS_URL, dropPrefix, freePort, uniquePrefix } from '../test/support/redis.ts';
import { SYSTEM_ACTOR } from '../server/broker/index.ts';

const { values } = parseArgs({ options: { desktops: { type: 'string', default: '10000' }, n: { type: 'string', default: '50' } } });
const DESKTOPS = Math.min(Math.max(Number(values.desktops) || 10_000, 100), 10_000);
const N = Math.min(Math.max(Number(values.n) || 50, 5), 200);
const POOL = 'big';

function pct(sorted: number[], p: number): number {
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil((sorted.length * p) / 100) - 1)]!);
}
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 50), p95: pct(s, 95), max: Math.round(s.at(-1)!) };
};

const prefix = uniquePrefix('bench-dpage');
let broker: Awaited<ReturnType<typeof startBrokerProcess>> | undefined;
try {
  // Seed through the store (the same scripts the broker uses), then let a real broker process serve it.
  const seedStart = Date.now();
  const seed = await startTestBroker({ name: 'bench-dpage', prefix, keepKeys: true });
  await seed.addUser('helen', 'helpdesk');
  await seed.app.broker.pools.create(seed.pool({ name: POOL, naming: 'big-{n:05}', size: { min: 0, max: DESKTOPS, spare: 0 } }), SYSTEM_ACTOR);
  // One desktop through the broker's own scripts is the template; the rest are written with the
  // same fields and index entries in pipelines (provisioning 10,000 one by one takes minutes:
  // each name allocation probes the names taken before it).
  const users = ['alice', 'bob', 'carol', 'dave', 'erin'];
  const first = await seed.app.store.desktops.provisionSpare(POOL, Date.now());
  if (!('id' in first)) throw new Error(`seeding failed: ${first.error}`);
  await seed.app.store.desktops.transition(first.id, 'settled', { expect: ['provisioning'] });
  const k = seed.app.store.keys;
  const redis = seed.app.store.redis;
  const template = await redis.hgetall(k.desktop(first.id));
  for (let i = 2; i <= DESKTOPS; i += 500) {
    const m = redis.pipeline();
    for (let n = i; n < Math.min(DESKTOPS + 1, i + 500); n++) {
      const id = randomUUID();
      const name = `big-${String(n).padStart(5, '0')}`;
      const mac = `02:b1:${((n >> 16) & 255).toString(16).padStart(2, '0')}:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;
      // Some variety for sorting and searching: hosts and a few owners.
      m.hset(k.desktop(id), { ...template, id, name, mac, host: `host-${n % 7}`, user: n % 50 === 0 ? users[n % users.length]! : '' });
      m.sadd(k.poolDesktops(POOL), id).sadd(k.poolState(POOL, 'ready'), id).hset(k.desktopNames, name, id).hset(k.macs, mac, id);
    }
    await m.exec();
  }
  // The same first page straight from the store (the Redis script plus 50 HGETALLs), without HTTP.
  const direct: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await seed.app.store.desktops.page({ pool: POOL, sort: 'name', order: 'asc', offset: 0, limit: 50 });
    direct.push(performance.now() - t);
  }
  await seed.close();
  const seedMs = Date.now() - seedStart;

  broker = await startBrokerProcess('test/support/broker-process.ts', {
    VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(await freePort()), VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: prefix,
    VDI_AUTH_ARGON2_MEMORY_KIB: '1024', VDI_AUTH_ARGON2_TIME_COST: '1', VDI_LOGGING_LEVEL: 'warn', VDI_JOBS_ENABLED: 'false', VDI_AUTH_MFA_REQUIRED_FOR_ROLES: '[]',
  });
  const helen = new ApiClient(broker.url);
  const li = await helen.login('helen');
  if (li.status !== 200) throw new Error(`login: ${li.status} ${JSON.stringify(li.body)}`);

  const kinds: Record<string, string> = {
    // What any logged-in API call costs on this machine (session lookup, JSON), for comparison.
    baselineMe: '/me',
    byName: `/desktops?pool=${POOL}&sort=name&order=asc&limit=50&offset=0`,
    byStateDesc: `/desktops?pool=${POOL}&sort=state&order=desc&limit=50&offset=0`,
    search: `/desktops?pool=${POOL}&q=big-001&sort=name&order=asc&limit=50&offset=0`,
    allPools: '/desktops?sort=host&order=asc&limit=50&offset=0',
  };
  const out: Record<string, unknown> = {};
  for (const [kind, path] of Object.entries(kinds)) {
    const times: number[] = [];
    let total = 0;
    await helen.get(path); // warm-up (script load)
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      const r = await helen.get(path);
      times.push(performance.now() - t);
      if (r.status !== 200 || (kind !== 'baselineMe' && r.body.items.length === 0)) throw new Error(`${kind}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      total = r.body.total ?? 0;
    }
    out[kind] = { total, ...stats(times) };
  }
  const p95 = Math.max(...Object.entries(out).filter(([k]) => k !== 'baselineMe').map(([, v]) => (v as { p95: number }).p95));
  console.log(JSON.stringify({ bench: 'desktops-page', desktops: DESKTOPS, pageSize: 50, requests: N, seedMs, storeByName: stats(direct), ...out, worstP95: p95, targetP95Ms: 300, ok: p95 < 300 }));
} finally {
  await broker?.kill().catch(() => undefined);
  await dropPrefix(SHARED_REDIS_URL, prefix);
}
