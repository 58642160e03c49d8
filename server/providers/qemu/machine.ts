import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { DesktopSpec, MigrationResult } from '../provider.ts';
import type { Accelerator, ImageFiles } from './config.ts';

// One desktop = one detached qemu-system-x86_64 process plus a directory on its host:
//   <dataDir>/desktops/<id>/{state.json, disk.qcow2, qmp.sock, serial.sock, serial.log, qemu.pid,
//                            agent.sock, qga.sock, agent.secret}
// agent.sock / qga.sock are the guest agent ports (docs/agent.md); agent.secret (0600) is the
// per-desktop agent secret QEMU hands the guest through fw_cfg.

export interface DesktopState {
  version: 1;
  spec: DesktopSpec;
  host: string;
  createdAt: string;
  image: ImageFiles;
  /** Virtual size of the desktop disk in bytes. */
  diskBytes: number;
  vncPort?: number;
  pid?: number;
  accel?: Accelerator;
  startedAt?: string;
  lastMigration?: MigrationResult;
}

export interface DesktopPaths {
  dir: string;
  state: string;
  disk: string;
  qmp: string;
  serial: string;
  serialLog: string;
  pidfile: string;
  /** Our guest agent's virtio-serial port (org.vdibroker.agent.0), a unix socket QEMU listens on. */
  agent: string;
  /** qemu-guest-agent's port (org.qemu.guest_agent.0). */
  qga: string;
  /** The per-desktop agent secret (0600), read by QEMU at start for fw_cfg. */
  agentSecret: string;
  nbd: string;
  incoming: string;
  /** Present while a migration into this directory is in flight. */
  incomingMarker: string;
}

export function desktopsDir(dataDir: string): string {
  return path.join(path.resolve(dataDir), 'desktops');
}

export function desktopPaths(dataDir: string, id: string): DesktopPaths {
  const dir = path.join(desktopsDir(dataDir), id);
  return {
    dir,
    state: path.join(dir, 'state.json'),
    disk: path.join(dir, 'disk.qcow2'),
    qmp: path.join(dir, 'qmp.sock'),
    serial: path.join(dir, 'serial.sock'),
    serialLog: path.join(dir, 'serial.log'),
    pidfile: path.join(dir, 'qemu.pid'),
    agent: path.join(dir, 'agent.sock'),
    qga: path.join(dir, 'qga.sock'),
    agentSecret: path.join(dir, 'agent.secret'),
    nbd: path.join(dir, 'nbd.sock'),
    incoming: path.join(dir, 'migrate.sock'),
    incomingMarker: path.join(dir, 'incoming'),
  };
}

export async function readState(file: string): Promise<DesktopState | undefined> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as DesktopState;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw e;
  }
}

/** Written to a temp file and renamed, so a reader never sees half a state. */
export async function writeState(file: string, state: DesktopState): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  await fsp.rename(tmp, file);
}

