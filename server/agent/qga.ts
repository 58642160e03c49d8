import { randomInt } from 'node:crypto';
import { waitForValue } from './wait.ts';
import type { Duplex } from 'node:stream';
import type { Logger } from '../observability/index.ts';
import { LineSplitter } from './protocol.ts';

// The standard qemu-guest-agent (guests without our agent, docs/agent.md): QMP-like JSON
// commands one at a time. After (re)connecting, `guest-sync-delimited` flushes whatever a
// previous client left: the answer follows a 0xFF byte, everything before it is stale. The
// guest is up when `guest-ping` and `guest-get-osinfo` answer; users come from
// `guest-get-users`; commands run through `guest-exec` only where the caller allows it.

/** qga answers can be large (exec output, base64): a generous cap, still never unbounded. */
const MAX_QGA_LINE = 4 * 1024 * 1024;

export interface QgaReady {
  at: number;
  os?: { id?: string; name?: string; version?: string; kernel?: string };
}

export interface QgaChannelOptions {
  desktop: string;
  connect: () => Promise<Duplex>;
  log: Logger;
  onReady?: (r: QgaReady) => void;
  onDown?: () => void;
  now?: () => number;
  pingEveryMs?: number;
  reconnectMs?: number;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  /** Waiting for the 0xFF sentinel of guest-sync-delimited. */
  sync: boolean;
}

export class QgaChannel {
  ready: QgaReady | undefined;
  lastSeenAt: number | undefined;
  connected = false;
  private stream: Duplex | undefined;
  private pending: Pending | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly waiters: Array<() => void> = [];
  private readonly now: () => number;

  constructor(private readonly o: QgaChannelOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    void this.loop();
  }

