// The guest half of the logon, for real: one QEMU guest (TCG) of the demo image with the guest
// scripts (scripts/image/guest/logon.sh, logoff.sh, modules-smb) and the broker-run smbd
// (server/shares/samba) on a loopback port, reached from the guest through a QEMU forward.
// The scripts are driven from the serial console exactly as the agent runs them (environment
// in, key=value lines out). One guest and one smbd for the file, stopped by pid also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ManagedSamba, folderName, type SmbCredential } from '../../server/shares/index.ts';
import { createLogger } from '../../server/observability/index.ts';
import { freePort } from '../support/redis.ts';
import { bootSmbGuest, tmpDir, type SmbGuest } from './smb-guest.ts';

const HAVE = fs.existsSync('/usr/sbin/smbd') && fs.existsSync('/usr/lib/x86_64-linux-gnu/libnss_wrapper.so') && fs.existsSync('/usr/bin/qemu-system-x86_64') && process.getuid?.() === 0;
let dir = '';
let root = '';
let samba: ManagedSamba;
let guest: SmbGuest | undefined;

function logonCmd(user: string, c: SmbCredential | null): string {
  const smb = c ? `VDI_SMB_HOST=10.0.2.100 VDI_SMB_PORT=445 VDI_SMB_SHARE=home VDI_SMB_USERNAME='${c.username}' VDI_SMB_PASSWORD='${c.password}'` : '';
  return `VDI_USER='${user}' VDI_DISPLAY='Test User' ${smb} /etc/vdi/logon.sh; echo rc=$?`;
}

function folder(user: string): string {
  const f = path.join(root, folderName(user));
  fs.mkdirSync(f, { recursive: true, mode: 0o700 });
  return f;
}

before(async () => {
  if (!HAVE) return;
  dir = tmpDir('smb-logon');
  root = path.join(dir, 'share');
  fs.mkdirSync(root);
  const port = await freePort();
  samba = new ManagedSamba({ share: 'home', root, dir: path.join(dir, 'samba'), address: '127.0.0.1', port, startTimeoutMs: 20_000, logger: createLogger('silent') });
  await samba.start();
  guest = await bootSmbGuest(dir, port);
});

