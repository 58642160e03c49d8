// A user's second factors (server/auth/mfa): the sealed TOTP secret with the last accepted time
// step, passkeys (WebAuthn credentials), hashed recovery codes, the single-use WebAuthn
// challenge, and the failed-attempt counter. Keys: docs/redis-keys.md.
import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';

export interface StoredPasskey {
  /** The credential id (base64url), as the authenticator names it. */
  id: string;
  /** COSE public key, base64url. */
  publicKey: string;
  counter: number;
  transports: string[];
  name: string;
  createdAt: string;
  lastUsedAt: string;
}

export interface StoredChallenge {
  challenge: string;
  ceremony: 'register' | 'authenticate';
  /** Where the ceremony runs (rpID and origin are checked against these at verify). */
  rpID: string;
  origin: string;
}

export interface FactorSummary {
  totp: { createdAt: string } | null;
  passkeys: StoredPasskey[];
  recoveryCodesLeft: number;
}

// Accepts a TOTP step only if it is later than the last accepted one (and the factor still
// exists): a code is good once, even when two replicas verify it at the same moment.
const ACCEPT_STEP = `
if redis.call('HEXISTS', KEYS[1], 'totp') == 0 then return -1 end
local last = tonumber(redis.call('HGET', KEYS[1], 'totpStep') or '-1')
if tonumber(ARGV[1]) <= last then return 0 end
redis.call('HSET', KEYS[1], 'totpStep', ARGV[1])
return 1`;

// A confirmed TOTP secret with the step of its first code, in one step (no moment where the
// secret exists without its last step); refused if the user has one already.
const SET_TOTP = `
if redis.call('HEXISTS', KEYS[1], 'totp') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'totp', ARGV[1], 'totpStep', ARGV[2], 'totpCreatedAt', ARGV[3])
return 1`;

