import type { ReplicaBarrier } from './replica-barrier.ts';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';
import { runScript } from './scripts.ts';
import { hashOfJson, toDesktop, toSession } from './records.ts';
import type { Desktop, Session } from '../broker/model.ts';
import type { MacRange } from './desktops.repository.ts';
import { FIRST_FRAME, GUEST_IDLE, PUSH_MESSAGE, RECORD_LOGON } from './session-logon.scripts.ts';

/** A helpdesk message waiting in the session's list for its viewer. */
export interface SessionMessage {
  id: number;
  title: string;
  text: string;
  at: number;
  from: string;
}

type LogonScripted = Redis & {
  vdiLogonRecord(key: string, ...pairs: (string | number)[]): Promise<string[]>;
  vdiLogonFirstFrame(key: string, ms: number): Promise<string[]>;
  vdiGuestIdle(key: string, seconds: number, at: number): Promise<number>;
  vdiSessionMessage(key: string, list: string, title: string, text: string, at: number, from: string, ttl: number, max: number): Promise<number>;
};

export type AssignResult =
  /** With the session and desktop records as the script left them (null only if they vanished since). */
  | { outcome: 'existing' | 'assigned' | 'provisioning'; desktopId: string; sessionId: string; session: Session | null; desktop: Desktop | null }
  | { outcome: 'error'; code: string };

