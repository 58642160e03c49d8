// Live migration between two libvirt daemons acting as two hosts, each in its own network and
// mount namespace joined by a veth pair: running TCG desktops move (in-guest counter keeps
// counting, same boot), consoles answer on the new host with their password, source domains
// are gone — a drain through the broker over a shared storage pool, and one desktop copying
// its disk; both report progress while they run (bandwidth-capped to last a few samples).
// Then a full clone's lifecycle on one host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { LibvirtProvider } from '../../server/providers/libvirt/index.ts';
import type { LibvirtHostConfig } from '../../server/providers/libvirt/config.ts';
import type { MigrationProgress } from '../../server/providers/provider.ts';
import { parseJobInfo } from '../../server/providers/libvirt/migrate.ts';
import { ensureDemoImage, makeSpec } from '../qemu/helpers.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { ApiClient, startTestBroker, waitFor, type TestBroker } from '../support/harness.ts';
import { ROOT } from '../support/process.ts';
import { TestLibvirtd, linkHosts } from './daemon.ts';
import { hostOf, inGuest, libvirtProvider } from './helpers.ts';

const pexec = promisify(execFile);
const A = new TestLibvirtd('mig-a', { listen: '10.231.77.1' });
const B = new TestLibvirtd('mig-b', { listen: '10.231.77.2' });
const shared = fs.mkdtempSync(path.join(A.root, 'shared-'));
let h1: LibvirtHostConfig;
let h2: LibvirtHostConfig;
let kvm: LibvirtProvider;
let broker: TestBroker | undefined;

/** The consoles listen inside the hosts' network namespaces: start() reads the RFB banner from there. */
async function bannerInNs(h: LibvirtHostConfig, address: string, port: number): Promise<string> {
  const d = h.name === 'h1' ? A : B;
  const { stdout } = await pexec('nsenter', [`--net=${d.netns}`, 'timeout', '2', 'bash', '-c', 'exec 3<>/dev/tcp/"$0"/"$1" && head -c 12 <&3', address, String(port)]);
  return stdout.trim();
}

before(async () => {
  ensureDemoImage();
  A.spawn();
  B.spawn();
  await linkHosts(A, B, '10.231.77.1', '10.231.77.2');
  for (const d of [A, B]) {
    await d.definePool('vdi-shared', shared);
    await d.definePool('vdi');
  }
  const common = { accel: 'tcg' as const, network: 'user' };
  h1 = hostOf(A, 'h1', { ...common, consoleAddress: '10.231.77.1', migrationUri: 'qemu+tcp://10.231.77.1/system', migrationAddress: '10.231.77.1' });
  h2 = hostOf(B, 'h2', { ...common, consoleAddress: '10.231.77.2', migrationUri: 'qemu+tcp://10.231.77.2/system', migrationAddress: '10.231.77.2' });
});

after(async () => {
  await broker?.close();
  await A.cleanup();
  await B.cleanup();
});

async function consoleAnswers(d: TestLibvirtd, c: { host: string; port: number; password?: string }): Promise<string> {
  const { stdout } = await pexec('nsenter', [`--net=${d.netns}`, process.execPath, '--import', 'tsx', path.join(ROOT, 'test/libvirt/console-check.ts'), c.host, String(c.port), c.password!], { cwd: ROOT, timeout: 30_000 });
  return stdout.trim();
}

/** A bandwidth cap on the source (MiB/s) so a migration lasts a few progress samples. */
async function slowMigrations(...doms: string[]): Promise<void> {
  for (const dom of doms) await A.virsh('migrate-setspeed', dom, '--bandwidth', '8');
}

