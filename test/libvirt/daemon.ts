import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { qemuPidsUnder } from '../support/process.ts';

// A libvirt daemon of the test's own: virtlogd + libvirtd in a private mount namespace whose
// /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt are
// folders under a temp dir (nothing of the machine's libvirt is read or touched). The root
// namespace reaches it through its socket. Stopped by pid; QEMU processes it started are
// killed by pid too (their command lines point into the temp dir).

const pexec = promisify(execFile);
const PRIVATE = ['etc/libvirt', 'run/libvirt', 'var/lib/libvirt', 'var/cache/libvirt', 'var/log/libvirt'];

export class TestLibvirtd {
  readonly root: string;
  readonly poolDir: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  /** listen: an address in a network namespace of the daemon's own (two hosts on one machine, migration). */
  constructor(tag: string, private readonly opts: { listen?: string } = {}) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), `vdil-${tag}-`));
    this.poolDir = path.join(this.root, 'pool');
    for (const d of PRIVATE) fs.mkdirSync(path.join(this.root, d), { recursive: true });
    fs.mkdirSync(this.poolDir);
    fs.cpSync('/etc/libvirt', path.join(this.root, 'etc/libvirt'), { recursive: true });
    const etc = path.join(this.root, 'etc/libvirt');
    // No autostarted networks or pools from the package's defaults.
    fs.rmSync(path.join(etc, 'qemu/networks'), { recursive: true, force: true });
    fs.rmSync(path.join(etc, 'storage'), { recursive: true, force: true });
    fs.writeFileSync(path.join(etc, 'libvirtd.conf'), [
      `host_uuid = "${crypto.randomUUID()}"`,
      'unix_sock_group = "root"', 'unix_sock_rw_perms = "0700"', 'auth_unix_rw = "none"', 'auth_unix_ro = "none"',
      'log_outputs = "3:stderr"',
      ...(opts.listen ? ['listen_tcp = 1', 'listen_tls = 0', `listen_addr = "${opts.listen}"`, 'auth_tcp = "none"'] : []),
      '',
    ].join('\n'));
    fs.writeFileSync(path.join(etc, 'qemu.conf'), ['security_driver = "none"', 'user = "root"', 'group = "root"', 'vnc_listen = "127.0.0.1"', ''].join('\n'));
  }

  /** What the broker's config names as the host's URI. */
  get uri(): string {
    return `qemu+unix:///system?socket=${path.join(this.root, 'run/libvirt/libvirt-sock')}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    this.spawn();
    await this.waitReady();
  }

  /** Network namespace of the daemon (only with opts.listen). */
  get netns(): string {
    return `/proc/${this.child!.pid}/ns/net`;
  }

  /**
   * Resolves once the daemon's own namespaces exist. Until unshare(2) has run in the spawned
   * process, /proc/<pid>/ns/* are still this machine's: an `nsenter` then acts on the machine
   * (a veth created in the root namespace, `lo` of the wrong stack).
   */
  async namespaced(): Promise<void> {
    const kinds = this.opts.listen ? ['mnt', 'net'] : ['mnt'];
    const own = (k: string) => fs.readlinkSync(`/proc/self/ns/${k}`);
    const theirs = (k: string) => {
      try {
        return fs.readlinkSync(`/proc/${this.child!.pid}/ns/${k}`);
      } catch {
        return own(k); // not yet visible
      }
    };
    const deadline = Date.now() + 10_000;
    while (kinds.some((k) => theirs(k) === own(k))) {
      if (this.child!.exitCode !== null) throw new Error(`namespace process exited: ${this.stderr()}`);
      if (Date.now() > deadline) throw new Error(`namespaces ${kinds.join(', ')} not created within 10 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Starts the namespace; with opts.listen the daemons wait for linkHosts() to set up the network. */
  spawn(): void {
    // Only empty mount points are created in the machine's tree (none exist without systemd).
    const mounts = PRIVATE.map((d) => `mkdir -p /${d} && mount --bind ${path.join(this.root, d)} /${d}`).join(' && ');
    // Paths are ours (mkdtemp under os.tmpdir()): no quoting issues.
    // virtlogd survives a libvirtd restart (as under systemd): started once.
    const logd = this.virtlogdPid() ? '' : 'rm -f /run/libvirt/virtlogd-sock && virtlogd -d -p /run/libvirt/virtlogd.pid && ';
    const wait = this.opts.listen ? `while [ ! -e ${this.root}/net-ready ]; do sleep 0.1; done && ` : '';
    const script = `${mounts} && ${wait}${logd}exec libvirtd ${this.opts.listen ? '--listen ' : ''}-p /run/libvirt/libvirtd.pid`;
    const ns = this.opts.listen ? ['-m', '-n'] : ['-m'];
    const child = spawn('unshare', [...ns, '--propagation', 'private', 'sh', '-c', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    this.child = child;
    this.exited = new Promise((r) => child.once('exit', () => r()));
    this.stderr = () => err;
  }

  private stderr: () => string = () => '';

  async waitReady(): Promise<void> {
    const child = this.child!;
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await pexec('virsh', ['-c', this.uri, 'version'], { timeout: 30_000 });
        return;
      } catch (e) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`libvirtd did not start: ${this.stderr() || String(e)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Kills libvirtd (SIGKILL: a crash) and waits for it; domains keep running. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      c.kill(signal);
      await this.exited;
    }
    this.child = undefined;
  }

  async virsh(...args: string[]): Promise<string> {
    return (await pexec('virsh', ['-c', this.uri, ...args], { timeout: 60_000 })).stdout;
  }

  /** A dir pool named `name` over this daemon's pool folder. */
  async definePool(name: string, dir = this.poolDir): Promise<void> {
    await this.virsh('pool-define-as', name, 'dir', '--target', dir);
    await this.virsh('pool-start', name);
  }

  private virtlogdPid(): number | undefined {
    try {
      const pid = Number(fs.readFileSync(path.join(this.root, 'run/libvirt/virtlogd.pid'), 'utf8').trim());
      return pid && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('virtlogd') ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  qemuPids(): number[] {
    return qemuPidsUnder(this.root);
  }

  /** Every domain destroyed and undefined, the daemons stopped, QEMU leftovers killed, files removed. */
  async cleanup(): Promise<void> {
    if (this.child) {
      try {
        const names = (await this.virsh('list', '--all', '--uuid')).split('\n').map((s) => s.trim()).filter(Boolean);
        for (const n of names) {
          await this.virsh('destroy', n).catch(() => undefined);
          await this.virsh('undefine', n, '--snapshots-metadata', '--nvram').catch(() => undefined);
        }
      } catch {
        // daemon unusable: processes are killed below
      }
    }
    await this.kill('SIGTERM');
    const logdPid = this.virtlogdPid();
    if (logdPid) process.kill(logdPid, 'SIGTERM');
    for (const pid of this.qemuPids()) process.kill(pid, 'SIGKILL');
    const deadline = Date.now() + 5000;
    while (this.qemuPids().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** A veth pair between two namespaced daemons (addresses /24 inside their namespaces only), then both start. */
export async function linkHosts(a: TestLibvirtd, b: TestLibvirtd, addrA: string, addrB: string): Promise<void> {
  const inNs = (d: TestLibvirtd, ...args: string[]) => pexec('nsenter', [`--net=${d.netns}`, ...args], { timeout: 10_000 });
  await Promise.all([a.namespaced(), b.namespaced()]);
  await inNs(a, 'ip', 'link', 'add', 'vdia', 'type', 'veth', 'peer', 'name', 'vdib', 'netns', String(b.pid));
  for (const [d, dev, addr] of [[a, 'vdia', addrA], [b, 'vdib', addrB]] as const) {
    await inNs(d, 'ip', 'addr', 'add', `${addr}/24`, 'dev', dev);
    await inNs(d, 'ip', 'link', 'set', dev, 'up');
    await inNs(d, 'ip', 'link', 'set', 'lo', 'up');
    fs.writeFileSync(path.join(d.root, 'net-ready'), '');
  }
  await Promise.all([a.waitReady(), b.waitReady()]);
}
