// Three broker replicas (real processes) on one Redis behind a real haproxy (WebSocket-aware,
// /readyz health checks, loopback ports, config in a temp dir), each streaming through its own
// built-in Guacamole gateway on TCP from one real X desktop (Xvnc with a VNC password): logins,
// tickets, sessions and the helpdesk's live events work through any replica; SIGKILL of the
// replica carrying a tunnel: the viewer reconnects through another one within 5 s, desktop and
// session kept, nothing assigned twice, the reconcilers' leases move to a survivor; a rolling
// restart of every replica under a steady login load fails no login; a helpdesk on another
// replica shadows the session by joining the user's connection on the carrying replica's
// gateway, and logs it off; that gateway's TCP port admits nothing without a valid grant.
// (The web viewer's own reconnect after SIGKILL: replicas-viewer.test.ts.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { uniquePrefix, SHARED_REDIS_URL, dropPrefix } from '../support/redis.ts';
import { startBrokerProcess } from '../support/process.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { loadConfig } from '../../server/config/index.ts';
import { grantKey, issueGrant } from '../../server/gateway/index.ts';
import { Status, type Instruction } from '../../server/gateway/protocol.ts';
import { TunnelClient } from '../tunnel/support/tunnel-client.ts';
import { GuacTestClient } from '../gateway/support/guac-client.ts';
import { hasXvnc, startXvnc, type Xvnc } from '../gateway/support/xvnc.ts';
import { acceptedOn, startReplicaSet, type ReplicaSet } from './support/replica-set.ts';

const prefix = uniquePrefix('replicas');
const dir = mkdtempSync(join(tmpdir(), 'vdi-replicas-'));
const LEASE_MS = 1500;
const [W, H] = [640, 400];
// The helpdesk account logs in with a password alone here (second factors: test/integration/auth.test.ts).
const CONFIG = join(dir, 'broker.yaml');
writeFileSync(CONFIG, 'auth:\n  mfa:\n    requiredFor: { roles: [], groups: [] }\n');
let admin: TestBroker | undefined;
let xvnc: Xvnc | undefined;
let set: ReplicaSet | undefined;
const tunnels: TunnelClient[] = [];
const probes: GuacTestClient[] = [];

after(async () => {
  for (const t of tunnels) t.close();
  for (const p of probes) p.close();
  await set?.close();
  await admin?.close();
  await xvnc?.stop();
  await dropPrefix(SHARED_REDIS_URL, prefix);
  rmSync(dir, { recursive: true, force: true });
});

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

/** The X desktop reached the tunnel: its size (the Xvnc's geometry) and a complete frame after it. */
async function desktopShown(c: TunnelClient, timeoutMs = 10_000): Promise<void> {
  await c.next((i) => i.opcode === 'size' && i.args[0] === '0' && i.args[1] === String(W) && i.args[2] === String(H), timeoutMs);
  await c.next((i) => i.opcode === 'sync', timeoutMs);
}

/** What a raw Guacamole client on a gateway's TCP port gets for `select <what>`: the handshake's answer and whether the gateway hung up. */
async function selectOnGateway(port: number, what: string): Promise<{ answer: Instruction; closed: boolean }> {
  const c = await GuacTestClient.connect(port);
  probes.push(c);
  c.send('select', what);
  const answer = await c.next((i) => i.opcode === 'args' || i.opcode === 'error', 5000);
  if (answer.opcode === 'error') await waitFor(async () => c.closed, 5000);
  return { answer, closed: c.closed };
}

