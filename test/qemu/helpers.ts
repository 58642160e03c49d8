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
import { withQmp } from '../../server/providers/qemu/qmp.ts';
import { qemuPidsUnder } from '../support/process.ts';

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

/** IMAGE_VERSION of scripts/image/build-demo-image.sh. */
export function demoImageVersion(): number {
  const m = /^IMAGE_VERSION=(\d+)$/m.exec(fs.readFileSync(path.join(REPO, 'scripts/image/build-demo-image.sh'), 'utf8'));
  return m ? Number(m[1]) : 0;
}

function imageValid(): boolean {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(IMAGE_DIR, 'manifest.json'), 'utf8')) as {
      kernelVersion?: string; version?: number; files?: Record<string, { path: string; sha256: string }>;
    };
    if (m.kernelVersion !== currentKernel() || !m.files) return false;
    // A build of an older guest (the script's IMAGE_VERSION changed) is rebuilt.
    if (m.version !== demoImageVersion()) return false;
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
      // KVM's probe can pass on nested machines whose guests then hang in early boot (seen on
      // our 2-core CI machines): tests run TCG unless VDI_TEST_ACCEL says otherwise.
      accel: (process.env.VDI_TEST_ACCEL ?? 'tcg') as QemuProviderOptions['accel'],
      stopTimeoutMs: 20_000,
      startTimeoutMs: 90_000,
      ...over,
    });
    this.providers.push(p);
    return p;
  }

  /** Pids of QEMU processes whose command line points into this env's temp dir. */
  qemuPids(): number[] {
    return qemuPidsUnder(this.root);
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
    // Each poke waits longer than the last: on a loaded machine a booted guest may take more
    // than 2 s to echo, and a fixed short wait would throw every late answer away.
    let attemptMs = 2000;
    for (;;) {
      try {
        await sh.run('test -e /run/ready', attemptMs);
        return sh;
      } catch (e) {
        attemptMs = Math.min(attemptMs * 2, 10_000);
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

export interface VgaTextScreen {
  /** Screendump size in pixels (720x400: 80x25 cells of 9x16, VGA text mode). */
  width: number;
  height: number;
  /** The 25 rows of the text buffer window the screen shows, one character per cell (trailing blanks kept). */
  rows: string[];
  /** Cells where the pixels disagree with the text: blank but drawn, or a glyph drawn blank. */
  mismatches: number;
  /** Cells whose pixels differ from other cells of the same character and colours, or match another character's. */
  conflicts: number;
}

const COLS = 80;
const LINES = 25;
/** The VGA text memory at 0xb8000: 32 KiB, 2 bytes (character, attribute) per cell. */
const TEXT_CELLS = 16384;
const BLANK = new Set([0x00, 0x20, 0xff]);

/**
 * Reads what a guest's VGA console shows, without OCR: a screendump (PPM) and the text buffer
 * at 0xb8000 over QMP (HMP `xp`). Linux's vgacon scrolls by moving the display start inside
 * that memory, so the window shown is found by matching cells against the pixels (blank cells
 * are one colour, glyphs are not); the screen is then checked cell by cell: equal characters
 * must be drawn alike and different ones differently, so the pixels carry exactly that text.
 */
export async function vgaTextScreen(qmpSocket: string, dumpFile: string): Promise<VgaTextScreen> {
  const hex = await withQmp(qmpSocket, async (q) => {
    await q.execute('screendump', { filename: dumpFile });
    return q.hmp(`xp /${TEXT_CELLS}hx 0xb8000`);
  });
  const cells = [...hex.matchAll(/\b0x([0-9a-f]{4})\b/g)].map((m) => parseInt(m[1]!, 16));
  return screenOf(cells, fs.readFileSync(dumpFile));
}

/** Matches VGA text memory (character | attribute << 8 per cell) against a PPM screendump. */
export function screenOf(cells: number[], ppm: Buffer): VgaTextScreen {
  if (cells.length !== TEXT_CELLS) throw new Error(`read ${cells.length} text cells, expected ${TEXT_CELLS}`);
  const head = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(ppm.subarray(0, 32).toString('latin1'));
  if (!head) throw new Error('screendump is not a binary PPM');
  const width = Number(head[1]);
  const height = Number(head[2]);
  const pixels = ppm.subarray(head[0].length);
  const cw = width / COLS;
  const chh = height / LINES;
  if (!Number.isInteger(cw) || !Number.isInteger(chh)) return { width, height, rows: [], mismatches: COLS * LINES, conflicts: 0 };
  // Each screen cell's pixel block: a fingerprint and whether it is a single colour.
  const blocks: { key: string; uniform: boolean }[] = [];
  for (let r = 0; r < LINES; r++) {
    for (let c = 0; c < COLS; c++) {
      const rowsOfBlock: Buffer[] = [];
      for (let y = 0; y < chh; y++) {
        const at = ((r * chh + y) * width + c * cw) * 3;
        rowsOfBlock.push(pixels.subarray(at, at + cw * 3));
      }
      const block = Buffer.concat(rowsOfBlock);
      let uniform = true;
      for (let i = 3; i < block.length && uniform; i += 3) uniform = block[i] === block[0] && block[i + 1] === block[1] && block[i + 2] === block[2];
      blocks.push({ key: crypto.createHash('sha1').update(block).digest('hex'), uniform });
    }
  }
  const blank = (cell: number) => BLANK.has(cell & 0xff);
  let origin = 0;
  let mismatches = Infinity;
  for (let o = 0; o + COLS * LINES <= TEXT_CELLS; o += COLS) {
    let n = 0;
    for (let i = 0; i < COLS * LINES && n < mismatches; i++) if (blank(cells[o + i]!) !== blocks[i]!.uniform) n++;
    if (n < mismatches) [origin, mismatches] = [o, n];
  }
  const shown = cells.slice(origin, origin + COLS * LINES);
  // Same character and colours -> same pixels; a pixel block -> one character.
  const byCell = new Map<number, Map<string, number>>();
  shown.forEach((cell, i) => {
    if (blank(cell)) return;
    const m = byCell.get(cell) ?? new Map<string, number>();
    m.set(blocks[i]!.key, (m.get(blocks[i]!.key) ?? 0) + 1);
    byCell.set(cell, m);
  });
  let conflicts = 0;
  const owner = new Map<string, number>();
  for (const [cell, keys] of byCell) {
    const [main, count] = [...keys].sort((a, b) => b[1] - a[1])[0]!;
    conflicts += [...keys.values()].reduce((a, b) => a + b, 0) - count;
    if (owner.has(main)) conflicts += count;
    else owner.set(main, cell);
  }
  const rows: string[] = [];
  for (let r = 0; r < LINES; r++) {
    rows.push(shown.slice(r * COLS, (r + 1) * COLS).map((cell) => {
      const ch = cell & 0xff;
      return ch >= 0x20 && ch < 0x7f ? String.fromCharCode(ch) : ' ';
    }).join(''));
  }
  return { width, height, rows, mismatches, conflicts };
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
