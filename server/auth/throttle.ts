import type { Redis } from 'ioredis';
import { BrokerError } from '../errors.ts';
import { RESERVE, FAILED, SUCCEEDED, RELEASED, UNLOCK } from './throttle.scripts.ts';

export interface LockoutPolicy {
  mode: 'progressive' | 'hard';
  freeFailures: number;
  baseDelaySeconds: number;
  maxDelaySeconds: number;
  threshold: number;
  durationSeconds: number;
  knownAddressDays: number;
}

export interface AddressLimits {
  windowSeconds: number;
  pairFailures: number;
  pairBlockSeconds: number;
  sprayAccounts: number;
  sprayBlockSeconds: number;
}

export interface ThrottleOptions {
  keyPrefix: string;
  lockout: LockoutPolicy;
  throttle: AddressLimits;
  now?: () => number;
}

/** Which limit refused an attempt: the address (spraying), this name from this address, or the name. */
export type RefusalScope = 'address' | 'pair' | 'account';

export type Reservation =
  | { ok: true; accountAttempts: number; pairAttempts: number }
  | { ok: false; error: BrokerError; scope: RefusalScope; retryAfterSeconds: number; /** the first refusal since the last counted attempt (audit it) */ first: boolean };

/** What the helpdesk sees of one user name. */
export interface LockoutStatus {
  user: string;
  /** locked: hard lock; throttled: the next attempt must wait; failing: failures counted, no wait now; clear. */
  state: 'locked' | 'throttled' | 'failing' | 'clear';
  failures: number;
  retryAfterSeconds: number;
  /** Addresses from which this name is blocked or must wait. */
  addresses: { address: string; failures: number; blocked: boolean; retryAfterSeconds: number }[];
}

export interface BlockedAddress {
  address: string;
  accounts: number;
  retryAfterSeconds: number;
}

/** Addresses remembered per account as known (most recent first). */
const KNOWN_MAX = 20;
/** The helpdesk list shows at most this many names. */
const LIST_MAX = 500;

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

type Script = (...args: (string | number)[]) => Promise<unknown>;

/**
 * Failed-login throttling in Redis, shared by all replicas, built so that an attacker cannot
 * turn it against a user (README, "Login throttling"):
 * - one user name from one address: progressive waits, then a block for a while (stops online
 *   guessing from one place);
 * - one user name from anywhere: progressive waits capped at maxDelaySeconds (mode progressive),
 *   skipped from addresses the account logged in from before; or a hard lock (mode hard);
 * - one address: blocked only when it fails for many different user names (password spraying).
 * Unknown user names go through exactly the same steps, so answers reveal nothing.
 */
export class LoginThrottle {
  private readonly base: string;
  private readonly now: () => number;
  private readonly script: Record<'reserve' | 'failed' | 'succeeded' | 'released' | 'unlock', Script>;

