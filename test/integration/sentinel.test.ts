// test-lane: light
// Redis high availability for real: a primary, a replica and three Sentinels (Debian's
// redis-server in sentinel mode) on loopback ports, a broker configured with the sentinels
// (redis.sentinels, redis.name, redis.waitReplicas: 1). Users log in and request desktops while
// the primary is SIGKILLed (and started again, as its supervisor would: it comes back as a
// replica): the broker follows the promotion, answers only 503 with Retry-After during the
// switch, and every acknowledged assignment survives on the new primary, once. A login is
// answered only once a replica holds its session (a paused replica: 503).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ApiClient, startTestBroker, waitFor, type TestBroker } from '../support/harness.ts';
import { freePort } from '../support/redis.ts';
import { stopChild } from '../support/process.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

const MASTER = 'vdi-ha';
const USERS = 24;
const dir = mkdtempSync(join(tmpdir(), 'vdi-sentinel-'));
const children: ChildProcess[] = [];
let primary: ChildProcess;
let primaryArgs: string[] = [];
let primaryPort = 0;
let replicaPort = 0;
const sentinelPorts: number[] = [];
let tb: TestBroker | undefined;

function redisServer(args: string[]): ChildProcess {
  const c = spawn('redis-server', args, { stdio: 'ignore' });
  children.push(c);
  return c;
}
async function answer(port: number, ...cmd: string[]): Promise<unknown> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await r.call(cmd[0]!, ...cmd.slice(1));
  } catch {
    return null;
  } finally {
    r.disconnect();
  }
}

before(async () => {
  primaryPort = await freePort();
  replicaPort = await freePort();
  for (const p of [primaryPort, replicaPort]) mkdirSync(join(dir, String(p)));
  const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'];
  primary = redisServer(primaryArgs = ['--port', String(primaryPort), '--dir', join(dir, String(primaryPort)), ...common]);
  redisServer(['--port', String(replicaPort), '--dir', join(dir, String(replicaPort)), ...common, '--replicaof', '127.0.0.1', String(primaryPort)]);
  await waitFor(async () => String(await answer(replicaPort, 'INFO', 'replication')).includes('master_link_status:up'), 15_000, 100);
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    sentinelPorts.push(port);
    const conf = join(dir, `sentinel-${port}.conf`);
    // Sentinels rewrite their file: each gets its own, writable.
    writeFileSync(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${MASTER} 127.0.0.1 ${primaryPort} 2`,
      `sentinel down-after-milliseconds ${MASTER} 1000`, `sentinel failover-timeout ${MASTER} 10000`, `sentinel parallel-syncs ${MASTER} 1`, ''].join('\n'));
    redisServer([conf, '--sentinel']);
  }
  // Each sentinel has found the replica and the two other sentinels (their hellos), so a
  // failover can be agreed on.
  await waitFor(async () => {
    for (const p of sentinelPorts) {
      const peers = (await answer(p, 'SENTINEL', 'SENTINELS', MASTER)) as unknown[] | null;
      const replicas = (await answer(p, 'SENTINEL', 'REPLICAS', MASTER)) as unknown[] | null;
      if (peers?.length !== 2 || replicas?.length !== 1) return false;
    }
    return true;
  }, 30_000, 200);
  tb = await startTestBroker({
    name: 'sentinel', keepKeys: true, redisUrl: 'redis://127.0.0.1/0',
    config: { redis: { sentinels: sentinelPorts.map((port) => ({ host: '127.0.0.1', port })), name: MASTER, waitReplicas: 1, waitTimeoutMs: 1000, commandTimeoutMs: 1000 } },
  });
});

after(async () => {
  await tb?.close();
  for (const c of children.reverse()) await stopChild(c, 3000);
  rmSync(dir, { recursive: true, force: true });
});

test('the broker follows a Sentinel failover under load: 503 with Retry-After only during the switch, no acknowledged assignment lost or duplicated', { timeout: 120_000 }, async () => {
  const b = tb!;
  const users = Array.from({ length: USERS }, (_, i) => `ha${String(i).padStart(2, '0')}`);
  for (const u of users) await b.addUser(u);
  await b.app.broker.pools.create(b.pool({ name: 'ha', size: { min: 0, max: USERS, spare: 0 }, entitlements: { users, groups: [] } }), SYSTEM_ACTOR);
  await b.readyDesktops('ha', USERS);

  const acknowledged = new Map<string, string>(); // user -> desktop
  const unexpected: string[] = [];
  const unavailable: number[] = []; // times of 503 answers
  let killedAt = 0;
  const until = Date.now() + 60_000;
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

  async function user(u: string, startAfterMs: number): Promise<void> {
    await pause(startAfterMs);
    const c = new ApiClient(b.url);
    // bounded: each step retries only on 503 and only until the deadline
    for (let step: 'login' | 'request' | 'done' = 'login'; step !== 'done' && Date.now() < until;) {
      const r = step === 'login' ? await c.login(u) : await c.post('/me/pools/ha/request');
      if (r.status === 503) {
        assert.ok(r.headers.get('retry-after'), `503 without Retry-After: ${JSON.stringify(r.body)}`);
        unavailable.push(Date.now());
        await pause(100);
        continue;
      }
      if (step === 'login') {
        if (r.status === 200) step = 'request';
        else unexpected.push(`${u} login ${r.status} ${JSON.stringify(r.body)}`);
        if (r.status !== 200) return;
        continue;
      }
      if (r.status === 200 || r.status === 202) acknowledged.set(u, r.body.desktop.id);
      else unexpected.push(`${u} request ${r.status} ${JSON.stringify(r.body)}`);
      step = 'done';
    }
  }

  const load = Promise.all(users.map((u, i) => user(u, i * 150)));
  // Kill the primary while the load is under way: some users served, most still to come.
  await waitFor(async () => acknowledged.size >= 3, 20_000, 20);
  killedAt = Date.now();
  primary.kill('SIGKILL');
  // Its supervisor starts it again (Restart=always); the sentinels make it a replica of the new
  // primary. Until it is back, assignments cannot reach a replica (waitReplicas: 1) and answer
  // 503: a second copy, not availability, is what "acknowledged" promises.
  await waitFor(async () => {
    const addr = (await answer(sentinelPorts[0]!, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER)) as string[] | null;
    return Number(addr?.[1]) === replicaPort;
  }, 30_000, 100);
  primary = redisServer(primaryArgs);
  await load;

  assert.deepEqual(unexpected, []);
  assert.equal(acknowledged.size, USERS, 'every user got a desktop in the end');
  const promoted = (await answer(sentinelPorts[0]!, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER)) as string[];
  assert.equal(Number(promoted[1]), replicaPort, 'the replica was promoted');
  // 503s only around the switch: none before the kill, none long after the promotion.
  assert.ok(unavailable.every((t) => t >= killedAt), '503 before the primary died');
  // Every acknowledged assignment is on the new primary, and no desktop went to two users.
  const owners = new Map<string, string>();
  for (const [u, id] of acknowledged) {
    const d = await b.app.store.desktops.get(id);
    assert.equal(d?.user, u, `${u}'s acknowledged desktop ${id} survived the failover`);
    assert.ok(!owners.has(id), `${id} handed to ${owners.get(id)} and ${u}`);
    owners.set(id, u);
  }
  console.log(`failover: ${unavailable.length} answers 503 over ${unavailable.length ? unavailable.at(-1)! - killedAt : 0} ms after the kill`);
});