test('3 replicas behind haproxy, each streaming a real X desktop through its own gateway: any replica serves; SIGKILL of the tunnel replica: reconnect elsewhere in < 5 s; rolling restart under login load fails no login; a helpdesk on another replica shadows (joining the gateway that carries the session) and logs off the session; the gateways admit no connection without a valid grant', { timeout: 300_000 }, async () => {
  assert.ok(hasXvnc(), 'Xvnc, xsetroot and vncpasswd are installed (tigervnc-standalone-server, x11-xserver-utils)');
  xvnc = await startXvnc({ width: W, height: H, password: 'secret' });
  await xvnc.x('xsetroot', '-solid', '#2a7f3c');
  admin = await startTestBroker({ name: 'replicas-admin', prefix, keepKeys: true });
  const users = ['alice', 'bob', ...Array.from({ length: 6 }, (_, i) => `load${i}`)];
  for (const u of users) await admin.addUser(u);
  await admin.addUser('hd', 'helpdesk');
  // Three ready desktops made by hand (no pool sizing: spare 0, max 3); each replica's test
  // provider starts from the same VMs, and every desktop's console is the Xvnc.
  await admin.app.broker.pools.create(admin.pool({ name: 'rp', size: { min: 0, max: 3, spare: 0 }, entitlements: { users, groups: [] } }), SYSTEM_ACTOR);
  await admin.readyDesktops('rp', 3);
  const store = admin.app.store;

  const started = Date.now();
  set = await startReplicaSet({ dir, prefix, configFile: CONFIG, vms: admin.provider.vms, env: { VDI_JOBS_LEASE_TTL_MS: String(LEASE_MS), VDI_JOBS_POOL_SIZING_INTERVAL_MS: '200', VDI_JOBS_LIFECYCLE_INTERVAL_MS: '200' }, console: { protocol: 'vnc', host: '127.0.0.1', port: xvnc.port, password: 'secret' } });
  const { base, replicas, ports, gatewayPorts } = set;
  await set.allUp();

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

  // A tunnel through haproxy; which replica carries it is in the 101's X-Replica header, and the
  // session's claim names that replica's gateway.
  const openTunnel = async () => {
    const t = await alice.post(`/me/sessions/${session}/connect`);
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const c = new TunnelClient(base, { ticket: t.body.ticket, as: alice });
    tunnels.push(c);
    const via = new Promise<string>((r) => (c.ws as unknown as { on(e: 'upgrade', f: (res: { headers: Record<string, string> }) => void): void }).on('upgrade', (res) => r(res.headers['x-replica']!)));
    await c.ready();
    return { c, via: await via };
  };
  const claimedGateway = () => waitFor(async () => {
    const tun = await store.tickets.tunnel(session);
    return tun?.state === 'connected' && tun.guacd ? tun : null;
  });
  const first = await openTunnel();
  await desktopShown(first.c);
  const victim = Number(first.via.slice(1));
  assert.equal((await claimedGateway()).guacd, `127.0.0.1:${gatewayPorts[victim]}`, "the tunnel streams through its replica's own gateway");
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
  await desktopShown(second.c, Math.max(1, 5000 - (Date.now() - killedAt)));
  const took = Date.now() - killedAt;
  assert.ok(took < 5000, `reconnected and drawn in ${took} ms`);
  assert.notEqual(second.via, first.via);
  const s = await store.sessions.get(session);
  assert.equal(s?.desktop, desktop, 'same desktop');
  assert.ok(['connected', 'disconnected'].includes(s!.state), s?.state);
  const survivor = Number(second.via.slice(1));
  await waitFor(async () => (await claimedGateway()).guacd === `127.0.0.1:${gatewayPorts[survivor]}`);
  // Nothing assigned twice: each desktop has one user, alice and bob one desktop each.
  const ds = await store.desktops.listByPool('rp');
  const holders = ds.filter((d) => d.user).map((d) => d.user);
  assert.equal(new Set(holders).size, holders.length);
  assert.deepEqual(holders.sort(), ['alice', 'bob']);
  // The reconcilers' leases: none left with the dead replica once its lease time has passed.
  // Within the lease time: the dead holder's last renewal expires at most LEASE_MS after the kill,
  // and a survivor tries again every pass interval (200 ms here); the rest is slack for a busy machine.
  const moved = await waitFor(async () => {
    const l = await leases();
    return Object.values(l).every((h) => h && pidOf(h) !== victimPid) ? l : null;
  }, LEASE_MS * 2 + 2000, 50);
  const movedIn = Date.now() - killedAt;
  assert.ok(movedIn < LEASE_MS + 1000, `leases moved in ${movedIn} ms: ${JSON.stringify(moved)}`);
  second.c.close();
  await set.start(victim);
  await set.allUp();

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
    await set.start(i);
    await set.allUp();
    assert.ok(ok > before, 'logins went on during the restart');
  }
  stop = true;
  await Promise.all(load);
  assert.deepEqual(failures, [], `${failures.length} failed logins of ${ok + failures.length}`);
  assert.ok(ok > 20, `${ok} logins`);
  // The sessions survived all of it.
  assert.equal((await alice.get('/me/sessions')).body.sessions[0]?.id, session);

  // The helpdesk on another replica than the one carrying alice's tunnel shadows her session:
  // its tunnel joins her connection on the carrying replica's gateway (over TCP, with a grant
  // that replica's gateway accepts), sees the same desktop, and adds no VNC connection.
  const third = await openTunnel();
  await desktopShown(third.c);
  const carrier = Number(third.via.slice(1));
  const claim = await claimedGateway();
  assert.equal(set.replicaOfGateway(claim.guacd), carrier, claim.guacd);
  const other = (carrier + 1) % 3;
  const onCarrier = acceptedOn(gatewayPorts[carrier]!);
  const onOther = acceptedOn(gatewayPorts[other]!);
  const onXvnc = acceptedOn(xvnc.port);
  const hdOther = new ApiClient(`http://127.0.0.1:${ports[other]}`);
  Object.assign(hdOther, { cookie: hd.cookie, csrf: hd.csrf });
  const sh = await hdOther.post(`/sessions/${session}/shadow`);
  assert.equal(sh.status, 200, JSON.stringify(sh.body));
  const shadowTunnel = new TunnelClient(hdOther.base, { ticket: sh.body.ticket, as: hdOther });
  tunnels.push(shadowTunnel);
  await shadowTunnel.ready();
  await desktopShown(shadowTunnel);
  assert.equal(acceptedOn(gatewayPorts[carrier]!), onCarrier + 1, "the shadow joined the carrying replica's gateway");
  assert.equal(acceptedOn(gatewayPorts[other]!), onOther, "nothing went to the shadowing replica's own gateway");
  assert.ok(acceptedOn(xvnc.port) <= onXvnc, 'the shadow shares the VNC connection (no new one)');

  // Who may connect to a gateway's TCP port: nothing without a grant the broker issued for that
  // gateway and that connection, once. Same refusal for all, and the gateway hangs up.
  const refusal = { opcode: 'error', args: ['This gateway serves only connections the broker granted', String(Status.CLIENT_FORBIDDEN)] };
  const key = grantKey(await store.tickets.secret(admin.config.tunnel.secret));
  const carrierAddr = `127.0.0.1:${gatewayPorts[carrier]}`;
  const attempts: Record<string, string> = {
    'select vnc': 'vnc',
    'the live connection id': claim.guacConnection,
    "a broker grant for another replica's gateway": issueGrant(key, { gateway: `127.0.0.1:${gatewayPorts[other]}`, join: claim.guacConnection, readOnly: true }),
    'a grant signed with another key': issueGrant(randomBytes(32), { gateway: carrierAddr, join: claim.guacConnection, readOnly: true }),
    'an expired grant': issueGrant(key, { gateway: carrierAddr, join: claim.guacConnection, readOnly: true }, Date.now() - 60_000),
  };
  for (const [what, select] of Object.entries(attempts)) {
    const r = await selectOnGateway(gatewayPorts[carrier]!, select);
    assert.deepEqual({ opcode: r.answer.opcode, args: r.answer.args }, refusal, what);
    assert.ok(r.closed, `${what}: the gateway hung up`);
  }
  // A valid grant is admitted once; the same grant again is refused.
  const valid = issueGrant(key, { gateway: carrierAddr, join: claim.guacConnection, readOnly: true });
  assert.equal((await selectOnGateway(gatewayPorts[carrier]!, valid)).answer.opcode, 'args', 'a valid grant is admitted');
  const replay = await selectOnGateway(gatewayPorts[carrier]!, valid);
  assert.deepEqual({ opcode: replay.answer.opcode, args: replay.answer.args }, refusal, 'a replayed grant');
  for (const p of probes.splice(0)) p.close();

  const off = await hdOther.post(`/sessions/${session}/logoff`);
  assert.equal(off.status, 200, JSON.stringify(off.body));
  await third.c.ended(7000);
  await shadowTunnel.ended(7000);
  await waitFor(async () => (await store.sessions.get(session))?.state === 'ended', 5000);
  console.log(`replicas: ${ok} logins during the rolling restart, reconnect after SIGKILL (new tunnel drew the desktop) in ${took} ms, reconcilers' leases moved in ${movedIn} ms, total ${Date.now() - started} ms`);
});

