// End to end with real VMs (QEMU, TCG) and the broker-run smbd: a user's folder reaches a warm
// spare over SMB at logon through the guest agent, without a restart, and never stays for the
// next user of a floating desktop (persistent and non-persistent pools).
// One broker, one smbd, two pools of one desktop each (booted once for the file); the guests
// are read through their serial console. Every QEMU process and smbd is stopped by pid
// (TestEnv.cleanup, broker close), also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TestEnv, SerialShell } from '../qemu/helpers.ts';
import { directoryImageResolver } from '../../server/providers/qemu/config.ts';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { freePort } from '../support/redis.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import type { QemuProvider } from '../../server/providers/qemu/qemu.provider.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HAVE = fs.existsSync('/usr/sbin/smbd') && fs.existsSync('/usr/lib/x86_64-linux-gnu/libnss_wrapper.so') && process.getuid?.() === 0;
const env = new TestEnv('home');
let tb: TestBroker;
let provider: QemuProvider;
let shareRoot: string;
const shells: SerialShell[] = [];
const RES = { vcpu: 1, memoryMiB: 192, diskGiB: 1, network: 'default', graphics: 'vga' } as const;

async function shell(id: string): Promise<SerialShell> {
  const sh = await SerialShell.open((await provider.serial(id)).socket, 90_000);
  shells.push(sh);
  return sh;
}

const cifsMounts = async (sh: SerialShell) => (await sh.run('awk \'$3 == "cifs" { print $2 }\' /proc/mounts')).split('\n').filter(Boolean);

/** The QEMU process of one desktop (its command line names the desktop's directory). */
function pidOf(id: string): number[] {
  return env.qemuPids().filter((p) => {
    try {
      return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(id);
    } catch {
      return false;
    }
  });
}

function smbdPid(): number {
  return tb.app.shares.shares.shares[0]!.smb!.smbdPid;
}

before(async () => {
  if (!HAVE) return;
  // The demo image built from this tree's guest scripts (logon.sh, logoff.sh, agent), into the
  // test's own dir: the shared data/images build may predate them.
  const images = path.join(env.root, 'images');
  execFileSync('bash', [path.join(REPO, 'scripts/image/build-demo-image.sh'), path.join(images, 'demo/1')], { stdio: 'pipe' });
  shareRoot = path.join(env.root, 'share');
  fs.mkdirSync(shareRoot);
  const port = await freePort();
  provider = env.provider([env.host('h1', { capacity: { vcpu: 8, memoryMiB: 2048 } })], {
    images: directoryImageResolver(images),
    guestForwards: [{ guestAddress: '10.0.2.100', guestPort: 445, host: '127.0.0.1', port }],
  });
  tb = await startTestBroker({
    name: 'qemu-home',
    providers: [provider],
    config: {
      jobs: { enabled: true, inventoryIntervalMs: 1000 },
      // The demo image is not registered in this broker: its desktops run our agent.
      agent: { defaultImageAgent: 'vdi' },
      shares: {
        // A health probe is trusted for ten minutes: the stuck-smbd test gets past the request's
        // check (smbd answered a moment before) and fails at the guest's logon.
        healthCacheMs: 600_000,
        list: [{ name: 'home', root: shareRoot, unc: '', guacdPath: '', createRoot: false, smb: { managed: true, port, dir: path.join(env.root, 'samba'), logonTimeoutMs: 15_000 } }],
      },
    } as never,
  });
  for (const u of ['alice', 'bob', 'carol']) await tb.addUser(u);
  tb.app.startJobs();
  for (const [name, persistence] of [['pf', 'persistent'], ['nf', 'refresh']] as const) {
    await tb.app.broker.pools.create(tb.pool({
      name, provider: 'local', naming: `${name}-{n:02}`, assignment: 'floating', persistence,
      size: { min: 0, max: 1, spare: 1 }, entitlements: { users: ['alice', 'bob', 'carol'], groups: [] }, resources: RES,
    }), SYSTEM_ACTOR);
  }
  const ready = async (pool: string) => (await tb.app.store.desktops.idsInState(pool, 'ready')).length === 1;
  await waitFor(async () => (await ready('pf')) && (await ready('nf')), 240_000, 500);
});

after(async () => {
  for (const s of shells) s.close();
  await tb?.close();
  await env.cleanup();
});

async function launch(user: string, pool: string): Promise<{ client: ApiClient; id: string; session: string; status: number; body: { error?: { code: string } } }> {
  const client = new ApiClient(tb.url);
  assert.equal((await client.login(user)).status, 200);
  const r = await client.post(`/me/pools/${pool}/request`);
  return { client, id: r.body.desktop?.id as string, session: r.body.session?.id as string, status: r.status, body: r.body };
}

test('a warm spare gets the user\'s folder over SMB without a restart: host file in /home/<user>, guest file on the host', { timeout: 300_000 }, async () => {
  assert.ok(HAVE, 'needs root, smbd and libnss_wrapper');
  fs.mkdirSync(path.join(shareRoot, 'alice'), { mode: 0o700, recursive: true });
  fs.writeFileSync(path.join(shareRoot, 'alice', 'from-host.txt'), 'written on the host\n');
  const spare = (await tb.app.store.desktops.idsInState('pf', 'ready'))[0]!;
  const pidBefore = pidOf(spare);
  assert.equal(pidBefore.length, 1);
  const t0 = Date.now();
  const a = await launch('alice', 'pf');
  const ms = Date.now() - t0;
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.equal(a.id, spare);
  assert.deepEqual(pidOf(a.id), pidBefore, 'the desktop\'s QEMU process was not restarted');
  const sh = await shell(a.id);
  assert.deepEqual(await cifsMounts(sh), ['/home/alice']);
  assert.equal(await sh.run('cat /home/alice/from-host.txt'), 'written on the host');
  await sh.run('echo "written in the guest" > /home/alice/from-guest.txt');
  assert.equal(fs.readFileSync(path.join(shareRoot, 'alice', 'from-guest.txt'), 'utf8'), 'written in the guest\n');
  sh.close();
  process.stdout.write(`# request on a warm spare to folder mounted: ${ms} ms\n`);
  assert.equal((await a.client.post(`/me/sessions/${a.session}/logoff`)).status, 200);
});