after(async () => {
  await guest?.stop();
  await samba?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('guest logon mounts the user\'s folder over SMB: a host file is in /home/<user>, a guest file lands on the host', { timeout: 120_000 }, async () => {
  assert.ok(HAVE, 'needs root, smbd, libnss_wrapper and qemu-system-x86_64');
  const sh = guest!.shell;
  fs.writeFileSync(path.join(folder('alice'), 'from-host.txt'), 'written on the host\n');
  const t0 = Date.now();
  const out = await sh.run(logonCmd('alice', await samba.rotate('alice')), 60_000);
  const ms = Date.now() - t0;
  assert.match(out, /^home=\/home\/alice$/m);
  assert.match(out, /^mounted=1$/m);
  assert.match(out, /rc=0$/);
  assert.equal(await sh.run('cat /home/alice/from-host.txt'), 'written on the host');
  await sh.run('echo "written in the guest" > /home/alice/from-guest.txt');
  assert.equal(fs.readFileSync(path.join(root, 'alice', 'from-guest.txt'), 'utf8'), 'written in the guest\n');
  assert.match(await sh.run('grep alice /etc/passwd'), /^alice:x:1000:1000:Test User:\/home\/alice:\/bin\/sh$/);
  // The credential never stays on the guest's disk, nor on any command line.
  assert.equal(await sh.run('ls /run/vdi | grep -c fstab'), '0');
  assert.doesNotMatch(await sh.run('cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\0" " "'), /password=/);
  process.stdout.write(`# logon with SMB mount from the serial console: ${ms} ms (guest-side ${/^ms=(\d+)/m.exec(out)?.[1]} ms)\n`);
});

test('every logon gets a new credential and smbd refuses the old one', { timeout: 120_000 }, async () => {
  assert.ok(HAVE);
  const sh = guest!.shell;
  folder('rot');
  const first = await samba.rotate('rot');
  assert.match(await sh.run(logonCmd('rot', first), 60_000), /rc=0$/);
  const second = await samba.rotate('rot');
  assert.notEqual(second.password, first.password);
  // The guest trying the old one: the mount fails, nothing is mounted, nobody is logged on.
  const old = await sh.run(logonCmd('rot', first), 60_000);
  assert.match(old, /cannot mount the user's folder/);
  assert.match(old, /rc=1$/);
  assert.equal(await sh.run('grep -c " cifs " /proc/mounts'), '0');
  assert.match(await sh.run(logonCmd('rot', second), 60_000), /mounted=1[\s\S]*rc=0$/);
});

test('the next user\'s logon unmounts the previous user\'s folder first; a late logoff for the previous user changes nothing', { timeout: 120_000 }, async () => {
  assert.ok(HAVE);
  const sh = guest!.shell;
  fs.writeFileSync(path.join(folder('ua'), 'ua-secret.txt'), 'ua only\n');
  fs.writeFileSync(path.join(folder('ub'), 'ub-file.txt'), 'ub\n');
  assert.match(await sh.run(logonCmd('ua', await samba.rotate('ua')), 60_000), /rc=0$/);
  assert.equal(await sh.run('ls /home/ua'), 'ua-secret.txt');
  assert.match(await sh.run(logonCmd('ub', await samba.rotate('ub')), 60_000), /rc=0$/);
  const mounts = await sh.run('awk \'$3 == "cifs" { print $2 }\' /proc/mounts');
  assert.equal(mounts, '/home/ub', 'only the new user\'s folder is mounted');
  assert.equal(await sh.run('ls /home/ua 2>&1 | wc -l'), '0', 'the previous user\'s mount point is empty');
  assert.doesNotMatch(await sh.run('ls -R /home'), /ua-secret/);
  // A logoff of ua arriving after ub's logon must not unmount ub.
  assert.equal(await sh.run('VDI_USER=ua /etc/vdi/logoff.sh'), 'user=');
  assert.equal(await sh.run('ls /home/ub'), 'ub-file.txt');
});

test('logoff ends the user\'s processes, unmounts their folder and forgets them', { timeout: 120_000 }, async () => {
  assert.ok(HAVE);
  const sh = guest!.shell;
  folder('lo');
  assert.match(await sh.run(logonCmd('lo', await samba.rotate('lo')), 60_000), /rc=0$/);
  // A process of the user holding the folder busy.
  await sh.run('su -s /bin/sh lo -c "cd /home/lo && exec sleep 600" </dev/null >/dev/null 2>&1 &');
  assert.match(await sh.run('i=0; while [ $i -lt 100 ] && ! ps -o args | grep -q "[s]leep 600"; do i=$((i + 1)); sleep 0.1; done; ps -o user,args | grep "[s]leep 600"'), /lo|1000/);
  assert.equal(await sh.run('VDI_USER=lo /etc/vdi/logoff.sh'), 'user=lo');
  assert.equal(await sh.run('grep -c " cifs " /proc/mounts'), '0');
  assert.equal(await sh.run('ps -o args | grep "sleep 600" | grep -vc grep'), '0');
  assert.equal(await sh.run('grep -c "^lo:" /etc/passwd'), '0');
  assert.equal(await sh.run('ls /run/vdi | grep -c -e fstab -e "^user$"'), '0', 'no credential, nobody logged on');
});

test('hostile user names: mapped names mount their own folder; names the guest cannot take are refused', { timeout: 180_000 }, async () => {
  assert.ok(HAVE);
  const sh = guest!.shell;
  for (const hostile of ['../x', 'a b', 'jürgen']) {
    const name = folderName(hostile);
    fs.writeFileSync(path.join(folder(hostile), 'mine.txt'), `${hostile}\n`);
    const out = await sh.run(logonCmd(name, await samba.rotate(hostile)), 60_000);
    assert.match(out, new RegExp(`^home=/home/${name}$`, 'm'));
    assert.match(out, /rc=0$/);
    assert.equal(await sh.run(`cat '/home/${name}/mine.txt'`), hostile);
  }
  assert.ok(!fs.existsSync(path.join(dir, 'x')));
  // Raw names never reach the guest's paths: the scripts refuse them.
  for (const raw of ['../x', 'a b', 'ROOT', '-rf', '.hidden', 'x'.repeat(300)]) {
    const out = await sh.run(logonCmd(raw, null), 30_000);
    assert.match(out, /bad user name|too long/, raw.slice(0, 20));
    assert.match(out, /rc=1$/, raw.slice(0, 20));
  }
  assert.equal(await sh.run('ls /home | grep -c "\\.\\."'), '0');
});

test('smbd not answering: the guest\'s logon fails within its deadline and mounts nothing', { timeout: 180_000 }, async () => {
  assert.ok(HAVE);
  const sh = guest!.shell;
  folder('down');
  const c = await samba.rotate('down');
  process.kill(samba.smbdPid, 'SIGSTOP');
  try {
    const t0 = Date.now();
    const out = await sh.run(`timeout 60 sh -c "${logonCmd('down', c).replaceAll('"', '\\"').replace(/; echo rc=\$\?$/, '')}"; echo rc=$?`, 90_000);
    assert.doesNotMatch(out, /rc=0$/);
    assert.ok(Date.now() - t0 < 90_000);
    assert.equal(await sh.run('grep -c " cifs " /proc/mounts'), '0');
  } finally {
    process.kill(samba.smbdPid, 'SIGCONT');
  }
});
