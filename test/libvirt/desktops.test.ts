// The libvirt driver against a real libvirtd started by this test (its own mount namespace and
// folders), domains under TCG, through a test broker whose reconcilers run: a pool of two
// desktops boots, consoles answer RFB and require their password, snapshots revert, refresh
// throws the overlay away, the inventory removes an orphan the broker owns but never a foreign
// domain, a killed daemon makes desktops unreachable (not error; marked in the broker and not
// handed out) until it is back, and bad
// inputs give clear errors rather than hangs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { RfbClient } from '../../server/gateway/rfb.client.ts';
import { desktopUuid, vncHello } from '../../server/providers/qemu/machine.ts';
import { domainXml, type LibvirtProvider } from '../../server/providers/libvirt/index.ts';
import type { LibvirtHostConfig } from '../../server/providers/libvirt/config.ts';
import type { DesktopSpec } from '../../server/providers/provider.ts';
import { ensureDemoImage, makeSpec } from '../qemu/helpers.ts';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { TestLibvirtd } from './daemon.ts';
import { hostOf, inGuest, libvirtProvider } from './helpers.ts';

const daemon = new TestLibvirtd('desktops');
let host: LibvirtHostConfig;
let kvm: LibvirtProvider;
let broker: TestBroker | undefined;
let api: ApiClient;
let ids: string[] = [];

interface DesktopBody { id: string; name: string; mac: string; state: string; host: string; user: string; lastError: string; unreachableSince: number }
const desktops = async () => (await api.get('/desktops?pool=lv')).body.desktops as DesktopBody[];

before(async () => {
  ensureDemoImage();
  await daemon.start();
  await daemon.definePool('vdi');
  host = hostOf(daemon, 'h1');
  kvm = libvirtProvider([host]);
  broker = await startTestBroker({
    name: 'libvirt-desktops', providers: [kvm],
    config: { jobs: { enabled: true, leaseTtlMs: 2000, lifecycleIntervalMs: 200, poolSizingIntervalMs: 300, inventoryIntervalMs: 1000, operationTimeoutMs: 120_000 } },
  });
  broker.app.startJobs();
  api = new ApiClient(broker.url);
  api.bearer = (await broker.app.identity.createApiKey(SYSTEM_ACTOR, { name: 'libvirt-test', role: 'admin' })).token;
});

after(async () => {
  await broker?.close();
  await daemon.cleanup();
});