async function moveAndCheck(pool: 'shared' | 'copy'): Promise<void> {
  const sharedStorage = pool === 'shared';
  const storagePool = sharedStorage ? 'vdi-shared' : 'vdi';
  kvm = libvirtProvider([{ ...h1, storagePool, sharedStorage }, { ...h2, storagePool, sharedStorage }], {
placement: 'depth', consoleBanner: bannerInNs });
  const spec = makeSpec(`mig-${pool}`);
  assert.equal((await kvm.create(spec)).host, 'h1');
  await kvm.start(spec.id);
  const src = { ...h1 };
  const bootId = await inGuest(src, spec.id, (sh) => sh.run('cat /run/boot-id'));
  const c1 = Number(await inGuest(src, spec.id, (sh) => sh.run('cat /run/counter')));
  const before = await kvm.console(spec.id);
  assert.equal(before.host, '10.231.77.1');

  await slowMigrations(spec.name);
  const samples: MigrationProgress[] = [];
  const result = await kvm.migrate(spec.id, 'h2', { onProgress: (p) => samples.push(p) });
  assert.ok(samples.some((p) => p.percent > 0 && p.percent < 100 && p.transferredBytes > 0 && p.remainingBytes > 0), `progress reported while running: ${JSON.stringify(samples)}`);
  assert.equal(result.fromHost, 'h1');
  assert.equal(result.toHost, 'h2');
  assert.ok(result.durationMs > 0 && result.durationMs < 120_000, `duration ${result.durationMs} ms`);

  assert.equal((await kvm.inventory()).find((i) => i.desktopId === spec.id)?.host, 'h2');
  assert.equal(await kvm.power(spec.id), 'running');
  assert.doesNotMatch(await A.virsh('list', '--all', '--name'), new RegExp(spec.name), 'the source domain is gone');
  assert.match(await B.virsh('list', '--name'), new RegExp(spec.name));
  const after = await kvm.console(spec.id);
  assert.equal(after.host, '10.231.77.2', 'the console endpoint follows the desktop');
  assert.equal(after.password, before.password);
  assert.equal(await consoleAnswers(B, after), 'ok');
  await inGuest({ ...h2 }, spec.id, async (sh) => {
    assert.equal(await sh.run('cat /run/boot-id'), bootId, 'the same boot: moved live, not restarted');
    await waitFor(async () => (Number(await sh.run('cat /run/counter')) > c1 ? true : null), 20_000, 300);
  });
  if (!sharedStorage) assert.ok(!fs.existsSync(path.join(A.poolDir, `vdi-${spec.id}.qcow2`)), 'the copied-from volume is removed');
  await kvm.destroy(spec.id);
  assert.equal(await kvm.power(spec.id), 'missing');
}

test('virsh domjobinfo of a running migration is read as progress; no job is no progress', () => {
  const job = ['Job type:         Unbounded', 'Operation:        Outgoing migration', 'Time elapsed:     1523         ms',
    'Data processed:   12.148 MiB', 'Data remaining:   150.355 MiB', 'Data total:       168.754 MiB',
    'Memory processed: 12.148 MiB', 'Memory remaining: 150.355 MiB', 'Memory total:     168.754 MiB', 'Memory bandwidth: 8.000 MiB/s', ''].join('\n');
  assert.deepEqual(parseJobInfo(job), {
    percent: 10.9, transferredBytes: Math.round(12.148 * 1024 ** 2), remainingBytes: Math.round(150.355 * 1024 ** 2), totalBytes: Math.round(168.754 * 1024 ** 2),
  });
  assert.equal(parseJobInfo('Job type:         None\n'), undefined);
});

