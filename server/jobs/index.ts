import type { Store } from '../store/index.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import type { Logger, Metrics } from '../observability/index.ts';
import type { AuditService, ImageService } from '../broker/index.ts';
import type { Config } from '../config/index.ts';
import { JobRunner } from './runner.ts';
import { PoolSizing } from './pool-sizing.ts';
import { DesktopLifecycle } from './desktop-lifecycle.ts';
import { SessionTimeouts } from './session-timeouts.ts';
import { InventoryReconciler } from './inventory.ts';
import { ImageRollout } from './image-rollout.ts';
import { HostDrain } from './host-drain.ts';
import { RecordingRetention } from './recording-retention.ts';
import { MachineHealthReconciler, type MachineProber } from './machine-health.ts';

export { JobRunner, type JobContext, type JobDef } from './runner.ts';
export { RecordingRetention } from './recording-retention.ts';
export { timeoutReason, idleMs, GUEST_IDLE_FRESH_MS } from './session-timeouts.ts';
export { backoffMs } from './desktop-lifecycle.ts';
export { GuestEvents, GUEST_LOGOFF_REASON, GUEST_POWEROFF_REASON, type GuestEvent, type GuestEventSource } from './guest-events.ts';

export interface Reconcilers {
  runner: JobRunner;
  lifecycle: DesktopLifecycle;
  inventory: InventoryReconciler;
  stop(): Promise<void>;
}

/** The broker's background reconcilers, each under its own Redis lease. */
export function createReconcilers(deps: { store: Store; providers: ProviderRegistry; audit: AuditService; images: ImageService; logger: Logger; metrics: Metrics; jobs: Config['jobs']; recordings?: Config['recordings']; now?: () => number }): Reconcilers {
  const { store, providers, audit, jobs } = deps;
  const now = deps.now ?? Date.now;
  const runner = new JobRunner(store, deps.logger.child({ component: 'jobs' }), deps.metrics, jobs.leaseTtlMs, now);
  const lifecycle = new DesktopLifecycle(store, providers, audit, deps.images, deps.metrics, {
    maxConcurrent: jobs.maxConcurrentOperations,
    maxFailures: jobs.maxFailures,
    backoffBaseMs: jobs.backoffBaseMs,
    backoffMaxMs: jobs.backoffMaxMs,
    operationTimeoutMs: jobs.operationTimeoutMs,
  }, now);
  const sizing = new PoolSizing(store, audit, providers);
  const timeouts = new SessionTimeouts(store, audit);
  const inventory = new InventoryReconciler(store, providers, audit, (id) => lifecycle.isBusy(id));
  runner.add({ name: 'pool-sizing', intervalMs: jobs.poolSizingIntervalMs, run: (c) => sizing.run(c) });
  runner.add({ name: 'desktop-lifecycle', intervalMs: jobs.lifecycleIntervalMs, run: (c) => lifecycle.run(c) });
  runner.add({ name: 'session-timeouts', intervalMs: jobs.sessionTimeoutsIntervalMs, run: (c) => timeouts.run(c) });
  const rollout = new ImageRollout(store, deps.images, providers);
  runner.add({ name: 'image-rollout', intervalMs: jobs.poolSizingIntervalMs, run: (c) => rollout.run(c) });
  runner.add({ name: 'inventory', intervalMs: jobs.inventoryIntervalMs, run: (c) => inventory.run(c) });
  // Manual pools: one health pass per manual driver, on its own interval.
  for (const p of providers.list()) {
    if (p.kind !== 'manual' || !('probeAll' in p)) continue;
    const health = new MachineHealthReconciler(store, p as unknown as MachineProber, audit, (id) => lifecycle.isBusy(id));
    runner.add({ name: `machine-health:${p.name}`, intervalMs: (p as unknown as MachineProber).healthIntervalMs, run: (c) => health.run(c) });
  }
  const drains = new HostDrain(store, providers, audit, {
    maxAttempts: jobs.maxFailures,
    backoffBaseMs: jobs.backoffBaseMs,
    backoffMaxMs: jobs.backoffMaxMs,
    migrationTimeoutMs: jobs.operationTimeoutMs,
  }, now);
  runner.add({ name: 'host-drain', intervalMs: jobs.drainIntervalMs, run: (c) => drains.run(c) });
  if (deps.recordings) {
    const retention = new RecordingRetention(store, audit, deps.recordings);
    runner.add({ name: 'recording-retention', intervalMs: deps.recordings.retentionIntervalMs, run: (c) => retention.run(c) });
  }
  return {
    runner,
    inventory,
    lifecycle,
    async stop() {
      await runner.stop();
      await lifecycle.drain();
    },
  };
}