test('a pool of 2 libvirt desktops boots through the broker: unique names, MACs and UUIDs, our metadata, consoles that answer RFB and require their password', { timeout: 240_000 }, async () => {
  const created = await api.post('/pools', {
    ...broker!.pool({ name: 'lv', provider: 'kvm', image: 'demo', naming: 'lv-{n:02}', size: { min: 0, max: 2, spare: 2 } }),
    resources: { vcpu: 1, memoryMiB: 160, diskGiB: 1, network: 'default', graphics: 'vga' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const ready = await waitFor(async () => {
    const d = await desktops();
    return d.filter((x) => x.state === 'ready').length === 2 ? d : null;
  }, 180_000, 500).catch(async (e) => {
    throw new Error(`${(e as Error).message}: ${JSON.stringify((await desktops()).map((x) => [x.name, x.state, x.lastError]))}`);
  });
  ids = ready.map((d) => d.id);
  assert.equal(new Set(ready.map((d) => d.name)).size, 2);
  assert.equal(new Set(ready.map((d) => d.mac)).size, 2);
  assert.ok(ready.every((d) => d.host === 'h1'));

  const running = (await daemon.virsh('list', '--name')).split('\n').map((s) => s.trim()).filter(Boolean).sort();
  assert.deepEqual(running, ready.map((d) => d.name).sort(), 'libvirt runs the two domains under the broker\'s names');
  assert.equal(daemon.qemuPids().length, 2);
  for (const d of ready) {
    const xml = await daemon.virsh('dumpxml', d.name);
    assert.match(xml, new RegExp(`<uuid>${desktopUuid(d.id)}</uuid>`));
    assert.match(xml, new RegExp(`<mac address='${d.mac.toLowerCase()}'/>`));
    assert.match(xml, /<domain type='qemu'/, 'TCG (no KVM here)');
    assert.match(xml, new RegExp(`<vdi:desktop xmlns:vdi="https://vdi-broker.org/xmlns/desktop/1" id="${d.id}" pool="lv"`));
    assert.doesNotMatch(xml, /passwd=/, 'the console password is not in dumpxml without --security-info');
    assert.match(await daemon.virsh('domblklist', d.name), new RegExp(`vdi-${d.id}\\.qcow2`));
  }

  const consoles = await Promise.all(ids.map((id) => kvm.console(id)));
  assert.notEqual(consoles[0]!.port, consoles[1]!.port);
  assert.notEqual(consoles[0]!.password, consoles[1]!.password);
  for (const c of consoles) {
    assert.equal(c.protocol, 'vnc');
    assert.equal(c.host, '127.0.0.1');
    const hello = await vncHello(c.host, c.port);
    assert.equal(hello.version, 'RFB 003.008');
    assert.deepEqual(hello.securityTypes, [2], 'VNC authentication only (no security type None)');
    await assert.rejects(RfbClient.connect({ host: c.host, port: c.port, password: 'wrong-pw', encodings: [0] }));
    const ok = await RfbClient.connect({ host: c.host, port: c.port, password: c.password!, encodings: [0] });
    assert.ok(ok.fb.width > 0);
    ok.close();
  }
  // a restarted broker (a new driver instance) finds the desktops and their console passwords in the domains
  const fresh = libvirtProvider([host]);
  assert.deepEqual((await fresh.inventory()).map((i) => i.desktopId).sort(), [...ids].sort());
  assert.equal((await fresh.console(ids[0]!)).password, consoles[0]!.password);
  // each guest booted with its own name
  for (const d of ready) assert.equal(await inGuest(host, d.id, (sh) => sh.run('cat /run/vdi-name')), d.name);
});

test('snapshot revert brings back the disk and memory state; delete removes it', { timeout: 180_000 }, async () => {
  const id = ids[0]!;
  await inGuest(host, id, (sh) => sh.run('echo before > /run/marker; echo before > /data/marker; sync'));
  const snap = await api.post(`/desktops/${id}/snapshots`, { name: 'clean' });
  assert.equal(snap.status, 201, JSON.stringify(snap.body));
  const list = await api.get(`/desktops/${id}/snapshots`);
  assert.deepEqual(list.body.snapshots.map((s: { name: string }) => s.name), ['clean']);
  await inGuest(host, id, (sh) => sh.run('echo after > /run/marker; echo after > /data/marker; sync'));
  const rev = await api.post(`/desktops/${id}/snapshots/clean/revert`);
  assert.ok(rev.status < 300, JSON.stringify(rev.body));
  assert.equal(await kvm.power(id), 'running');
  assert.equal(await inGuest(host, id, (sh) => sh.run('cat /run/marker /data/marker')), 'before\nbefore');
  assert.equal((await api.request('DELETE', `/desktops/${id}/snapshots/clean`)).status, 204);
  assert.deepEqual(await kvm.snapshotList(id), []);
  // the console still answers with its password after QEMU was restarted by the revert
  const c = await kvm.console(id);
  (await RfbClient.connect({ host: c.host, port: c.port, password: c.password!, encodings: [0] })).close();
});

test('refresh throws the overlay away: a fresh clone of the image, running, console answering', { timeout: 180_000 }, async () => {
  const id = ids[1]!;
  await inGuest(host, id, (sh) => sh.run('echo mine > /data/marker; sync'));
  await kvm.snapshotCreate(id, 'old');
  // A freed inode number is often reused at once: the file's birth time tells a new file apart.
  const identity = () => {
    const st = fs.statSync(path.join(daemon.poolDir, `vdi-${id}.qcow2`));
    return `${st.ino}/${st.birthtimeMs}`;
  };
  const before = identity();
  const r = await api.post(`/desktops/${id}/refresh`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  await waitFor(async () => ((await api.get(`/desktops/${id}`)).body.desktop.state === 'ready' ? true : null), 120_000, 300);
  assert.equal(await kvm.power(id), 'running');
  assert.notEqual(identity(), before, 'a new overlay volume');
  assert.deepEqual(await kvm.snapshotList(id), [], 'snapshots of the old overlay are gone');
  assert.equal(await inGuest(host, id, (sh) => sh.run('cat /data/marker 2>/dev/null || echo none')), 'none');
  assert.match(await daemon.virsh('vol-dumpxml', '--pool', 'vdi', `vdi-${id}.qcow2`), /<backingStore>[\s\S]*vdi-image-demo-1\.qcow2/, 'a linked clone of the image');
});

test('the inventory removes an orphan domain and volume carrying our metadata; a foreign domain is never touched, and its name is refused', { timeout: 120_000 }, async () => {
  const orphan: DesktopSpec = makeSpec('orphan');
  await daemon.virsh('vol-create-as', 'vdi', `vdi-${orphan.id}.qcow2`, '64M', '--format', 'qcow2');
  const file = path.join(daemon.root, 'orphan.xml');
  fs.writeFileSync(file, domainXml({
    spec: orphan, uuid: desktopUuid(orphan.id), virtType: 'qemu', storagePool: 'vdi', volume: `vdi-${orphan.id}.qcow2`, boot: {},
    consoleAddress: '127.0.0.1', password: 'orphanpw', network: 'user',
    meta: { id: orphan.id, pool: 'gone', name: orphan.name, image: 'demo:1', clone: 'linked', provider: 'kvm' },
  }));
  await daemon.virsh('define', file);
  // a machine someone made by hand, with the name the pool's next desktop would get
  const foreignXml = path.join(daemon.root, 'foreign.xml');
  fs.writeFileSync(foreignXml, "<domain type='qemu'><name>lv-03</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os></domain>");
  await daemon.virsh('define', foreignXml);
  const foreignBefore = await daemon.virsh('dumpxml', 'lv-03');

  await waitFor(async () => {
    const doms = await daemon.virsh('list', '--all', '--name');
    return !doms.includes(orphan.name) && !fs.existsSync(path.join(daemon.poolDir, `vdi-${orphan.id}.qcow2`)) ? true : null;
  }, 30_000, 300);

  const spec = makeSpec('collide', { name: 'lv-03', pool: 'lv' });
  await assert.rejects(kvm.create(spec), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'conflict');
    assert.match(e.message, /lv-03 already exists on host h1 \(a machine the broker does not own\); it is left untouched/);
    return true;
  });
  assert.equal(await daemon.virsh('dumpxml', 'lv-03'), foreignBefore, 'the foreign domain is unchanged');
  assert.ok(!fs.existsSync(path.join(daemon.poolDir, `vdi-${spec.id}.qcow2`)), 'no volume left behind');
  assert.equal(await kvm.power(spec.id), 'missing');
  // the broker's own desktops were not disturbed by any of it
  assert.deepEqual((await desktops()).map((d) => d.state), ['ready', 'ready']);
  await daemon.virsh('undefine', 'lv-03');
});

test('a killed libvirtd: desktops are reported unreachable and marked so in the broker (not error), not handed out, nothing is placed there, and they come back when it restarts', { timeout: 180_000 }, async () => {
  const pidsBefore = daemon.qemuPids();
  // a user entitled to the pool, to see what a request gets while the host is down
  await broker!.addUser('dora');
  const patched = await api.patch('/pools/lv', { entitlements: { users: ['dora'], groups: [] } });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  const dora = new ApiClient(broker!.url);
  await dora.login('dora');
  // counts the broker's inventory rounds (the reconciler calls the provider every second)
  let rounds = 0;
  const inventory = kvm.inventory.bind(kvm);
  kvm.inventory = () => {
    rounds += 1;
    return inventory();
  };
  await daemon.kill('SIGKILL');
  // the broker's inventory job runs against the dead daemon
  await waitFor(async () => (kvm.virsh.reachability('h1').reachable ? null : true), 30_000, 200);
  const items = await kvm.inventory();
  assert.deepEqual(items.map((i) => [i.desktopId, i.power]).sort(), ids.map((id) => [id, 'unreachable']).sort());
  assert.equal(await kvm.power(ids[0]!), 'unreachable');
  const hosts = await kvm.hosts();
  assert.equal(hosts[0]!.reachable, false);
  const t0 = Date.now();
  await assert.rejects(kvm.create(makeSpec('nowhere')), /unreachable/);
  assert.ok(Date.now() - t0 < 20_000, 'a clear error, not a hang');
  // two more of the broker's inventory rounds against the dead daemon leave the desktops as they were
  const seen = rounds;
  await waitFor(async () => (rounds >= seen + 2 ? true : null), 30_000, 100);
  assert.deepEqual((await desktops()).map((d) => d.state), ['ready', 'ready'], 'desktops stay ready, not error or deleted');
  // the broker's records carry the mark, and a user's request does not get either desktop
  await waitFor(async () => ((await desktops()).every((d) => d.unreachableSince > 0) ? true : null), 30_000, 200);
  const refused = await dora.post('/me/pools/lv/request');
  assert.equal(refused.status, 503, JSON.stringify(refused.body));
  assert.equal(refused.body.error.code, 'pool_exhausted', 'both desktops are on the dead host and the pool is at its maximum');
  assert.deepEqual((await desktops()).map((d) => [d.state, d.user]), [['ready', ''], ['ready', '']]);
  const hostsApi = await api.get('/hosts');
  assert.equal(hostsApi.status, 200, JSON.stringify(hostsApi.body));
  assert.deepEqual(hostsApi.body.hosts.map((h: { name: string; reachable?: boolean }) => [h.name, h.reachable]), [['h1', false]]);
  const audit = async (action: string) => ((await api.get(`/audit?action=${action}&limit=100`)).body.entries as { target: string }[]).map((e) => e.target).sort();
  assert.deepEqual(await audit('desktop.unreachable'), [...ids].sort(), 'one entry per desktop, however many rounds');

  await daemon.start();
  await waitFor(async () => (kvm.virsh.reachability('h1').reachable ? true : null), 30_000, 200);
  const back = await kvm.inventory();
  assert.deepEqual(back.map((i) => [i.desktopId, i.power]).sort(), ids.map((id) => [id, 'running']).sort());
  assert.deepEqual(daemon.qemuPids().sort(), pidsBefore.sort(), 'the guests kept running through the restart');
  assert.deepEqual((await desktops()).map((d) => d.state), ['ready', 'ready']);
  // the broker unmarks them by itself and hands them out again
  await waitFor(async () => ((await desktops()).every((d) => d.unreachableSince === 0) ? true : null), 30_000, 200);
  assert.deepEqual(await audit('desktop.reachable'), [...ids].sort());
  const served = await dora.post('/me/pools/lv/request');
  assert.equal(served.status, 200, JSON.stringify(served.body));
  assert.ok(ids.includes(served.body.desktop.id));
  const c = await kvm.console(ids[0]!);
  (await RfbClient.connect({ host: c.host, port: c.port, password: c.password!, encodings: [0] })).close();
});

test('bad inputs: an unreachable URI, a missing storage pool and a full host give clear errors, fast, and leave nothing behind', { timeout: 120_000 }, async () => {
  for (const uri of ['qemu+unix:///system?socket=/nonexistent/libvirt-sock', 'qemu+tcp://127.0.0.1:1/system']) {
    const p = libvirtProvider([{ ...host, name: 'gone', uri }]);
    const t0 = Date.now();
    await assert.rejects(p.create(makeSpec('gone')), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'provider_error');
      assert.match(e.message, /unreachable/);
      return true;
    });
    assert.ok(Date.now() - t0 < 15_000, `${uri}: an error within seconds, not a hang`);
    assert.deepEqual((await p.hosts()).map((h) => h.reachable), [false]);
    await assert.rejects(p.inventory(), /unreachable/);
  }

  const noPool = libvirtProvider([{ ...host, storagePool: 'nope' }]);
  await assert.rejects(noPool.create(makeSpec('nopool')), /Storage pool nope does not exist on host h1/);

  const full = libvirtProvider([{ ...host, overcommit: { memory: 0.001 } }]);
  await assert.rejects(full.create(makeSpec('full')), /Not enough capacity on any host .*h1: .*MiB used/);
  await assert.rejects(full.create(makeSpec('full2', { host: 'h1' })), /Not enough capacity on host h1/);
  await assert.rejects(kvm.create(makeSpec('badhost', { host: 'h9' })), /Host h9 is not configured/);

  const vols = fs.readdirSync(daemon.poolDir).filter((f) => /^vdi-t-/.test(f));
  assert.deepEqual(vols, [], 'no volume of a refused desktop');
  const doms = (await daemon.virsh('list', '--all', '--name')).split('\n').map((s) => s.trim()).filter(Boolean);
  assert.equal(doms.length, 2);
});