  constructor(private readonly redis: Redis, private readonly o: ThrottleOptions) {
    this.base = `${o.keyPrefix}:login`;
    this.now = o.now ?? Date.now;
    const define = (name: string, lua: string): Script => {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: 0, lua });
      const fn = (redis as unknown as Record<string, Script>)[name]!;
      return (...args) => fn.apply(redis, args);
    };
    this.script = {
      reserve: define('vdiLoginReserve', RESERVE),
      failed: define('vdiLoginFailed', FAILED),
      succeeded: define('vdiLoginSucceeded', SUCCEEDED),
      released: define('vdiLoginReleased', RELEASED),
      unlock: define('vdiLoginUnlock', UNLOCK),
    };
  }

  get options(): { lockout: LockoutPolicy; throttle: AddressLimits } {
    return { lockout: this.o.lockout, throttle: this.o.throttle };
  }

  private get mode(): LockoutPolicy['mode'] {
    return this.o.lockout.mode;
  }

  /** Before a password is checked: may this attempt go ahead? An accepted one is counted already. */
  async reserve(account: string, address: string): Promise<Reservation> {
    const l = this.o.lockout;
    const t = this.o.throttle;
    const r = (await this.script.reserve(
      this.base, account, address, this.now(),
      l.mode === 'hard' ? 1 : 0, l.freeFailures, l.baseDelaySeconds * 1000, l.maxDelaySeconds * 1000,
      l.threshold, l.durationSeconds * 1000, l.knownAddressDays * 86_400_000,
      t.windowSeconds * 1000, t.pairFailures, t.pairBlockSeconds * 1000,
    )) as [string, number, number, number, number, RefusalScope];
    const [code, waitMs, first, accountAttempts, pairAttempts, scope] = r;
    if (code === 'ok') return { ok: true, accountAttempts, pairAttempts };
    const retryAfterSeconds = seconds(waitMs);
    return { ok: false, error: new BrokerError(code as 'too_many_attempts' | 'account_locked' | 'login_throttled', undefined, { retryAfterSeconds }), scope, retryAfterSeconds, first: first === 1 };
  }

  /** A failed login counted by reserve: the name joins the address's spraying count. */
  async failed(account: string, address: string): Promise<{ addressBlocked: boolean; distinctNames: number }> {
    const t = this.o.throttle;
    const [blocked, names] = (await this.script.failed(this.base, account, address, this.now(), t.windowSeconds * 1000, t.sprayAccounts, t.sprayBlockSeconds * 1000)) as [number, number];
    return { addressBlocked: blocked === 1, distinctNames: names };
  }

  /** An attempt counted by reserve that reached no verdict (an outage, not a guess): not counted. */
  async released(account: string, address: string): Promise<void> {
    const l = this.o.lockout;
    await this.script.released(this.base, account, address, this.now(), l.mode === 'hard' ? 1 : 0, l.freeFailures, l.baseDelaySeconds * 1000, l.maxDelaySeconds * 1000, l.threshold, this.o.throttle.pairFailures);
  }

  /** A good password: the account's count and this address's pair are forgotten; the address becomes known. */
  async succeeded(account: string, address: string): Promise<void> {
    await this.script.succeeded(this.base, account, address, this.now(), this.o.lockout.knownAddressDays * 86_400_000, KNOWN_MAX);
  }

  /** Clears the account's lock or waits and all its per-address blocks. True if there was any. */
  async unlock(account: string): Promise<boolean> {
    const [had, pairs] = (await this.script.unlock(this.base, account, '-', this.now())) as [number, number];
    return had > 0 || pairs > 0;
  }

  async status(account: string): Promise<LockoutStatus> {
    const now = this.now();
    const [a, addrs] = await Promise.all([
      this.redis.hgetall(`${this.base}:acct:${account}`),
      this.redis.zrangebyscore(`${this.base}:pairs:${account}`, now, '+inf'),
    ]);
    const n = (h: Record<string, string>, f: string) => Number(h[f] ?? 0) || 0;
    const pairs = await Promise.all(addrs.map(async (address) => ({ address, h: await this.redis.hgetall(`${this.base}:pair:${account}:${address}`) })));
    const addresses = pairs
      .filter((p) => n(p.h, 'n') > 0)
      .map(({ address, h }) => {
        const wait = Math.max(n(h, 'until'), n(h, 'next')) - now;
        return { address, failures: n(h, 'n'), blocked: n(h, 'until') > now, retryAfterSeconds: wait > 0 ? seconds(wait) : 0 };
      });
    const failures = n(a, 'n');
    const lockedFor = this.mode === 'hard' ? n(a, 'until') - now : 0;
    const waitFor = this.mode === 'progressive' ? n(a, 'next') - now : 0;
    const state = lockedFor > 0 ? 'locked' : waitFor > 0 ? 'throttled' : failures > 0 || addresses.length ? 'failing' : 'clear';
    return { user: account, state, failures, retryAfterSeconds: Math.max(lockedFor, waitFor) > 0 ? seconds(Math.max(lockedFor, waitFor)) : 0, addresses };
  }

  /** User names with throttle state now (newest expiry first), and addresses blocked for spraying. */
  async list(): Promise<{ accounts: LockoutStatus[]; addresses: BlockedAddress[] }> {
    const now = this.now();
    await this.redis.zremrangebyscore(`${this.base}:accounts`, '-inf', now);
    await this.redis.zremrangebyscore(`${this.base}:addresses`, '-inf', now);
    const names = await this.redis.zrevrangebyscore(`${this.base}:accounts`, '+inf', now, 'LIMIT', 0, LIST_MAX);
    const accounts = (await Promise.all(names.map((u) => this.status(u)))).filter((s) => s.state !== 'clear');
    const addrs = await this.redis.zrevrangebyscore(`${this.base}:addresses`, '+inf', now, 'LIMIT', 0, LIST_MAX);
    const addresses: BlockedAddress[] = [];
    for (const address of addrs) {
      const h = await this.redis.hgetall(`${this.base}:addr:${address}`);
      const wait = (Number(h.until) || 0) - now;
      if (wait > 0) addresses.push({ address, accounts: Number(h.accounts) || 0, retryAfterSeconds: seconds(wait) });
    }
    return { accounts, addresses };
  }
}
