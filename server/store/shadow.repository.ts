// A helpdesk shadow of a session, in Redis so every replica (the helpdesk's, the user's, the
// tunnel's) sees the same: who watches, the user's consent, and the control hand-over.
// `P session:{id}:shadow` is a JSON string with a version; writes are compare-and-set (Lua),
// so the user's answer and the helpdesk's request never overwrite each other. It expires
// (EX) unless the helpdesk's shadow page keeps it alive.
import type { Redis } from 'ioredis';

export type ShadowConsent = 'pending' | 'allowed' | 'denied' | 'timeout';
export type ShadowControl = 'none' | 'requested' | 'granted' | 'denied' | 'revoked';

export interface ShadowState {
  session: string;
  /** The helpdesk principal watching (id) and how the audit names them. */
  by: string;
  byName: string;
  policy: 'notify' | 'consent';
  consent: ShadowConsent;
  control: ShadowControl;
  /** ms epoch */
  startedAt: number;
  consentAt: number;
  controlAt: number;
  /** Compare-and-set version. */
  v: number;
}

// KEYS[1] state; ARGV: expected version (0 = must not exist), JSON, ttl seconds.
const CAS = `
local cur = redis.call('GET', KEYS[1])
local v = 0
if cur then v = tonumber(cjson.decode(cur).v) or 0 end
if v ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1`;

export class ShadowRepository {
  constructor(private readonly redis: Redis, private readonly keyOf: (session: string) => string) {}

  async get(session: string): Promise<ShadowState | null> {
    const raw = await this.redis.get(this.keyOf(session));
    if (!raw) return null;
    try {
      return JSON.parse(raw) as ShadowState;
    } catch {
      return null;
    }
  }

  /** Writes `next` if the stored version is still `expected` (0: none stored); true if written. */
  async cas(expected: number, next: Omit<ShadowState, 'v'>, ttlSeconds: number): Promise<ShadowState | null> {
    const s = { ...next, v: expected + 1 };
    const ok = await this.redis.eval(CAS, 1, this.keyOf(next.session), expected, JSON.stringify(s), ttlSeconds);
    return ok === 1 ? s : null;
  }

  /** Keeps the shadow alive for another `ttlSeconds`. */
  async touch(session: string, ttlSeconds: number): Promise<void> {
    await this.redis.expire(this.keyOf(session), ttlSeconds);
  }

  /** Removes it if it is still version `expected`; true if removed. */
  async remove(session: string, expected: number): Promise<boolean> {
    const ok = await this.redis.eval(`local cur = redis.call('GET', KEYS[1]) if not cur then return 0 end if (tonumber(cjson.decode(cur).v) or 0) ~= tonumber(ARGV[1]) then return 0 end redis.call('DEL', KEYS[1]) return 1`, 1, this.keyOf(session), expected);
    return ok === 1;
  }
}
