import { randomBytes } from 'node:crypto';
import { waitForValue } from './wait.ts';
import type { Duplex } from 'node:stream';
import type { Logger } from '../observability/index.ts';
import {
  type DropReason, type GuestEventName, LineSplitter, encode, helloProof, newNonce, parseGuestLine, proofMatches,
} from './protocol.ts';

// One desktop's channel to our guest agent (docs/agent.md) over whatever Duplex the driver
// gives (a QEMU chardev unix socket, an ssh pipe). It connects, challenges every second until
// the guest's agent proves who it is, then carries requests and events. It reconnects when the
// stream closes (QEMU restarted, desktop migrated) and re-challenges when the guest says it
// started again (rebooted) or a periodic ping shows another boot.

export interface HelloInfo {
  agent: string;
  boot: string;
  /** When the accepted hello arrived (ms). */
  at: number;
}

export interface ChannelEvent {
  event: GuestEventName;
  user?: string;
  idleSeconds?: number;
  at: number;
}

export interface ResultMessage {
  ok: boolean;
  error?: string;
  body: Record<string, unknown>;
}

export interface VdiChannelOptions {
  desktop: string;
  secret: string;
  connect: () => Promise<Duplex>;
  log: Logger;
  drop: (reason: DropReason) => void;
  onHello?: (h: HelloInfo) => void;
  onEvent?: (e: ChannelEvent) => void;
  onDown?: () => void;
  now?: () => number;
  challengeEveryMs?: number;
  pingEveryMs?: number;
  reconnectMs?: number;
}

/** Nonces remembered per connection (older ones are forgotten; their hellos are refused). */
const MAX_NONCES = 256;

export class VdiChannel {
  hello: HelloInfo | undefined;
  lastSeenAt: number | undefined;
  /** The last ping's answer (who is logged on, idle time). */
  lastPing: { user?: string; idleSeconds?: number } | undefined;
  connected = false;