test('draining a libvirt host live-migrates every running desktop over the shared pool: guests keep running, consoles move with their passwords, source domains gone', { timeout: 300_000 }, async () => {
  kvm = libvirtProvider([{ ...h1, storagePool: 'vdi-shared', sharedStorage: true }, { ...h2, storagePool: 'vdi-shared', sharedStorage: true }], { placement: 'depth', consoleBanner: bannerInNs });
  broker = await startTestBroker({
    name: 'libvirt-drain', providers: [kvm],
    config: { jobs: { enabled: true, leaseTtlMs: 2000, lifecycleIntervalMs: 200, poolSizingIntervalMs: 300, inventoryIntervalMs: 60_000, drainIntervalMs: 200, operationTimeoutMs: 120_000 } },
  });
  broker.app.startJobs();
  const api = new ApiClient(broker.url);
  api.bearer = (await broker.app.identity.createApiKey(SYSTEM_ACTOR, { name: 'libvirt-drain', role: 'admin' })).token;
  const created = await api.post('/pools', {
    ...broker.pool({ name: 'ld', provider: 'kvm', image: 'demo', naming: 'ld-{n:02}', size: { min: 0, max: 2, spare: 2 } }),
    resources: { vcpu: 1, memoryMiB: 160, diskGiB: 1, network: 'default', graphics: 'vga' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const ready = await waitFor(async () => {
    const d = (await api.get('/desktops?pool=ld')).body.desktops as { id: string; name: string; state: string; host: string }[];
    return d.filter((x) => x.state === 'ready').length === 2 ? d : null;
  }, 180_000, 500);
  assert.deepEqual(ready.map((d) => d.host), ['h1', 'h1'], 'depth-first placement fills h1');
  const before = new Map<string, { boot: string; counter: number; password: string }>();
  for (const d of ready) {
    const [boot, counter] = await inGuest(h1, d.id, async (sh) => [await sh.run('cat /run/boot-id'), Number(await sh.run('cat /run/counter'))] as const);
    before.set(d.id, { boot, counter, password: (await kvm.console(d.id)).password! });
  }

  await slowMigrations(...ready.map((d) => d.name));
  const r = await api.post('/hosts/kvm/h1/drain');
  assert.equal(r.status, 202, JSON.stringify(r.body));
  // While a desktop moves, its record shows the latest progress sample.
  const seen: unknown[] = [];
  const done = await waitFor(async () => {
    for (const d of ready) {
      const m = (await api.get(`/desktops/${d.id}`)).body.desktop.migration as { toHost: string; percent: number; transferredBytes: number } | undefined;
      if (m) seen.push(m);
    }
    const d = (await api.get('/hosts/kvm/h1/drain')).body.drain as { state: string; progress: unknown };
    return d.state === 'running' ? null : d;
  }, 180_000, 100);
  assert.ok(seen.some((m) => {
    const x = m as { toHost: string; percent: number; transferredBytes: number };
    return x.toHost === 'h2' && x.percent > 0 && x.percent < 100 && x.transferredBytes > 0;
  }), `migration progress visible on the desktop while it moved: ${JSON.stringify(seen.slice(0, 20))}`);
  assert.equal(done.state, 'done', JSON.stringify(done));
  assert.deepEqual(done.progress, { total: 2, moved: 2, failed: 0, pending: 0 });

  assert.equal((await A.virsh('list', '--all', '--name')).trim(), '', 'no domain left on the drained host');
  for (const d of ready) {
    const rec = (await api.get(`/desktops/${d.id}`)).body.desktop;
    assert.equal(rec.host, 'h2');
    assert.equal(rec.migration, undefined, 'the progress is cleared when the migration is done');
    const c = await kvm.console(d.id);
    assert.equal(c.host, '10.231.77.2', 'the console endpoint follows the desktop');
    assert.equal(c.password, before.get(d.id)!.password);
    assert.equal(await consoleAnswers(B, c), 'ok');
    await inGuest(h2, d.id, async (sh) => {
      assert.equal(await sh.run('cat /run/boot-id'), before.get(d.id)!.boot, 'the same boot: moved live');
      await waitFor(async () => (Number(await sh.run('cat /run/counter')) > before.get(d.id)!.counter ? true : null), 20_000, 300);
    });
  }
  const hosts = (await api.get('/hosts')).body.hosts as { provider: string; name: string; maintenance: boolean; used: { desktops: number } }[];
  const mine = hosts.filter((h) => h.provider === 'kvm').map((h) => [h.name, h.maintenance, h.used.desktops]);
  assert.deepEqual(mine, [['h1', true, 0], ['h2', false, 2]]);
  for (const d of ready) await kvm.destroy(d.id);
  await broker.close();
  broker = undefined;
});

test('live migration with storage copy between two namespaced libvirt hosts', { timeout: 240_000 }, async () => {
  await moveAndCheck('copy');
});

test('a full clone on a libvirt host: independent disk, hard reboot starts a new boot, stop powers off by ACPI before the timeout, destroy removes domain and volume', { timeout: 240_000 }, async () => {
  kvm = libvirtProvider([h1], { consoleBanner: bannerInNs });
  const spec = makeSpec('full', { clone: 'full' }, { diskGiB: 1 });
  await kvm.create(spec);
  const vol = await A.virsh('vol-dumpxml', '--pool', 'vdi', `vdi-${spec.id}.qcow2`);
  assert.doesNotMatch(vol, /<backingStore>\s*<path>/, 'no backing file');
  assert.match(vol, /<capacity unit='bytes'>1073741824<\/capacity>/, 'resized to diskGiB');
  await kvm.start(spec.id);
  const boot1 = await inGuest(h1, spec.id, (sh) => sh.run('cat /run/boot-id'));
  await kvm.reboot(spec.id, { hard: true });
  await waitFor(async () => {
    const b = await inGuest(h1, spec.id, (sh) => sh.run('cat /run/boot-id')).catch(() => boot1);
    return b !== boot1 ? b : null;
  }, 120_000, 500);
  const t0 = Date.now();
  await kvm.stop(spec.id, { timeoutMs: 60_000 });
  assert.ok(Date.now() - t0 < 30_000, `ACPI power-off took ${Date.now() - t0} ms`);
  assert.equal(await kvm.power(spec.id), 'stopped');
  await kvm.destroy(spec.id);
  assert.equal(await kvm.power(spec.id), 'missing');
  assert.ok(!fs.existsSync(path.join(A.poolDir, `vdi-${spec.id}.qcow2`)));
  await kvm.destroy(spec.id); // idempotent
});
