import type { Redis } from 'ioredis';
import type { Keyspace } from './keys.ts';
import { runScript } from './scripts.ts';

/** Redis leases so that one broker replica at a time runs each background job. */
export class LeasesRepository {
  constructor(private readonly redis: Redis, private readonly k: Keyspace) {}

  async acquire(job: string, holder: string, ttlMs: number): Promise<boolean> {
    return (await runScript(this.redis, 'vdiLease', [this.k.prefix, job, holder, ttlMs])) === 1;
  }

  async release(job: string, holder: string): Promise<void> {
    await runScript(this.redis, 'vdiLeaseRelease', [this.k.prefix, job, holder]);
  }

  async holder(job: string): Promise<string | null> {
    return this.redis.get(this.k.lease(job));
  }

  async heartbeat(job: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.k.jobHeartbeat(job), String(Date.now()), 'PX', ttlMs);
  }

  async lastHeartbeat(job: string): Promise<number | null> {
    const v = await this.redis.get(this.k.jobHeartbeat(job));
    return v ? Number(v) : null;
  }
}
