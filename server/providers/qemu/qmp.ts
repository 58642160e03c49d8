import net from 'node:net';

// A small QMP (QEMU Machine Protocol) client over a unix socket: greeting, capability
// negotiation, commands matched to answers by id, and events. QEMU serves one client per
// monitor socket at a time, so callers open a session per operation and close it after.

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  constructor(readonly command: string, readonly errorClass: string, desc: string) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
  }
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

type EventWaiter = { name: string; match: (e: QmpEvent) => boolean; resolve: (e: QmpEvent) => void };

export class QmpClient {
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly events: QmpEvent[] = [];
  private waiters: EventWaiter[] = [];
  private closedError: Error | undefined;

  private constructor(private readonly socket: net.Socket) {}

  /** Connects, reads the greeting and negotiates capabilities. Retries until timeoutMs while the socket is not there yet. */
  static async connect(path: string, timeoutMs = 10_000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    let lastErr: unknown;
    while (Date.now() < deadline) {
      try {
        return await QmpClient.connectOnce(path, Math.max(500, deadline - Date.now()));
      } catch (e) {
        lastErr = e;
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error(`QMP socket ${path} did not answer within ${timeoutMs} ms: ${String(lastErr)}`);
  }

  private static connectOnce(path: string, timeoutMs: number): Promise<QmpClient> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(path);
      const client = new QmpClient(socket);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`QMP greeting from ${path} timed out after ${timeoutMs} ms (is another client attached?)`));
      }, timeoutMs);
      let greeted = false;
      socket.setEncoding('utf8');
      socket.once('error', (e) => {
        clearTimeout(timer);
        if (!greeted) reject(e);
      });
      socket.on('data', (chunk: string) => {
        client.buf += chunk;
        if (!greeted) {
          const nl = client.buf.indexOf('\n');
          if (nl < 0) return;
          const line = client.buf.slice(0, nl);
          client.buf = client.buf.slice(nl + 1);
          greeted = true;
          clearTimeout(timer);
          if (!line.includes('"QMP"')) {
            socket.destroy();
            reject(new Error(`unexpected QMP greeting from ${path}`));
            return;
          }
          socket.on('error', (e) => client.fail(e));
          socket.on('close', () => client.fail(new Error('QMP connection closed')));
          client.execute('qmp_capabilities').then(() => resolve(client), reject);
        }
        client.drain();
      });
    });
  }

  private drain(): void {
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (typeof msg.event === 'string') {
        const ev = msg as unknown as QmpEvent;
        const w = this.waiters.find((x) => x.name === ev.event && x.match(ev));
        if (w) {
          this.waiters = this.waiters.filter((x) => x !== w);
          w.resolve(ev);
        } else {
          this.events.push(ev);
          if (this.events.length > 200) this.events.shift();
        }
        continue;
      }
      const id = typeof msg.id === 'string' ? msg.id : undefined;
      const p = id ? this.pending.get(id) : undefined;
      if (!p || !id) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      if (msg.error) {
        const err = msg.error as { class?: string; desc?: string };
        p.reject(new QmpError(p.command, err.class ?? 'GenericError', err.desc ?? 'unknown error'));
      } else {
        p.resolve(msg.return);
      }
    }
  }

  private fail(e: Error): void {
    if (this.closedError) return;
    this.closedError = e;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`QMP ${p.command}: ${e.message}`));
      this.pending.delete(id);
    }
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 30_000): Promise<T> {
    if (this.closedError) return Promise.reject(new Error(`QMP ${command}: ${this.closedError.message}`));
    const id = `vdi-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP ${command} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + '\n');
    });
  }

  /** Runs an HMP command; QEMU reports HMP failures in the text, which is turned into an error. */
  async hmp(commandLine: string, timeoutMs = 120_000): Promise<string> {
    const out = await this.execute<string>('human-monitor-command', { 'command-line': commandLine }, timeoutMs);
    const text = typeof out === 'string' ? out : '';
    if (/^(Error|Could not|Device '.*' does not)/im.test(text)) {
      throw new QmpError(`human-monitor-command ${commandLine.split(' ')[0] ?? ''}`, 'HmpError', text.trim());
    }
    return text;
  }

  /** Resolves with the first event called `name` (already received or arriving before timeoutMs). */
  waitEvent(name: string, timeoutMs: number, match: (e: QmpEvent) => boolean = () => true): Promise<QmpEvent> {
    const idx = this.events.findIndex((e) => e.event === name && match(e));
    if (idx >= 0) return Promise.resolve(this.events.splice(idx, 1)[0] as QmpEvent);
    return new Promise((resolve, reject) => {
      const w: EventWaiter = {
        name,
        match,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`QMP event ${name} not seen within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  close(): void {
    this.fail(new Error('QMP connection closed by client'));
    this.socket.destroy();
  }
}

/** Opens a QMP session, runs fn, and always closes the session. */
export async function withQmp<T>(path: string, fn: (q: QmpClient) => Promise<T>, connectTimeoutMs = 10_000): Promise<T> {
  const q = await QmpClient.connect(path, connectTimeoutMs);
  try {
    return await fn(q);
  } finally {
    q.close();
  }
}
