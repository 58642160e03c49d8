import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';
import { runScript } from './scripts.ts';
import { parseNamePattern, type Pool } from '../broker/model.ts';
import { DESKTOP_STATES, type DesktopState } from '../broker/state-machine.ts';

export type PoolCounts = Record<DesktopState, number> & { total: number; sessions: number };

/** The fields the Lua scripts read, mirrored from the spec on every save, and a new revision. */
function scriptFields(p: Pool): (string | number)[] {
  const n = parseNamePattern(p.naming);
  return [
    'rev', randomUUID(),
    'spec', JSON.stringify(p),
    'max', p.size.max,
    'assignment', p.assignment,
    'persistence', p.persistence,
    'enabled', p.enabled ? 1 : 0,
    'maintenance', p.maintenance ? 1 : 0,
    'provider', p.provider,
    'image', p.image,
    'namePrefix', n.prefix,
    'nameWidth', n.width,
    'nameSuffix', n.suffix,
    'nameMax', n.max,
  ];
}

/** The pool record from its hash's `spec` and `deleting` fields. */
function poolOf(spec: string, deleting: string | null | undefined): Pool & { deleting: boolean } {
  return { ...(JSON.parse(spec) as Pool), deleting: deleting === '1' };
}

/** A pool as a desktop request sees it, with the revision it was read at (see forAssignment). */
export interface PoolAtRevision {
  pool: Pool & { deleting: boolean };
  /** The pool's revision token ('' for a pool not saved since revisions exist: never cached). */
  rev: string;
  /** Read from this replica's memory, not from Redis just now. */
  cached: boolean;
}

/** At most this many pools are remembered by forAssignment (a bound, not a working set). */
const CACHED_POOLS_MAX = 10_000;

export class PoolsRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace) {}

  /**
   * Pools as the last desktop request read them, by name. Never trusted on its own: the
   * assignment script commits only while the pool's revision is still the one read here
   * (assign.lua answers pool_changed otherwise), and a refusal decided from it is read again.
   */
  private readonly remembered = new Map<string, PoolAtRevision>();

  /**
   * The pool for a desktop request: from memory when this replica read it before (no Redis
   * round trip on the hot path), else from Redis. `fresh` skips memory. null: no such pool.
   */
  async forAssignment(name: string, fresh = false): Promise<PoolAtRevision | null> {
    const known = fresh ? undefined : this.remembered.get(name);
    if (known) return known;
    const [spec, deleting, rev] = await this.redis.hmget(this.k.pool(name), 'spec', 'deleting', 'rev');
    if (!spec) {
      this.remembered.delete(name);
      return null;
    }
    const read: PoolAtRevision = { pool: poolOf(spec, deleting), rev: rev ?? '', cached: false };
    if (read.rev) {
      if (this.remembered.size >= CACHED_POOLS_MAX) this.remembered.clear();
      // Shared by every request that finds it here: read only.
      this.remembered.set(name, { pool: Object.freeze(read.pool), rev: read.rev, cached: true });
    } else this.remembered.delete(name);
    return read;
  }

  /** Returns 'ok', 'already_exists' (create) or 'not_found' (update). */
  async save(pool: Pool, mode: 'create' | 'update'): Promise<'ok' | 'already_exists' | 'not_found'> {
    const r = (await runScript(this.redis, 'vdiPoolSave', [this.k.prefix, pool.name, mode, ...scriptFields(pool)])) as string[];
    return r[0] === 'ok' ? 'ok' : (r[1] as 'already_exists' | 'not_found');
  }

  async get(name: string): Promise<(Pool & { deleting: boolean }) | null> {
    const [spec, deleting] = await this.redis.hmget(this.k.pool(name), 'spec', 'deleting');
    if (!spec) return null;
    return poolOf(spec, deleting);
  }

  async list(): Promise<(Pool & { deleting: boolean })[]> {
    const names = (await this.redis.smembers(this.k.pools)).sort();
    if (names.length === 0) return [];
    const m = this.redis.multi();
    for (const n of names) m.hmget(this.k.pool(n), 'spec', 'deleting');
    const res = (await m.exec()) ?? [];
    const out: (Pool & { deleting: boolean })[] = [];
    for (const [, v] of res) {
      const [spec, deleting] = v as [string | null, string | null];
      if (spec) out.push(poolOf(spec, deleting));
    }
    return out;
  }

  /** Marks the pool for deletion: it takes no new users; the sizing job empties and removes it. */
  async markDeleting(name: string): Promise<'marked' | 'already' | 'missing'> {
    const cur = await this.redis.hget(this.k.pool(name), 'deleting');
    if (cur === null && (await this.redis.exists(this.k.pool(name))) === 0) return 'missing';
    if (cur === '1') return 'already';
    // A new revision: a desktop request working from the pool as it was is refused by assign.lua.
    await this.redis.hset(this.k.pool(name), 'deleting', '1', 'rev', randomUUID());
    return 'marked';
  }

  /** Removes an emptied pool's keys. Refuses (false) while it still has desktops. */
  async removeIfEmpty(name: string): Promise<boolean> {
    await this.redis.watch(this.k.poolDesktops(name));
    if ((await this.redis.scard(this.k.poolDesktops(name))) > 0) {
      await this.redis.unwatch();
      return false;
    }
    const keys = [this.k.pool(name), this.k.poolDesktops(name), this.k.poolAssignments(name), this.k.poolSessions(name), ...DESKTOP_STATES.map((s) => this.k.poolState(name, s))];
    const r = await this.redis.multi().del(...keys).srem(this.k.pools, name).exec();
    return r !== null;
  }

  async counts(name: string): Promise<PoolCounts> {
    const m = this.redis.multi();
    for (const s of DESKTOP_STATES) m.scard(this.k.poolState(name, s));
    m.scard(this.k.poolDesktops(name)).scard(this.k.poolSessions(name));
    const res = ((await m.exec()) ?? []).map(([, v]) => Number(v));
    const out = { total: res[DESKTOP_STATES.length]!, sessions: res[DESKTOP_STATES.length + 1]! } as PoolCounts;
    DESKTOP_STATES.forEach((s, i) => (out[s] = res[i]!));
    return out;
  }
}