  private stream: Duplex | undefined;
  private nonces = new Set<string>();
  private readonly pending = new Map<string, { resolve: (r: ResultMessage) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly helloWaiters: Array<() => void> = [];
  private closed = false;
  private readonly now: () => number;
  private wake: (() => void) | undefined;

  constructor(private readonly o: VdiChannelOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    void this.loop();
  }

  close(): void {
    this.closed = true;
    this.stream?.destroy();
    this.wake?.();
    this.failPending(new Error('agent channel closed'));
    for (const w of this.helloWaiters.splice(0)) w();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Resolves with the accepted hello (at once when there is one); rejects on timeout/abort/close. */
  waitHello(timeoutMs: number, signal?: AbortSignal): Promise<HelloInfo> {
    return waitForValue({
      value: () => this.hello, closed: () => this.closed, waiters: this.helloWaiters, timeoutMs, ...(signal ? { signal } : {}),
      closedMessage: 'agent channel closed',
      timeoutMessage: `the guest agent of desktop ${this.o.desktop} did not say hello within ${timeoutMs} ms`,
    });
  }

  /** Sends a request to the authenticated agent and waits for its result. */
  request(op: string, body: Record<string, unknown>, timeoutMs: number): Promise<ResultMessage> {
    const s = this.stream;
    if (!s || !this.hello) return Promise.reject(new Error(`the guest agent of desktop ${this.o.desktop} is not connected`));
    const id = randomBytes(8).toString('hex');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`the guest agent of desktop ${this.o.desktop} did not answer ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      s.write(encode(op, { ...body, id }));
    });
  }

  // ---- connection --------------------------------------------------------------------------

  private async loop(): Promise<void> {
    const base = this.o.reconnectMs ?? 500;
    let backoff = base;
    while (!this.closed) {
      let s: Duplex;
      try {
        s = await this.o.connect();
      } catch (e) {
        this.o.log.debug({ err: (e as Error).message }, 'agent port not reachable yet');
        await this.pause(backoff);
        backoff = Math.min(backoff * 2, 5000);
        continue;
      }
      if (this.closed) {
        s.destroy();
        return;
      }
      backoff = base;
      await this.serve(s);
      if (!this.closed) await this.pause(base);
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(() => { this.wake = undefined; r(); }, ms);
      this.wake = () => { clearTimeout(t); this.wake = undefined; r(); };
    });
  }

  private serve(s: Duplex): Promise<void> {
    return new Promise((resolve) => {
      this.stream = s;
      this.connected = true;
      this.nonces = new Set();
      const splitter = new LineSplitter();
      const challenge = () => {
        if (this.hello || s.destroyed) return;
        const nonce = newNonce();
        this.nonces.add(nonce);
        if (this.nonces.size > MAX_NONCES) this.nonces.delete(this.nonces.values().next().value as string);
        s.write(encode('challenge', { nonce }));
      };
      const challenger = setInterval(challenge, this.o.challengeEveryMs ?? 1000);
      const pinger = setInterval(() => void this.ping(), this.o.pingEveryMs ?? 15_000);
      challenge();
      s.on('data', (d: Buffer) => {
        this.lastSeenAt = this.now();
        for (const line of splitter.push(d)) {
          if (line === 'oversized') this.o.drop('oversized');
          else this.onLine(line, challenge);
        }
      });
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        clearInterval(challenger);
        clearInterval(pinger);
        this.stream = undefined;
        this.connected = false;
        const wasUp = !!this.hello;
        this.hello = undefined;
        this.failPending(new Error('the guest agent disconnected'));
        if (wasUp) this.o.onDown?.();
        resolve();
      };
      s.on('error', (e) => {
        this.o.log.debug({ err: e.message }, 'agent stream error');
        end();
      });
      s.on('close', end);
      s.on('end', () => s.destroy());
    });
  }

  private onLine(line: Buffer, challenge: () => void): void {
    const m = parseGuestLine(line);
    if ('drop' in m) return this.o.drop(m.drop);
    switch (m.type) {
      case 'hello_request':
        // The guest's agent (re)started: whatever proved itself before is gone.
        if (this.hello) {
          this.hello = undefined;
          this.o.onDown?.();
        }
        challenge();
        return;
      case 'hello': {
        if (m.desktop !== this.o.desktop) return this.o.drop('wrong_desktop');
        if (!this.nonces.delete(m.nonce)) return this.o.drop('unknown_nonce');
        if (!proofMatches(m.proof, helloProof(m.nonce, this.o.desktop, this.o.secret))) return this.o.drop('bad_proof');
        // Answers to challenges queued while the guest's port was closed arrive after the first
        // one: they change nothing (the hello time stays that of the first).
        const first = !this.hello;
        if (first) {
          this.hello = { agent: m.agent, boot: m.boot, at: this.now() };
          this.o.log.info({ agent: m.agent, boot: m.boot }, 'guest agent said hello');
          this.o.onHello?.(this.hello);
          for (const w of [...this.helloWaiters]) w();
        }
        return;
      }
      case 'result': {
        if (!this.hello) return this.o.drop('unauthenticated');
        const p = this.pending.get(m.id);
        if (!p) return this.o.drop('unexpected_result');
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        p.resolve({ ok: m.ok, ...(m.error !== undefined ? { error: m.error } : {}), body: m.body });
        return;
      }
      case 'event':
        if (!this.hello) return this.o.drop('unauthenticated');
        this.o.onEvent?.({ event: m.event, ...(m.user ? { user: m.user } : {}), ...(m.idleSeconds !== undefined ? { idleSeconds: m.idleSeconds } : {}), at: this.now() });
        return;
    }
  }

  /** Who is on and since when idle; a changed boot id means the guest rebooted unseen: challenge again. */
  private async ping(): Promise<void> {
    if (!this.hello) return;
    try {
      const r = await this.request('ping', {}, 5000);
      const b = r.body;
      this.lastPing = {
        ...(typeof b.user === 'string' && b.user ? { user: b.user } : {}),
        ...(typeof b.idleSeconds === 'number' ? { idleSeconds: b.idleSeconds } : {}),
      };
      if (typeof b.boot === 'string' && this.hello && b.boot && this.hello.boot && b.boot !== this.hello.boot) {
        this.o.log.info({ boot: b.boot }, 'guest rebooted; challenging its agent again');
        this.hello = undefined;
        this.o.onDown?.();
      }
    } catch {
      // an unanswered ping is not a disconnect: the stream's close says that
    }
  }

  private failPending(e: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(e);
      this.pending.delete(id);
    }
  }
}
