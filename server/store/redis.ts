import { Redis } from 'ioredis';
import type { Logger } from '../observability/index.ts';

export type RedisClient = Redis;

export interface RedisOptions {
  url: string;
  password?: string;
  commandTimeoutMs: number;
  logger: Logger;
}

/**
 * A client that fails fast while Redis is away (no offline queue, one retry), so requests get
 * a 503 at once instead of hanging, and that reconnects by itself forever with backoff.
 */
export function createRedis(opts: RedisOptions): Redis {
  const client = new Redis(opts.url, {
    ...(opts.password ? { password: opts.password } : {}),
    lazyConnect: true,
    // Commands issued in the same tick go out as one pipeline: many concurrent requests, few round trips.
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs,
    connectTimeout: 5000,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 10), 3000),
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
  });
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
