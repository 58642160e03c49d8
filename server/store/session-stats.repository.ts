import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';

/** Live statistics of a session's streaming tunnel, measured by the tunnel (server/tunnel). */
export interface SessionStats {
  /** Bytes the tunnel sent to the browser (Guacamole instructions from the desktop). */
  bytesToClient: number;
  /** Bytes the browser sent to the tunnel. */
  bytesFromClient: number;
  /** Bytes per second both ways over the last few seconds. */
  bandwidthBps: number;
  /** Round trip of the last Guacamole `sync` (gateway sends `sync T`, the browser answers it), ms; null before one. */
  rttMs: number | null;
  /** Last keyboard/mouse/touch input from the browser (ms since epoch); null before any. */
  lastInputAt: number | null;
  /** The browser's address at connect (after trusted proxies). */
  clientAddress: string;
  /** The browser's User-Agent at connect (at most 300 characters). */
  userAgent: string;
  /** When the tunnel connected (ms since epoch). */
  connectedAt: number;
  /** When these figures were written (ms since epoch). */
  updatedAt: number;
}

/** Stats live this long after their last write (the tunnel writes at most every 2 s while open). */
export const SESSION_STATS_TTL_SECONDS = 60;

const FIELDS = ['bytesToClient', 'bytesFromClient', 'bandwidthBps', 'rttMs', 'lastInputAt', 'clientAddress', 'userAgent', 'connectedAt', 'updatedAt'] as const;

/** `P session:{id}:stats`: the open tunnel's figures, written by the tunnel, read by the helpdesk. */
export class SessionStatsRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace, private readonly ttlSeconds = SESSION_STATS_TTL_SECONDS) {}

  private key(sessionId: string): string {
    return this.k.sessionStats(sessionId);
  }

  async put(sessionId: string, s: SessionStats): Promise<void> {
    const key = this.key(sessionId);
    const flat: (string | number)[] = [];
    for (const f of FIELDS) flat.push(f, s[f] === null ? '' : String(s[f]));
    await this.redis.multi().hset(key, ...flat).expire(key, this.ttlSeconds).exec();
  }

  async get(sessionId: string): Promise<SessionStats | null> {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(sessionId)) return null;
    const h = await this.redis.hgetall(this.key(sessionId));
    if (!h.updatedAt) return null;
    const num = (v: string | undefined) => Number(v ?? 0) || 0;
    const opt = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));
    return {
      bytesToClient: num(h.bytesToClient),
      bytesFromClient: num(h.bytesFromClient),
      bandwidthBps: num(h.bandwidthBps),
      rttMs: opt(h.rttMs),
      lastInputAt: opt(h.lastInputAt),
      clientAddress: h.clientAddress ?? '',
      userAgent: h.userAgent ?? '',
      connectedAt: num(h.connectedAt),
      updatedAt: num(h.updatedAt),
    };
  }

  /** Drops the figures when the tunnel closes (they would expire anyway). */
  async clear(sessionId: string): Promise<void> {
    await this.redis.del(this.key(sessionId));
  }
}