test('persistent floating: the next user gets the same desktop and never the previous user\'s folder', { timeout: 300_000 }, async () => {
  assert.ok(HAVE);
  const id = (await tb.app.store.desktops.idsInState('pf', 'ready'))[0]!;
  const sh = await shell(id);
  // alice left (previous test): the agent logged her off and unmounted.
  await waitFor(async () => (await cifsMounts(sh)).length === 0, 30_000, 500);
  fs.mkdirSync(path.join(shareRoot, 'bob'), { mode: 0o700, recursive: true });
  fs.writeFileSync(path.join(shareRoot, 'bob', 'bob-own.txt'), 'bob\n');
  const b = await launch('bob', 'pf');
  assert.equal(b.status, 200, JSON.stringify(b.body));
  assert.equal(b.id, id, 'the same desktop');
  assert.deepEqual(await cifsMounts(sh), ['/home/bob']);
  assert.equal(await sh.run('ls -A /home/bob'), 'bob-own.txt');
  assert.equal(await sh.run('ls -A /home/alice 2>/dev/null | wc -l'), '0');
  assert.doesNotMatch(await sh.run('ls -R /home'), /from-guest|from-host/);
  assert.equal((await b.client.post(`/me/sessions/${b.session}/logoff`)).status, 200);
  await waitFor(async () => (await cifsMounts(sh)).length === 0, 30_000, 500);
  sh.close();
});

test('non-persistent floating: the refreshed desktop the next user gets has nothing of the previous user', { timeout: 400_000 }, async () => {
  assert.ok(HAVE);
  const a = await launch('alice', 'nf');
  assert.equal(a.status, 200, JSON.stringify(a.body));
  let sh = await shell(a.id);
  assert.deepEqual(await cifsMounts(sh), ['/home/alice']);
  assert.equal(await sh.run('cat /home/alice/from-host.txt'), 'written on the host');
  sh.close();
  assert.equal((await a.client.post(`/me/sessions/${a.session}/logoff`)).status, 200);
  await waitFor(async () => (await tb.app.store.desktops.get(a.id))?.state === 'ready', 240_000, 500);
  const b = await launch('bob', 'nf');
  assert.equal(b.status, 200, JSON.stringify(b.body));
  assert.equal(b.id, a.id, 'the same (refreshed) desktop');
  sh = await shell(b.id);
  assert.deepEqual(await cifsMounts(sh), ['/home/bob']);
  assert.doesNotMatch(await sh.run('ls -R /home'), /from-host|from-guest/);
  sh.close();
  assert.equal((await b.client.post(`/me/sessions/${b.session}/logoff`)).status, 200);
});

test('smbd stuck: the logon fails with share_unavailable, the desktop goes back, and no folder stays mounted', { timeout: 300_000 }, async () => {
  assert.ok(HAVE);
  const id = (await tb.app.store.desktops.idsInState('pf', 'ready'))[0]!;
  const sh = await shell(id);
  await waitFor(async () => (await cifsMounts(sh)).length === 0, 30_000, 500);
  const pidBefore = pidOf(id);
  const pid = smbdPid();
  process.kill(pid, 'SIGSTOP');
  try {
    const c = await launch('carol', 'pf');
    assert.equal(c.status, 503, JSON.stringify(c.body));
    assert.equal(c.body.error?.code, 'share_unavailable');
    const d = await tb.app.store.desktops.get(id);
    // It failed at the logon (the desktop was taken and given back), not at the share's check.
    const audit = await tb.app.broker.audit.query({ action: 'desktop.request', limit: 20 });
    assert.ok(audit.entries.some((e) => e.outcome === 'failed' && e.details.code === 'share_unavailable' && e.details.desktop === d?.name), JSON.stringify(audit.entries.map((e) => e.details)));
    assert.equal(d?.state, 'ready', 'the desktop went back to the pool');
    assert.equal(d?.session, '');
    assert.deepEqual(pidOf(id), pidBefore, 'not restarted');
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  // Whatever the guest mounted late is logged off (logon's own cleanup, else the reconcile check).
  await waitFor(async () => (await cifsMounts(sh)).length === 0, 120_000, 1000);
});

test('a desktop built while its user waits (no spare) comes up with the user\'s folder mounted (afterReady logon)', { timeout: 400_000 }, async () => {
  assert.ok(HAVE);
  await tb.app.broker.pools.create(tb.pool({
    name: 'wf', provider: 'local', naming: 'wf-{n:02}', assignment: 'floating', persistence: 'refresh',
    size: { min: 0, max: 1, spare: 0 }, entitlements: { users: ['alice'], groups: [] }, resources: RES,
  }), SYSTEM_ACTOR);
  const a = await launch('alice', 'wf');
  assert.equal(a.status, 202, JSON.stringify(a.body));
  await waitFor(async () => (await tb.app.store.desktops.get(a.id))?.state === 'in_use', 300_000, 500);
  const sh = await shell(a.id);
  // Mounted by the lifecycle's afterReady (the request itself answered 202 before any logon).
  assert.deepEqual(await cifsMounts(sh), ['/home/alice']);
  assert.equal(await sh.run('cat /home/alice/from-host.txt'), 'written on the host');
  sh.close();
  const s = await tb.app.store.sessions.get(a.session);
  assert.ok(s, 'the session is there');
});
