import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';

// Guest agent requests between broker replicas (docs/agent.md, docs/redis-keys.md). Only the
// replica holding the `agents` lease holds the guests' connections (a QEMU chardev serves one
// client); any replica calls the agents through here: a request is published on
// `<prefix>agent:requests`, the holder runs it and publishes the answer on the caller's own
// `<prefix>agent:answers:<replica>` channel: first an ack (the caller publishes the request
// again every 500 ms until one comes: the lease may be changing hands), then the result. The
// holder runs a request id once. A request nobody answers times out at the caller.

export interface AgentBusRequest {
  id: string;
  replica: string;
  op: string;
  args: unknown[];
  timeoutMs: number;
}

interface Answer {
  id: string;
  ack?: boolean;
  ok: boolean;
  value?: unknown;
  error?: string;
}

export type AgentBusHandler = (op: string, args: unknown[], timeoutMs: number) => Promise<unknown>;

export class AgentBus {
  readonly replica = randomUUID();
  private sub: Redis | undefined;
  private readonly pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; again?: NodeJS.Timeout }>();
  /** Request ids this replica runs or ran lately (a re-published request runs once). */
  private readonly seen = new Map<string, number>();
  private handler: { serving: () => boolean; run: AgentBusHandler } | undefined;
  private starting: Promise<void> | undefined;

  constructor(private readonly redis: Redis, private readonly keys: Keyspace) {}

  private get requests(): string {
    return `${this.keys.prefix}agent:requests`;
  }

  private answers(replica: string): string {
    return `${this.keys.prefix}agent:answers:${replica}`;
  }

  /** Runs requests from other replicas while `serving()` (this replica holds the connections). */
  serve(serving: () => boolean, run: AgentBusHandler): void {
    this.handler = { serving, run };
  }

  private start(): Promise<void> {
    this.starting ??= (async () => {
      const sub = this.redis.duplicate({ lazyConnect: false, enableOfflineQueue: true });
      this.sub = sub;
      sub.on('error', () => undefined);
      sub.on('message', (channel: string, text: string) => {
        if (channel === this.requests) void this.onRequest(text);
        else this.onAnswer(text);
      });
      await sub.subscribe(this.requests, this.answers(this.replica));
    })();
    return this.starting;
  }

  /** Subscribes (needed before serve() gets requests and before call() gets answers). */
  async open(): Promise<void> {
    await this.start();
  }

  async call(op: string, args: unknown[], timeoutMs: number): Promise<unknown> {
    await this.start();
    const id = randomUUID();
    const req: AgentBusRequest = { id, replica: this.replica, op, args, timeoutMs };
    const text = JSON.stringify(req);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        clearInterval(this.pending.get(id)?.again);
        this.pending.delete(id);
        reject(new Error(`no broker replica answered the guest agent request ${op} within ${timeoutMs} ms`));
      }, timeoutMs + 1000);
      const again = setInterval(() => void this.redis.publish(this.requests, text).catch(() => undefined), 500);
      this.pending.set(id, { resolve, reject, timer, again });
      this.redis.publish(this.requests, text).catch((e: Error) => {
        clearTimeout(timer);
        clearInterval(again);
        this.pending.delete(id);
        reject(e);
      });
    });
  }

  private async onRequest(text: string): Promise<void> {
    const h = this.handler;
    if (!h || !h.serving()) return;
    let req: AgentBusRequest;
    try {
      req = JSON.parse(text) as AgentBusRequest;
      if (typeof req.id !== 'string' || typeof req.replica !== 'string' || typeof req.op !== 'string' || !Array.isArray(req.args)) return;
    } catch {
      return;
    }
    const to = this.answers(req.replica);
    if (this.seen.has(req.id)) return;
    const timeoutMs = Math.min(Number(req.timeoutMs) || 10_000, 600_000);
    this.seen.set(req.id, Date.now() + timeoutMs + 10_000);
    for (const [id, until] of this.seen) if (until < Date.now()) this.seen.delete(id);
    await this.redis.publish(to, JSON.stringify({ id: req.id, ack: true, ok: true } satisfies Answer)).catch(() => undefined);
    let a: Answer;
    try {
      a = { id: req.id, ok: true, value: await h.run(req.op, req.args, timeoutMs) };
    } catch (e) {
      a = { id: req.id, ok: false, error: (e as Error).message };
    }
    await this.redis.publish(to, JSON.stringify(a)).catch(() => undefined);
  }

  private onAnswer(text: string): void {
    let a: Answer;
    try {
      a = JSON.parse(text) as Answer;
    } catch {
      return;
    }
    const p = this.pending.get(a.id);
    if (!p) return;
    clearInterval(p.again);
    if (a.ack) return;
    this.pending.delete(a.id);
    clearTimeout(p.timer);
    if (a.ok) p.resolve(a.value);
    else p.reject(new Error(a.error ?? 'guest agent request failed'));
  }

  async close(): Promise<void> {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      clearInterval(p.again);
      p.reject(new Error('agent bus closed'));
      this.pending.delete(id);
    }
    this.sub?.disconnect();
    this.sub = undefined;
    this.starting = undefined;
  }
}
