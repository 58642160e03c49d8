// A WebSocket tunnel client like the web client's (guacamole-common-js's WebSocketTunnel +
// client/src/viewer/ticket-tunnel.ts): subprotocol "guacamole", the ticket as the first
// message, the login's cookie (or API key) and an Origin on the upgrade, one instruction per
// message, answers `sync`; records everything received and how the socket closed.
import { createRequire } from 'node:module';
import { encode, InstructionParser, type Instruction } from '../../../server/gateway/protocol.ts';

const require = createRequire(import.meta.url);

interface Ws {
  readyState: number;
  on(ev: 'message', f: (d: Buffer) => void): void;
  on(ev: 'close', f: (code: number, reason: Buffer) => void): void;
  on(ev: 'open', f: () => void): void;
  on(ev: 'error', f: (e: Error) => void): void;
  on(ev: 'unexpected-response', f: (req: unknown, res: { statusCode: number }) => void): void;
  send(s: string): void;
  close(): void;
  terminate(): void;
}
export const WebSocket = require('ws') as { new (url: string, protocols?: string | string[], opts?: object): Ws };

export interface OpenOptions {
  /** Handed over as the first message, `0.,6.ticket,43.<ticket>;`. */
  ticket?: string;
  /** A raw first message instead (garbage tests). */
  first?: string;
  /** The URL's query (width, height, ...; or a `token=` the broker must refuse). */
  query?: string;
  /** Whose login the upgrade carries: an ApiClient's session cookie, or its API key. */
  as?: { cookie: string; bearer: string };
  /** The Origin header: the broker's own by default (like a page it served); null: none. */
  origin?: string | null;
  path?: string;
}

export class TunnelClient {
  readonly received: Instruction[] = [];
  closeCode: number | undefined;
  closeReason = '';
  httpStatus: number | undefined;
  readonly closed: Promise<void>;
  readonly opened: Promise<boolean>;
  autoSync = true;
  private readonly parser = new InstructionParser(1 << 22);
  private cursor = 0;
  private waiters: Array<() => void> = [];
  readonly ws: Ws;

  constructor(base: string, o: OpenOptions = {}) {
    const headers: Record<string, string> = {};
    if (o.as?.cookie) headers.cookie = o.as.cookie;
    if (o.as?.bearer) headers.authorization = `Bearer ${o.as.bearer}`;
    const origin = o.origin === undefined ? new URL(base).origin : o.origin;
    const query = o.query ? `?${o.query}` : '';
    this.ws = new WebSocket(`${base.replace(/^http/, 'ws')}${o.path ?? '/api/v1/tunnel'}${query}`, 'guacamole', { headers, ...(origin !== null ? { origin } : {}) });
    const first = o.first ?? (o.ticket !== undefined ? encode('', 'ticket', o.ticket) : undefined);
    this.opened = new Promise((resolve) => {
      this.ws.on('open', () => {
        if (first !== undefined) this.ws.send(first);
        resolve(true);
      });
      this.ws.on('error', () => resolve(false));
      this.ws.on('unexpected-response', (_q, res) => {
        this.httpStatus = res.statusCode;
        resolve(false);
        this.ws.terminate();
      });
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.wake();
        resolve();
      });
    });
    this.ws.on('error', () => undefined);
    this.ws.on('message', (d) => {
      for (const ins of this.parser.push(d)) {
        this.received.push(ins);
        if (this.autoSync && ins.opcode === 'sync') this.send('sync', ins.args[0]!);
      }
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  get isClosed(): boolean {
    return this.closeCode !== undefined;
  }

  send(opcode: string, ...args: Array<string | number>): void {
    if (this.ws.readyState === 1) this.ws.send(encode(opcode, ...args));
  }

  /** Next received instruction matching `pred` (in order), or throws on timeout / close. */
  async next(pred: (i: Instruction) => boolean, timeoutMs = 10_000): Promise<Instruction> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.received.length) {
        const ins = this.received[this.cursor++]!;
        if (pred(ins)) return ins;
      }
      if (this.isClosed) throw new Error(`closed (${this.closeCode} ${this.closeReason}) while waiting; got ${JSON.stringify(this.received.slice(-5))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting; got ${JSON.stringify(this.received.slice(-5))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The connection id guacamole-lite relays as the first (internal) instruction. */
  async ready(timeoutMs = 10_000): Promise<string> {
    const i = await this.next((x) => (x.opcode === '' && x.args.length === 1) || x.opcode === 'error', timeoutMs);
    if (i.opcode === 'error') throw new Error(`tunnel error ${i.args[1]}: ${i.args[0]}`);
    return i.args[0]!;
  }

  /** Waits for the close; returns the error instruction (if any) and the close reason. */
  async ended(timeoutMs = 10_000): Promise<{ error: Instruction | undefined; code: number | undefined; reason: string }> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    if (!this.isClosed) throw new Error('socket did not close');
    return { error: this.received.find((i) => i.opcode === 'error'), code: this.closeCode, reason: this.closeReason };
  }

  close(): void {
    try {
      this.ws.terminate();
    } catch {
      // already closed
    }
  }
}
