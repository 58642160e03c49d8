// The doctor (docs/doctor.md) against real faults: one broker (in-process, QEMU + manual
// providers built from its configuration), one QEMU guest running Debian's qemu-guest-agent,
// a broker-run smbd (ManagedSamba). Faults injected for real: smbd stopped, the guest's clock
// set 10 minutes back (guest-exec date), an unmanaged QEMU process with the guest's MAC, a
// machine whose console port is free (refused) and one behind an iptables DROP rule on
// loopback (filtered). Also: the report's stable shape, KVM's status with its reason, the CLI
// (--json, exit 1 on a failure) and admin-only access. Every process and rule is removed after.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createBrokerApp, createHttpServer, type BrokerApp } from '../../server/app.ts';
import { createLogger } from '../../server/observability/index.ts';
import { SYSTEM_ACTOR, type Desktop } from '../../server/broker/index.ts';
import { ManagedSamba } from '../../server/shares/index.ts';
import { formatReport, type DoctorReport, type CheckResult } from '../../server/doctor/index.ts';
import { testConfig, ApiClient, PASSWORD, waitFor } from '../support/harness.ts';
import { uniquePrefix, dropPrefix, freePort, SHARED_REDIS_URL } from '../support/redis.ts';
import { qemuPidsUnder, stopChild, ROOT } from '../support/process.ts';

const HAVE = fs.existsSync('/usr/sbin/qemu-ga') && fs.existsSync('/usr/sbin/smbd') && fs.existsSync('/usr/lib/x86_64-linux-gnu/libnss_wrapper.so') && process.getuid?.() === 0;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vdi-doctor-'));
const prefix = uniquePrefix('doctor');
let app: BrokerApp | undefined;
let server: Server | undefined;
let url = '';
let samba: ManagedSamba | undefined;
let intruder: ChildProcess | undefined;
let desktop: Desktop;
let dropRule: string[] | undefined;
let refusedPort = 0;
let filteredPort = 0;
let configFile = '';

const iptables = (op: '-I' | '-D', rule: string[]) => spawnSync('iptables', [op, ...rule], { encoding: 'utf8' });

before(async () => {
  if (!HAVE) return;
  const imageDir = path.join(tmp, 'image');
  execFileSync('bash', [path.join(ROOT, 'scripts/image/build-qga-image.sh'), imageDir], { stdio: 'pipe' });
  const shareRoot = path.join(tmp, 'share');
  fs.mkdirSync(shareRoot);
  const smbPort = await freePort();
  samba = new ManagedSamba({ share: 'home', root: shareRoot, dir: path.join(tmp, 'samba'), address: '127.0.0.1', port: smbPort, startTimeoutMs: 20_000, logger: createLogger('silent') });
  await samba.start();
  const over = {
    jobs: { enabled: true, inventoryIntervalMs: 2000 },
    // QEMU under TCG loads this 2-core machine: give Redis commands room before they count as a stall.
    redis: { commandTimeoutMs: 10_000 },
    // A MAC range of this test's own: other brokers' desktops on the machine (tests running at the
    // same time) draw from the default range, and would collide with ours for real.
    desktops: { macPrefix: `0e:${crypto.randomBytes(2).toString('hex').match(/../g)!.join(':')}` },
    images: { dir: path.join(tmp, 'images') },
    shares: { list: [{ name: 'home', root: shareRoot, unc: '', guacdPath: '', createRoot: true, smb: { managed: false, address: '127.0.0.1', port: smbPort } }] },
    providers: [
      { name: 'local', kind: 'qemu', accel: 'tcg', stopTimeoutMs: 15000, hosts: [{ name: 'h1', dataDir: path.join(tmp, 'h1'), capacity: { vcpu: 8, memoryMiB: 4096 } }] },
      { name: 'lab', kind: 'manual', healthIntervalMs: 500, probeTimeoutMs: 500, startTimeoutMs: 1000, wakeAddress: '127.0.0.1' },
    ],
  };
  const config = testConfig(prefix, over as never);
  // The CLI reads the same configuration (JSON is YAML).
  configFile = path.join(tmp, 'broker.yaml');
  fs.writeFileSync(configFile, JSON.stringify({ ...over, redis: { url: SHARED_REDIS_URL, keyPrefix: prefix, autoStart: false } }));
  app = await createBrokerApp({ config, logger: createLogger('silent'), providers: 'configured' });
  server = createHttpServer(app);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const hash = await (await import('argon2')).default.hash(PASSWORD, { type: 2, memoryCost: 1024, timeCost: 1 });
  await app.store.users.create({ id: 'root', displayName: 'Admin', role: 'admin', passwordHash: hash, groups: [] });
  await app.store.users.create({ id: 'desk', displayName: 'Helpdesk', role: 'helpdesk', passwordHash: hash, groups: [] });
  await app.broker.images.create(SYSTEM_ACTOR, 'qga', 'qemu-guest-agent only');
  await app.broker.images.addVersion(SYSTEM_ACTOR, 'qga', { path: imageDir, publish: true });
  const pool = {
    displayName: 'Doctor', description: '', assignment: 'floating' as const, persistence: 'refresh' as const, clone: 'linked' as const, entitlements: { users: [] as string[], groups: [] as string[] },
    sessionPolicy: { idleTimeoutSeconds: 0, logoffAfterDisconnectSeconds: 900, maxSessionSeconds: 0 }, enabled: true, maintenance: false,
  };
  await app.broker.pools.create({ ...pool, name: 'dq', naming: 'dq-{n:02}', image: 'qga', provider: 'local', size: { min: 0, max: 1, spare: 1 }, resources: { vcpu: 1, memoryMiB: 160, diskGiB: 0, network: 'default', graphics: 'vga' as const } }, SYSTEM_ACTOR);
  await app.broker.pools.create({ ...pool, name: 'lab', naming: 'lab-{n:02}', image: 'none', provider: 'lab', persistence: 'persistent', size: { min: 0, max: 0, spare: 0 }, resources: { vcpu: 1, memoryMiB: 256, diskGiB: 4, network: 'default', graphics: 'vga' as const } }, SYSTEM_ACTOR);
  app.startJobs();
  desktop = await waitFor(async () => {
    const [id] = await app!.store.desktops.idsInState('dq', 'ready');
    return id ? await app!.store.desktops.get(id) : null;
  }, 240_000, 500);
  // The agents pass holds a qga channel once the desktop is ready: wait until it tells the time.
  await waitFor(async () => (await app!.agents.guestTime(desktop.id, 2000).catch(() => undefined)) ?? null, 30_000, 300);
});

