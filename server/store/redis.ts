import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions as IoRedisOptions } from 'ioredis';
import type { Logger } from '../observability/index.ts';

export type RedisClient = Redis;

/** Where Redis is: a URL, or sentinels naming the primary (the config's `redis` section). */
export interface RedisTarget {
  url: string;
  password?: string;
  sentinels?: { host: string; port: number }[];
  name?: string;
  sentinelPassword?: string;
  tls?: { caFile: string; rejectUnauthorized: boolean };
}

export interface RedisOptions extends RedisTarget {
  commandTimeoutMs: number;
  logger: Logger;
}

/** The connection part of the configuration's `redis` section. */
export function redisTarget(r: RedisTarget): RedisTarget {
  return { url: r.url, ...(r.password ? { password: r.password } : {}), ...(r.sentinels?.length ? { sentinels: r.sentinels, name: r.name ?? 'mymaster', sentinelPassword: r.sentinelPassword ?? '' } : {}), ...(r.tls ? { tls: r.tls } : {}) };
}

/** Where to connect, as ioredis takes it: host/port/db from the URL, or the sentinel set. */
function connection(opts: RedisTarget): IoRedisOptions {
  const u = new URL(opts.url);
  const secure = u.protocol === 'rediss:';
  const tls = secure ? { ...(opts.tls?.caFile ? { ca: readFileSync(opts.tls.caFile) } : {}), rejectUnauthorized: opts.tls?.rejectUnauthorized ?? true } : undefined;
  const db = Number(u.pathname.slice(1) || 0);
  const username = u.username ? decodeURIComponent(u.username) : undefined;
  const password = opts.password || (u.password ? decodeURIComponent(u.password) : undefined);
  const auth = { ...(username ? { username } : {}), ...(password ? { password } : {}) };
  if (opts.sentinels?.length) {
    return {
      sentinels: opts.sentinels,
      name: opts.name ?? 'mymaster',
      db,
      ...auth,
      ...(opts.sentinelPassword ? { sentinelPassword: opts.sentinelPassword } : {}),
      ...(tls ? { tls, sentinelTLS: tls, enableTLSForSentinelMode: true } : {}),
      // Learn of a failover from the sentinels' +switch-master at once, not at the next error.
      failoverDetector: true,
      sentinelRetryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 10), 3000),
    };
  }
  return { host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(u.port || 6379), db, ...auth, ...(tls ? { tls } : {}) };
}

/**
 * A client that fails fast while Redis is away (no offline queue, one retry), so requests get
 * a 503 at once instead of hanging, and that reconnects by itself forever with backoff.
 * A stalled server (alive but not answering: stopped, swapping, a long script) is treated like
 * a dead one: after `commandTimeoutMs` without an answer the socket timeout drops the connection,
 * the commands waiting on it time out a moment later, and until a fresh connection passes its ready check every
 * command fails at once ("Stream isn't writeable") instead of each waiting out the timeout.
 */
export function createRedis(opts: RedisOptions): Redis {
  const client = new Redis({
    ...connection(opts),
    lazyConnect: true,
    // Not ioredis's auto-pipelining: batchWrites (below) sends an event-loop turn's commands in one write.
    enableAutoPipelining: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // The socket gives up a moment before the command: by the time a caller sees its command
    // time out, the connection is already down, so its next command fails at once instead of
    // waiting out another timeout on the stalled connection.
    commandTimeout: opts.commandTimeoutMs + 100,
    socketTimeout: opts.commandTimeoutMs,
    // A command that timed out may still run when a stalled server wakes up; sending it again
    // on the new connection could run it twice.
    autoResendUnfulfilledCommands: false,
    connectTimeout: 5000,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 10), 3000),
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
  });
  batchWrites(client);
  let down = false;
  client.on('error', (err: Error) => {
    // Logged once per outage; ioredis keeps reconnecting.
    if (!down) opts.logger.warn({ err: err.message }, 'redis unavailable; reconnecting');
    down = true;
  });
  client.on('ready', () => {
    if (down) opts.logger.info('redis reachable again');
    down = false;
  });
  return client;
}

/**
 * The commands issued in one turn of the event loop leave in one socket write: the socket is
 * corked at the first command and uncorked from setImmediate, which node runs once it has handled
 * every I/O event of this turn (each a request read, a Redis reply, a timer), before it waits for
 * more. Under load one turn handles many requests, so their commands (the login reads, the
 * assignments, the logoffs) share one write instead of one each, and Redis answers them in one
 * write too; a quiet loop runs the immediate at once, so no command waits for other work. This is
 * what ioredis's auto-pipelining was on for, without its costs: a Pipeline object per batch
 * (which copies every defined script onto itself, with its own promise), and a batch held back
 * until the previous one is answered (it runs one batch at a time). At low load those costs were
 * about a fifth of a request's CPU time; uncorking per turn rather than per tick
 * (process.nextTick, after each callback) took a further tenth at 700–1,000 requests/s
 * (bench:assign, docs/benchmarks.md).
 */
export function batchWrites(client: Redis): void {
  const send = client.sendCommand.bind(client);
  let corked: Redis['stream'] | null = null;
  const uncork = () => {
    const s = corked;
    corked = null;
    s?.uncork();
  };
  client.sendCommand = (command, stream) => {
    const s = client.stream;
    if (corked === null && s && client.status === 'ready' && !s.destroyed) {
      corked = s;
      s.cork();
      setImmediate(uncork);
    }
    return send(command, stream);
  };
}

/** Connects, waiting up to `timeoutMs`; resolves false instead of throwing when Redis is away. */
export async function connectRedis(client: Redis, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return true;
  if (client.status === 'wait') client.connect().catch(() => undefined);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      client.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(t);
      resolve(true);
    };
    client.once('ready', onReady);
  });
}
