// Samples the round trip of a Redis PING from this replica (vdi_redis_latency_seconds and
// vdi_redis_up): the number operators look at first when logins slow down. One PING every
// `intervalMs`, never two in flight; a PING slower than `timeoutMs` counts as down.
import type { Redis } from 'ioredis';

export interface RedisLatencySink {
  sample(seconds: number): void;
  up(isUp: boolean): void;
}

export function sampleRedisLatency(redis: Redis, sink: RedisLatencySink, intervalMs = 5000, timeoutMs = 1000): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    const t0 = process.hrtime.bigint();
    let slow: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        redis.ping(),
        new Promise((_, reject) => (slow = setTimeout(() => reject(new Error('timeout')), timeoutMs))),
      ]);
      sink.sample(Number(process.hrtime.bigint() - t0) / 1e9);
      sink.up(true);
    } catch {
      sink.up(false);
    } finally {
      clearTimeout(slow);
      if (!stopped) (timer = setTimeout(() => void tick(), intervalMs)).unref();
    }
  };
  (timer = setTimeout(() => void tick(), 0)).unref();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