export async function readPid(pidfile: string): Promise<number | undefined> {
  try {
    const pid = Number((await fsp.readFile(pidfile, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True when pid is alive and is a QEMU process of this desktop directory (guards against pid reuse). */
export function isDesktopProcess(pid: number | undefined, dir: string): boolean {
  if (!pid) return false;
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmd.includes('qemu-system') || !cmd.includes(dir + path.sep)) return false;
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** QEMU processes whose pid file lies under desktopsRoot, by desktop directory name. */
export function scanQemuProcesses(desktopsRoot: string): Map<string, number> {
  const found = new Map<string, number>();
  let entries: string[] = [];
  try {
    entries = fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return found;
  }
  const prefix = desktopsRoot + path.sep;
  for (const e of entries) {
    let args: string[];
    try {
      args = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!args[0]?.includes('qemu-system')) continue;
    const i = args.indexOf('-pidfile');
    const pf = i >= 0 ? args[i + 1] : undefined;
    if (!pf?.startsWith(prefix)) continue;
    const id = pf.slice(prefix.length).split(path.sep)[0];
    if (id) found.set(id, Number(e));
  }
  return found;
}

export async function waitForExit(pid: number, dir: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isDesktopProcess(pid, dir)) return true;
    await sleep(100);
  }
  return !isDesktopProcess(pid, dir);
}

export async function killProcess(pid: number | undefined, dir: string, graceMs = 3000): Promise<void> {
  if (!pid || !isDesktopProcess(pid, dir)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitForExit(pid, dir, graceMs)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitForExit(pid, dir, 5000);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Deterministic UUID for a desktop id (the id itself when it is one). */
export function desktopUuid(id: string): string {
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return id.toLowerCase();
  const h = crypto.createHash('sha1').update(`vdi-broker:${id}`).digest('hex');
  const variant = ((parseInt(h.slice(16, 18), 16) & 0x3f) | 0x80).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(18, 20)}-${h.slice(20, 32)}`;
}

/** VNC authentication only uses the first 8 characters. */
export function newVncPassword(): string {
  return crypto.randomBytes(6).toString('base64url').slice(0, 8);
}

const VGA: Record<DesktopSpec['resources']['graphics'], string> = {
  vga: 'std', virtio: 'virtio', qxl: 'qxl', cirrus: 'cirrus', none: 'none',
};

export interface QemuArgsInput {
  state: DesktopState;
  paths: DesktopPaths;
  accel: Accelerator;
  consoleAddress: string;
  vncDisplayBase: number;
  incoming?: boolean;
  /** Host services the guest may reach (the only ones: the NIC stays restricted). */
  guestForwards?: GuestForward[];
  /** Whether the desktop directory holds an agent.secret to hand in through fw_cfg. */
  agentSecret?: boolean;
}

/** A host TCP service the guest reaches at guestAddress:guestPort (QEMU user networking guestfwd). */
export interface GuestForward {
  guestAddress: string;
  guestPort: number;
  host: string;
  port: number;
}

/** The guest agent ports' names inside the guest (/sys/class/virtio-ports/*\/name). */
export const AGENT_PORT_NAME = 'org.vdibroker.agent.0';
export const QGA_PORT_NAME = 'org.qemu.guest_agent.0';

/**
 * slirp runs this for every connection the guest opens to a forward, with the connection as
 * stdin/stdout: a new host connection per guest connection (an SMB client reconnecting after a
 * live migration gets a fresh one).
 */
function forwardCommand(f: GuestForward): string {
  return `socat -lf /dev/null STDIO TCP:${f.host.includes(':') ? `[${f.host}]` : f.host}:${f.port}`;
}

function guestfwd(forwards: GuestForward[] | undefined): string {
  return (forwards ?? []).map((f) => `,guestfwd=tcp:${f.guestAddress}:${f.guestPort}-cmd:${esc(forwardCommand(f))}`).join('');
}

/** QEMU's option parser treats ',' as a separator; a literal comma is written twice. */
const esc = (s: string): string => s.replaceAll(',', ',,');

export function qemuArgs(i: QemuArgsInput): string[] {
  const { spec } = i.state;
  const p = i.paths;
  const addr = i.consoleAddress.includes(':') ? `[${i.consoleAddress}]` : i.consoleAddress;
  const cmdline = `${i.state.image.cmdline ?? ''} vdi.name=${spec.name} vdi.id=${spec.id}`.trim();
  const args = [
    '-name', `guest=${esc(spec.name)}`,
    '-uuid', desktopUuid(spec.id),
    '-machine', 'q35',
    // TCG's translation cache defaults to 1 GiB per VM; 64 MiB is plenty for a desktop.
    '-accel', i.accel === 'tcg' ? 'tcg,tb-size=64' : 'kvm',
    ...(i.accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-smp', String(spec.resources.vcpu),
    '-m', `${spec.resources.memoryMiB}M`,
    '-nodefaults', '-no-user-config',
    // Guest clock from the host's UTC; lost RTC ticks are caught up gradually (no drift).
    '-rtc', 'base=utc,driftfix=slew',
    // Direct kernel boot for the demo image; golden images without a kernel boot their disk,
    // on AHCI and e1000e which every guest OS (Windows included) has drivers for.
    ...(i.state.image.kernel
      ? ['-kernel', i.state.image.kernel, ...(i.state.image.initrd ? ['-initrd', i.state.image.initrd] : []), '-append', cmdline]
      : []),
    '-fw_cfg', `name=opt/vdi/name,string=${esc(spec.name)}`,
    // The agent secret comes from a 0600 file: /proc/<pid>/cmdline is world-readable.
    ...(i.agentSecret ? ['-fw_cfg', `name=opt/vdi/agent-secret,file=${esc(p.agentSecret)}`] : []),
    // Guests that redirect folders themselves (logon scripts, pam_mount) find the user's UNC path here.
    ...(spec.home?.unc ? ['-fw_cfg', `name=opt/vdi/home-unc,string=${esc(spec.home.unc)}`] : []),
    '-blockdev', JSON.stringify({ driver: 'qcow2', 'node-name': 'disk0', file: { driver: 'file', filename: p.disk } }),
    '-device', i.state.image.kernel ? 'virtio-blk-pci,drive=disk0,id=vda' : 'ide-hd,drive=disk0,id=vda,bus=ide.0,bootindex=0',
    // restrict=on: the guest reaches nothing on the host or beyond but the explicit forwards.
    '-nic', `user,model=${i.state.image.kernel ? 'virtio-net-pci' : 'e1000e'},mac=${spec.mac},restrict=on${guestfwd(i.guestForwards)}`,
    '-vga', VGA[spec.resources.graphics] ?? 'std',
    '-vnc', `${addr}:${i.vncDisplayBase},to=${i.vncDisplayBase + 2000},password=on`,
    '-chardev', `socket,id=qmp,path=${esc(p.qmp)},server=on,wait=off`,
    '-mon', 'chardev=qmp,mode=control',
    '-chardev', `socket,id=ser0,path=${esc(p.serial)},server=on,wait=off,logfile=${esc(p.serialLog)},logappend=on`,
    '-serial', 'chardev:ser0',
    // Guest agent ports (docs/agent.md): ours and qemu-guest-agent's, each a unix socket the
    // broker connects to (one client at a time; reconnects are fine).
    '-device', 'virtio-serial-pci,id=vser0',
    '-chardev', `socket,id=agent0,path=${esc(p.agent)},server=on,wait=off`,
    '-device', `virtserialport,bus=vser0.0,chardev=agent0,name=${AGENT_PORT_NAME}`,
    '-chardev', `socket,id=qga0,path=${esc(p.qga)},server=on,wait=off`,
    '-device', `virtserialport,bus=vser0.0,chardev=qga0,name=${QGA_PORT_NAME}`,
    '-pidfile', p.pidfile,
    '-daemonize',
  ];
  if (i.incoming) args.push('-incoming', `unix:${p.incoming}`);
  return args;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], timeoutMs = 60_000, input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** Starts QEMU daemonized: the launcher exits once the VM is set up; returns the daemon's pid. */
export async function launchQemu(binary: string, args: string[], pidfile: string): Promise<number> {
  const r = await run(binary, args, 60_000);
  if (r.code !== 0) {
    throw new Error(`QEMU failed to start (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
  }
  const pid = await readPid(pidfile);
  if (!pid) throw new Error(`QEMU started but wrote no pid file ${pidfile}`);
  return pid;
}

/**
 * KVM works only if a vCPU with the host model actually runs (on nested machines it may
 * exist and still fail with "failed to set MSR"). Returns the reason when it does not.
 */
export async function probeKvm(binary: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
  } catch (e) {
    return { ok: false, reason: `/dev/kvm not usable (${(e as NodeJS.ErrnoException).code})` };
  }
  return new Promise((resolve) => {
    const child = spawn(binary, ['-accel', 'kvm', '-cpu', 'host', '-machine', 'q35', '-m', '32M', '-nodefaults',
      '-no-user-config', '-display', 'none', '-qmp', 'stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', (e) => resolve({ ok: false, reason: e.message }));
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0 && out.includes('"running": true') && !/error/i.test(err)) resolve({ ok: true });
      else resolve({ ok: false, reason: (err.trim().split('\n')[0] ?? '') || `exit ${code}` });
    });
    child.stdin.write('{"execute":"qmp_capabilities"}\n');
    setTimeout(() => child.stdin.end('{"execute":"query-status"}\n{"execute":"quit"}\n'), 700);
  });
}

/**
 * Some nested hypervisors pass probeKvm and then hang a Linux guest in early boot (no output
 * after "Probing EDD"): boot a kernel under KVM until its banner reaches the serial port. Under
 * working KVM the banner comes in well under a second.
 */
export async function probeKvmBoot(binary: string, kernel: string, timeoutMs = 10_000): Promise<{ ok: true } | { ok: false; reason: string }> {
  return new Promise((resolve) => {
    const child = spawn(binary, ['-accel', 'kvm', '-cpu', 'host', '-machine', 'q35', '-m', '160M', '-nodefaults', '-no-user-config',
      '-display', 'none', '-no-reboot', '-kernel', kernel, '-append', 'console=ttyS0 panic=-1', '-serial', 'stdio'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let done = false;
    const finish = (r: { ok: true } | { ok: false; reason: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, reason: `a Linux guest printed nothing under KVM within ${timeoutMs} ms` }), timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      out = (out + d.toString('latin1')).slice(-4096);
      if (out.includes('Linux version')) finish({ ok: true });
    });
    child.stderr.on('data', () => undefined);
    child.on('error', (e) => finish({ ok: false, reason: e.message }));
    child.on('close', (code) => finish({ ok: false, reason: `KVM boot probe exited (${code}) before the kernel banner` }));
  });
}

export interface VncHello {
  version: string;
  securityTypes: number[];
}

/** Reads the RFB banner and the security types a VNC server offers, then hangs up. */
export function vncHello(host: string, port: number, timeoutMs = 3000): Promise<VncHello> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host, port });
    let buf = Buffer.alloc(0);
    let version = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`VNC ${host}:${port} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (e: Error | undefined, v?: VncHello) => {
      clearTimeout(timer);
      sock.destroy();
      if (e) reject(e);
      else resolve(v as VncHello);
    };
    sock.on('error', (e) => done(e));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!version) {
        if (buf.length < 12) return;
        version = buf.subarray(0, 12).toString('latin1').trim();
        buf = buf.subarray(12);
        if (!version.startsWith('RFB ')) return done(new Error(`not a VNC server at ${host}:${port}`));
        sock.write('RFB 003.008\n');
      }
      if (buf.length < 1) return;
      const n = buf[0] as number;
      if (n === 0) return done(undefined, { version, securityTypes: [] });
      if (buf.length < 1 + n) return;
      done(undefined, { version, securityTypes: [...buf.subarray(1, 1 + n)] });
    });
  });
}
