import type { Store, Drain, DrainDesktop } from '../store/index.ts';
import { newDrainDesktop } from '../store/index.ts';
import type { ProviderRegistry, Provider, HostInfo } from '../providers/index.ts';
import type { Logger } from '../observability/index.ts';
import { SYSTEM_ACTOR, type AuditService, type Desktop } from '../broker/index.ts';
import { backoffMs } from './desktop-lifecycle.ts';
import type { JobContext } from './runner.ts';
import { recordMigration } from '../broker/desktop.service.ts';

export interface DrainOptions {
  /** Attempts per desktop before it is given up (and the drain fails). */
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  migrationTimeoutMs: number;
}

/** Desktops a drain may move now; provisioning, refreshing and deleting ones finish first. */
const MOVABLE = new Set(['ready', 'assigned', 'in_use', 'error']);

/**
 * Empties hosts in maintenance: each pass reads which desktops are still on a draining host
 * (the hypervisor's inventory) and live-migrates one of them to the least loaded host in
 * service. A failed migration is retried with exponential backoff; after maxAttempts the
 * desktop is given up, and once nothing but given-up desktops is left the drain fails with
 * their reasons. With nothing left on the host the drain is done (the host stays in
 * maintenance). Maintenance turned off cancels it. Everything lives in the drain record, so
 * the replica that holds the lease next carries on where another stopped.
 */
export class HostDrain {
  constructor(
    private readonly store: Store,
    private readonly providers: ProviderRegistry,
    private readonly audit: AuditService,
    private readonly o: DrainOptions,
    private readonly clock: () => number = Date.now,
  ) {}

  async run(ctx: JobContext): Promise<void> {
    for (const drain of await this.store.drains.running()) {
      if (!ctx.holdsLease()) return;
      await this.reconcile(drain, ctx.logger.child({ drain: drain.id, provider: drain.provider, host: drain.host }));
    }
  }

  private async finish(drain: Drain, state: 'done' | 'failed' | 'cancelled', reason: string, log: Logger): Promise<void> {
    if (!(await this.store.drains.finish(drain.provider, drain.host, drain.id, state, reason, this.clock()))) return;
    const after = await this.store.drains.summary(drain.provider, drain.host);
    log[state === 'failed' ? 'warn' : 'info']({ state, reason, progress: after?.progress }, `host drain ${state}`);
    await this.audit.record(SYSTEM_ACTOR, `host.drain.${state}`, { type: 'host', id: `${drain.provider}/${drain.host}` }, { drain: drain.id, reason, ...after?.progress }, state === 'failed' ? 'failed' : 'ok');
  }

  private save(drain: Drain, d: DrainDesktop): Promise<boolean> {
    return this.store.drains.saveDesktop(drain.provider, drain.host, drain.id, d, this.clock());
  }