export class SessionsRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace, private readonly macs: MacRange, private readonly barrier?: ReplicaBarrier) {
    const scripts = { vdiLogonRecord: RECORD_LOGON, vdiLogonFirstFrame: FIRST_FRAME, vdiGuestIdle: GUEST_IDLE };
    for (const [name, lua] of Object.entries(scripts)) if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: 1, lua });
    if (!('vdiSessionMessage' in redis)) redis.defineCommand('vdiSessionMessage', { numberOfKeys: 2, lua: PUSH_MESSAGE });
  }

  private get scripted(): LogonScripted {
    return this.redis as LogonScripted;
  }

  /**
   * Records logon phases (ms) and markers that are not recorded yet (the first launch's timeline
   * stays). Returns the fields this call recorded, phases it derived from markers (guest_logon
   * from guestLogonAt and requestedAt) and click-to-usable when this call completed it. `audit`:
   * an entry (AuditRepository.entryArgs) written in the same command.
   */
  async recordLogon(sessionId: string, phases: Record<string, number>, markers: Record<string, string | number> = {}, audit: string[] = []): Promise<{ recorded: string[]; derived: Record<string, number>; usableMs?: number }> {
    const args: (string | number)[] = audit.length ? [audit.length + 1, this.k.audit, ...audit] : [0];
    for (const [k, v] of Object.entries(markers)) args.push(k, v);
    for (const [k, v] of Object.entries(phases)) args.push(`logon:${k}`, Math.max(0, Math.round(v)));
    if (args.length === 1) return { recorded: [], derived: {} };
    return logonReply(await this.scripted.vdiLogonRecord(this.k.session(sessionId), ...args));
  }

  /** When the logon's request came in and was answered (ms; 0 = not requested through the API). */
  async logonMarkers(sessionId: string): Promise<{ requestedAt: number; answeredAt: number }> {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(sessionId)) return { requestedAt: 0, answeredAt: 0 };
    const [a, b] = await this.redis.hmget(this.k.session(sessionId), 'requestedAt', 'answeredAt');
    return { requestedAt: Number(a ?? 0) || 0, answeredAt: Number(b ?? 0) || 0 };
  }

  /** The browser's first frame, once per tunnel: 'not_found' / 'conflict' when refused. */
  async firstFrame(sessionId: string, ms: number): Promise<{ ok: true; recorded: boolean; usableMs?: number } | { ok: false; code: 'not_found' | 'conflict' }> {
    const r = await this.scripted.vdiLogonFirstFrame(this.k.session(sessionId), Math.round(ms));
    if (r[0] === 'err') return { ok: false, code: r[1] === 'not_found' ? 'not_found' : 'conflict' };
    return { ok: true, recorded: r[1] === '1', ...(r[2] ? { usableMs: Number(r[2]) } : {}) };
  }

  /** The enrolled device a session was requested from (server/devices); only on an existing session. */
  async recordDevice(sessionId: string, deviceId: string, deviceName: string): Promise<void> {
    const key = this.k.session(sessionId);
    if (await this.redis.exists(key)) await this.redis.hset(key, 'device', deviceId, 'deviceName', deviceName);
  }

  /** The guest agent's idle time for a live session; false when it is not live. */
  async guestIdle(sessionId: string, seconds: number, at: number): Promise<boolean> {
    return (await this.scripted.vdiGuestIdle(this.k.session(sessionId), Math.max(0, Math.round(seconds)), at)) === 1;
  }

  /** Queues a message for the session's viewer (kept `ttlSeconds`, the last `max`); 0 when the session is not live. */
  async pushMessage(sessionId: string, m: Omit<SessionMessage, 'id'>, o: { ttlSeconds: number; max: number }): Promise<number> {
    return Number(await this.scripted.vdiSessionMessage(this.k.session(sessionId), this.k.sessionMessages(sessionId), m.title, m.text, m.at, m.from, o.ttlSeconds, o.max));
  }

  /** The session's queued messages with an id above `after`, oldest first. */
  async messagesAfter(sessionId: string, after: number): Promise<SessionMessage[]> {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(sessionId)) return [];
    const out: SessionMessage[] = [];
    for (const raw of await this.redis.lrange(this.k.sessionMessages(sessionId), 0, -1)) {
      try {
        const m = JSON.parse(raw) as SessionMessage;
        if (m.id > after) out.push(m);
      } catch {
        // not ours: skip it
      }
    }
    return out;
  }

  /** The assignment decision, atomically in Redis (see lua/assign.lua). */
  /** `poolRev`: the pool's revision the caller decided on (PoolsRepository.forAssignment); pool_changed when it has another now. */
  async assign(pool: string, user: string, clientAddress: string, now: number, poolRev = ''): Promise<AssignResult> {
    const r = (await runScript(this.redis, 'vdiAssign', [
      this.k.prefix, pool, user, randomUUID(), randomUUID(), now, clientAddress, this.macs.prefix, this.macs.size, poolRev,
    ])) as [string, string, string?, string?, string?];
    if (r[0] === 'err') return { outcome: 'error', code: r[1] };
    // With replicas configured, the user hears "this desktop is yours" only once a replica holds
    // it: a failover right after cannot hand it to someone else. Short of that, the caller gets
    // a transient error (503 redis_unavailable); the retry finds the same desktop (existing).
    await this.barrier?.hold('the assignment');
    return {
      outcome: r[0] as 'existing' | 'assigned' | 'provisioning', desktopId: r[1], sessionId: r[2]!,
      session: toSession(hashOfJson(r[3])), desktop: toDesktop(hashOfJson(r[4])),
    };
  }

  /**
   * Ends a session and returns its desktop per pool policy, with both records as they are after
   * the release (the desktop null when it is gone). null when the session was not live.
   */
  async release(sessionId: string, reason: string, now: number): Promise<ReleaseResult | null> {
    const r = (await runScript(this.redis, 'vdiRelease', [this.k.prefix, sessionId, now, reason])) as [string, string?, string?, string?, string?];
    if (r[0] === 'noop') return null;
    if (r[0] === 'err') throw new Error(`release ${sessionId}: ${r[1]}`);
    return { desktopId: r[1]!, desktopState: r[2]!, session: toSession(hashOfJson(r[3])), desktop: toDesktop(hashOfJson(r[4])) };
  }

  /**
   * The logoff API's release: `owner` (a user id; '' for anyone) must hold the session, checked
   * in the same script. not_live carries the session as it is (null when there is none).
   */
  async releaseOwn(sessionId: string, reason: string, now: number, owner: string, audit: string[] = []): Promise<{ outcome: 'released'; release: ReleaseResult } | { outcome: 'not_live'; session: Session | null } | { outcome: 'not_found' }> {
    const r = (await runScript(this.redis, 'vdiRelease', [this.k.prefix, sessionId, now, reason, owner, ...audit])) as [string, string?, string?, string?, string?];
    if (r[0] === 'not_found') return { outcome: 'not_found' };
    if (r[0] === 'noop') return { outcome: 'not_live', session: toSession(hashOfJson(r[1])) };
    if (r[0] === 'err') throw new Error(`release ${sessionId}: ${r[1]}`);
    return { outcome: 'released', release: { desktopId: r[1]!, desktopState: r[2]!, session: toSession(hashOfJson(r[3])), desktop: toDesktop(hashOfJson(r[4])) } };
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

/** A released session: its desktop's id and new state, and both records after the release. */
export interface ReleaseResult {
  desktopId: string;
  desktopState: string;
  session: Session | null;
  desktop: Desktop | null;
}

function logonReply(r: string[]): { recorded: string[]; derived: Record<string, number>; usableMs?: number } {
  const recorded: string[] = [];
  const derived: Record<string, number> = {};
  let usableMs: number | undefined;
  for (let i = 0; i < r.length; i++) {
    const f = r[i]!;
    if (!f.startsWith('=')) recorded.push(f);
    else if (f === '=usable') usableMs = Number(r[++i]);
    else derived[f.slice(1)] = Number(r[++i]);
  }
  return { recorded, derived, ...(usableMs !== undefined ? { usableMs } : {}) };
}
