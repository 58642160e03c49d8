import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { DesktopSpec } from '../../server/providers/provider.ts';
import { QemuProvider } from '../../server/providers/qemu/qemu.provider.ts';
import { directoryImageResolver, type QemuHostConfig, type QemuProviderOptions } from '../../server/providers/qemu/config.ts';

// Shared by the QEMU driver tests: the demo image (built once, cached by manifest), a
// throw-away set of hosts under a temp dir, a serial-console shell client, and cleanup that
// stops every QEMU process started under the temp dir, by pid.

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const IMAGE_ROOT = process.env.VDI_TEST_IMAGE_ROOT ?? path.join(REPO, 'data/images');
const IMAGE_DIR = path.join(IMAGE_ROOT, 'demo/1');

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function currentKernel(): string {
  const v = fs.readdirSync('/boot').filter((f) => f.startsWith('vmlinuz-')).map((f) => f.slice('vmlinuz-'.length));
  v.sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  return v.at(-1) ?? '';
}

function imageValid(): boolean {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(IMAGE_DIR, 'manifest.json'), 'utf8')) as {
      kernelVersion?: string; files?: Record<string, { path: string; sha256: string }>;
    };
    if (m.kernelVersion !== currentKernel() || !m.files) return false;
    return Object.values(m.files).every((f) => sha256(path.join(IMAGE_DIR, f.path)) === f.sha256);
  } catch {
    return false;
  }
}

/** Builds data/images/demo/1 unless a valid build (manifest checksums, current kernel) is there. */
export function ensureDemoImage(): string {
  if (imageValid()) return IMAGE_ROOT;
  fs.mkdirSync(IMAGE_ROOT, { recursive: true });
  const lock = path.join(IMAGE_ROOT, '.demo-build.lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`image build lock ${lock} held too long`);
      execFileSync('sleep', ['0.5']);
    }
  }
  try {
    if (!imageValid()) execFileSync('bash', [path.join(REPO, 'scripts/image/build-demo-image.sh'), IMAGE_DIR], { stdio: 'pipe' });
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
  return IMAGE_ROOT;
}

let seq = 0;
export function makeSpec(tag: string, over: Partial<DesktopSpec> = {}, res: Partial<DesktopSpec['resources']> = {}): DesktopSpec {
  seq += 1;
  const rnd = crypto.randomBytes(3);
  const mac = `02:56:44:${[...rnd].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
  return {
    id: `t-${tag}-${seq}-${rnd.toString('hex')}`,
    name: `${tag}-${seq}-${rnd.toString('hex')}`,
    pool: 'test',
    mac,
    image: 'demo:1',
    clone: 'linked',
    resources: { vcpu: 1, memoryMiB: 160, diskGiB: 0, network: 'default', graphics: 'vga', ...res },
    ...over,
  };
}

export class TestEnv {
  readonly root: string;
  readonly providers: QemuProvider[] = [];

  constructor(tag: string) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), `vdiq-${tag}-`));
  }

  host(name: string, over: Partial<QemuHostConfig> = {}): QemuHostConfig {
    return { name, dataDir: path.join(this.root, name), capacity: { vcpu: 8, memoryMiB: 4096 }, ...over };
  }

  provider(hosts: QemuHostConfig[], over: Partial<QemuProviderOptions> = {}): QemuProvider {
    const p = new QemuProvider({
      name: 'local',
      hosts,
      images: directoryImageResolver(IMAGE_ROOT),
      logger: pino({ level: process.env.VDI_TEST_LOG ?? 'silent' }),
      accel: 'auto',
      stopTimeoutMs: 20_000,
      startTimeoutMs: 90_000,
      ...over,
    });
    this.providers.push(p);
    return p;
  }

  /** Pids of QEMU processes whose command line points into this env's temp dir. */
  qemuPids(): number[] {
    const pids: number[] = [];
    for (const e of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      try {
        const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8');
        if (cmd.includes('qemu-system') && cmd.includes(this.root + path.sep)) pids.push(Number(e));
      } catch {
        // gone
      }
    }
    return pids;
  }

  async cleanup(): Promise<void> {
    for (const p of this.providers) await p.close().catch(() => undefined);
    for (const pid of this.qemuPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const deadline = Date.now() + 5000;
    while (this.qemuPids().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** A shell on the guest's serial console (ttyS0 of the demo image). */
export class SerialShell {
  private buf = '';
  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (this.buf += d));
    sock.on('error', () => undefined);
  }

  static async open(socketPath: string, readyTimeoutMs = 60_000): Promise<SerialShell> {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(socketPath);
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
    const sh = new SerialShell(sock);
    // The shell may still be starting: poke it until a marker comes back.
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      try {
        await sh.run('test -e /run/ready', 2000);
        return sh;
      } catch (e) {
        if (Date.now() > deadline) {
          sh.close();
          throw new Error(`serial shell not ready: ${String(e)}`);
        }
      }
    }
  }

  /** Runs one command line and returns its output (stdout+stderr, trimmed). */
  async run(cmd: string, timeoutMs = 20_000): Promise<string> {
    const tok = crypto.randomBytes(4).toString('hex');
    const begin = `@@B${tok}0@@`;
    const end = `@@E${tok}0@@`;
    this.buf = '';
    this.sock.write(`echo @@B${tok}$((0))@@; ${cmd} 2>&1; echo @@E${tok}$((0))@@\n`);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const e = this.buf.indexOf(end);
      const b = this.buf.indexOf(begin);
      if (b >= 0 && e > b) return this.buf.slice(b + begin.length, e).replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(/\r/g, '').trim();
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`serial command timed out: ${cmd}`);
  }

  close(): void {
    this.sock.destroy();
  }
}

export async function waitFor<T>(fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
