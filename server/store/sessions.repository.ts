import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';
import { runScript } from './scripts.ts';
import { toSession } from './records.ts';
import type { Session } from '../broker/model.ts';
import type { MacRange } from './desktops.repository.ts';

export type AssignResult =
  | { outcome: 'existing' | 'assigned' | 'provisioning'; desktopId: string; sessionId: string }
  | { outcome: 'error'; code: string };

export class SessionsRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace, private readonly macs: MacRange) {}

  /** The assignment decision, atomically in Redis (see lua/assign.lua). */
  async assign(pool: string, user: string, clientAddress: string, now: number): Promise<AssignResult> {
    const r = (await runScript(this.redis, 'vdiAssign', [
      this.k.prefix, pool, user, randomUUID(), randomUUID(), now, clientAddress, this.macs.prefix, this.macs.size,
    ])) as string[];
    if (r[0] === 'err') return { outcome: 'error', code: r[1]! };
    return { outcome: r[0] as 'existing' | 'assigned' | 'provisioning', desktopId: r[1]!, sessionId: r[2]! };
  }

  /** Ends a session and returns its desktop per pool policy. null when it was not live. */
  async release(sessionId: string, reason: string, now: number): Promise<{ desktopId: string; desktopState: string } | null> {
    const r = (await runScript(this.redis, 'vdiRelease', [this.k.prefix, sessionId, now, reason])) as string[];
    if (r[0] === 'noop') return null;
    if (r[0] === 'err') throw new Error(`release ${sessionId}: ${r[1]}`);
    return { desktopId: r[1]!, desktopState: r[2]! };
  }

  async event(sessionId: string, event: 'connected' | 'disconnected' | 'activity', now: number): Promise<'ok' | string> {
    const r = (await runScript(this.redis, 'vdiSessionEvent', [this.k.prefix, sessionId, event, now])) as string[];
    return r[0] === 'ok' ? 'ok' : r[1]!;
  }

  async get(id: string): Promise<Session | null> {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) return null;
    return toSession(await this.redis.hgetall(this.k.session(id)));
  }

  async getMany(ids: string[]): Promise<Session[]> {
    const out: Session[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const m = this.redis.multi();
      for (const id of ids.slice(i, i + 500)) m.hgetall(this.k.session(id));
      for (const [, h] of (await m.exec()) ?? []) {
        const s = toSession(h as Record<string, string>);
        if (s) out.push(s);
      }
    }
    return out;
  }

  async liveIds(): Promise<string[]> {
    return this.redis.smembers(this.k.sessionsLive);
  }

  async liveIdsOfUser(user: string): Promise<string[]> {
    return this.redis.smembers(this.k.userSessions(user));
  }

  async liveIdsOfPool(pool: string): Promise<string[]> {
    return this.redis.smembers(this.k.poolSessions(pool));
  }
}
