import type { Store } from '../store/index.ts';
import type { ProviderRegistry, DesktopSpec, Provider } from '../providers/index.ts';
import type { Logger, Metrics } from '../observability/index.ts';
import { SYSTEM_ACTOR, type AuditService, type Desktop, type Pool, type DesktopState, type ImageService } from '../broker/index.ts';
import type { JobContext } from './runner.ts';
import { makesDesktops } from './manual-pools.ts';

export interface LifecycleOptions {
  maxConcurrent: number;
  maxFailures: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  operationTimeoutMs: number;
}

export function backoffMs(failures: number, base: number, max: number): number {
  return Math.min(max, base * 2 ** Math.max(0, failures - 1));
}

/** The holder's home folder for a desktop spec (server/shares wires it in app.ts). */
export type HomeOf = (d: Desktop, pool: Pool) => DesktopSpec['home'];

export function desktopSpec(d: Desktop, pool: Pool, homeOf?: HomeOf, agentSecret?: string): DesktopSpec {
  const home = d.user && homeOf ? homeOf(d, pool) : undefined;
  return {
    id: d.id, name: d.name, pool: d.pool, mac: d.mac, image: d.image || pool.image, clone: pool.clone, resources: pool.resources,
    ...(d.host ? { host: d.host } : {}), ...(home ? { home } : {}), ...(agentSecret ? { agentSecret } : {}),
  };
}

/** The part of the guest agents (server/agent) readiness needs. */
export interface ReadinessAgents {
  readonly readyTimeoutMs: number;
  waitReady(d: { id: string; provider: string; image: string }, o: { timeoutMs: number; signal?: AbortSignal }): Promise<{ via: 'vdi' | 'qga' | 'grace'; ms: number }>;
}

/**
 * Drives desktops through the provider work of their state: provisioning (clone + boot),
 * refreshing (back to a clean clone), deleting (destroy). Failures back off exponentially;
 * after maxFailures the desktop is quarantined in state error.
 */
export class DesktopLifecycle {
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Resolves the holder's folder so a desktop (re)built for a user gets their files. */
  homeOf?: HomeOf;
  /**
   * The guest agents (app.ts): a built or refreshed desktop settles only once its guest says it
   * is up (agent hello, qga ping, or console + the image's boot grace). Without them the
   * console answering is enough (the old meaning of ready).
   */
  agents?: ReadinessAgents;
  /** The per-desktop agent secret handed to the driver (docs/agent.md). */
  agentSecretOf?: (desktopId: string) => Promise<string>;
  /** Called once a desktop is ready and before it settles (e.g. log its holder on when it was built for one). */
  afterReady?: (d: Desktop, pool: Pool, signal: AbortSignal) => Promise<void>;

  constructor(
    private readonly store: Store,
    private readonly providers: ProviderRegistry,
    private readonly audit: AuditService,
    private readonly images: Pick<ImageService, 'currentRef'>,
    private readonly metrics: Metrics,
    private readonly o: LifecycleOptions,
    private readonly clock: () => number = Date.now,
  ) {}

