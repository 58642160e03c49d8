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

  private static retryAfter(r: RateLimiterRes | null, points: number): number | null {
    if (r && r.consumedPoints >= points && r.msBeforeNext > 0) return Math.ceil(r.msBeforeNext / 1000);
    return null;
  }

  /** Throws when the account or address is locked out. */
  async check(account: string, address: string): Promise<void> {
    const [acc, addr] = await Promise.all([this.perAccount.get(account), this.perAddress.get(address)]);
    const a = LoginThrottle.retryAfter(addr, this.perAddress.points);
    if (a !== null) throw new BrokerError('too_many_attempts', undefined, { retryAfterSeconds: a });
    const u = LoginThrottle.retryAfter(acc, this.perAccount.points);
    if (u !== null) throw new BrokerError('account_locked', undefined, { retryAfterSeconds: u });
  }

  async failed(account: string, address: string): Promise<void> {
    await Promise.all([
      this.perAccount.penalty(account, 1).then((r) => (r.consumedPoints >= this.perAccount.points ? this.perAccount.block(account, this.perAccount.blockDuration) : r)),
      this.perAddress.penalty(address, 1).then((r) => (r.consumedPoints >= this.perAddress.points ? this.perAddress.block(address, this.perAddress.blockDuration) : r)),
    ]);
  }

  async succeeded(account: string): Promise<void> {
    await this.perAccount.delete(account);
  }
}
