// Manual pools against real parts: Xvnc "machines" on loopback ports, Debian's xrdp, real
// Redis, the broker's reconcilers (lifecycle, machine health) running. Machines are added,
// edited, imported and removed through the API as an admin; users get them through the real
// assignment path. Every Xvnc and xrdp is stopped by pid, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startManualBroker, type ManualBroker } from './support/broker.ts';
import { VncMachine } from './support/vnc-machine.ts';
import { hasXrdp, startXrdp, type Xrdp } from './support/xrdp.ts';
import { freePort } from '../support/redis.ts';
import { until } from '../tunnel/support/fixtures.ts';
import { startXvnc } from '../gateway/support/xvnc.ts';
import dgram from 'node:dgram';
import net from 'node:net';
import { magicPacket } from '../../server/providers/manual/wake.ts';
import { probeConsole, type ManualProvider } from '../../server/providers/manual/index.ts';
import type { ApiClient } from '../support/harness.ts';

const SECRET = 'Lab-pa55word-7f3c91';
const m1 = new VncMachine(0, '#c81e1e');
const m2 = new VncMachine(0, '#1e64c8');
let solo: VncMachine;
let xrdp: Xrdp | undefined;
let tb: ManualBroker;
let admin: ApiClient;

const vnc = (name: string, pool: string, port: number, extra: object = {}) => ({ name, pool, protocol: 'vnc', address: '127.0.0.1', port, ...extra });
const stateOf = async (name: string) => (await tb.app.store.desktops.get((await tb.app.store.desktops.nameTaken(name))!))?.state;

before(async () => {
  for (const m of [m1, m2]) (m as { port: number }).port = await freePort();
  solo = new VncMachine(await freePort(), '#20a040');
  await Promise.all([m1.start(), m2.start(), solo.start()]);
  if (hasXrdp()) xrdp = await startXrdp();
  tb = await startManualBroker('manual-machines');
  for (const u of ['alice', 'bob', 'carol']) await tb.addUser(u);
  await tb.addUser('ada', 'admin');
  admin = await tb.client('ada');
});

after(async () => {
  await tb?.close();
  await Promise.all([m1.stop(), m2.stop(), solo?.stop()]);
  await xrdp?.stop();
});

test('a manual pool has no sizes and never deletes machines at logoff', async () => {
  const base = { name: 'bad', displayName: 'Bad', assignment: 'floating', persistence: 'persistent', size: { min: 0, max: 0, spare: 0 }, naming: 'bad-{n}', image: 'none', provider: 'lab' };
  const sized = await admin.post('/pools', { ...base, size: { min: 0, max: 5, spare: 1 } });
  assert.equal(sized.status, 400);
  assert.equal(sized.body.error.field, 'size');
  const del = await admin.post('/pools', { ...base, persistence: 'delete' });
  assert.equal(del.status, 400);
  assert.equal(del.body.error.field, 'persistence');
  assert.equal((await admin.post('/pools', base)).status, 201, 'no image needed: the image is only a label');
});

test('an RDP machine is refused with guacd_required when no guacd is configured (audited)', async () => {
  await tb.pool('rdplab', { entitlements: { users: ['alice'], groups: [] } });
  const r = await admin.post('/machines', { name: 'rds-01', pool: 'rdplab', protocol: 'rdp', address: '127.0.0.1', username: 'u', password: SECRET });
  assert.equal(r.status, 409);
  assert.equal(r.body.error.code, 'guacd_required');
  assert.equal(r.body.error.field, 'protocol');
  const refused = (await admin.get('/audit?action=machine.create&outcome=denied')).body.entries;
  assert.ok(refused.some((e: { target: string }) => e.target === 'rds-01'), JSON.stringify(refused));
  // A VNC machine may not become RDP either.
  assert.equal((await admin.post('/machines', vnc('vnc-01', 'rdplab', m1.port))).status, 201);
  const p = await admin.patch('/machines/vnc-01', { protocol: 'rdp' });
  assert.equal(p.body.error?.code, 'guacd_required');
  assert.equal((await admin.del('/machines/vnc-01')).status, 204);
});