  async run(ctx: JobContext): Promise<void> {
    const pools = await this.store.pools.list();
    const poolByName = new Map(pools.map((p) => [p.name, p]));
    for (const pool of pools) {
      for (const state of ['deleting', 'provisioning', 'refreshing'] as DesktopState[]) {
        const ids = (await this.store.desktops.idsInState(pool.name, state)).filter((id) => !this.inFlight.has(id));
        if (ids.length === 0) continue;
        for (const d of await this.store.desktops.getMany(ids)) {
          if (this.inFlight.size >= this.o.maxConcurrent || !ctx.holdsLease()) return;
          if (d.nextAttemptAt > ctx.now) continue;
          const log = ctx.logger.child({ desktop: d.id, name: d.name });
          // work() records its own failures; if even that fails (Redis gone), the next pass retries.
          const p = this.work(d, poolByName.get(d.pool), log)
            .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'desktop operation could not be recorded; retried on the next pass'))
            .finally(() => this.inFlight.delete(d.id));
          this.inFlight.set(d.id, p);
        }
      }
    }
  }

  /**
   * Waits until the guest is up (server/agent) and runs afterReady (under operationTimeoutMs);
   * the fields recorded on the desktop (readyMs: from the start of the operation, readyVia).
   * Not becoming ready within agents.readyTimeoutMs fails the operation like any other failure.
   */
  private async guestUp(d: Desktop, pool: Pool, started: number, log: Logger): Promise<Record<string, string | number>> {
    const agents = this.agents;
    if (!agents) return {};
    const r = await this.withTimeout((signal) => agents.waitReady({ id: d.id, provider: d.provider, image: d.image }, { timeoutMs: agents.readyTimeoutMs, signal }), agents.readyTimeoutMs + 1000);
    const readyMs = this.clock() - started;
    this.metrics.desktopTimeToReady.observe({ via: r.via }, readyMs / 1000);
    log.info({ via: r.via, readyMs, waitedMs: r.ms }, 'guest is up');
    const after = this.afterReady;
    if (after) await this.withTimeout((signal) => after(d, pool, signal));
    return { readyMs, readyVia: r.via, readyAt: this.clock() };
  }

  private async withTimeout<T>(op: (signal: AbortSignal) => Promise<T>, timeoutMs = this.o.operationTimeoutMs): Promise<T> {
    const ac = new AbortController();
    let t: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        op(ac.signal),
        new Promise<never>((_, rej) => {
          t = setTimeout(() => {
            ac.abort();
            rej(new Error(`timed out after ${timeoutMs} ms`));
          }, timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(t);
    }
  }

  private async work(d: Desktop, pool: Pool | undefined, log: Logger): Promise<void> {
    const started = this.clock();
    const op = d.state;
    try {
      const provider = this.providers.get(d.provider);
      if (op === 'deleting') {
        await this.withTimeout((signal) => provider.destroy(d.id, { signal }));
        await this.store.desktops.transition(d.id, 'deleted', { expect: ['deleting'], reason: 'destroyed', now: this.clock() });
      } else if (!pool) {
        // Its pool is gone: nothing to build it from.
        await this.store.desktops.transition(d.id, 'deleting', { expect: [op], reason: 'pool deleted', now: this.clock() });
      } else if (!makesDesktops(this.providers, d.provider)) {
        // A machine of a manual pool: nothing is cloned, rebuilt or powered. Provisioning (just
        // added) and refreshing (non-persistent logoff, or back from unreachable) only wait for
        // its console to answer (the driver wakes it first when it has a Wake-on-LAN MAC).
        const host = await this.withTimeout(async (signal) => {
          const r = await provider.create(desktopSpec(d, pool), { signal });
          await provider.start(d.id, { signal });
          return r.host;
        });
        await this.settle(d, op, host, log);
      } else if (op === 'provisioning') {
        // Built from the image's published version, recorded on the desktop as name:version.
        const image = await this.images.currentRef(pool.image);
        const spec = desktopSpec({ ...d, image }, pool, this.homeOf, await this.agentSecretOf?.(d.id));
        const { host } = await this.withTimeout(async (signal) => {
          const r = await provider.create(spec, { signal });
          await provider.start(d.id, { signal });
          return r;
        });
        const ready = await this.guestUp({ ...d, image }, pool, started, log);
        await this.settle(d, 'provisioning', host, log, { image, ...ready });
      } else if (op === 'refreshing') {
        const image = await this.images.currentRef(pool.image);
        const spec = desktopSpec({ ...d, image }, pool, this.homeOf, await this.agentSecretOf?.(d.id));
        const host = await this.withTimeout(async (signal) => {
          // A desktop whose VM never got built (quarantined while provisioning) is built afresh.
          const missing = (await provider.power(d.id)) === 'missing';
          let h = d.host;
          if (provider.capabilities.refresh && !missing) {
            await provider.refresh(spec, { signal });
          } else {
            await provider.destroy(d.id, { signal });
            h = (await provider.create(spec, { signal })).host;
            await provider.start(d.id, { signal });
          }
          return h;
        });
        const ready = await this.guestUp({ ...d, image }, pool, started, log);
        await this.settle(d, 'refreshing', host, log, { image, ...ready });
      }
      this.metrics.desktopOperations.observe({ operation: op, result: 'ok' }, (this.clock() - started) / 1000);
      log.info({ op, ms: this.clock() - started }, 'desktop operation done');
    } catch (err) {
      this.metrics.desktopOperations.observe({ operation: op, result: 'error' }, (this.clock() - started) / 1000);
      await this.failed(d, op, err as Error, log);
    }
  }

  private async settle(d: Desktop, from: DesktopState, host: string, log: Logger, extra: Record<string, string | number> = {}): Promise<void> {
    const r = await this.store.desktops.transition(d.id, 'settled', {
      expect: [from],
      reason: `${from} done`,
      now: this.clock(),
      fields: { host, failures: 0, nextAttemptAt: 0, lastError: '', ...extra },
    });
    if (!r.ok) log.warn({ code: r.code, current: r.current }, 'desktop moved while its operation ran');
  }

  private async failed(d: Desktop, op: DesktopState, err: Error, log: Logger): Promise<void> {
    const failures = d.failures + 1;
    const message = err.message.slice(0, 500);
    if (failures >= this.o.maxFailures) {
      log.error({ op, failures, err: message }, 'desktop quarantined after repeated failures');
      await this.store.desktops.transition(d.id, 'error', { expect: [op], reason: `${op} failed`, now: this.clock(), fields: { failures, lastError: `${op}: ${message}` } });
      await this.audit.record(SYSTEM_ACTOR, 'desktop.quarantine', { type: 'desktop', id: d.id }, { op, error: message, failures }, 'failed');
    } else {
      const wait = backoffMs(failures, this.o.backoffBaseMs, this.o.backoffMaxMs);
      log.warn({ op, failures, retryInMs: wait, err: message }, 'desktop operation failed; will retry');
      await this.store.desktops.setFields(d.id, { failures, lastError: `${op}: ${message}`, nextAttemptAt: this.clock() + wait });
    }
  }

  /** Waits for operations in flight (at shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inFlight.values()]);
  }

  isBusy(id: string): boolean {
    return this.inFlight.has(id);
  }

  get busy(): number {
    return this.inFlight.size;
  }
}