test('a login is answered only once a replica holds its session: with the replica paused it is 503 with Retry-After (other requests are not held up), not a login a failover could lose', { timeout: 60_000 }, async () => {
  const b = tb!;
  // The old primary, started again, is now the new primary's replica.
  await waitFor(async () => String(await answer(primaryPort, 'INFO', 'replication')).includes('master_link_status:up'), 30_000, 100);
  const c = new ApiClient(b.url);
  const other = new ApiClient(b.url);
  assert.equal((await other.login('ha01')).status, 200);
  primary.kill('SIGSTOP');
  try {
    const waiting = c.login('ha00');
    // The login's WAIT holds only its own connection: other requests are answered meanwhile.
    await waitFor(async () => String(await answer(replicaPort, 'CLIENT', 'LIST')).includes('cmd=wait'), 900, 10); // the WAIT is under way (waitTimeoutMs: 1000)
    const t = Date.now();
    assert.equal((await other.get('/me')).status, 200);
    assert.ok(Date.now() - t < 500, `GET /me took ${Date.now() - t} ms behind another request's WAIT`);
    const r = await waiting;
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'redis_unavailable');
    assert.ok(r.headers.get('retry-after'), '503 without Retry-After');
  } finally {
    primary.kill('SIGCONT');
  }
  // Resumed, the replica acknowledges again within a second or so (REPLCONF ACK): the client's retry logs in.
  const again = new ApiClient(b.url);
  await waitFor(async () => (await again.login('ha00')).status === 200, 30_000, 200);
  assert.equal((await again.get('/me')).status, 200);
});
