import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';
import { runScript } from './scripts.ts';
import { parseNamePattern, type Pool } from '../broker/model.ts';
import { DESKTOP_STATES, type DesktopState } from '../broker/state-machine.ts';

export type PoolCounts = Record<DesktopState, number> & { total: number; sessions: number };

/** The fields the Lua scripts read, mirrored from the spec on every save. */
function scriptFields(p: Pool): (string | number)[] {
  const n = parseNamePattern(p.naming);
  return [
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

export class PoolsRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace) {}

  /** Returns 'ok', 'already_exists' (create) or 'not_found' (update). */
  async save(pool: Pool, mode: 'create' | 'update'): Promise<'ok' | 'already_exists' | 'not_found'> {
    const r = (await runScript(this.redis, 'vdiPoolSave', [this.k.prefix, pool.name, mode, ...scriptFields(pool)])) as string[];
    return r[0] === 'ok' ? 'ok' : (r[1] as 'already_exists' | 'not_found');
  }

  async get(name: string): Promise<(Pool & { deleting: boolean }) | null> {
    const [spec, deleting] = await this.redis.hmget(this.k.pool(name), 'spec', 'deleting');
    if (!spec) return null;
    return { ...(JSON.parse(spec) as Pool), deleting: deleting === '1' };
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
      if (spec) out.push({ ...(JSON.parse(spec) as Pool), deleting: deleting === '1' });
    }
    return out;
  }

  /** Marks the pool for deletion: it takes no new users; the sizing job empties and removes it. */
  async markDeleting(name: string): Promise<'marked' | 'already' | 'missing'> {
    const cur = await this.redis.hget(this.k.pool(name), 'deleting');
    if (cur === null && (await this.redis.exists(this.k.pool(name))) === 0) return 'missing';
    if (cur === '1') return 'already';
    await this.redis.hset(this.k.pool(name), 'deleting', '1');
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
