import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';

/** One session recording's index entry (the file itself is under recordings.dir, named `{id}.guac`). */
export interface Recording {
  id: string;
  session: string;
  user: string;
  desktop: string;
  pool: string;
  /** 'on' or 'notify' (the pool's policy when the tunnel opened). */
  policy: string;
  /** ms since epoch. */
  startedAt: number;
  /** ms since epoch; null while the tunnel still records. */
  endedAt: number | null;
  bytes: number;
  /** Absolute path of the file (written by the tunnel; never shown by the API). */
  file: string;
}

export interface RecordingFilter {
  user?: string;
  desktop?: string;
  pool?: string;
  session?: string;
  /** Started at or after (ms). */
  since?: number;
  /** Started at or before (ms). */
  until?: number;
  offset: number;
  limit: number;
}

const FIELDS = ['id', 'session', 'user', 'desktop', 'pool', 'policy', 'startedAt', 'endedAt', 'bytes', 'file'] as const;

function toRecording(h: Record<string, string>): Recording | null {
  if (!h.id) return null;
  return {
    id: h.id,
    session: h.session ?? '',
    user: h.user ?? '',
    desktop: h.desktop ?? '',
    pool: h.pool ?? '',
    policy: h.policy ?? 'on',
    startedAt: Number(h.startedAt ?? 0) || 0,
    endedAt: h.endedAt ? Number(h.endedAt) : null,
    bytes: Number(h.bytes ?? 0) || 0,
    file: h.file ?? '',
  };
}

/** `P recordings` (zset id → start) and `P recording:{id}` (hash): the index of recorded sessions. */
export class RecordingsRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace) {}

  async add(r: Recording): Promise<void> {
    const flat: string[] = [];
    for (const f of FIELDS) flat.push(f, r[f] === null ? '' : String(r[f]));
    await this.redis.multi().hset(this.k.recording(r.id), ...flat).zadd(this.k.recordings, r.startedAt, r.id).exec();
  }

  /** Progress while recording and the end; only on an indexed recording (a deleted one stays deleted). */
  async update(id: string, o: { bytes: number; endedAt?: number }): Promise<void> {
    const key = this.k.recording(id);
    await this.redis.eval(
      "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end redis.call('HSET', KEYS[1], 'bytes', ARGV[1]) if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'endedAt', ARGV[2]) end return 1",
      1, key, String(o.bytes), o.endedAt === undefined ? '' : String(o.endedAt),
    );
  }

  async get(id: string): Promise<Recording | null> {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) return null;
    return toRecording(await this.redis.hgetall(this.k.recording(id)));
  }

  /** Newest first, filtered; scans the index by start time (bounded by since/until). */
  async list(f: RecordingFilter): Promise<{ recordings: Recording[]; total: number }> {
    const max = f.until !== undefined ? String(f.until) : '+inf';
    const min = f.since !== undefined ? String(f.since) : '-inf';
    const ids = await this.redis.zrevrangebyscore(this.k.recordings, max, min);
    const all: Recording[] = [];
    for (let i = 0; i < ids.length; i += 200) {
      const p = this.redis.pipeline();
      for (const id of ids.slice(i, i + 200)) p.hgetall(this.k.recording(id));
      for (const [, h] of (await p.exec()) ?? []) {
        const r = toRecording((h ?? {}) as Record<string, string>);
        if (!r) continue;
        if (f.user && r.user !== f.user) continue;
        if (f.desktop && r.desktop !== f.desktop) continue;
        if (f.pool && r.pool !== f.pool) continue;
        if (f.session && r.session !== f.session) continue;
        all.push(r);
      }
    }
    return { recordings: all.slice(f.offset, f.offset + f.limit), total: all.length };
  }

  /** Ids of recordings that started before `before` (ms), oldest first, at most `limit`. */
  async startedBefore(before: number, limit: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.k.recordings, '-inf', `(${before}`, 'LIMIT', 0, limit);
  }

  /** Every indexed id (for the retention pass's orphan check). */
  async ids(): Promise<string[]> {
    return this.redis.zrange(this.k.recordings, 0, -1);
  }

  async remove(id: string): Promise<boolean> {
    const r = await this.redis.multi().del(this.k.recording(id)).zrem(this.k.recordings, id).exec();
    return Number(r?.[0]?.[1] ?? 0) > 0 || Number(r?.[1]?.[1] ?? 0) > 0;
  }
}
