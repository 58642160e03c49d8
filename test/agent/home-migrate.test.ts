// Issue 12's acceptance tests with a user's folder mounted over SMB (docs/shares.md, docs/agent.md):
// live migration and memory snapshots of a desktop whose guest has the user's home mounted, and a
// user typing into their shell through the tunnel. Real VMs (QEMU, TCG), the broker-run smbd on a
// loopback port, reached by guests through the QEMU driver's guest forward, and one QEMU provider
// with two hosts (two data dirs) so a desktop can move. One pool of one persistent floating desktop,
// booted once for the file; guests are driven through their serial console (root shell on ttyS0).
// Every QEMU process and smbd is stopped by pid (TestEnv.cleanup, broker close), also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TestEnv, SerialShell, vgaTextScreen } from '../qemu/helpers.ts';
import { directoryImageResolver } from '../../server/providers/qemu/config.ts';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { freePort } from '../support/redis.ts';
import { TunnelClient } from '../tunnel/support/tunnel-client.ts';
import { SYSTEM_ACTOR, type Desktop } from '../../server/broker/index.ts';
import type { QemuProvider } from '../../server/providers/qemu/qemu.provider.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HAVE = fs.existsSync('/usr/sbin/smbd') && fs.existsSync('/usr/lib/x86_64-linux-gnu/libnss_wrapper.so') && process.getuid?.() === 0;
const POOL = 'hm';
const RES = { vcpu: 1, memoryMiB: 192, diskGiB: 1, network: 'default', graphics: 'vga' } as const;
/** A reconnecting SMB client (echo_interval=5 in logon.sh) notices a dead connection within about 2 echoes. */
const SMB_GAP_BOUND_MS = 30_000;
const REVERT_WRITE_BOUND_MS = 60_000;

const env = new TestEnv('home-migrate');
let tb: TestBroker;
let provider: QemuProvider;
let shareRoot: string;
let helpdesk: ApiClient;
const shells: SerialShell[] = [];
const tunnels: TunnelClient[] = [];

interface Launched { user: string; client: ApiClient; id: string; session: string }
let current: Launched | undefined;

async function shell(id: string): Promise<SerialShell> {
  const sh = await SerialShell.open((await provider.serial(id)).socket, 120_000);
  shells.push(sh);
  return sh;
}

const cifsMounts = async (sh: SerialShell) => (await sh.run('awk \'$3 == "cifs" { print $2 }\' /proc/mounts')).split('\n').filter(Boolean);
const uptime = async (sh: SerialShell) => Number((await sh.run('cut -d" " -f1 /proc/uptime')).trim());
const desktop = async (id: string): Promise<Desktop> => (await tb.app.store.desktops.get(id))!;

before(async () => {
  if (!HAVE) return;
  // The demo image built from this tree's guest scripts (logon.sh, agent), into the test's own
  // dir: the shared data/images build may predate them.
  const images = path.join(env.root, 'images');
  execFileSync('bash', [path.join(REPO, 'scripts/image/build-demo-image.sh'), path.join(images, 'demo/1')], { stdio: 'pipe' });
  shareRoot = path.join(env.root, 'share');
  fs.mkdirSync(shareRoot);
  const port = await freePort();
  provider = env.provider([
    env.host('h1', { capacity: { vcpu: 4, memoryMiB: 1024 } }),
    env.host('h2', { capacity: { vcpu: 4, memoryMiB: 1024 } }),
  ], {
    images: directoryImageResolver(images),
    // Both hosts are this machine: each host's QEMU forwards the guest's SMB to the same smbd.
    guestForwards: [{ guestAddress: '10.0.2.100', guestPort: 445, host: '127.0.0.1', port }],
  });
  tb = await startTestBroker({
    name: 'home-migrate',
    providers: [provider],
    config: {
      jobs: { enabled: true, inventoryIntervalMs: 1000 },
      agent: { defaultImageAgent: 'vdi' },
      shares: {
        list: [{ name: 'home', root: shareRoot, unc: '', guacdPath: '', createRoot: false, smb: { managed: true, port, dir: path.join(env.root, 'samba'), logonTimeoutMs: 20_000 } }],
      },
    } as never,
  });
  for (const u of ['alice', 'bob']) await tb.addUser(u);
  await tb.addUser('helen', 'helpdesk');
  helpdesk = new ApiClient(tb.url);
  assert.equal((await helpdesk.login('helen')).status, 200);
  tb.app.startJobs();
  await tb.app.broker.pools.create(tb.pool({
    name: POOL, provider: 'local', naming: 'hm-{n:02}', assignment: 'floating', persistence: 'persistent',
    size: { min: 0, max: 1, spare: 1 }, entitlements: { users: ['alice', 'bob'], groups: [] }, resources: RES,
  }), SYSTEM_ACTOR);
  await waitFor(async () => (await tb.app.store.desktops.idsInState(POOL, 'ready')).length === 1, 300_000, 500);
});

