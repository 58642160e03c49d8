// The broker-run smbd (server/shares/samba) for real: Debian's smbd on a loopback port with a
// private config, users only in a private passwd file read through libnss_wrapper (no system
// accounts), passwords rotated through smbpasswd's stdin. Checked with smbclient. One smbd for
// the file; stopped by its pid (also on failure).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ManagedSamba, smbNegotiate } from '../../server/shares/samba/index.ts';
import { folderName } from '../../server/shares/index.ts';
import { createLogger } from '../../server/observability/index.ts';
import { freePort } from '../support/redis.ts';

const HAVE = fs.existsSync('/usr/sbin/smbd') && fs.existsSync('/usr/bin/smbclient') && fs.existsSync('/usr/lib/x86_64-linux-gnu/libnss_wrapper.so') && process.getuid?.() === 0;
const logger = createLogger('silent');
let tmp = '';
let root = '';
let port = 0;
let samba: ManagedSamba | undefined;
const pids = new Set<number>();

function smb(user: string, password: string, cmd: string): { code: number | null; out: string } {
  // The password goes through the environment, like a guest's credentials file keeps it off argv.
  const r = spawnSync('smbclient', ['-p', String(port), '//127.0.0.1/home', '-U', user, '-m', 'SMB3', '-c', cmd], { encoding: 'utf8', timeout: 30_000, cwd: tmp, env: { ...process.env, PASSWD: password } });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function make(): ManagedSamba {
  return new ManagedSamba({ share: 'home', root, dir: path.join(tmp, 'samba'), address: '127.0.0.1', port, startTimeoutMs: 20_000, logger });
}

before(async () => {
  if (!HAVE) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vdi-smbm-'));
  root = path.join(tmp, 'root');
  fs.mkdirSync(root);
  port = await freePort();
  samba = make();
  await samba.start();
  pids.add(samba.smbdPid);
});

after(async () => {
  await samba?.stop();
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGCONT');
      process.kill(pid, 'SIGKILL');
    } catch {
      // stopped already
    }
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('managed smbd: a user known only to the private passwd file reads and writes their folder', async () => {
  assert.ok(HAVE, 'needs root, smbd, smbclient and libnss_wrapper (apt-get install samba smbclient libnss-wrapper)');
  const user = 'smbm-alice';
  assert.equal(spawnSync('getent', ['passwd', user]).status, 2, 'the user is not a system account');
  fs.mkdirSync(path.join(root, folderName(user)), { mode: 0o700 });
  fs.writeFileSync(path.join(root, folderName(user), 'from-host.txt'), 'written on the host\n');
  const c = await samba!.rotate(user);
  assert.equal(c.username, user);
  const r = smb(c.username, c.password, `get from-host.txt ${path.join(tmp, 'got.txt')}; put ${path.join(tmp, 'got.txt')} from-smb.txt`);
  assert.equal(r.code, 0, r.out);
  assert.equal(fs.readFileSync(path.join(tmp, 'got.txt'), 'utf8'), 'written on the host\n');
  const st = fs.statSync(path.join(root, user, 'from-smb.txt'));
  assert.equal(st.uid, process.getuid!(), 'files belong to the broker\'s service user');
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(spawnSync('getent', ['passwd', user]).status, 2, 'still no system account afterwards');
  assert.ok(!fs.readFileSync('/etc/passwd', 'utf8').includes(user));
  assert.ok(!fs.readFileSync(samba!.paths.conf, 'utf8').includes(c.password));
});

test('managed smbd: every rotation gives a new password and smbd refuses the old one', async () => {
  assert.ok(HAVE);
  const user = 'smbm-rot';
  fs.mkdirSync(path.join(root, user), { mode: 0o700 });
  const a = await samba!.rotate(user);
  assert.equal(smb(user, a.password, 'ls').code, 0);
  const b = await samba!.rotate(user);
  assert.notEqual(a.password, b.password);
  const old = smb(user, a.password, 'ls');
  assert.notEqual(old.code, 0);
  assert.match(old.out, /LOGON_FAILURE/);
  assert.equal(smb(user, b.password, 'ls').code, 0);
});

test('managed smbd: a user never reaches another user\'s folder', async () => {
  assert.ok(HAVE);
  for (const u of ['smbm-a2', 'smbm-b2']) fs.mkdirSync(path.join(root, u), { mode: 0o700 });
  fs.writeFileSync(path.join(root, 'smbm-a2', 'secret.txt'), 'a2 only\n');
  const b = await samba!.rotate('smbm-b2');
  const r = smb('smbm-b2', b.password, 'ls; cd ../smbm-a2; ls');
  assert.doesNotMatch(r.out, /secret\.txt/);
  // Another user's name with your password is refused.
  assert.notEqual(smb('smbm-a2', b.password, 'ls').code, 0);
});

test('managed smbd: hostile user names are mapped to safe folder names or refused', async () => {
  assert.ok(HAVE);
  for (const hostile of ['../x', 'a b', 'jürgen', '日本']) {
    const name = samba!.userName(hostile);
    assert.ok(name, `${hostile} maps to an SMB name`);
    assert.equal(name, folderName(hostile));
    assert.match(name!, /^~[0-9a-f]+$/);
    fs.mkdirSync(path.join(root, name!), { mode: 0o700 });
    fs.writeFileSync(path.join(root, name!, 'mine.txt'), hostile);
    const c = await samba!.rotate(hostile);
    const out = path.join(tmp, `got-${name}`);
    const r = smb(c.username, c.password, `get mine.txt ${out}`);
    assert.equal(r.code, 0, r.out);
    assert.equal(fs.readFileSync(out, 'utf8'), hostile, 'the user reaches their own mapped folder');
  }
  assert.ok(!fs.existsSync(path.join(tmp, 'x')), 'nothing outside the share root');
  // A long but mappable id (100 bytes → 201-character SMB name) works end to end.
  const long = 'é'.repeat(50);
  const ln = samba!.userName(long)!;
  assert.equal(ln.length, 201);
  fs.mkdirSync(path.join(root, ln), { mode: 0o700 });
  const lc = await samba!.rotate(long);
  assert.equal(smb(lc.username, lc.password, 'ls').code, 0);
  // Refused: too long to map (300 characters), and the private passwd file's own accounts.
  for (const bad of ['x'.repeat(300), 'root', os.userInfo().username, 'nobody']) {
    assert.equal(samba!.userName(bad), undefined, `${bad.slice(0, 20)} is refused`);
    await assert.rejects(samba!.rotate(bad), (e: Error & { code?: string }) => e.code === 'share_unavailable');
  }
});

test('managed smbd: a broker restarting after a crash adopts its smbd, replaces a stuck one, and stop ends it', async () => {
  assert.ok(HAVE);
  const first = samba!.smbdPid;
  assert.ok(alive(first));
  // "Crash": a second manager on the same directory, without stopping the first.
  const again = make();
  await again.start();
  assert.equal(again.smbdPid, first, 'the running smbd is adopted');
  const c = await again.rotate('smbm-rot');
  assert.equal(smb('smbm-rot', c.password, 'ls').code, 0, 'users and passwords survive the restart');
  // A stuck smbd (stopped, accepts nothing) is replaced by a new one.
  process.kill(first, 'SIGSTOP');
  const third = make();
  await third.start();
  assert.notEqual(third.smbdPid, first);
  pids.add(third.smbdPid);
  assert.ok(!alive(first) || fs.readFileSync(`/proc/${first}/stat`, 'utf8').split(' ')[2] === 'Z', 'the stuck smbd was killed');
  assert.ok((await smbNegotiate('127.0.0.1', port, 5000)) >= 0x0210);
  const d = await third.rotate('smbm-rot');
  assert.equal(smb('smbm-rot', d.password, 'ls').code, 0);
  const pid = third.smbdPid;
  await third.stop();
  assert.ok(!alive(pid), 'stopped by its pid');
  await assert.rejects(smbNegotiate('127.0.0.1', port, 2000));
  samba = undefined;
});

test('broker-run smbd: started with the broker, part of the share\'s health, names it cannot take refused before a desktop is taken, stopped at close', { timeout: 120_000 }, async () => {
  assert.ok(HAVE);
  const { startTestBroker, ApiClient } = await import('../support/harness.ts');
  const broot = path.join(tmp, 'broker-root');
  fs.mkdirSync(broot);
  const bport = await freePort();
  const tb = await startTestBroker({
    name: 'samba-managed',
    config: { shares: { healthCacheMs: 0, list: [{ name: 'home', root: broot, unc: '', guacdPath: '', createRoot: false, smb: { managed: true, port: bport, dir: path.join(tmp, 'broker-samba') } }] } } as never,
  });
  let pid = 0;
  try {
    const share = tb.app.shares.shares.shares[0]!;
    await share.smb!.start();
    pid = share.smb!.smbdPid;
    assert.ok(alive(pid));
    await tb.addUser('helpdesk1', 'helpdesk');
    await tb.addUser('root');
    await tb.app.broker.pools.create(tb.pool({ name: 'sm', entitlements: { users: ['root'], groups: [] } }), { principal: { kind: 'user', id: 'admin', role: 'admin', groups: [] }, address: 'test' });
    await tb.readyDesktops('sm', 1);
    const hd = new ApiClient(tb.url);
    assert.equal((await hd.login('helpdesk1')).status, 200);
    assert.equal((await hd.get('/shares')).body.shares[0].health.ok, true);
    // A stuck smbd makes the share unhealthy (an open port is not enough).
    process.kill(pid, 'SIGSTOP');
    try {
      const h = await tb.app.shares.shares.health(share, { force: true });
      assert.equal(h.ok, false);
      assert.match(h.error, /smbd/);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    assert.equal((await tb.app.shares.shares.health(share, { force: true })).ok, true);
    // "root" is one of the private passwd file's own accounts: refused, no desktop taken.
    const r = new ApiClient(tb.url);
    assert.equal((await r.login('root')).status, 200);
    const req = await r.post('/me/pools/sm/request');
    assert.equal(req.status, 503);
    assert.equal(req.body.error.code, 'share_unavailable');
    assert.equal((await tb.app.store.desktops.idsInState('sm', 'ready')).length, 1, 'the desktop stays in the pool');
  } finally {
    await tb.close();
  }
  assert.ok(!alive(pid), 'smbd stopped with the broker, by its pid');
});
