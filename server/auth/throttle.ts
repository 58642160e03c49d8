import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Redis } from 'ioredis';
import { BrokerError } from '../errors.ts';

export interface ThrottleOptions {
  keyPrefix: string;
  maxFailuresPerAccount: number;
  accountLockoutSeconds: number;
  maxFailuresPerAddress: number;
  addressLockoutSeconds: number;
  failureWindowSeconds: number;
}

/**
 * Failed-login counting per account and per client address, in Redis so all replicas share
 * it. Past the limit the account (or address) is locked out for a while.
 */
export class LoginThrottle {
  private readonly perAccount: RateLimiterRedis;
  private readonly perAddress: RateLimiterRedis;

  constructor(redis: Redis, o: ThrottleOptions) {
    const common = { storeClient: redis, useRedisPackage: false, inMemoryBlockOnConsumed: 0 } as const;
    this.perAccount = new RateLimiterRedis({
      ...common,
      keyPrefix: `${o.keyPrefix}:login:account`,
      points: o.maxFailuresPerAccount,
      duration: o.failureWindowSeconds,
      blockDuration: o.accountLockoutSeconds,
    });
    this.perAddress = new RateLimiterRedis({
      ...common,
      keyPrefix: `${o.keyPrefix}:login:address`,
      points: o.maxFailuresPerAddress,
      duration: o.failureWindowSeconds,
      blockDuration: o.addressLockoutSeconds,
    });
  }

  /**
   * Before a password is checked: the address must not be locked out, and one attempt is taken
   * from the account's allowance atomically in Redis, so parallel guesses at one account cannot
   * get past its limit. Successful logins do not count against an address (a school behind one
   * NAT address logs in all at once); only failures do.
   */
  async reserve(account: string, address: string): Promise<void> {
    const addr = await this.perAddress.get(address);
    if (addr && addr.consumedPoints >= this.perAddress.points && addr.msBeforeNext > 0) {
      throw new BrokerError('too_many_attempts', undefined, { retryAfterSeconds: Math.max(1, Math.ceil(addr.msBeforeNext / 1000)) });
    }
    try {
      await this.perAccount.consume(account, 1);
    } catch (r) {
      if (r instanceof RateLimiterRes) throw new BrokerError('account_locked', undefined, { retryAfterSeconds: Math.max(1, Math.ceil(r.msBeforeNext / 1000)) });
      throw r;
    }
  }

  /** A wrong password: counts against the address (the account's attempt is already taken). */
  async failed(address: string): Promise<void> {
    const r = await this.perAddress.penalty(address, 1);
    if (r.consumedPoints >= this.perAddress.points) await this.perAddress.block(address, this.perAddress.blockDuration);
  }

  /** A good password: the account's failures are forgotten. */
  async succeeded(account: string): Promise<void> {
    await this.perAccount.delete(account);
  }
}