// One failed attempt counted in a window that starts with the first failure; the count and
// the milliseconds the window still runs.
const COUNT_FAILURE = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}`;

type Script = (...args: (string | number)[]) => Promise<unknown>;

export class MfaRepository {
  private readonly acceptStep: Script;
  private readonly countFailure: Script;
  private readonly setTotpScript: Script;

  constructor(private readonly redis: Redis, private readonly k: Keyspace) {
    const define = (name: string, lua: string): Script => {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: 1, lua });
      const fn = (redis as unknown as Record<string, Script>)[name]!;
      return (...args) => fn.apply(redis, args);
    };
    this.acceptStep = define('vdiMfaAcceptStep', ACCEPT_STEP);
    this.countFailure = define('vdiMfaCountFailure', COUNT_FAILURE);
    this.setTotpScript = define('vdiMfaSetTotp', SET_TOTP);
  }

  async summary(user: string): Promise<FactorSummary> {
    const [h, pk, rc] = await Promise.all([this.redis.hgetall(this.k.mfa(user)), this.passkeys(user), this.redis.hlen(this.k.mfaRecovery(user))]);
    return { totp: h.totp ? { createdAt: h.totpCreatedAt ?? '' } : null, passkeys: pk, recoveryCodesLeft: rc };
  }

  /** The sealed TOTP secret, or null. */
  async totpSecret(user: string): Promise<string | null> {
    return this.redis.hget(this.k.mfa(user), 'totp');
  }

  /** Keeps a confirmed TOTP secret; false if the user has one already. */
  async setTotp(user: string, sealed: string, step: number): Promise<boolean> {
    return (await this.setTotpScript(this.k.mfa(user), sealed, step, new Date().toISOString())) === 1;
  }

  async removeTotp(user: string): Promise<boolean> {
    return (await this.redis.hdel(this.k.mfa(user), 'totp', 'totpStep', 'totpCreatedAt')) > 0;
  }

  /** 1 accepted, 0 this step (or a later one) was used already, -1 the user has no TOTP. */
  async acceptTotpStep(user: string, step: number): Promise<1 | 0 | -1> {
    return (await this.acceptStep(this.k.mfa(user), step)) as 1 | 0 | -1;
  }

  /** A TOTP secret being enrolled (sealed), until it is confirmed with a code. */
  async setPendingTotp(user: string, sealed: string, ttlSeconds: number): Promise<void> {
    await this.redis.set(this.k.mfaEnrol(user), sealed, 'EX', ttlSeconds);
  }

  pendingTotp(user: string): Promise<string | null> {
    return this.redis.get(this.k.mfaEnrol(user));
  }

  async dropPendingTotp(user: string): Promise<void> {
    await this.redis.del(this.k.mfaEnrol(user));
  }

  async passkeys(user: string): Promise<StoredPasskey[]> {
    const h = await this.redis.hgetall(this.k.mfaPasskeys(user));
    return Object.values(h).map((v) => JSON.parse(v) as StoredPasskey).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async passkey(user: string, id: string): Promise<StoredPasskey | null> {
    const v = await this.redis.hget(this.k.mfaPasskeys(user), id);
    return v ? (JSON.parse(v) as StoredPasskey) : null;
  }

  /** Adds a passkey; false if that credential is registered already. */
  async addPasskey(user: string, p: StoredPasskey): Promise<boolean> {
    return (await this.redis.hsetnx(this.k.mfaPasskeys(user), p.id, JSON.stringify(p))) === 1;
  }

  /** Records a use (the new signature counter), if the passkey still exists. */
  async touchPasskey(user: string, p: StoredPasskey): Promise<void> {
    if (await this.redis.hexists(this.k.mfaPasskeys(user), p.id)) await this.redis.hset(this.k.mfaPasskeys(user), p.id, JSON.stringify(p));
  }

  async removePasskey(user: string, id: string): Promise<boolean> {
    return (await this.redis.hdel(this.k.mfaPasskeys(user), id)) === 1;
  }

  /** Replaces the recovery codes (id -> "salt:sha256"). */
  async setRecoveryCodes(user: string, codes: Record<string, string>): Promise<void> {
    await this.redis.multi().del(this.k.mfaRecovery(user)).hset(this.k.mfaRecovery(user), codes).exec();
  }

  recoveryCodes(user: string): Promise<Record<string, string>> {
    return this.redis.hgetall(this.k.mfaRecovery(user));
  }

  /** Spends a recovery code: true only for the one caller that removed it. */
  async useRecoveryCode(user: string, id: string): Promise<boolean> {
    return (await this.redis.hdel(this.k.mfaRecovery(user), id)) === 1;
  }

  async setChallenge(user: string, c: StoredChallenge, ttlSeconds: number): Promise<void> {
    await this.redis.set(this.k.mfaChallenge(user), JSON.stringify(c), 'EX', ttlSeconds);
  }

  /** The outstanding challenge, taken (single use). */
  async takeChallenge(user: string): Promise<StoredChallenge | null> {
    const v = await this.redis.getdel(this.k.mfaChallenge(user));
    return v ? (JSON.parse(v) as StoredChallenge) : null;
  }

  /** Counts a failed attempt: how many in the window and how long it still runs (ms). */
  async failed(user: string, windowMs: number): Promise<{ count: number; remainingMs: number }> {
    const [count, remainingMs] = (await this.countFailure(this.k.mfaFailures(user), windowMs)) as [number, number];
    return { count, remainingMs };
  }

  async failures(user: string): Promise<{ count: number; remainingMs: number }> {
    const [v, ttl] = await this.redis.multi().get(this.k.mfaFailures(user)).pttl(this.k.mfaFailures(user)).exec().then((r) => (r ?? []).map((x) => x[1]));
    return { count: Number(v ?? 0), remainingMs: Number(ttl ?? 0) };
  }

  async clearFailures(user: string): Promise<void> {
    await this.redis.del(this.k.mfaFailures(user));
  }

  /** Forgets every factor of a user (helpdesk reset, user deleted). */
  async removeAll(user: string): Promise<void> {
    await this.redis.del(this.k.mfa(user), this.k.mfaRecovery(user), this.k.mfaPasskeys(user), this.k.mfaEnrol(user), this.k.mfaChallenge(user), this.k.mfaFailures(user));
  }
}
