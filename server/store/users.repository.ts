import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';
import { runScript } from './scripts.ts';
import { hashOfJson } from './records.ts';
import type { Group, Role, User } from '../broker/model.ts';

export interface StoredUser extends User {
  passwordHash: string;
}

function toUser(h: Record<string, string>, groups: string[]): StoredUser | null {
  if (!h.id) return null;
  return {
    id: h.id,
    displayName: h.displayName ?? h.id,
    role: (h.role ?? 'user') as Role,
    groups: groups.sort(),
    disabled: h.disabled === '1',
    createdAt: h.createdAt ?? '',
    updatedAt: h.updatedAt ?? '',
    passwordHash: h.passwordHash ?? '',
    ...(h.source ? { source: h.source } : {}),
    ...(h.externalId ? { externalId: h.externalId } : {}),
    ...(h.groupsRefreshedAt ? { groupsRefreshedAt: h.groupsRefreshedAt } : {}),
  };
}

/** Users and groups. Membership is kept on both sides (user:X:groups, group:G:members) in one MULTI. */
export class UsersRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace) {}

  async get(id: string): Promise<StoredUser | null> {
    // One script (user-get.lua): this runs on every API request, for the principal behind the login.
    const [json, groups] = (await runScript(this.redis, 'vdiUserGet', [this.k.prefix, id])) as [string, string[]];
    return toUser(hashOfJson(json), groups);
  }

  /**
   * An HTTP session record (express-session's JSON, under `sessionKey`) and the user its login
   * names, in one round trip (http-session.lua): every API request with a cookie needs both.
   * `user` is undefined when the session names no user, null when that user does not exist.
   */
  async withSession(sessionKey: string): Promise<{ session: string | null; userId?: string; user?: StoredUser | null }> {
    const r = (await runScript(this.redis, 'vdiHttpSession', [this.k.prefix, sessionKey])) as [string?, string?, string?, string[]?];
    if (r[0] === undefined) return { session: null };
    if (r[1] === undefined) return { session: r[0] };
    return { session: r[0], userId: r[1], user: toUser(hashOfJson(r[2]), r[3] ?? []) };
  }

  async list(): Promise<StoredUser[]> {
    const ids = (await this.redis.smembers(this.k.users)).sort();
    const out: StoredUser[] = [];
    for (let i = 0; i < ids.length; i += 200) {
      const m = this.redis.multi();
      for (const id of ids.slice(i, i + 200)) m.hgetall(this.k.user(id)).smembers(this.k.userGroups(id));
      const res = (await m.exec()) ?? [];
      for (let j = 0; j < res.length; j += 2) {
        const u = toUser(res[j]![1] as Record<string, string>, res[j + 1]![1] as string[]);
        if (u) out.push(u);
      }
    }
    return out;
  }

  async count(): Promise<number> {
    return this.redis.scard(this.k.users);
  }

  /** Creates the user unless the id exists; returns false if it did. */
  async create(u: { id: string; displayName: string; role: Role; passwordHash: string; groups: string[]; source?: string; externalId?: string; groupsRefreshedAt?: string }): Promise<boolean> {
    const now = new Date().toISOString();
    const created = await this.redis.hsetnx(this.k.user(u.id), 'id', u.id);
    if (!created) return false;
    const m = this.redis
      .multi()
      .hset(this.k.user(u.id), {
        displayName: u.displayName, role: u.role, passwordHash: u.passwordHash, disabled: '0', createdAt: now, updatedAt: now,
        ...(u.source ? { source: u.source } : {}), ...(u.externalId ? { externalId: u.externalId } : {}), ...(u.groupsRefreshedAt ? { groupsRefreshedAt: u.groupsRefreshedAt } : {}),
      })
      .sadd(this.k.users, u.id);
    for (const g of u.groups) m.sadd(this.k.userGroups(u.id), g).sadd(this.k.groupMembers(g), u.id);
    await m.exec();
    return true;
  }

  async update(id: string, fields: { displayName?: string; role?: Role; passwordHash?: string; disabled?: boolean; groups?: string[]; externalId?: string; groupsRefreshedAt?: string }): Promise<boolean> {
    const cur = await this.get(id);
    if (!cur) return false;
    const h: Record<string, string> = { updatedAt: new Date().toISOString() };
    if (fields.displayName !== undefined) h.displayName = fields.displayName;
    if (fields.role !== undefined) h.role = fields.role;
    if (fields.passwordHash !== undefined) h.passwordHash = fields.passwordHash;
    if (fields.disabled !== undefined) h.disabled = fields.disabled ? '1' : '0';
    if (fields.externalId !== undefined) h.externalId = fields.externalId;
    if (fields.groupsRefreshedAt !== undefined) h.groupsRefreshedAt = fields.groupsRefreshedAt;
    const m = this.redis.multi().hset(this.k.user(id), h);
    if (fields.groups) {
      for (const g of cur.groups) if (!fields.groups.includes(g)) m.srem(this.k.userGroups(id), g).srem(this.k.groupMembers(g), id);
      for (const g of fields.groups) m.sadd(this.k.userGroups(id), g).sadd(this.k.groupMembers(g), id);
    }
    await m.exec();
    return true;
  }

  async remove(id: string): Promise<boolean> {
    const cur = await this.get(id);
    if (!cur) return false;
    const m = this.redis.multi().del(this.k.user(id), this.k.userGroups(id)).srem(this.k.users, id);
    for (const g of cur.groups) m.srem(this.k.groupMembers(g), id);
    await m.exec();
    return true;
  }

  // groups

  async getGroup(name: string): Promise<Group | null> {
    const [[, h], [, members]] = (await this.redis.multi().hgetall(this.k.group(name)).smembers(this.k.groupMembers(name)).exec()) as [
      [null, Record<string, string>],
      [null, string[]],
    ];
    if (!h.name) return null;
    return { name: h.name, displayName: h.displayName ?? h.name, members: members.sort(), createdAt: h.createdAt ?? '' };
  }

  async listGroups(): Promise<Group[]> {
    const names = (await this.redis.smembers(this.k.groups)).sort();
    const out: Group[] = [];
    for (const n of names) {
      const g = await this.getGroup(n);
      if (g) out.push(g);
    }
    return out;
  }

  async createGroup(g: { name: string; displayName: string; members: string[] }): Promise<boolean> {
    const created = await this.redis.hsetnx(this.k.group(g.name), 'name', g.name);
    if (!created) return false;
    const m = this.redis.multi().hset(this.k.group(g.name), { displayName: g.displayName, createdAt: new Date().toISOString() }).sadd(this.k.groups, g.name);
    for (const u of g.members) m.sadd(this.k.groupMembers(g.name), u).sadd(this.k.userGroups(u), g.name);
    await m.exec();
    return true;
  }

  async updateGroup(name: string, fields: { displayName?: string; members?: string[] }): Promise<boolean> {
    const cur = await this.getGroup(name);
    if (!cur) return false;
    const m = this.redis.multi();
    if (fields.displayName !== undefined) m.hset(this.k.group(name), 'displayName', fields.displayName);
    if (fields.members) {
      for (const u of cur.members) if (!fields.members.includes(u)) m.srem(this.k.groupMembers(name), u).srem(this.k.userGroups(u), name);
      for (const u of fields.members) m.sadd(this.k.groupMembers(name), u).sadd(this.k.userGroups(u), name);
    }
    await m.exec();
    return true;
  }

  async removeGroup(name: string): Promise<boolean> {
    const cur = await this.getGroup(name);
    if (!cur) return false;
    const m = this.redis.multi().del(this.k.group(name), this.k.groupMembers(name)).srem(this.k.groups, name);
    for (const u of cur.members) m.srem(this.k.userGroups(u), name);
    await m.exec();
    return true;
  }

  async missingUsers(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const res = await this.redis.smismember(this.k.users, ...ids);
    return ids.filter((_, i) => res[i] === 0);
  }

  async missingGroups(names: string[]): Promise<string[]> {
    if (names.length === 0) return [];
    const res = await this.redis.smismember(this.k.groups, ...names);
    return names.filter((_, i) => res[i] === 0);
  }
}
