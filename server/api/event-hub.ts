// The broker's live streams (server-sent events) share ONE loop per process: the helpdesk
// consoles' snapshot (GET /events) and the viewers' message streams (GET /me/sessions/{id}/messages)
// are topics; each topic is read from Redis once per tick, whatever the number of open streams
// on it, and the answer is fanned out to every stream of this replica. Redis holds the state, so
// a change made through any replica reaches the streams of every replica at the next tick; a
// replica-wide Redis pub/sub subscriber (the replicas' tunnel events: a session taken over,
// ended, disconnected) wakes the loop at once instead of waiting for it (attach()).
// A topic with no stream left is dropped; the loop sleeps while there is none.
import type { Request, Response } from 'express';

export type Reading<T> = { ok: true; value: T } | { ok: false; error: Error };
type Listener<T> = (r: Reading<T>) => void;

interface Topic<T> {
  key: string;
  intervalMs: number;
  read: () => Promise<T>;
  listeners: Set<Listener<T>>;
  last?: Reading<T>;
  nextAt: number;
  reading: boolean;
  /** Woken while a read ran: read again as soon as it ends. */
  again: boolean;
}

export class EventHub {
  private readonly topics = new Map<string, Topic<unknown>>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt = Infinity;
  private detach: (() => Promise<void> | void) | undefined;
  private closed = false;
  /** Reads done so far (tests and metrics: one per topic per tick, not one per stream). */
  reads = 0;

  /** Number of topics and streams open on this replica. */
  get size(): { topics: number; streams: number } {
    let streams = 0;
    for (const t of this.topics.values()) streams += t.listeners.size;
    return { topics: this.topics.size, streams };
  }

  /**
   * Wakes topics from a replica-wide notification source (one Redis subscriber per process):
   * `listen(wake)` calls wake(key?) on each notification and returns its closer.
   */
  attach(listen: (wake: (key?: string) => void) => () => Promise<void> | void): void {
    void this.detach?.();
    this.detach = listen((key) => this.wake(key));
  }

  /** Reads `key` (or every topic) now instead of at its next tick. */
  wake(key?: string): void {
    const now = Date.now();
    for (const t of this.topics.values()) if (key === undefined || t.key === key) this.readSoon(t, now);
    this.schedule();
  }

  /**
   * Listens to a topic: `read` (the first subscriber's; the same for all of a key) runs once per
   * `intervalMs` for every listener of the key. A new listener gets the last reading at once
   * and the topic is read again right away. Returns the unsubscriber.
   */
  subscribe<T>(key: string, intervalMs: number, read: () => Promise<T>, listener: Listener<T>): () => void {
    let t = this.topics.get(key) as Topic<T> | undefined;
    if (!t) {
      t = { key, intervalMs, read, listeners: new Set(), nextAt: Date.now(), reading: false, again: false };
      this.topics.set(key, t as Topic<unknown>);
    } else {
      if (t.last) queueMicrotask(() => t!.listeners.has(listener) && t!.last && listener(t!.last));
      this.readSoon(t, Date.now());
    }
    t.listeners.add(listener);
    this.schedule();
    return () => {
      t!.listeners.delete(listener);
      if (t!.listeners.size === 0 && this.topics.get(key) === t) this.topics.delete(key);
    };
  }

  /** Read at once; a read under way (its answer may predate the news) is followed by another. */
  private readSoon(t: { reading: boolean; again: boolean; nextAt: number }, now: number): void {
    if (t.reading) t.again = true;
    else t.nextAt = Math.min(t.nextAt, now);
  }

  private schedule(): void {
    if (this.closed) return;
    let at = Infinity;
    for (const t of this.topics.values()) if (!t.reading) at = Math.min(at, t.nextAt);
    if (at === Infinity || at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.tick(), Math.max(0, at - Date.now()));
    this.timer.unref?.();
  }

  private tick(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = Date.now();
    for (const t of this.topics.values()) if (!t.reading && t.nextAt <= now) void this.run(t);
    this.schedule();
  }

  private async run<T>(t: Topic<T>): Promise<void> {
    t.reading = true;
    this.reads++;
    let r: Reading<T>;
    try {
      r = { ok: true, value: await t.read() };
    } catch (err) {
      r = { ok: false, error: err as Error };
    }
    t.reading = false;
    t.last = r;
    t.nextAt = t.again ? Date.now() : Date.now() + t.intervalMs;
    t.again = false;
    for (const l of [...t.listeners]) {
      try {
        l(r);
      } catch {
        // a listener's failure is its stream's business
      }
    }
    this.schedule();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.topics.clear();
    await this.detach?.();
    this.detach = undefined;
  }
}

const hubs = new WeakMap<object, EventHub>();

/** The hub of one broker app (keyed by its Broker instance): one per process in production. */
export function eventHubOf(owner: object): EventHub {
  let h = hubs.get(owner);
  if (!h) hubs.set(owner, (h = new EventHub()));
  return h;
}

const HEARTBEAT_MS = 15_000;
const MAX_SECONDS = 300;

export interface SseStream {
  /** Writes one event (`id` for Last-Event-ID resumption). */
  send(event: string, data: unknown, id?: number): void;
  /** Ends the stream (the client's EventSource reconnects after `retry`). */
  stop(): void;
  /** Called on every reading: a comment line when nothing was written for 15 s, and the
   * stream's end after its maximum age or when the broker stops listening. False once stopped. */
  alive(): boolean;
}

/**
 * A server-sent events answer: headers, `retry`, keep-alive comments, an end after 5 min
 * (EventSource reconnects, possibly through another replica) and when the broker stops. `run`
 * subscribes and returns its unsubscriber; the promise resolves when the stream ends.
 */
export async function sseStream(req: Request, res: Response, run: (s: SseStream) => () => void): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
  res.write('retry: 2000\n\n');
  const started = Date.now();
  let lastWrite = started;
  let closed = false;
  // A stopping broker (server.close(): no longer listening) ends its streams, so they do not
  // hold the graceful shutdown for its whole grace period.
  const server = (req.socket as typeof req.socket & { server?: { listening: boolean } }).server;
  await new Promise<void>((resolve) => {
    let unsubscribe: (() => void) | undefined;
    const stop = (dropConnection = false) => {
      if (closed) return;
      closed = true;
      unsubscribe?.();
      // (express-session wraps res.end without the callback form: wait for 'finish'.)
      if (dropConnection) res.once('finish', () => req.socket.destroy());
      if (!res.writableEnded) res.end();
      resolve();
    };
    res.on('close', () => stop());
    res.on('error', () => stop());
    const s: SseStream = {
      send(event, data, id) {
        if (closed) return;
        res.write(`${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
        lastWrite = Date.now();
      },
      stop: () => stop(),
      alive() {
        if (closed) return false;
        if (server && !server.listening) {
          stop(true);
          return false;
        }
        if (Date.now() - started > MAX_SECONDS * 1000) {
          stop();
          return false;
        }
        if (Date.now() - lastWrite >= HEARTBEAT_MS) {
          res.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
        return true;
      },
    };
    const un = run(s);
    if (closed) un();
    else unsubscribe = un;
  });
}
