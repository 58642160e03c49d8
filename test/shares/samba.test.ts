// The share for real over SMB: Debian's smbd on a loopback port with a private config exports
// <root>/%U to %U (TESTING.md). alice reads through smbclient the file she stored through the
// broker and the broker lists the one she wrote over SMB; bob never reaches alice's folder.
// Test users get unique names and are removed afterwards; smbd is stopped by its pid.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startTestBroker, ApiClient, type TestBroker } from '../support/harness.ts';
import { freePort } from '../support/redis.ts';

const HAVE_SMBD = fs.existsSync('/usr/sbin/smbd') && fs.existsSync('/usr/bin/smbclient') && process.getuid?.() === 0;
const tag = randomBytes(3).toString('hex');
const ALICE = `vsa${tag}`;
const BOB = `vsb${tag}`;
const PW = `Pw-${randomBytes(6).toString('hex')}`;
let tmp = '';
let port = 0;
let smbdPid = 0;
let tb: TestBroker | undefined;
const made: string[] = [];

function smbdPidFromDir(dir: string): number {
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (f.endsWith('.pid') && f.startsWith('smbd')) return Number(fs.readFileSync(path.join(dir, f), 'utf8').trim());
  }
  return 0;
}

async function listening(p: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

function smb(user: string, password: string, cmd: string): { code: number | null; out: string } {
  const r = spawnSync('smbclient', ['-p', String(port), '//127.0.0.1/home', '-U', `${user}%${password}`, '-m', 'SMB3', '-c', cmd], { encoding: 'utf8', timeout: 30_000, cwd: tmp });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

before(async () => {
  if (!HAVE_SMBD) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vdi-smb-'));
  const root = path.join(tmp, 'shares', 'home');
  fs.mkdirSync(root, { recursive: true });
  for (const d of ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc', 'log']) fs.mkdirSync(path.join(tmp, d), { mode: 0o700 });
  port = await freePort();
  const conf = path.join(tmp, 'smb.conf');
  fs.writeFileSync(conf, [
    '[global]',
    `  smb ports = ${port}`,
    '  interfaces = lo', '  bind interfaces only = yes', '  disable netbios = yes', '  server role = standalone server',
    ...['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc'].map((d) => `  ${d === 'private' ? 'private dir' : d === 'ncalrpc' ? 'ncalrpc dir' : `${d} directory`} = ${path.join(tmp, d)}`),
    `  passdb backend = tdbsam:${path.join(tmp, 'private', 'passdb.tdb')}`,
    `  log file = ${path.join(tmp, 'log', 'log.%m')}`,
    '  map to guest = never', '  load printers = no', '  printing = bsd', '  printcap name = /dev/null', '  disable spoolss = yes',
    '  server min protocol = SMB2', '  unix password sync = no',
    '[home]',
    `  path = ${root}/%U`,
    '  valid users = %U',
    '  read only = no',
    // Folders are 0700 and owned by the broker's service user (docs/shares.md); smbd reaches
    // them as that user, and "valid users = %U" with the per-user path keeps users apart.
    `  force user = ${os.userInfo().username}`,
    '  create mask = 0600', '  directory mask = 0700', '  wide links = no', '  follow symlinks = no',
  ].join('\n') + '\n');
  for (const u of [ALICE, BOB]) {
    execFileSync('useradd', ['-M', '-N', '-s', '/usr/sbin/nologin', u]);
    made.push(u);
    execFileSync('smbpasswd', ['-c', conf, '-s', '-a', u], { input: `${PW}\n${PW}\n` });
  }
  execFileSync('smbd', ['-s', conf, '-D']);
  const deadline = Date.now() + 20_000;
  while (!(smbdPid = smbdPidFromDir(path.join(tmp, 'pid'))) || !(await listening(port))) {
    if (Date.now() > deadline) throw new Error(`smbd did not start: ${fs.readdirSync(path.join(tmp, 'log')).map((f) => fs.readFileSync(path.join(tmp, 'log', f), 'utf8')).join('\n').slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  tb = await startTestBroker({ name: 'samba', config: { shares: { list: [{ name: 'home', root, unc: `\\\\127.0.0.1\\home`, guacdPath: '', createRoot: false }] } } as never });
  await tb.addUser(ALICE);
  await tb.addUser(BOB);
});

after(async () => {
  await tb?.close();
  if (smbdPid) {
    try {
      process.kill(smbdPid, 'SIGTERM');
    } catch {
      // gone
    }
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try {
        process.kill(smbdPid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    try {
      process.kill(smbdPid, 'SIGKILL');
    } catch {
      // stopped
    }
  }
  for (const u of made) spawnSync('userdel', [u]);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('SMB: alice reads her folder through smbd, bob is refused', async () => {
  assert.ok(HAVE_SMBD, 'needs root, smbd and smbclient (apt-get install samba smbclient)');
  const alice = new ApiClient(tb!.url);
  assert.equal((await alice.login(ALICE)).status, 200);
  const up = await fetch(`${tb!.url}/api/v1/me/files/content?path=notes.txt`, { method: 'PUT', headers: { cookie: alice.cookie, 'x-csrf-token': alice.csrf, 'content-type': 'application/octet-stream' }, body: 'alice wrote this\n' });
  assert.equal(up.status, 201);

  // alice over SMB: her file, and a new one she writes
  const got = smb(ALICE, PW, 'get notes.txt from-smb.txt');
  assert.equal(got.code, 0, got.out);
  assert.equal(fs.readFileSync(path.join(tmp, 'from-smb.txt'), 'utf8'), 'alice wrote this\n');
  fs.writeFileSync(path.join(tmp, 'upload.txt'), 'written over SMB\n');
  const put = smb(ALICE, PW, 'put upload.txt smb.txt');
  assert.equal(put.code, 0, put.out);
  const list = await alice.get('/me/files');
  assert.deepEqual(list.body.entries.map((e: { name: string }) => e.name).sort(), ['notes.txt', 'smb.txt']);
  const down = await fetch(`${tb!.url}/api/v1/me/files/content?path=smb.txt`, { headers: { cookie: alice.cookie } });
  assert.equal(await down.text(), 'written over SMB\n');

  // bob: his own (empty) folder; alice's file is out of reach; a wrong password is refused
  const bob = new ApiClient(tb!.url);
  assert.equal((await bob.login(BOB)).status, 200);
  assert.equal((await bob.get('/me/files')).status, 200); // makes his folder
  const ls = smb(BOB, PW, 'ls');
  assert.equal(ls.code, 0, ls.out);
  assert.doesNotMatch(ls.out, /notes\.txt/);
  const steal = smb(BOB, PW, `get ../${ALICE}/notes.txt stolen.txt`);
  assert.notEqual(steal.code, 0, steal.out);
  assert.ok(!fs.existsSync(path.join(tmp, 'stolen.txt')));
  const wrong = smb(BOB, 'not-the-password', 'ls');
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.out, /NT_STATUS_LOGON_FAILURE|NT_STATUS_ACCESS_DENIED/);
  // alice's folder stays hers: 0700, the broker's user
  const st = fs.statSync(path.join(tmp, 'shares', 'home', ALICE));
  assert.equal(st.mode & 0o777, 0o700);
});
