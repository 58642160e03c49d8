// Per-pool history for the helpdesk overview: one sample per minute (the last write in a
// minute wins), at most `maxPoints` per pool (24 h), in `P history:{pool}` (a list, oldest
// first). Written by one replica (server/jobs/pool-history.ts, under a lease), read by all.
import type { Redis } from 'ioredis';

export interface HistorySample {
  /** Start of the minute, ms epoch. */
  t: number;
  ready: number;
  inUse: number;
  provisioning: number;
  error: number;
  connected: number;
  disconnected: number;
}

export const HISTORY_POINTS = 1440;
const FIELDS = ['t', 'ready', 'inUse', 'provisioning', 'error', 'connected', 'disconnected'] as const;

// KEYS[1] list; ARGV[1] minute (ms), ARGV[2] encoded sample, ARGV[3] max points.
// The same minute replaces the last sample; a new minute appends and trims the oldest.
const PUT = `
local last = redis.call('LINDEX', KEYS[1], -1)
if last and string.sub(last, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ',' then
  redis.call('LSET', KEYS[1], -1, ARGV[2])
else
  redis.call('RPUSH', KEYS[1], ARGV[2])
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
end
return 1`;

export class HistoryRepository {
  constructor(private readonly redis: Redis, private readonly keyOf: (pool: string) => string, private readonly maxPoints = HISTORY_POINTS) {}

  async put(pool: string, s: HistorySample): Promise<void> {
    const minute = Math.floor(s.t / 60_000) * 60_000;
    const enc = FIELDS.map((f) => (f === 't' ? minute : Math.max(0, Math.round(s[f])))).join(',');
    await this.redis.eval(PUT, 1, this.keyOf(pool), String(minute), enc, this.maxPoints);
  }

  /** Samples since `since` (ms), oldest first. */
  async since(pool: string, since: number): Promise<HistorySample[]> {
    const raw = await this.redis.lrange(this.keyOf(pool), 0, -1);
    const out: HistorySample[] = [];
    for (const line of raw) {
      const n = line.split(',').map(Number);
      if (n.length !== FIELDS.length || n.some((x) => !Number.isFinite(x))) continue;
      const s = Object.fromEntries(FIELDS.map((f, i) => [f, n[i]!])) as unknown as HistorySample;
      if (s.t >= since) out.push(s);
    }
    return out;
  }

  async drop(pool: string): Promise<void> {
    await this.redis.del(this.keyOf(pool));
  }
}