  close(): void {
    this.closed = true;
    this.stream?.destroy();
    for (const w of this.waiters.splice(0)) w();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  waitReady(timeoutMs: number, signal?: AbortSignal): Promise<QgaReady> {
    return waitForValue({
      value: () => this.ready, closed: () => this.closed, waiters: this.waiters, timeoutMs, ...(signal ? { signal } : {}),
      closedMessage: 'qga channel closed',
      timeoutMessage: `qemu-guest-agent of desktop ${this.o.desktop} did not answer within ${timeoutMs} ms`,
    });
  }

  /** One qga command (serialised with the others); resolves with its `return`. */
  command<T = unknown>(execute: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    const run = () => this.send(execute, args, timeoutMs, false) as Promise<T>;
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Users logged on in the guest (guest-get-users). */
  async users(): Promise<string[]> {
    const r = await this.command<Array<{ user: string }>>('guest-get-users');
    return Array.isArray(r) ? r.map((u) => String(u.user)) : [];
  }

  /** Runs a program in the guest and waits for it (guest-exec + guest-exec-status). */
  async exec(path: string, args: string[], timeoutMs = 30_000): Promise<{ exitcode: number; stdout: string; stderr: string }> {
    const { pid } = await this.command<{ pid: number }>('guest-exec', { path, arg: args, 'capture-output': true });
    const deadline = this.now() + timeoutMs;
    for (;;) {
      const s = await this.command<{ exited: boolean; exitcode?: number; 'out-data'?: string; 'err-data'?: string }>('guest-exec-status', { pid });
      if (s.exited) {
        return {
          exitcode: s.exitcode ?? -1,
          stdout: Buffer.from(s['out-data'] ?? '', 'base64').toString('utf8'),
          stderr: Buffer.from(s['err-data'] ?? '', 'base64').toString('utf8'),
        };
      }
      if (this.now() > deadline) throw new Error(`guest-exec of ${path} did not finish within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  // ---- connection --------------------------------------------------------------------------

  private send(execute: string, args: Record<string, unknown> | undefined, timeoutMs: number, sync: boolean): Promise<unknown> {
    const s = this.stream;
    if (!s) return Promise.reject(new Error(`qemu-guest-agent of desktop ${this.o.desktop} is not connected`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending?.timer === timer) this.pending = undefined;
        reject(new Error(`qemu-guest-agent of desktop ${this.o.desktop} did not answer ${execute} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending = { resolve, reject, timer, sync };
      s.write(`${JSON.stringify({ execute, ...(args ? { arguments: args } : {}) })}\n`);
    });
  }

  private async loop(): Promise<void> {
    const base = this.o.reconnectMs ?? 500;
    while (!this.closed) {
      let s: Duplex;
      try {
        s = await this.o.connect();
      } catch (e) {
        this.o.log.debug({ err: (e as Error).message }, 'qga port not reachable yet');
        await sleep(base * 2);
        continue;
      }
      if (this.closed) {
        s.destroy();
        return;
      }
      await this.serve(s);
      if (!this.closed) await sleep(base);
    }
  }

  private serve(s: Duplex): Promise<void> {
    return new Promise((resolve) => {
      this.stream = s;
      this.connected = true;
      const splitter = new LineSplitter(MAX_QGA_LINE);
      let closedHere = false;
      s.on('data', (d: Buffer) => {
        this.lastSeenAt = this.now();
        let chunk = d;
        if (this.pending?.sync) {
          const i = chunk.indexOf(0xff);
          if (i === -1) return;
          chunk = chunk.subarray(i + 1);
          this.pending.sync = false;
          splitter.push(Buffer.from('\n')); // whatever was half-read before the sentinel is stale
        }
        for (const line of splitter.push(chunk)) {
          if (line === 'oversized' || !line.length) continue;
          let m: { return?: unknown; error?: { desc?: string; class?: string } } | undefined;
          try {
            m = JSON.parse(line.toString('utf8')) as typeof m;
          } catch {
            continue;
          }
          const p = this.pending;
          if (!p || p.sync || !m || typeof m !== 'object') continue;
          this.pending = undefined;
          clearTimeout(p.timer);
          if (m.error) p.reject(new Error(`qga: ${m.error.class ?? 'error'}: ${m.error.desc ?? ''}`));
          else p.resolve(m.return);
        }
      });
      const end = () => {
        if (closedHere) return;
        closedHere = true;
        this.stream = undefined;
        this.connected = false;
        const p = this.pending;
        this.pending = undefined;
        if (p) { clearTimeout(p.timer); p.reject(new Error('qga disconnected')); }
        if (this.ready) { this.ready = undefined; this.o.onDown?.(); }
        resolve();
      };
      s.on('error', end);
      s.on('close', end);
      s.on('end', () => s.destroy());
      void this.watch(s, () => closedHere);
    });
  }

  /** Syncs, checks the guest is up, then pings; a missed ping means sync again. */
  private async watch(s: Duplex, gone: () => boolean): Promise<void> {
    while (!gone() && !this.closed) {
      if (!this.ready) {
        try {
          const id = randomInt(1, 2 ** 31);
          const run = () => this.send('guest-sync-delimited', { id }, 3000, true);
          const p = this.queue.then(run, run);
          this.queue = p.catch(() => undefined);
          const back = await p;
          if (back !== id) throw new Error('qga sync answered another id');
          await this.command('guest-ping', undefined, 3000);
          const os = await this.command<Record<string, string>>('guest-get-osinfo', undefined, 5000).catch(() => undefined);
          this.ready = {
            at: this.now(),
            ...(os ? { os: { id: os.id, name: os['pretty-name'] ?? os.name, version: os.version, kernel: os['kernel-release'] } } : {}),
          };
          this.o.log.info({ os: this.ready.os }, 'qemu-guest-agent answers');
          this.o.onReady?.(this.ready);
          for (const w of [...this.waiters]) w();
        } catch {
          await sleep(1000);
          continue;
        }
      }
      await sleep(this.o.pingEveryMs ?? 10_000);
      if (gone() || this.closed) break;
      try {
        await this.command('guest-ping', undefined, 5000);
      } catch {
        if (this.ready) { this.ready = undefined; this.o.onDown?.(); }
      }
    }
    void s;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