test('a replica whose gateway would listen on TCP on a wildcard address does not start: grants and session claims name the gateway by that address, and no other replica could reach it', async () => {
  const refused = /gateway\.host: with listen: tcp, the address other replicas reach this gateway on \(grants name it\), not a wildcard address/;
  const started = startBrokerProcess('test/support/broker-process.ts', {
    VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: '0', VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: prefix,
    VDI_GATEWAY_LISTEN: 'tcp', VDI_GATEWAY_HOST: '0.0.0.0', VDI_GATEWAY_PORT: '0',
  });
  // (Should it start after all, it is stopped by pid at once.)
  await assert.rejects(started.then((r) => r.kill('SIGKILL')), (e: Error) => /exited with [1-9]/.test(e.message) && refused.test(e.message));
  // The same check for IPv6's wildcards; a specific address, and the unix socket, are fine.
  for (const host of ['::', '[::]']) assert.throws(() => loadConfig({ env: { VDI_GATEWAY_LISTEN: 'tcp', VDI_GATEWAY_HOST: host } }), refused, host);
  assert.equal(loadConfig({ env: { VDI_GATEWAY_LISTEN: 'tcp', VDI_GATEWAY_HOST: '10.0.0.5' } }).gateway.host, '10.0.0.5');
  assert.equal(loadConfig({ env: { VDI_GATEWAY_LISTEN: 'unix', VDI_GATEWAY_HOST: '0.0.0.0' } }).gateway.listen, 'unix');
});