test('machines become ready desktops when their console answers; two users get the two machines; logoff leaves them running', async () => {
  await tb.pool('lab', { entitlements: { users: ['alice', 'bob', 'carol'], groups: [] } });
  const a = await admin.post('/machines', vnc('pc-01', 'lab', m1.port, { username: 'student', password: SECRET, mac: '02:00:00:00:00:01' }));
  assert.equal(a.status, 201, JSON.stringify(a.body));
  assert.equal(a.body.machine.hasPassword, true);
  assert.equal(a.body.machine.hasUsername, true);
  assert.equal(a.body.machine.desktop.state, 'provisioning');
  assert.equal((await admin.post('/machines', vnc('pc-02', 'lab', m2.port, { password: SECRET }))).status, 201);
  assert.equal((await admin.post('/machines', vnc('pc-02', 'lab', m2.port))).body.error.code, 'already_exists');
  await until(async () => (await stateOf('pc-01')) === 'ready' && (await stateOf('pc-02')) === 'ready', 15_000, 'both machines ready');
  const listed = (await admin.get('/machines?pool=lab')).body.machines;
  assert.deepEqual(listed.map((m: { name: string; health: string }) => [m.name, m.health]), [['pc-01', 'answering'], ['pc-02', 'answering']]);

  const alice = await tb.client('alice');
  const bob = await tb.client('bob');
  const ga = await alice.post('/me/pools/lab/request');
  const gb = await bob.post('/me/pools/lab/request');
  assert.equal(ga.body.outcome, 'assigned');
  assert.equal(gb.body.outcome, 'assigned');
  const names = [ga.body.desktop.name, gb.body.desktop.name].sort();
  assert.deepEqual(names, ['pc-01', 'pc-02']);
  // No third machine: nothing is created for carol.
  const carol = await tb.client('carol');
  assert.equal((await carol.post('/me/pools/lab/request')).body.error.code, 'pool_exhausted');
  assert.equal((await tb.app.store.pools.counts('lab')).total, 2);

  // The console the tunnel gets: the machine's address with its credentials, opened from the sealed form.
  const lab = tb.app.providers.get('lab') as ManualProvider;
  const ep = await lab.console(ga.body.desktop.id);
  assert.equal(ep.protocol, 'vnc');
  assert.equal(ep.port, ga.body.desktop.name === 'pc-01' ? m1.port : m2.port);
  assert.equal(ep.password, SECRET);

  const pids = [m1.pid, m2.pid];
  assert.equal((await alice.post(`/me/sessions/${ga.body.session.id}/logoff`)).status, 200);
  await until(async () => (await stateOf(ga.body.desktop.name)) === 'ready', 10_000, 'machine back to ready after logoff');
  assert.deepEqual([m1.pid, m2.pid], pids, 'the machines kept running');
  assert.equal((await bob.post(`/me/sessions/${gb.body.session.id}/logoff`)).status, 200);
});

test('logoff from a non-persistent manual pool neither refreshes nor destroys the machine', async () => {
  await tb.pool('fresh', { persistence: 'refresh', entitlements: { users: ['alice'], groups: [] } });
  assert.equal((await admin.post('/machines', vnc('fresh-01', 'fresh', m1.port))).status, 201);
  await until(async () => (await stateOf('fresh-01')) === 'ready', 15_000, 'ready');
  const alice = await tb.client('alice');
  const g = await alice.post('/me/pools/fresh/request');
  assert.equal(g.body.outcome, 'assigned');
  const pid = m1.pid;
  await alice.post(`/me/sessions/${g.body.session.id}/logoff`);
  await until(async () => (await stateOf('fresh-01')) === 'ready', 10_000, 'ready again');
  assert.equal(m1.pid, pid);
  assert.ok(await tb.app.store.machines.get(g.body.desktop.id), 'machine record kept');
  const ops = tb.logs.filter((l) => l.includes(g.body.desktop.id) && /"op":"refreshing"/.test(l));
  assert.ok(ops.length >= 1, 'the lifecycle only waited for the console');
});

test('dedicated: a user keeps the same machine across logins', async () => {
  await tb.pool('desk', { assignment: 'dedicated', entitlements: { users: ['carol'], groups: [] } });
  assert.equal((await admin.post('/machines', vnc('desk-01', 'desk', m2.port))).status, 201);
  await until(async () => (await stateOf('desk-01')) === 'ready', 15_000, 'ready');
  const carol = await tb.client('carol');
  const first = await carol.post('/me/pools/desk/request');
  await carol.post(`/me/sessions/${first.body.session.id}/logoff`);
  await until(async () => (await stateOf('desk-01')) === 'assigned', 10_000, 'assigned to carol');
  const again = await carol.post('/me/pools/desk/request');
  assert.equal(again.body.desktop.id, first.body.desktop.id);
  await carol.post(`/me/sessions/${again.body.session.id}/logoff`);
});

