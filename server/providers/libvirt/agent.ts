import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import type { LibvirtHostConfig } from './config.ts';
import { LibvirtError, isFailure, type Virsh } from './virsh.ts';

// How the broker reaches a libvirt desktop's guest agent (docs/agent.md, docs/libvirt.md):
// - our port (org.vdibroker.agent.0) is a unix socket QEMU binds on the host: connected to
//   directly when the host is this machine, through `ssh ... nc -U <path>` for qemu+ssh hosts;
// - qemu-guest-agent's port is held by libvirt itself (it connects to that socket, and QEMU's
//   chardev takes one client), so qga commands go through `virsh qemu-agent-command`, which
//   works on every transport;
// - the per-desktop secret is a 0600 volume in the host's storage pool (written with virsh,
//   so over the same transport as the disks), handed to the guest through fw_cfg.

/** The storage volume holding a desktop's agent secret. */
export function agentSecretVolume(id: string): string {
  return `vdi-${id}.agent-secret`;
}

/** Where the host's QEMU processes run as (`virsh capabilities`, DAC base label "+uid:+gid"). */
export function qemuOwner(capabilities: string, virtType: 'kvm' | 'qemu'): { uid: number; gid: number } | undefined {
  for (const m of capabilities.matchAll(/<secmodel>([\s\S]*?)<\/secmodel>/g)) {
    if (!/<model>dac<\/model>/.test(m[1]!)) continue;
    const labels = [...m[1]!.matchAll(/<baselabel type=(["'])(\w+)\1>\+?(\d+):\+?(\d+)<\/baselabel>/g)];
    const l = labels.find((x) => x[2] === virtType) ?? labels[0];
    if (l) return { uid: Number(l[3]), gid: Number(l[4]) };
  }
  return undefined;
}

/**
 * Writes the secret into the host's pool as a small raw volume readable only by the user QEMU
 * runs as (it reads the file when it starts; libvirt's DAC driver does not relabel fw_cfg
 * files), replacing an older one. Returns the volume's path on the host.
 */
export async function writeAgentSecret(virsh: Virsh, h: LibvirtHostConfig, id: string, secret: string, owner?: { uid: number; gid: number }): Promise<string> {
  const vol = agentSecretVolume(id);
  await virsh.run(h, ['vol-delete', '--pool', h.storagePool, vol]).catch((e) => {
    if (!isFailure(e, 'no_volume')) throw e;
  });
  const perms = `<permissions><mode>0600</mode>${owner ? `<owner>${owner.uid}</owner><group>${owner.gid}</group>` : ''}</permissions>`;
  const xml = `<volume><name>${vol}</name><capacity unit='bytes'>${Buffer.byteLength(secret)}</capacity><target><format type='raw'/>${perms}</target></volume>`;
  // virsh reads both from files: private ones (0600 in a 0700 dir, removed at once), as for
  // domain XML; the secret is never an argument nor logged.
  await withPrivateFile(xml, (f) => virsh.run(h, ['vol-create', h.storagePool, f], { retries: 0 }));
  await withPrivateFile(secret, (f) => virsh.run(h, ['vol-upload', '--pool', h.storagePool, vol, f], { retries: 0 }));
  return (await virsh.run(h, ['vol-path', '--pool', h.storagePool, vol])).trim();
}

async function withPrivateFile<T>(content: string, fn: (file: string) => Promise<T>): Promise<T> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vdi-agent-'));
  try {
    const file = path.join(dir, 'data');
    await fsp.writeFile(file, content, { mode: 0o600 });
    return await fn(file);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** The secret of a desktop as a host's pool holds it (to copy it along a migration). */
export async function readAgentSecret(virsh: Virsh, h: LibvirtHostConfig, id: string): Promise<string | undefined> {
  try {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vdi-agent-'));
    try {
      const file = path.join(dir, 'data');
      await virsh.run(h, ['vol-download', '--pool', h.storagePool, agentSecretVolume(id), file]);
      return (await fsp.readFile(file, 'utf8')).trim() || undefined;
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  } catch (e) {
    if (isFailure(e, 'no_volume')) return undefined;
    throw e;
  }
}

export async function removeAgentSecret(virsh: Virsh, h: LibvirtHostConfig, id: string): Promise<boolean> {
  try {
    await virsh.run(h, ['vol-delete', '--pool', h.storagePool, agentSecretVolume(id)]);
    return true;
  } catch (e) {
    if (isFailure(e, 'no_volume')) return false;
    throw e;
  }
}

/** local: the socket is on this machine's filesystem; ssh: through ssh + nc; none: unreachable. */
export function channelTransport(h: LibvirtHostConfig): 'local' | 'ssh' | 'none' {
  const scheme = /^([a-z0-9]+)(?:\+([a-z0-9]+))?:\/\/([^/?]*)/i.exec(h.uri);
  if (!scheme) return 'none';
  const transport = scheme[2]?.toLowerCase();
  if (transport === 'ssh' || transport === 'libssh' || transport === 'libssh2') return 'ssh';
  if (transport === 'unix' || (!transport && !scheme[3])) return 'local';
  // qemu+tcp/tls: the broker sees the host's sockets only when the operator put them in a
  // folder it shares (agentSocketDir; the test hosts are namespaces on this machine).
  return h.agentSocketDir ? 'local' : 'none';
}

/** Connects a unix socket on this machine; resolves once connected. */
export function connectUnix(path: string, timeoutMs = 10_000): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(path);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`agent socket ${path} did not accept within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

const MARK = 'vdi-agent-channel-open';

/**
 * A unix socket on an ssh host as a stream: `ssh <the driver's ssh options> host nc -U <path>`
 * (netcat-openbsd on the host, as libvirt's own ssh transport uses). Resolves once the remote
 * side confirmed the socket exists (ssh authenticated, path there); ends when either side closes.
 */
export function connectOverSsh(virsh: Virsh, h: LibvirtHostConfig, path: string, timeoutMs = 20_000): Promise<Duplex> {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  // One string for the remote shell; the marker proves we got that far before nc takes over.
  // -N: when the ssh session ends nc half-closes the socket, so QEMU drops it and nc exits
  // (an nc left connected would hold the port: QEMU's chardev serves one client).
  const remote = `test -S ${q(path)} || { echo 'no agent socket at ${path.replace(/'/g, '')}' >&2; exit 3; }; echo ${MARK}; exec nc -N -U ${q(path)}`;
  const [bin, ...args] = virsh.sshCommand(h, remote);
  return new Promise((resolve, reject) => {
    const child = spawn(bin!, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let err = '';
    let head = Buffer.alloc(0);
    let opened = false;
    const fail = (msg: string) => {
      if (opened) return;
      opened = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new LibvirtError('failed', `Agent channel on host ${h.name} over ssh: ${msg}`, h.name));
    };
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-2000)));
    child.on('error', (e) => fail(e.message));
    child.on('exit', (code) => fail(`ssh exited (${code}): ${err.trim().replace(/\s+/g, ' ') || 'no output'}`));
    const onHead = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const nl = head.indexOf(10);
      if (nl < 0) {
        if (head.length > 4096) fail('unexpected output before the channel opened');
        return;
      }
      if (head.subarray(0, nl).toString() !== MARK) return fail('unexpected output before the channel opened');
      child.stdout.off('data', onHead);
      child.stdout.pause();
      opened = true;
      clearTimeout(timer);
      const stream = new ChildStream(child, head.subarray(nl + 1));
      resolve(stream);
    };
    child.stdout.on('data', onHead);
  });
}

/** A child process's stdin/stdout as one stream; destroying it ends the process. */
class ChildStream extends Duplex {
  constructor(private readonly child: ChildProcessWithoutNullStreams, first: Buffer) {
    super();
    if (first.length) this.push(first);
    child.stdout.on('data', (d: Buffer) => {
      if (!this.push(d)) child.stdout.pause();
    });
    child.stdout.resume();
    child.stdin.on('error', () => undefined);
    // The far side closed (QEMU went away, the desktop moved): the stream ends for its reader.
    child.once('close', () => {
      this.push(null);
      this.destroy();
    });
  }

  override _read(): void {
    this.child.stdout.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.child.stdin.write(chunk, (e) => cb(e ?? null));
  }

  override _final(cb: () => void): void {
    this.child.stdin.end(cb);
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    cb(err);
  }
}

/** Splits a byte stream of JSON objects (qga's wire form: not necessarily one per line). */
export class JsonObjectSplitter {
  private buf = '';
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(private readonly maxBytes = 64 * 1024) {}

  push(chunk: string): string[] {
    const out: string[] = [];
    for (const ch of chunk) {
      // 0xFF (as U+FFFD or latin1) resets qga's parser: between objects it is dropped.
      if (this.depth === 0 && ch !== '{') continue;
      this.buf += ch;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (ch === '\\') this.escaped = true;
        else if (ch === '"') this.inString = false;
      } else if (ch === '"') this.inString = true;
      else if (ch === '{') this.depth++;
      else if (ch === '}') {
        this.depth--;
        if (this.depth === 0) {
          out.push(this.buf);
          this.buf = '';
        }
      }
      if (this.buf.length > this.maxBytes) {
        this.buf = '';
        this.depth = 0;
        this.inString = false;
      }
    }
    return out;
  }
}

/**
 * qemu-guest-agent's protocol as a stream, carried by `virsh qemu-agent-command` (libvirt holds
 * the agent's socket). Commands written are run one at a time; each answer is written back as
 * one JSON line. `guest-sync(-delimited)` is answered here (libvirt synchronises with the agent
 * before every command itself). Agent failures become qga error replies; a desktop that left
 * its host (migrated, destroyed) ends the stream so the caller reconnects through the driver.
 */
export class QgaOverVirsh extends Duplex {
  private readonly splitter = new JsonObjectSplitter();
  private queue: Promise<void> = Promise.resolve();
  private readonly abort = new AbortController();

  constructor(private readonly virsh: Virsh, private readonly host: LibvirtHostConfig, private readonly dom: string, private readonly timeoutS = 10) {
    super({ allowHalfOpen: false });
  }

  override _read(): void {
    // answers are pushed when they arrive
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    for (const cmd of this.splitter.push(chunk.toString('latin1'))) this.queue = this.queue.then(() => this.run(cmd));
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.abort.abort();
    cb(err);
  }

  private reply(obj: unknown, delimited = false): void {
    if (this.destroyed) return;
    const line = Buffer.from(`${JSON.stringify(obj)}\n`);
    this.push(delimited ? Buffer.concat([Buffer.from([0xff]), line]) : line);
  }

  private async run(text: string): Promise<void> {
    if (this.destroyed) return;
    let cmd: { execute?: unknown; arguments?: { id?: unknown } };
    try {
      cmd = JSON.parse(Buffer.from(text, 'latin1').toString('utf8')) as typeof cmd;
    } catch {
      return this.reply({ error: { class: 'GenericError', desc: 'JSON parse error' } });
    }
    if (cmd.execute === 'guest-sync-delimited' || cmd.execute === 'guest-sync') {
      return this.reply({ return: cmd.arguments?.id ?? 0 }, cmd.execute === 'guest-sync-delimited');
    }
    try {
      const out = await this.virsh.run(this.host, ['qemu-agent-command', this.dom, '--timeout', String(this.timeoutS), JSON.stringify(cmd)], {
        retries: 0, timeoutMs: (this.timeoutS + 10) * 1000, signal: this.abort.signal,
      });
      const answer = out.trim();
      if (answer) this.push(Buffer.from(`${answer}\n`));
      else this.reply({ return: {} });
    } catch (e) {
      if (this.destroyed) return;
      if (isFailure(e, 'no_domain', 'unreachable')) {
        this.destroy(e as Error);
        return;
      }
      // "Guest agent is not responding: QEMU guest agent is not connected", or the agent's own error.
      const desc = (e as Error).message.replace(/^virsh qemu-agent-command on host \S+ failed: /, '');
      this.reply({ error: { class: /not connected|not responding|not available/i.test(desc) ? 'GuestAgentNotAvailable' : 'GenericError', desc } });
    }
  }
}
