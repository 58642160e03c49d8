import type { Redis } from 'ioredis';

/**
 * "Acknowledged only once a replica holds it" (redis.waitReplicas, docs/redis-ha.md), on a
 * connection of its own. WAIT blocks the connection it is sent on until the replicas answer (up
 * to its timeout): on the broker's shared connection every other request's commands would queue
 * behind it, and a WAIT as long as the command timeout would drop that connection. Here a small
 * write (a mark key) goes first, then WAIT: replication is one ordered stream, so replicas that
 * acknowledged the mark hold every write the broker had acknowledged before it, from any
 * connection (the caller awaits its own write before calling hold).
 */
export class ReplicaBarrier {
  constructor(
    private readonly redis: Redis,
    private readonly markKey: string,
    readonly replicas: number,
    private readonly timeoutMs: number,
  ) {
    // Its own connection: opened now (commands are not queued while it is down).
    if (redis.status === 'wait') redis.connect().catch(() => undefined);
  }

  /** Resolves once `replicas` replicas hold what was written so far; else throws a transient (503) Redis error. */
  async hold(what: string): Promise<void> {
    const r = await this.redis.pipeline().set(this.markKey, Date.now(), 'PX', 60_000).wait(this.replicas, this.timeoutMs).exec();
    const failed = r?.find(([err]) => err);
    if (!r || failed) throw failed?.[0] ?? new Error('NOREPLICAS the replica barrier got no answer');
    const held = Number(r[1]![1]);
    if (held < this.replicas) throw new Error(`NOREPLICAS ${what} reached ${held} of ${this.replicas} replicas in ${this.timeoutMs} ms`);
  }

  close(): void {
    this.redis.disconnect();
  }
}
