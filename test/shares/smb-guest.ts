// Test support: a real QEMU guest (TCG) of the demo image that can mount users' folders over
// SMB with the guest scripts of scripts/image/guest (logon.sh, logoff.sh, modules-smb). The
// demo initrd gets a second cpio archive appended (the kernel unpacks both, the later one wins)
// carrying the scripts and the cifs modules, so this works whatever the image build includes.
// QEMU forwards guest 10.0.2.100:445 to the test's smbd with one `nc` per guest connection.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDemoImage, SerialShell } from '../qemu/helpers.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const GUEST = path.join(REPO, 'scripts/image/guest');

/** Builds <dir>/initrd.img: the demo initrd plus the SMB guest files. */
export function smbInitrd(dir: string): { kernel: string; initrd: string } {
  const image = path.join(ensureDemoImage(), 'demo/1');
  const manifest = JSON.parse(fs.readFileSync(path.join(image, 'manifest.json'), 'utf8')) as { kernelVersion: string };
  const kver = manifest.kernelVersion;
  const root = path.join(dir, 'overlay');
  fs.mkdirSync(path.join(root, 'lib/modules'), { recursive: true });
  fs.mkdirSync(path.join(root, 'etc/vdi'), { recursive: true });
  const order: string[] = [];
  const seen = new Set<string>();
  const add = (m: string) => {
    if (seen.has(m)) return;
    seen.add(m);
    const file = execFileSync('modinfo', ['-k', kver, '-F', 'filename', m], { encoding: 'utf8' }).trim();
    if (!file || file.includes('builtin')) return;
    for (const dep of execFileSync('modinfo', ['-k', kver, '-F', 'depends', m], { encoding: 'utf8' }).trim().split(',').filter(Boolean)) add(dep);
    order.push(m);
    const out = path.join(root, 'lib/modules', `${m}.ko`);
    if (file.endsWith('.xz')) fs.writeFileSync(out, execFileSync('xz', ['-dc', file]));
    else if (file.endsWith('.zst')) fs.writeFileSync(out, execFileSync('zstd', ['-qdc', file]));
    else fs.copyFileSync(file, out);
  };
  for (const m of fs.readFileSync(path.join(GUEST, 'modules-smb'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) add(m);
  // logon.sh loads these itself when cifs is not loaded yet (the image's boot may not know them).
  fs.writeFileSync(path.join(root, 'etc/modules-smb.order'), order.join('\n') + '\n');
  for (const f of ['logon.sh', 'logoff.sh']) {
    fs.copyFileSync(path.join(GUEST, f), path.join(root, 'etc/vdi', f));
    fs.chmodSync(path.join(root, 'etc/vdi', f), 0o755);
  }
  const extra = execFileSync('sh', ['-c', 'find . -print0 | cpio --null -o -H newc --quiet | gzip -1'], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
  const initrd = path.join(dir, 'initrd.img');
  fs.writeFileSync(initrd, Buffer.concat([fs.readFileSync(path.join(image, 'initrd.img')), extra]));
  return { kernel: path.join(image, 'vmlinuz'), initrd };
}

export interface SmbGuest {
  qemu: ChildProcess;
  shell: SerialShell;
  stop(): Promise<void>;
}

/** Boots a guest whose 10.0.2.100:445 reaches 127.0.0.1:<smbPort>; resolves with a serial shell. */
export async function bootSmbGuest(dir: string, smbPort: number): Promise<SmbGuest> {
  const { kernel, initrd } = smbInitrd(dir);
  const serial = path.join(dir, 'serial.sock');
  const qemu = spawn('qemu-system-x86_64', [
    '-machine', 'q35', '-accel', 'tcg,tb-size=64', '-m', '192M', '-nodefaults', '-no-user-config', '-display', 'none',
    '-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0,115200 quiet',
    // restrict=on: the guest reaches nothing but the forwarded smbd.
    '-nic', `user,model=virtio-net-pci,restrict=on,guestfwd=tcp:10.0.2.100:445-cmd:nc 127.0.0.1 ${smbPort}`,
    '-chardev', `socket,id=s0,path=${serial},server=on,wait=off`, '-serial', 'chardev:s0',
  ], { stdio: 'ignore' });
  const stop = async () => {
    if (qemu.exitCode !== null || qemu.signalCode !== null) return;
    const gone = new Promise((r) => qemu.once('exit', r));
    qemu.kill('SIGKILL');
    await gone;
  };
  try {
    const deadline = Date.now() + 30_000;
    while (!fs.existsSync(serial)) {
      if (Date.now() > deadline || qemu.exitCode !== null) throw new Error('qemu did not create its serial socket');
      await new Promise((r) => setTimeout(r, 50));
    }
    const shell = await SerialShell.open(serial, 180_000);
    // The image may not configure the network yet: QEMU's user network, static.
    await shell.run('ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0 2>/dev/null; ip route add default via 10.0.2.2 2>/dev/null; true');
    return { qemu, shell, stop: async () => (shell.close(), stop()) };
  } catch (e) {
    await stop();
    throw e;
  }
}

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `vdi-${tag}-`));
}