test('a machine that stops answering is not handed out, and is again once it answers', async () => {
  await tb.pool('solo', { entitlements: { users: ['alice'], groups: [] } });
  assert.equal((await admin.post('/machines', vnc('solo-01', 'solo', solo.port))).status, 201);
  await until(async () => (await stateOf('solo-01')) === 'ready', 15_000, 'ready');
  await solo.stop();
  await until(async () => (await stateOf('solo-01')) === 'error', 10_000, 'marked unreachable');
  const m = (await admin.get('/machines/solo-01')).body.machine;
  assert.equal(m.health, 'silent');
  assert.match(m.desktop.lastError, /^unreachable:/);
  const alice = await tb.client('alice');
  const refused = await alice.post('/me/pools/solo/request');
  assert.equal(refused.status, 503);
  assert.equal(refused.body.error.code, 'pool_exhausted');
  assert.ok((await admin.get('/audit?action=machine.unreachable')).body.entries.length >= 1);

  await solo.start();
  await until(async () => (await stateOf('solo-01')) === 'ready', 15_000, 'ready again');
  const got = await alice.post('/me/pools/solo/request');
  assert.equal(got.body.outcome, 'assigned');
  assert.equal(got.body.desktop.name, 'solo-01');
  await alice.post(`/me/sessions/${got.body.session.id}/logoff`);
});

