// Three broker replicas (real processes) on one Redis behind a real haproxy (WebSocket-aware,
// /readyz health checks, loopback ports, config in a temp dir): logins, tickets, sessions and the
// helpdesk's live events work through any replica; SIGKILL of the replica carrying a tunnel: the
// viewer reconnects through another one within 5 s, desktop and session kept, nothing assigned
// twice, the reconcilers' leases move to a survivor; a rolling restart of every replica under a
// steady login load fails no login.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { uniquePrefix, freePort, SHARED_REDIS_URL, dropPrefix } from '../support/redis.ts';
import { startBrokerProcess, stopChild, type BrokerProcess } from '../support/process.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { FakeGuacd } from '../tunnel/support/fake-guacd.ts';
import { TunnelClient } from '../tunnel/support/tunnel-client.ts';

const prefix = uniquePrefix('replicas');
const dir = mkdtempSync(join(tmpdir(), 'vdi-replicas-'));
const LEASE_MS = 1500;
// The helpdesk account logs in with a password alone here (second factors: test/integration/auth.test.ts).
const CONFIG = join(dir, 'broker.yaml');
writeFileSync(CONFIG, 'auth:\n  mfa:\n    requiredFor: { roles: [], groups: [] }\n');
let admin: TestBroker | undefined;
let guacd: FakeGuacd | undefined;
let haproxy: ChildProcess | undefined;
const replicas: (BrokerProcess | undefined)[] = [];
const tunnels: TunnelClient[] = [];

after(async () => {
  for (const t of tunnels) t.close();
  for (const r of replicas) await r?.kill('SIGKILL');
  if (haproxy) await stopChild(haproxy);
  await admin?.close();
  await guacd?.close();
  await dropPrefix(SHARED_REDIS_URL, prefix);
  rmSync(dir, { recursive: true, force: true });
});

function replicaEnv(port: number, i: number): Record<string, string> {
  return {
    VDI_TEST_PROVIDER_STATE: join(dir, `vms-${i}.json`),
    VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(port), VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: prefix,
    VDI_AUTH_ARGON2_MEMORY_KIB: '1024', VDI_AUTH_ARGON2_TIME_COST: '1', VDI_LOGGING_LEVEL: 'warn',
    VDI_SERVER_TRUST_PROXY: 'loopback', VDI_SERVER_SHUTDOWN_GRACE_SECONDS: '10', VDI_SERVER_DRAIN_SECONDS: '5',
    VDI_JOBS_LEASE_TTL_MS: String(LEASE_MS), VDI_JOBS_POOL_SIZING_INTERVAL_MS: '200', VDI_JOBS_LIFECYCLE_INTERVAL_MS: '200',
    VDI_GUACD_HOST: '127.0.0.1', VDI_GUACD_PORT: String(guacd!.port),
    VDI_TEST_CONSOLE: JSON.stringify({ protocol: 'vnc', host: '127.0.0.1', port: 5999, password: 'secret' }),
  };
}

/** The state haproxy's stats page gives each replica: UP, DOWN, MAINT... */
async function serverStates(statsUrl: string): Promise<Record<string, string>> {
  const csv = await (await fetch(`${statsUrl};csv`)).text();
  const out: Record<string, string> = {};
  for (const line of csv.split('\n')) {
    const f = line.split(',');
    if (f[0] === 'brokers' && /^r\d$/.test(f[1] ?? '')) out[f[1]!] = f[17]!;
  }
  return out;
}

/** Opens the helpdesk's event stream; until() reads it until `pred` holds for a `snapshot` event. */
async function eventStream(base: string, who: ApiClient) {
  const ac = new AbortController();
  const res = await fetch(`${base}/api/v1/events`, { headers: { cookie: who.cookie }, signal: ac.signal });
  if (res.status !== 200) assert.fail(`${res.status} ${await res.text()}`);
  const reader = res.body!.getReader();
  return {
    replica: res.headers.get('x-replica') ?? '',
    async until(pred: (s: { sessions: { id: string }[] }) => boolean, timeoutMs = 10_000): Promise<void> {
      const timer = setTimeout(() => ac.abort(), timeoutMs);
      let buf = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) throw new Error('stream ended');
          buf += Buffer.from(value).toString();
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const m = /^event: snapshot\ndata: (.*)$/m.exec(buf.slice(0, i));
            buf = buf.slice(i + 2);
            if (m && pred(JSON.parse(m[1]!))) return;
          }
        }
      } finally {
        clearTimeout(timer);
        ac.abort();
      }
    },
  };
}