after(async () => {
  if (dropRule) iptables('-D', dropRule);
  if (intruder) await stopChild(intruder);
  if (server) {
    server.closeAllConnections();
    await new Promise<void>((r) => server!.close(() => r()));
  }
  await app?.close();
  await samba?.stop();
  for (const pid of qemuPidsUnder(tmp)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await dropPrefix(SHARED_REDIS_URL, prefix);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const find = (r: DoctorReport, id: string, target?: string): CheckResult[] => r.checks.filter((c) => c.id === id && (target === undefined || c.target === target));

function assertShape(r: DoctorReport): void {
  assert.equal(r.version, 1);
  assert.ok(!Number.isNaN(Date.parse(r.ranAt)));
  assert.equal(typeof r.durationMs, 'number');
  assert.deepEqual(Object.keys(r.summary).sort(), ['fail', 'ok', 'warn']);
  for (const s of ['ok', 'warn', 'fail'] as const) assert.equal(r.summary[s], r.checks.filter((c) => c.status === s).length);
  for (const c of r.checks) {
    assert.match(c.id, /^[a-z]+\.[a-z-]+$/);
    assert.ok(['ok', 'warn', 'fail', 'skipped'].includes(c.status), c.status);
    assert.ok(c.target && c.message, JSON.stringify(c));
    if (c.status === 'warn' || c.status === 'fail') assert.ok(c.fix, `a fix for ${c.id} ${c.target}`);
  }
}

test('doctor: a healthy broker, then real faults (smbd stopped, guest clock 10 min back, duplicate MAC, refused and filtered ports), through the API and the CLI; admins only', { timeout: 240_000 }, async () => {
  assert.ok(HAVE, 'needs qemu-guest-agent, smbd, libnss-wrapper and root');
  const admin = new ApiClient(url);
  assert.equal((await admin.login('root')).status, 200);
  const desk = new ApiClient(url);
  assert.equal((await desk.login('desk')).status, 200);
  const denied = await desk.get('/doctor');
  assert.equal(denied.status, 403, 'helpdesk may not run the doctor');
  assert.equal(denied.body.error.code, 'forbidden');

  // Healthy: the guest's console answers, smbd answers SMB, the guest's clock is right.
  const t0 = Date.now();
  const first = await admin.get('/doctor');
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const r1 = first.body as DoctorReport;
  assertShape(r1);
  assert.ok(Date.now() - t0 < 15_000, `the doctor runs in seconds (${Date.now() - t0} ms)`);
  assert.equal(find(r1, 'reach.console', desktop.name)[0]?.status, 'ok', JSON.stringify(find(r1, 'reach.console')));
  assert.equal(find(r1, 'reach.share')[0]?.status, 'ok', JSON.stringify(find(r1, 'reach.share')));
  assert.equal(find(r1, 'reach.redis')[0]?.status, 'ok');
  const g1 = find(r1, 'clock.guest', desktop.name)[0];
  assert.equal(g1?.status, 'ok', JSON.stringify(g1));
  assert.ok(find(r1, 'clock.replica').some((c) => c.status === 'ok'), 'this replica published its clock');
  assert.equal(find(r1, 'identity.mac', 'all machines')[0]?.status, 'ok');
  // KVM: works, or says why not (on our CI machines: "failed to set MSR 0x10a") and what TCG costs.
  const kvm = find(r1, 'kvm.qemu')[0]!;
  assert.ok(kvm, 'a KVM check for the QEMU provider');
  if (kvm.details?.kvm === false) {
    assert.equal(kvm.status, 'warn');
    assert.ok(String(kvm.details.reason).length > 0 && kvm.details.cause, JSON.stringify(kvm));
    assert.match(kvm.message, /TCG/);
    if (/MSR/.test(String(kvm.details.reason))) assert.equal(kvm.details.cause, 'msr');
  } else assert.equal(kvm.status, 'ok');

  // Faults.
  await samba!.stop();
  const back = new Date(Date.now() - 600_000).toISOString().replace('T', ' ').slice(0, 19);
  const set = await app!.agents.exec(desktop, { path: '/bin/date', args: ['-u', '-s', back] }, { allow: true, timeoutMs: 30_000 });
  assert.equal(set.exitcode, 0, set.stderr);
  intruder = spawn('qemu-system-x86_64', ['-S', '-machine', 'q35', '-accel', 'tcg', '-m', '16', '-nodefaults', '-display', 'none', '-name', 'guest=intruder',
    '-nic', `user,model=e1000,mac=${desktop.mac}`], { stdio: 'ignore' });
  refusedPort = await freePort();
  filteredPort = await freePort();
  dropRule = ['INPUT', '-i', 'lo', '-p', 'tcp', '--dport', String(filteredPort), '-j', 'DROP'];
  const ipt = iptables('-I', dropRule);
  assert.equal(ipt.status, 0, ipt.stderr);
  for (const [name, port] of [['m-refused', refusedPort], ['m-filtered', filteredPort]] as const) {
    const r = await admin.post('/machines', { name, pool: 'lab', protocol: 'vnc', address: '127.0.0.1', port, password: 'lab-secret' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  await waitFor(async () => (fs.existsSync(`/proc/${intruder!.pid}/cmdline`) ? true : null), 5000, 50);

  const t1 = Date.now();
  const second = await admin.get('/doctor');
  const ms = Date.now() - t1;
  assert.equal(second.status, 200);
  const r2 = second.body as DoctorReport;
  assertShape(r2);
  assert.ok(ms < 15_000, `the doctor runs in seconds (${ms} ms)`);
  assert.ok(r2.summary.fail >= 5, JSON.stringify(r2.summary));

  const share = find(r2, 'reach.share')[0]!;
  assert.equal(share.status, 'fail');
  assert.equal(share.details?.state, 'refused');
  assert.match(share.message, /refused/);

  const g2 = find(r2, 'clock.guest', desktop.name)[0]!;
  assert.equal(g2.status, 'fail', JSON.stringify(g2));
  const off = Number(g2.details?.offsetMs);
  assert.ok(off < -590_000 && off > -620_000, `guest offset ${off} ms`);
  assert.match(g2.message, /Kerberos/);

  const dup = find(r2, 'identity.mac', desktop.mac)[0]!;
  assert.equal(dup?.status, 'fail', JSON.stringify(find(r2, 'identity.mac')));
  const machines = dup.details?.machines as string[];
  assert.equal(machines.length, 2);
  assert.ok(machines.some((m) => m.includes(desktop.name)), machines.join('; '));
  assert.ok(machines.some((m) => m.includes(`QEMU process ${intruder!.pid} (not started by this broker)`)), machines.join('; '));

  const refused = find(r2, 'reach.console', 'm-refused')[0]!;
  assert.equal(refused.status, 'fail');
  assert.equal(refused.details?.state, 'refused');
  const filtered = find(r2, 'reach.console', 'm-filtered')[0]!;
  assert.equal(filtered.status, 'fail');
  assert.equal(filtered.details?.state, 'filtered', JSON.stringify(filtered));
  assert.match(filtered.fix!, /firewall/);
  assert.equal(find(r2, 'reach.console', desktop.name)[0]?.status, 'ok');

  // The CLI: same checks from the configuration (no agents: guest clocks skipped), exit 1.
  const cli = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'server/cli.ts'), '--config', configFile, 'doctor', '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 90_000, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root' } });
  assert.equal(cli.status, 1, cli.stderr);
  const r3 = JSON.parse(cli.stdout) as DoctorReport;
  assertShape(r3);
  assert.equal(find(r3, 'reach.share')[0]?.details?.state, 'refused');
  assert.equal(find(r3, 'reach.console', 'm-filtered')[0]?.details?.state, 'filtered');
  assert.equal(find(r3, 'reach.console', desktop.name)[0]?.status, 'ok', 'the CLI reads the QEMU console from the desktop state');
  assert.equal(find(r3, 'identity.mac', desktop.mac)[0]?.status, 'fail');
  assert.equal(find(r3, 'clock.guest')[0]?.status, 'skipped');
  // The human table (the CLI's default output) names each failure and its fix; no secret in either.
  const table = formatReport(r3);
  assert.match(table, /FAIL\s+reach\.console\s+m-refused/);
  assert.match(table, /fix: /);
  assert.ok(!cli.stdout.includes('lab-secret') && !table.includes('lab-secret'), 'no console password in the output');
});