after(async () => {
  for (const t of tunnels) t.close();
  for (const s of shells) s.close();
  await tb?.close();
  await env.cleanup();
});

/** The user's live session on the pool's desktop: kept if they have one, else the previous user logs off and they launch. */
async function session(user: string): Promise<Launched> {
  if (current) {
    const s = await tb.app.store.sessions.get(current.session);
    if (current.user === user && s && s.state !== 'ended') return current;
    if (s && s.state !== 'ended') assert.equal((await current.client.post(`/me/sessions/${current.session}/logoff`)).status, 200);
    current = undefined;
  }
  await waitFor(async () => (await tb.app.store.desktops.idsInState(POOL, 'ready')).length === 1, 300_000, 500);
  const client = new ApiClient(tb.url);
  assert.equal((await client.login(user)).status, 200);
  const r = await client.post(`/me/pools/${POOL}/request`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  current = { user, client, id: r.body.desktop.id as string, session: r.body.session.id as string };
  return current;
}

/** Opens the user's session through the tunnel as a browser does; resolves at the first drawn frame (image data, then sync). */
async function openConsole(l: Launched): Promise<TunnelClient> {
  const t = await l.client.post(`/me/sessions/${l.session}/connect`);
  assert.equal(t.status, 200, JSON.stringify(t.body));
  const tunnel = new TunnelClient(tb.url, { ticket: t.body.ticket, as: { cookie: l.client.cookie, bearer: '' }, query: 'width=1024&height=768' });
  tunnels.push(tunnel);
  await tunnel.ready(120_000);
  await tunnel.next((i) => i.opcode === 'img' || i.opcode === 'png' || i.opcode === 'jpeg', 120_000);
  await tunnel.next((i) => i.opcode === 'sync', 120_000);
  return tunnel;
}

/** X11 keysyms: printable Latin-1 is its code point; Return is 0xff0d. */
const keysym = (ch: string): number => (ch === '\n' ? 0xff0d : ch.codePointAt(0)!);
const SHIFT_L = 0xffe1;
/** Characters typed with Shift on a US keyboard. */
const SHIFTED = /^[A-Z~!@#$%^&*()_+{}|:"<>?]$/;

/** Types text as a browser's Guacamole keyboard sends it: Shift pressed around shifted characters (QEMU's VNC maps a keysym to its key only). */
function type(tunnel: TunnelClient, text: string): void {
  for (const ch of text) {
    const shift = SHIFTED.test(ch);
    if (shift) tunnel.send('key', SHIFT_L, 1);
    tunnel.send('key', keysym(ch), 1);
    tunnel.send('key', keysym(ch), 0);
    if (shift) tunnel.send('key', SHIFT_L, 0);
  }
}

/** Samples a host file's size every 50 ms and keeps the moments it grew. */
class GrowthWatch {
  readonly growths: number[] = [];
  private last = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly file: string) {
    this.timer = setInterval(() => this.sample(), 50);
  }
  sample(): void {
    let size = 0;
    try {
      size = fs.statSync(this.file).size;
    } catch {
      return;
    }
    if (size > this.last) {
      this.last = size;
      this.growths.push(Date.now());
    }
  }
  grewSince(t: number): number {
    return this.growths.filter((g) => g > t).length;
  }
  /** The longest time the file did not grow, between its first and last growth: [ms, when it started]. */
  largestGap(): [number, number] {
    let gap: [number, number] = [0, 0];
    for (let i = 1; i < this.growths.length; i++) {
      const d = this.growths[i]! - this.growths[i - 1]!;
      if (d > gap[0]) gap = [d, this.growths[i - 1]!];
    }
    return gap;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

test('live-migrate a desktop with a home mounted and keep writing to it: same boot, the folder keeps growing on the host, the session and its agent carry on, QEMU runs on the target', { timeout: 900_000 }, async () => {
  assert.ok(HAVE, 'needs root, smbd and libnss_wrapper');
  const a = await session('alice');
  const before = await desktop(a.id);
  const source = before.host;
  const target = source === 'h1' ? 'h2' : 'h1';
  const sourcePid = (await provider.pid(a.id))!;
  assert.ok(sourcePid, 'QEMU runs');

  let sh = await shell(a.id);
  assert.deepEqual(await cifsMounts(sh), ['/home/alice']);
  const bootId = await sh.run('cat /proc/sys/kernel/random/boot_id');
  const up0 = await uptime(sh);
  // Bounded writer: one numbered line per 100 ms to the user's folder, at most 6000 lines, until
  // /tmp/stop-writer exists; a line whose append failed is noted in the guest's /tmp.
  await sh.run('rm -f /tmp/stop-writer /tmp/writer-failed; (i=0; while [ $i -lt 6000 ] && [ ! -e /tmp/stop-writer ]; do i=$((i + 1)); echo "$i" >> /home/alice/writer.log || echo "$i" >> /tmp/writer-failed; sleep 0.1; done) </dev/null >/dev/null 2>&1 &');
  sh.close();
  const hostFile = path.join(shareRoot, 'alice', 'writer.log');
  const watch = new GrowthWatch(hostFile);
  try {
    await waitFor(async () => watch.growths.length >= 20, 120_000, 100);

    const t0 = Date.now();
    const r = await helpdesk.post(`/desktops/${a.id}/migrate`, { host: target });
    const tDone = Date.now();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.migration.toHost, target);
    const linesAtSwitch = fs.readFileSync(hostFile, 'utf8').split('\n').filter(Boolean).length;

    // The writer keeps appending after the migration finished: 50 more growths seen on the host.
    await waitFor(async () => watch.grewSince(tDone) >= 50, 180_000, 100);
    watch.sample();
    const [gap, gapAt] = watch.largestGap();

    sh = await shell(a.id);
    await sh.run('touch /tmp/stop-writer');
    assert.equal(await sh.run('cat /proc/sys/kernel/random/boot_id'), bootId, 'the guest was not rebooted');
    assert.ok((await uptime(sh)) > up0, 'the guest\'s uptime grew');
    assert.deepEqual(await cifsMounts(sh), ['/home/alice'], 'the folder is still mounted');
    const failed = (await sh.run('cat /tmp/writer-failed 2>/dev/null | wc -l')).trim();
    const lines = fs.readFileSync(hostFile, 'utf8').split('\n').filter(Boolean).map(Number);
    const missing = lines.length ? lines.at(-1)! - new Set(lines).size : 0;
    sh.close();
    process.stdout.write(`# migration ${source} -> ${target}: API ${tDone - t0} ms (driver ${r.body.migration.durationMs} ms); ` +
      `largest gap between appends on the host ${gap} ms, starting ${gapAt - t0} ms after the migrate call; ` +
      `lines ${lines.length} (${linesAtSwitch} at the switch), missing ${missing}, failed appends in the guest ${failed}\n`);
    assert.ok(gap < SMB_GAP_BOUND_MS, `largest gap between appends ${gap} ms (bound ${SMB_GAP_BOUND_MS} ms)`);

    // The desktop's QEMU runs on the target host; the source process is gone.
    const d = await desktop(a.id);
    assert.equal(d.host, target, 'the desktop record follows');
    assert.equal((await provider.describe(a.id))?.host, target);
    const pid = (await provider.pid(a.id))!;
    assert.ok(pid && pid !== sourcePid, 'a new QEMU process');
    assert.ok(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(path.join(env.root, target) + '/'), 'it runs from the target host\'s data dir');
    assert.deepEqual(env.qemuPids(), [pid], 'only the target\'s QEMU runs');

    // The session survives: still live on this desktop, the user's console opens from the target,
    // and the broker's agent channel reaches the guest there (a helpdesk message is answered).
    const s = await helpdesk.get(`/sessions/${a.session}`);
    assert.equal(s.status, 200);
    assert.notEqual(s.body.session.state, 'ended', `the session ended mid-migration: ${JSON.stringify((await tb.app.store.sessions.get(a.session!))?.endReason)}`);
    assert.equal(d.session, a.session);
    (await openConsole(a)).close();
    await waitFor(async () => tb.app.agents.message(d, { title: 'moved', text: 'your desktop moved' }), 60_000, 1000);
  } finally {
    watch.stop();
  }
});

test('a memory snapshot of a desktop with a home mounted is taken and reverted; the SMB mount reconnects and the user can write again', { timeout: 600_000 }, async () => {
  assert.ok(HAVE, 'needs root, smbd and libnss_wrapper');
  const a = await session('alice');
  const home = path.join(shareRoot, 'alice');
  let sh = await shell(a.id);
  assert.deepEqual(await cifsMounts(sh), ['/home/alice']);
  const bootId = await sh.run('cat /proc/sys/kernel/random/boot_id');
  const up0 = await uptime(sh);
  sh.close();

  const t0 = Date.now();
  const c = await helpdesk.post(`/desktops/${a.id}/snapshots`, { name: 'with-home' });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  const snapMs = Date.now() - t0;

  // The guest continues after the snapshot, its folder usable.
  sh = await shell(a.id);
  const up1 = await uptime(sh);
  assert.ok(up1 > up0, 'the guest runs on');
  await sh.run('timeout 30 sh -c "echo after-snapshot > /home/alice/after-snapshot.txt"', 60_000);
  await waitFor(async () => fs.existsSync(path.join(home, 'after-snapshot.txt')), 30_000, 200);
  // A mark in the guest's RAM (tmpfs) made after the snapshot: the revert takes it away.
  await sh.run('touch /tmp/after-snapshot-mark');
  sh.close();

  const tRevert = Date.now();
  const rv = await helpdesk.post(`/desktops/${a.id}/snapshots/with-home/revert`);
  assert.equal(rv.status, 200, JSON.stringify(rv.body));
  const revertMs = Date.now() - tRevert;
  sh = await shell(a.id);
  assert.equal(await sh.run('cat /proc/sys/kernel/random/boot_id'), bootId, 'the same boot');
  assert.equal(await sh.run('test -e /tmp/after-snapshot-mark && echo still-there || echo gone'), 'gone', 'the guest went back to the snapshot\'s memory');
  assert.deepEqual(await cifsMounts(sh), ['/home/alice'], 'the folder is still mounted after the revert');

  // The mount's SMB connection is the snapshot's: the user can write again once the client reconnected.
  let tries = 0;
  let firstOk = 0;
  const errors: string[] = [];
  const deadline = tRevert + revertMs + REVERT_WRITE_BOUND_MS;
  while (!firstOk && Date.now() < deadline) {
    tries += 1;
    const name = `after-revert-${tries}.txt`;
    const out = await sh.run(`timeout 10 sh -c "echo ${tries} > /home/alice/${name}" && echo WROTE`, 30_000).catch((e: Error) => e.message);
    if (out.endsWith('WROTE') && fs.existsSync(path.join(home, name))) firstOk = Date.now();
    else errors.push(out.replace(/\s+/g, ' ').slice(0, 120));
  }
  process.stdout.write(`# snapshot with a home mounted: take ${snapMs} ms, revert ${revertMs} ms; first write reaching the host ` +
    `${firstOk ? `${firstOk - tRevert - revertMs} ms after the revert, try ${tries}` : 'never'}; failed tries: ${JSON.stringify(errors.slice(0, 5))}\n`);
  assert.ok(firstOk, `the user could not write within ${REVERT_WRITE_BOUND_MS} ms after the revert`);
  // The folder lives on the share, not in the snapshot: what was written after it stays.
  assert.equal(fs.readFileSync(path.join(home, 'after-snapshot.txt'), 'utf8'), 'after-snapshot\n');
  assert.equal(await sh.run('cat /home/alice/after-snapshot.txt', 30_000), 'after-snapshot');
  sh.close();
  const s = await helpdesk.get(`/sessions/${a.session}`);
  assert.notEqual(s.body.session.state, 'ended', 'the session survives');
  assert.equal((await helpdesk.del(`/desktops/${a.id}/snapshots/with-home`)).status, 204);
});

test('a user types into a shell in their home through the tunnel: the console\'s first frame shows and the typed command\'s file appears in their folder on the host', { timeout: 600_000 }, async () => {
  assert.ok(HAVE, 'needs root, smbd and libnss_wrapper');
  const b = await session('bob');
  const tunnel = await openConsole(b);
  const mark = `m${randomBytes(4).toString('hex')}`;
  const file = path.join(shareRoot, 'bob', mark);
  const t0 = Date.now();
  let typedAt = 0;
  let typings = 0;
  // Typed again while nothing came: keys sent before the user's shell prompt may be lost.
  await waitFor<boolean>(async () => {
    if (fs.existsSync(file)) return true;
    if (Date.now() - typedAt > 5000) {
      type(tunnel, `echo ${mark} > ${mark}\n`);
      typedAt = Date.now();
      typings += 1;
    }
    return false;
  }, 120_000, 50).catch(async (e: Error) => {
    // What the user would have seen, and the guest's view, to say why.
    const screen = await vgaTextScreen(path.join((await provider.describe(b.id))!.dir, 'qmp.sock'), path.join(env.root, 'screen.ppm')).catch((x: Error) => ({ rows: [String(x)] }));
    const sh = await shell(b.id);
    const guest = await sh.run('cat /run/vdi/user; awk \'$3 == "cifs"\' /proc/mounts; ls -la /home/bob; ps | grep -v "\\[" | tail -15', 30_000).catch((x: Error) => String(x));
    sh.close();
    throw new Error(`${e.message}: no ${file} after typing ${typings}x\nscreen:\n${screen.rows.join('\n').replace(/ +$/gm, '')}\nguest:\n${guest}`);
  });
  process.stdout.write(`# typed command's file on the host ${Date.now() - t0} ms after the first frame (typed ${typings}x)\n`);
  await waitFor(async () => fs.readFileSync(file, 'utf8') === `${mark}\n`, 10_000, 100);
  tunnel.close();
  assert.equal((await b.client.post(`/me/sessions/${b.session}/logoff`)).status, 200);
  current = undefined;
});