  private async reconcile(drain: Drain, log: Logger): Promise<void> {
    if (!this.providers.has(drain.provider)) return this.finish(drain, 'failed', `No provider named "${drain.provider}".`, log);
    if (!this.providers.get(drain.provider).capabilities.liveMigration) return this.finish(drain, 'failed', `Provider ${drain.provider} cannot live-migrate desktops.`, log);
    if (!(await this.store.images.hostMaintenance()).has(`${drain.provider}/${drain.host}`)) return this.finish(drain, 'cancelled', 'maintenance turned off', log);
    const provider = this.providers.get(drain.provider);
    let inventory;
    try {
      inventory = await provider.inventory();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'drain: inventory failed; next pass tries again');
      return;
    }
    const where = new Map(inventory.map((i) => [i.desktopId, i.host]));
    const entries = new Map(drain.desktops.map((d) => [d.id, d]));
    // Desktops of the broker that the hypervisor still has on this host (orphans are the inventory reconciler's).
    const onHost = (await this.store.desktops.getMany(inventory.filter((i) => i.host === drain.host).map((i) => i.desktopId)))
      .filter((d) => d.state !== 'deleted' && d.provider === drain.provider);
    for (const d of onHost) {
      if (!entries.has(d.id)) {
        const e = newDrainDesktop(d.id, d.name);
        entries.set(d.id, e);
        await this.save(drain, e);
      }
    }
    // Entries no longer on the host: moved (maybe by a replica that stopped before it could say so) or gone.
    const here = new Set(onHost.map((d) => d.id));
    for (const e of entries.values()) {
      if (here.has(e.id) || e.status === 'moved' || e.status === 'gone') continue;
      const at = where.get(e.id);
      const next: DrainDesktop = at ? { ...e, status: 'moved', to: at, movedAt: e.movedAt || this.clock(), lastError: '' } : { ...e, status: 'gone' };
      if (at) await this.followHost(e.id, drain.host, at);
      entries.set(e.id, next);
      await this.save(drain, next);
    }
    const left = onHost.filter((d) => entries.get(d.id)?.status !== 'failed');
    if (onHost.length === 0) return this.finish(drain, 'done', '', log);
    if (left.length === 0) {
      const reasons = onHost.map((d) => `${d.name}: ${entries.get(d.id)?.lastError ?? ''}`);
      return this.finish(drain, 'failed', `${onHost.length} desktop(s) could not be moved. ${reasons.join('; ')}`, log);
    }
    const now = this.clock();
    const next = left.find((d) => MOVABLE.has(d.state) && (entries.get(d.id)?.nextAttemptAt ?? 0) <= now);
    if (next) await this.move(drain, provider, next, entries.get(next.id)!, log.child({ desktop: next.id, name: next.name }));
  }

  /** The desktop's record follows where the hypervisor says it is. */
  private async followHost(id: string, from: string, to: string): Promise<void> {
    const d = await this.store.desktops.get(id);
    if (d && d.host === from) await this.store.desktops.setFields(id, { host: to });
  }

  /** The least loaded host in service other than the draining one; hosts with room first. */
  private async target(drain: Drain, provider: Provider, d: Desktop): Promise<HostInfo | null> {
    const inMaintenance = await this.store.images.hostMaintenance();
    const need = (await this.store.pools.get(d.pool))?.resources ?? { vcpu: 0, memoryMiB: 0 };
    const fits = (h: HostInfo) => h.used.memoryMiB + need.memoryMiB <= h.capacity.memoryMiB && h.used.vcpu + need.vcpu <= h.capacity.vcpu;
    const load = (h: HostInfo) => h.used.memoryMiB / Math.max(1, h.capacity.memoryMiB);
    const hosts = (await provider.hosts()).filter((h) => h.name !== drain.host && !h.maintenance && !inMaintenance.has(`${drain.provider}/${h.name}`));
    hosts.sort((a, b) => Number(fits(b)) - Number(fits(a)) || load(a) - load(b));
    return hosts[0] ?? null;
  }

  private async move(drain: Drain, provider: Provider, d: Desktop, e: DrainDesktop, log: Logger): Promise<void> {
    const attempts = e.attempts + 1;
    const target = await this.target(drain, provider, d);
    if (!target) return this.failed(drain, d, { ...e, attempts }, 'No other host is in service.', log);
    if (!(await this.save(drain, { ...e, status: 'moving', attempts, to: target.name }))) return;
    log.info({ to: target.name, attempt: attempts }, 'drain: migrating desktop');
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error(`timed out after ${this.o.migrationTimeoutMs} ms`)), this.o.migrationTimeoutMs);
    try {
      // A driver that ignores the signal must not hold the pass (and the lease) forever; if its
      // migration completes later, the next pass sees the desktop gone from the host.
      const aborted = new Promise<never>((_, reject) => ac.signal.addEventListener('abort', () => reject(ac.signal.reason as Error), { once: true }));
      const progress = recordMigration(this.store, d.id, target.name, log, this.clock);
      const migration = provider.migrate(d.id, target.name, { signal: ac.signal, onProgress: progress.onProgress });
      migration.catch(() => undefined).finally(() => progress.done()); // after a timeout its outcome is read from the inventory
      const r = await Promise.race([migration, aborted]);
      await this.followHost(d.id, drain.host, r.toHost);
      await this.save(drain, { ...e, status: 'moved', attempts, to: r.toHost, movedAt: this.clock(), lastError: '', nextAttemptAt: 0 });
      log.info({ ...r }, 'drain: desktop moved');
      await this.audit.record(SYSTEM_ACTOR, 'desktop.migrate', { type: 'desktop', id: d.id }, { drain: drain.id, requestedBy: drain.requestedBy, to: target.name, attempt: attempts, ...r });
    } catch (err) {
      await this.failed(drain, d, { ...e, attempts, to: target.name }, (err as Error).message, log);
    } finally {
      clearTimeout(timer);
    }
  }

  private async failed(drain: Drain, d: Desktop, e: DrainDesktop, reason: string, log: Logger): Promise<void> {
    const final = e.attempts >= this.o.maxAttempts;
    const wait = backoffMs(e.attempts, this.o.backoffBaseMs, this.o.backoffMaxMs);
    const next: DrainDesktop = { ...e, status: final ? 'failed' : 'pending', lastError: reason, nextAttemptAt: final ? 0 : this.clock() + wait };
    await this.save(drain, next);
    log.warn({ attempt: e.attempts, final, retryInMs: final ? undefined : wait, err: reason }, final ? 'drain: giving the desktop up' : 'drain: migration failed; will retry');
    await this.audit.record(SYSTEM_ACTOR, 'desktop.migrate', { type: 'desktop', id: d.id }, { drain: drain.id, requestedBy: drain.requestedBy, to: e.to, attempt: e.attempts, final, error: reason }, 'failed');
  }
}