test('3 replicas behind haproxy: any replica serves; SIGKILL of the tunnel replica: reconnect elsewhere in < 5 s; rolling restart under login load fails no login; a helpdesk on another replica shadows and logs off the session', async () => {
  guacd = await FakeGuacd.start();
  admin = await startTestBroker({ name: 'replicas-admin', prefix, keepKeys: true });
  const users = ['alice', 'bob', ...Array.from({ length: 6 }, (_, i) => `load${i}`)];
  for (const u of users) await admin.addUser(u);
  await admin.addUser('hd', 'helpdesk');
  // Three ready desktops made by hand (no pool sizing: spare 0, max 3); each replica's test
  // provider starts from the same VMs (its own copy of the state file, like one hypervisor).
  await admin.app.broker.pools.create(admin.pool({ name: 'rp', size: { min: 0, max: 3, spare: 0 }, entitlements: { users, groups: [] } }), SYSTEM_ACTOR);
  await admin.readyDesktops('rp', 3);
  for (let i = 0; i < 3; i++) writeFileSync(join(dir, `vms-${i}.json`), JSON.stringify(Object.fromEntries(admin.provider.vms)));
  const store = admin.app.store;

  const ports = [await freePort(), await freePort(), await freePort()];
  const [front, statsPort] = [await freePort(), await freePort()];
  const started = Date.now();
  const boot = await Promise.all(ports.map((p, i) => startBrokerProcess('test/support/broker-process.ts', replicaEnv(p, i), ['--config', CONFIG])));
  replicas.push(...boot);
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, [
    'global', '  maxconn 2000',
    'defaults', '  mode http', '  timeout connect 2s', '  timeout client 30s', '  timeout server 30s', '  timeout tunnel 1h',
    // A request that could not reach a replica (refused, closed at once: SIGKILL) goes to another one.
    '  retries 3', '  option redispatch 1', '  retry-on conn-failure empty-response',
    'frontend vdi', `  bind 127.0.0.1:${front}`, '  default_backend brokers',
    'backend brokers', '  balance roundrobin', '  option httpchk GET /readyz', '  http-check expect status 200',
    '  http-response set-header X-Replica %s',
    // (No on-marked-down shutdown-sessions: it would cut the requests in flight on a leaving replica.)
    '  timeout check 2s', '  default-server inter 300ms fall 2 rise 1',
    ...ports.map((p, i) => `  server r${i} 127.0.0.1:${p} check`),
    'listen stats', `  bind 127.0.0.1:${statsPort}`, '  stats enable', '  stats uri /stats',
    '',
  ].join('\n'));
  haproxy = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let haproxyErr = '';
  haproxy.stderr!.on('data', (d: Buffer) => (haproxyErr += d.toString()));
  const base = `http://127.0.0.1:${front}`;
  const stats = `http://127.0.0.1:${statsPort}/stats`;
  const allUp = () => waitFor(async () => {
    const s = await serverStates(stats).catch(() => ({}) as Record<string, string>);
    return Object.keys(s).length === 3 && Object.values(s).every((v) => v === 'UP') ? s : null;
  }, 15_000, 50).catch((e: Error) => assert.fail(`${e.message}: ${haproxyErr}`));
  await allUp();

  // Logins and assignments through any replica: round robin sends each request to the next one.
  const seen = new Set<string>();
  const alice = new ApiClient(base);
  const bob = new ApiClient(base);
  const hd = new ApiClient(base);
  for (const [c, u] of [[alice, 'alice'], [bob, 'bob'], [hd, 'hd']] as const) {
    const r = await c.login(u);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    seen.add(r.headers.get('x-replica')!);
  }
  for (let i = 0; i < 3; i++) seen.add((await alice.get('/me/sessions')).headers.get('x-replica')!);
  assert.deepEqual([...seen].sort(), ['r0', 'r1', 'r2'], 'every replica answered');
  const ra = await alice.post('/me/pools/rp/request');
  assert.equal(ra.status, 200, JSON.stringify(ra.body));
  const session = ra.body.session.id as string;
  const desktop = ra.body.desktop.id as string;

  // The helpdesk's live events: a console on each replica sees bob's new session, made through another.
  const consoles = [];
  for (let i = 0; i < 3; i++) consoles.push(await eventStream(base, hd));
  assert.deepEqual(consoles.map((c) => c.replica).sort(), ['r0', 'r1', 'r2'], 'a console on each replica');
  const rb = await bob.post('/me/pools/rp/request');
  assert.equal(rb.status, 200, JSON.stringify(rb.body));
  await Promise.all(consoles.map((c) => c.until((snap) => snap.sessions.some((x) => x.id === rb.body.session.id))));

  // A tunnel through haproxy; which replica carries it is in the 101's X-Replica header.
  const openTunnel = async () => {
    const t = await alice.post(`/me/sessions/${session}/connect`);
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const c = new TunnelClient(base, { ticket: t.body.ticket, as: alice });
    tunnels.push(c);
    const via = new Promise<string>((r) => (c.ws as unknown as { on(e: 'upgrade', f: (res: { headers: Record<string, string> }) => void): void }).on('upgrade', (res) => r(res.headers['x-replica']!)));
    await c.ready();
    return { c, via: await via };
  };
  const first = await openTunnel();
  await waitFor(async () => (await store.sessions.get(session))?.state === 'connected');
  const victim = Number(first.via.slice(1));
  const leases = async () => Object.fromEntries(await Promise.all(['pool-sizing', 'desktop-lifecycle'].map(async (j) => [j, await store.leases.holder(j)] as const)));
  const pidOf = (holder: string | null) => Number(holder?.split('-')[0]);
  const victimPid = replicas[victim]!.child.pid!;

  // SIGKILL: the viewer (here: its reconnect loop) gets a new ticket and tunnel through a survivor.
  const killedAt = Date.now();
  await replicas[victim]!.kill('SIGKILL');
  await first.c.ended(5000);
  let second: { c: TunnelClient; via: string } | undefined;
  while (!second && Date.now() - killedAt < 5000) second = await openTunnel().catch(() => undefined);
  assert.ok(second, 'reconnected');
  const took = Date.now() - killedAt;
  assert.ok(took < 5000, `reconnected in ${took} ms`);
  assert.notEqual(second.via, first.via);
  const s = await store.sessions.get(session);
  assert.equal(s?.desktop, desktop, 'same desktop');
  assert.ok(['connected', 'disconnected'].includes(s!.state), s?.state);
  await waitFor(async () => (await store.sessions.get(session))?.state === 'connected');
  // Nothing assigned twice: each desktop has one user, alice and bob one desktop each.
  const ds = await store.desktops.listByPool('rp');
  const holders = ds.filter((d) => d.user).map((d) => d.user);
  assert.equal(new Set(holders).size, holders.length);
  assert.deepEqual(holders.sort(), ['alice', 'bob']);
  // The reconcilers' leases: none left with the dead replica once its lease time has passed.
  const moved = await waitFor(async () => {
    const l = await leases();
    return Object.values(l).every((h) => h && pidOf(h) !== victimPid) ? l : null;
  }, LEASE_MS * 2 + 2000, 100);
  assert.ok(Date.now() - killedAt < LEASE_MS * 2 + 2000, JSON.stringify(moved));
  second.c.close();
  replicas[victim] = await startBrokerProcess('test/support/broker-process.ts', replicaEnv(ports[victim]!, victim), ['--config', CONFIG]);
  await allUp();

  // Rolling restart under a steady login load (bounded): zero failed logins.
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const loop = async (u: string) => {
    for (let i = 0; !stop && i < 2000; i++) {
      const c = new ApiClient(base);
      const r = await c.login(u).catch((e: Error) => ({ status: 0, body: `${e.message} ${String((e.cause as Error | undefined)?.message ?? "")} at ${Date.now() - started}`, headers: new Headers() }));
      if (r.status === 200) ok++;
      else failures.push(`${u}: ${r.status} ${JSON.stringify(r.body)}`);
    }
  };
  const load = ['load0', 'load1', 'load2', 'load3'].map((u) => loop(u));
  for (let i = 0; i < 3; i++) {
    const before = ok;
    assert.equal(await replicas[i]!.kill('SIGTERM'), 0, replicas[i]!.output());
    replicas[i] = await startBrokerProcess('test/support/broker-process.ts', replicaEnv(ports[i]!, i), ['--config', CONFIG]);
    await allUp();
    assert.ok(ok > before, 'logins went on during the restart');
  }
  stop = true;
  await Promise.all(load);
  assert.deepEqual(failures, [], `${failures.length} failed logins of ${ok + failures.length}`);
  assert.ok(ok > 20, `${ok} logins`);
  // The sessions survived all of it.
  assert.equal((await alice.get('/me/sessions')).body.sessions[0]?.id, session);

  // The helpdesk on another replica than the one carrying alice's tunnel shadows her session
  // (the shadow joins her connection on the shared guacd) and logs it off; her tunnel ends.
  const third = await openTunnel();
  await waitFor(async () => (await store.sessions.get(session))?.state === 'connected');
  const userConn = await waitFor(async () => guacd!.connections.filter((c) => !c.select.startsWith('$')).at(-1) ?? null);
  const other = (Number(third.via.slice(1)) + 1) % 3;
  const hdOther = new ApiClient(`http://127.0.0.1:${ports[other]}`);
  Object.assign(hdOther, { cookie: hd.cookie, csrf: hd.csrf });
  const sh = await hdOther.post(`/sessions/${session}/shadow`);
  assert.equal(sh.status, 200, JSON.stringify(sh.body));
  const shadowTunnel = new TunnelClient(hdOther.base, { ticket: sh.body.ticket, as: hdOther });
  tunnels.push(shadowTunnel);
  await shadowTunnel.ready();
  await waitFor(async () => guacd!.connections.some((c) => c.select === userConn.id));
  const off = await hdOther.post(`/sessions/${session}/logoff`);
  assert.equal(off.status, 200, JSON.stringify(off.body));
  await third.c.ended(5000);
  await waitFor(async () => (await store.sessions.get(session))?.state === 'ended', 5000);
  console.log(`replicas: ${ok} logins during the rolling restart, reconnect after SIGKILL in ${took} ms, total ${Date.now() - started} ms`);
});
