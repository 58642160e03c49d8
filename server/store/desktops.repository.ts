import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';
import { runScript } from './scripts.ts';
import { toDesktop } from './records.ts';
import type { Desktop, DesktopMigration } from '../broker/model.ts';
import type { DesktopState, TransitionTarget } from '../broker/state-machine.ts';
import { LIST_DESKTOPS } from './desktops-list.script.ts';

/** A page of the helpdesk's desktop table (see desktops-list.script.ts). */
export interface DesktopPageQuery {
  pool?: string;
  state?: string;
  user?: string;
  host?: string;
  name?: string;
  /** Lower-cased substring of name, pool, state, user, host or image. */
  q?: string;
  sort?: 'name' | 'pool' | 'state' | 'user' | 'host' | 'image';
  order?: 'asc' | 'desc';
  offset: number;
  limit: number;
}

type ListScripted = Redis & { vdiListDesktops(...args: (string | number)[]): Promise<(string | number)[]> };

export type TransitionResult =
  | { ok: true; from: DesktopState; to: DesktopState }
  | { ok: false; code: 'not_found' | 'conflict' | 'illegal_transition'; current: string };

export interface MacRange {
  prefix: string;
  size: number;
}

export class DesktopsRepository {
  constructor(
    private readonly redis: Redis,
    private readonly k: Keyspace,
    private readonly macs: MacRange,
    private readonly deletedRetentionSeconds: number,
  ) {
    if (!('vdiListDesktops' in redis)) redis.defineCommand('vdiListDesktops', { numberOfKeys: 0, lua: LIST_DESKTOPS });
  }

  /** One page of desktops, filtered, searched and sorted inside Redis: the page's desktops and how many match. */
  async page(f: DesktopPageQuery): Promise<{ items: Desktop[]; total: number }> {
    const r = await (this.redis as ListScripted).vdiListDesktops(
      this.k.prefix, f.pool ?? '', f.state ?? '', f.user ?? '', f.host ?? '', f.name ?? '', (f.q ?? '').toLowerCase(),
      f.sort ?? 'name', f.order ?? 'asc', Math.max(0, f.offset), Math.max(0, f.limit),
    );
    const ids = r.slice(1).map(String);
    const byId = new Map((await this.getMany(ids)).map((d) => [d.id, d]));
    return { total: Number(r[0]), items: ids.map((id) => byId.get(id)).filter((d): d is Desktop => !!d) };
  }

  async get(id: string): Promise<Desktop | null> {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) return null;
    return toDesktop(await this.redis.hgetall(this.k.desktop(id)));
  }

  async getMany(ids: string[]): Promise<Desktop[]> {
    const out: Desktop[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const m = this.redis.multi();
      for (const id of ids.slice(i, i + 500)) m.hgetall(this.k.desktop(id));
      for (const [, h] of (await m.exec()) ?? []) {
        const d = toDesktop(h as Record<string, string>);
        if (d) out.push(d);
      }
    }
    return out;
  }

  async idsInPool(pool: string): Promise<string[]> {
    return this.redis.smembers(this.k.poolDesktops(pool));
  }

  async idsInState(pool: string, state: DesktopState): Promise<string[]> {
    return this.redis.smembers(this.k.poolState(pool, state));
  }

  async listByPool(pool: string): Promise<Desktop[]> {
    return this.getMany(await this.idsInPool(pool));
  }

  async assignmentOf(pool: string, user: string): Promise<string | null> {
    return this.redis.hget(this.k.poolAssignments(pool), user);
  }

  /** Creates a spare desktop if the pool is under max. Returns the new desktop's id, or an error code. */
  async provisionSpare(pool: string, now: number): Promise<{ id: string; name: string } | { error: string }> {
    const id = randomUUID();
    const r = (await runScript(this.redis, 'vdiProvision', [this.k.prefix, pool, id, now, this.macs.prefix, this.macs.size])) as string[];
    return r[0] === 'ok' ? { id, name: r[1]! } : { error: r[1]! };
  }

  /**
   * The one way a desktop's state changes outside assignment and logoff. `expect` guards
   * against acting on a desktop that moved meanwhile; `fields` are set in the same step.
   */
  async transition(
    id: string,
    to: TransitionTarget,
    opts: { expect?: DesktopState[]; reason?: string; fields?: Record<string, string | number>; now?: number } = {},
  ): Promise<TransitionResult> {
    const r = (await runScript(this.redis, 'vdiTransition', [
      this.k.prefix,
      id,
      to,
      opts.now ?? Date.now(),
      (opts.expect ?? []).join(','),
      opts.reason ?? '',
      opts.fields ? JSON.stringify(opts.fields) : '',
      this.deletedRetentionSeconds,
    ])) as string[];
    if (r[0] === 'ok') return { ok: true, from: r[1] as DesktopState, to: r[2] as DesktopState };
    return { ok: false, code: r[1] as 'not_found' | 'conflict' | 'illegal_transition', current: r[2] ?? '' };
  }

  /** Sets bookkeeping fields (host, failures, lastError...) without touching the state. */
  async setFields(id: string, fields: Record<string, string | number>): Promise<void> {
    // Only on an existing record: HSET on a vanished desktop would resurrect a stub.
    if ((await this.redis.exists(this.k.desktop(id))) === 1) await this.redis.hset(this.k.desktop(id), fields);
  }

  /** Records a running migration's latest progress on the desktop, or clears it (null). */
  async setMigration(id: string, m: DesktopMigration | null): Promise<void> {
    if (!m) await this.redis.hdel(this.k.desktop(id), 'migration');
    else if ((await this.redis.exists(this.k.desktop(id))) === 1) await this.redis.hset(this.k.desktop(id), 'migration', JSON.stringify(m));
  }

  /**
   * Marks a desktop unreachable since `since` ms (its host does not answer), or reachable with 0.
   * The state is untouched. True if the mark changed (the caller audits only then).
   */
  async markUnreachable(id: string, since: number): Promise<boolean> {
    const key = this.k.desktop(id);
    const [exists, cur] = await this.redis.multi().exists(key).hget(key, 'unreachableSince').exec().then((r) => (r ?? []).map(([, v]) => v));
    if (exists !== 1 || (Number(cur ?? 0) > 0) === since > 0) return false;
    await this.redis.hset(key, 'unreachableSince', since);
    return true;
  }

  async assignOwner(id: string, user: string, now: number): Promise<'ok' | string> {
    const r = (await runScript(this.redis, 'vdiAssignOwner', [this.k.prefix, id, user, now])) as string[];
    return r[0] === 'ok' ? 'ok' : r[1]!;
  }

  async nameTaken(name: string): Promise<string | null> {
    return this.redis.hget(this.k.desktopNames, name);
  }

  async macOwner(mac: string): Promise<string | null> {
    return this.redis.hget(this.k.macs, mac);
  }
}
