import { randomUUID } from 'node:crypto';
import type { Store } from '../store/index.ts';
import type { Logger, Metrics } from '../observability/index.ts';
import { isRedisUnavailable } from '../errors.ts';

export interface JobContext {
  now: number;
  logger: Logger;
  /** True while this replica still holds the job's lease. */
  holdsLease: () => boolean;
}

export interface JobDef {
  name: string;
  intervalMs: number;
  run: (ctx: JobContext) => Promise<void>;
}

interface JobState {
  def: JobDef;
  timer?: NodeJS.Timeout;
  lastTick: number;
  held: boolean;
  running?: Promise<void>;
}

/**
 * Runs each reconcile job on its interval under a Redis lease, so that several broker
 * replicas can all run the runner while one at a time does each job. A pass that throws is
 * logged and the next pass simply tries again (reconcilers are level-triggered).
 */
export class JobRunner {
  readonly holder = `${process.pid}-${randomUUID().slice(0, 8)}`;
  private readonly jobs = new Map<string, JobState>();
  private stopped = true;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly leaseTtlMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  add(def: JobDef): void {
    this.jobs.set(def.name, { def, lastTick: 0, held: false });
  }

  start(): void {
    this.stopped = false;
    for (const s of this.jobs.values()) this.schedule(s, 0);
  }

  private schedule(s: JobState, delay: number): void {
    if (this.stopped) return;
    s.timer = setTimeout(() => {
      s.running = this.tick(s).finally(() => {
        s.running = undefined;
        this.schedule(s, s.def.intervalMs);
      });
    }, delay);
    s.timer.unref?.();
  }

  private async tick(s: JobState): Promise<void> {
    const log = this.logger.child({ job: s.def.name });
    s.lastTick = this.clock();
    try {
      const ttl = Math.max(this.leaseTtlMs, s.def.intervalMs * 3);
      s.held = await this.store.leases.acquire(s.def.name, this.holder, ttl);
      if (!s.held) return;
      // A pass may outlast the TTL (a live migration): the lease is renewed while it runs, and
      // holdsLease() turns false if another replica got it meanwhile.
      const renew = setInterval(() => {
        this.store.leases.acquire(s.def.name, this.holder, ttl).then((ok) => void (ok || (s.held = false)), () => void (s.held = false));
      }, Math.max(10, Math.floor(ttl / 3)));
      renew.unref?.();
      try {
        await s.def.run({ now: this.clock(), logger: log, holdsLease: () => s.held && !this.stopped });
      } finally {
        clearInterval(renew);
      }
      await this.store.leases.heartbeat(s.def.name, ttl);
      this.metrics.reconcileRuns.inc({ job: s.def.name, result: 'ok' });
    } catch (err) {
      s.held = false;
      this.metrics.reconcileRuns.inc({ job: s.def.name, result: 'error' });
      if (isRedisUnavailable(err)) log.debug('pass skipped: redis unavailable');
      else log.error({ err }, 'reconcile pass failed');
    }
  }

  /** Every job ticked recently (whether or not this replica holds its lease). */
  healthy(): boolean {
    if (this.stopped) return false;
    const now = this.clock();
    for (const s of this.jobs.values()) {
      if (s.lastTick === 0 || now - s.lastTick > s.def.intervalMs * 3 + 30_000) return false;
    }
    return true;
  }

  get started(): boolean {
    return !this.stopped;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const s of this.jobs.values()) clearTimeout(s.timer);
    await Promise.allSettled([...this.jobs.values()].map((s) => s.running));
    await Promise.allSettled([...this.jobs.values()].filter((s) => s.held).map((s) => this.store.leases.release(s.def.name, this.holder)));
  }
}