test('one lost health probe does not take a ready machine out of service; two in a row do', async () => {
  // A console behind a relay the test controls: it swallows the next probes (accepts and closes
  // at once, as a console that is busy for a moment would) and otherwise relays to a real Xvnc.
  let swallow = 0;
  let relayed = 0;
  const relay = net.createServer((c) => {
    if (swallow > 0) {
      swallow--;
      c.destroy();
      return;
    }
    const up = net.connect(solo.port, '127.0.0.1');
    up.once('connect', () => relayed++);
    c.pipe(up).pipe(c);
    const end = () => (c.destroy(), up.destroy());
    c.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
  try {
    await tb.pool('blink', { entitlements: { users: ['alice'], groups: [] } });
    assert.equal((await admin.post('/machines', vnc('blink-01', 'blink', (relay.address() as net.AddressInfo).port))).status, 201);
    await until(async () => (await stateOf('blink-01')) === 'ready', 15_000, 'ready');
    const unreachable = async () => (await admin.get('/audit?action=machine.unreachable')).body.entries.filter((e: { target: string }) => e.target === 'blink-01').length;
    // One probe lost, then the console answers the next: still in service, never marked.
    swallow = 1;
    await until(async () => swallow === 0, 10_000, 'a probe swallowed');
    const after = relayed;
    await until(async () => relayed > after, 10_000, 'the next probe answered');
    assert.equal(await unreachable(), 0, 'one lost probe marked the machine unreachable');
    assert.equal(await stateOf('blink-01'), 'ready');
    // Every probe lost: out of service after the second.
    swallow = Number.MAX_SAFE_INTEGER;
    await until(async () => (await stateOf('blink-01')) === 'error', 10_000, 'marked unreachable');
    assert.equal(await unreachable(), 1);
    swallow = 0;
    await until(async () => (await stateOf('blink-01')) === 'ready', 15_000, 'ready again');
    assert.equal((await admin.del('/machines/blink-01')).status, 204);
  } finally {
    relay.close();
  }
});

test('xrdp answers the RDP health check with an X.224 connection confirm; other answers do not count', async () => {
  assert.ok(xrdp, 'xrdp is installed (apt-get install xrdp)');
  const ok = await probeConsole('rdp', '127.0.0.1', xrdp!.port, 2000);
  assert.deepEqual(ok, { ok: true, detail: 'X.224 CC' });
  assert.equal((await probeConsole('rdp', '127.0.0.1', m1.port, 2000)).ok, false, 'a VNC server is no RDP console');
  assert.equal((await probeConsole('vnc', '127.0.0.1', xrdp!.port, 1000)).ok, false, 'an RDP server is no VNC console');
  assert.equal((await probeConsole('vnc', '127.0.0.1', m1.port, 2000)).detail, 'RFB 003.008');
  const closed = await freePort();
  assert.equal((await probeConsole('rdp', '127.0.0.1', closed, 2000)).detail, 'ECONNREFUSED');
});

test('CSV import adds a lab of 30 PCs, reports bad lines, and they all become ready', async () => {
  await tb.pool('room', { entitlements: { users: ['alice'], groups: [] } });
  const lines = ['name,pool,protocol,address,port,username,password,mac'];
  for (let i = 1; i <= 30; i++) lines.push(`room-${String(i).padStart(2, '0')},room,vnc,127.0.0.1,${m1.port},student,"${SECRET}",02:00:00:01:00:${i.toString(16).padStart(2, '0')}`);
  lines.push(`room-05,room,vnc,127.0.0.1,${m1.port},,,`); // duplicate name
  lines.push('room-99,room,telnet,127.0.0.1,23,,,'); // bad protocol
  const r = await admin.post('/machines/import', { csv: lines.join('\n') + '\n' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.added.length, 30);
  assert.deepEqual(r.body.failed.map((f: { line: number; code: string; field: string }) => [f.line, f.code, f.field]), [[32, 'already_exists', 'name'], [33, 'validation_failed', 'protocol']]);
  await until(async () => (await tb.app.store.pools.counts('room')).ready === 30, 30_000, '30 machines ready');
  const bad = await admin.post('/machines/import', { csv: 'hostname,ip\nx,y\n' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.field, 'csv');
});

test('removing a machine removes its desktop, never the machine; refused while in use', async () => {
  const alice = await tb.client('alice');
  const g = await alice.post('/me/pools/room/request');
  assert.equal(g.body.outcome, 'assigned');
  const busy = await admin.del(`/machines/${g.body.desktop.name}`);
  assert.equal(busy.status, 409);
  assert.equal(busy.body.error.code, 'desktop_in_use');
  await alice.post(`/me/sessions/${g.body.session.id}/logoff`);
  assert.equal((await admin.del(`/machines/${g.body.desktop.name}`)).status, 204);
  await until(async () => !(await tb.app.store.desktops.nameTaken(g.body.desktop.name)), 10_000, 'desktop gone');
  assert.equal((await admin.get(`/machines/${g.body.desktop.name}`)).status, 404);
  assert.ok(m1.pid, 'the machine still runs');
});

test('credentials never appear in API answers, Redis in clear, the audit trail or the logs', async () => {
  const edited = await admin.patch('/machines/pc-01', { password: `${SECRET}-2`, domain: 'LAB' });
  assert.equal(edited.status, 200);
  assert.equal(edited.body.machine.hasPassword, true);
  const answers = JSON.stringify([edited.body, (await admin.get('/machines')).body, (await admin.get('/machines/pc-01')).body]);
  assert.ok(!answers.includes(SECRET) && !answers.includes('student'), 'no credentials in answers');
  assert.ok(!JSON.stringify((await admin.get('/audit?limit=500')).body).includes(SECRET), 'none in the audit trail');
  const raw = JSON.stringify(await tb.app.store.redis.hgetall(tb.app.store.keys.machine((await tb.app.store.desktops.nameTaken('pc-01'))!)));
  assert.ok(!raw.includes(SECRET) && !raw.includes('student'), 'sealed in Redis');
  assert.ok(tb.logs.length > 50, 'the broker logged');
  assert.ok(!tb.logs.some((l) => l.includes(SECRET)), 'none in the logs');
  const lab = tb.app.providers.get('lab') as ManualProvider;
  assert.equal((await lab.console((await tb.app.store.desktops.nameTaken('pc-01'))!)).password, `${SECRET}-2`);
});

test('health probes authenticate like a client, so VNC servers never blacklist the broker (TigerVNC "Too many security failures")', async () => {
  // TigerVNC marks an address after 5 connections dropped before authentication. 12 probes each.
  const locked = await startXvnc({ width: 64, height: 64, password: 'vnc-pw' });
  try {
    for (let i = 0; i < 12; i++) {
      assert.equal((await probeConsole('vnc', '127.0.0.1', solo.port, 2000)).detail, 'RFB 003.008', `None server, probe ${i + 1}`);
      assert.equal((await probeConsole('vnc', '127.0.0.1', locked.port, 2000, 'vnc-pw')).detail, 'RFB 003.008', `VncAuth server, probe ${i + 1}`);
    }
  } finally {
    await locked.stop();
  }
});

test('a machine with a Wake-on-LAN MAC is sent a magic packet (to wakeAddress, UDP 9) before its console is awaited', async () => {
  const sock = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  await new Promise<void>((resolve, reject) => sock.once('error', reject).bind(9, '127.0.0.1', () => resolve()));
  try {
    await tb.pool('wol', { entitlements: { users: ['alice'], groups: [] } });
    assert.equal((await admin.post('/machines', vnc('wol-01', 'wol', m2.port, { mac: '02:AB:CD:00:00:07' }))).status, 201);
    // Other tests' machines have MACs too (the CSV lab): only this machine's packet counts.
    const expected = magicPacket('02:ab:cd:00:00:07');
    assert.equal(expected.length, 102);
    await until(async () => got.some((p) => p.equals(expected)), 10_000, 'magic packet for 02:ab:cd:00:00:07');
    await until(async () => (await stateOf('wol-01')) === 'ready', 10_000, 'ready');
  } finally {
    sock.close();
  }
});
