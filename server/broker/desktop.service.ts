import { BrokerError } from '../errors.ts';
import type { Store, TransitionResult } from '../store/index.ts';
import type { DesktopPageQuery } from '../store/desktops.repository.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import type { MigrationProgress } from '../providers/provider.ts';
import type { Logger } from '../observability/index.ts';
import type { AuditService, Actor } from './audit.service.ts';
import type { Desktop } from './model.ts';
import type { DesktopState, TransitionTarget } from './state-machine.ts';

export interface DesktopFilter {
  pool?: string;
  state?: DesktopState;
  user?: string;
  host?: string;
  name?: string;
}

/** One id's outcome in a bulk action. */
export interface BulkOutcome { id: string; ok: boolean; error?: { code: string; message: string } }

/**
 * Keeps a running migration's latest progress on the desktop's record (GET /desktops/:id)
 * until done() clears it. Writes are chained so a late sample cannot land after the clear.
 */
export function recordMigration(store: Store, id: string, toHost: string, logger: Logger, now: () => number = Date.now) {
  const startedAt = now();
  const write = (p: MigrationProgress | null) => store.desktops.setMigration(id, p && {
    toHost, startedAt, percent: p.percent, transferredBytes: p.transferredBytes, remainingBytes: p.remainingBytes, updatedAt: now(),
  });
  let writes: Promise<void> = write({ percent: 0, transferredBytes: 0, remainingBytes: 0, totalBytes: 0 });
  const keep = (p: Promise<void>) => p.catch((err: Error) => logger.warn({ desktop: id, err: err.message }, 'could not record migration progress'));
  writes = keep(writes);
  return {
    onProgress: (p: MigrationProgress) => {
      writes = keep(writes.then(() => write(p)));
    },
    done: async () => {
      await writes;
      await keep(write(null));
    },
  };
}

/** Helpdesk operations on single desktops. State changes go through the store's transition script. */
export class DesktopService {
  constructor(
    private readonly store: Store,
    private readonly providers: ProviderRegistry,
    private readonly audit: AuditService,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  async get(id: string): Promise<Desktop> {
    const d = await this.store.desktops.get(id);
    if (!d || d.state === 'deleted') throw new BrokerError('not_found', 'No such desktop.');
    return d;
  }

  async list(f: DesktopFilter = {}): Promise<Desktop[]> {
    const pools = f.pool ? [f.pool] : (await this.store.pools.list()).map((p) => p.name);
    const out: Desktop[] = [];
    for (const pool of pools) {
      const ids = f.state ? await this.store.desktops.idsInState(pool, f.state) : await this.store.desktops.idsInPool(pool);
      for (const d of await this.store.desktops.getMany(ids)) {
        if (f.user && d.user !== f.user) continue;
        if (f.host && d.host !== f.host) continue;
        if (f.name && !d.name.includes(f.name)) continue;
        out.push(d);
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** One page of the helpdesk's desktop table (filtered, searched and sorted in Redis). */
  page(q: DesktopPageQuery): Promise<{ items: Desktop[]; total: number }> {
    return this.store.desktops.page(q);
  }

  /**
   * The same action on several desktops, one after the other; each is audited as the single
   * action would be. Every id gets its outcome; a refusal does not stop the others.
   */
  async bulk(actor: Actor, action: 'refresh' | 'reset' | 'delete', ids: string[]): Promise<BulkOutcome[]> {
    const out: BulkOutcome[] = [];
    for (const id of new Set(ids)) {
      try {
        if (action === 'delete') await this.remove(actor, id);
        else await this[action](actor, id);
        out.push({ id, ok: true });
      } catch (err) {
        const e = err instanceof BrokerError ? err : new BrokerError('internal_error');
        if (!(err instanceof BrokerError)) this.logger.warn({ desktop: id, action, err: (err as Error).message }, 'bulk desktop action failed');
        out.push({ id, ok: false, error: { code: e.code, message: e.message } });
      }
    }
    return out;
  }

  /** Applies a transition and explains a refusal; illegal requests are logged, never applied. */
  async move(actor: Actor, id: string, to: TransitionTarget, action: string, expect?: DesktopState[]): Promise<Desktop> {
    const r: TransitionResult = await this.store.desktops.transition(id, to, { reason: action, now: this.now(), ...(expect ? { expect } : {}) });
    if (!r.ok) {
      if (r.code === 'not_found') throw new BrokerError('not_found', 'No such desktop.');
      this.logger.warn({ desktop: id, from: r.current, to, action }, 'refused desktop transition');
      await this.audit.record(actor, action, { type: 'desktop', id }, { from: r.current, to }, 'denied');
      throw new BrokerError('illegal_transition', `A desktop in state ${r.current} cannot go to ${to}.`);
    }
    await this.audit.record(actor, action, { type: 'desktop', id }, { from: r.from, to: r.to });
    return this.get(id);
  }

  refresh(actor: Actor, id: string) {
    return this.move(actor, id, 'refreshing', 'desktop.refresh');
  }

  remove(actor: Actor, id: string) {
    return this.move(actor, id, 'deleting', 'desktop.delete');
  }

  async unassign(actor: Actor, id: string): Promise<Desktop> {
    const d = await this.get(id);
    if (d.state === 'in_use') throw new BrokerError('desktop_in_use');
    return this.move(actor, id, 'ready', 'desktop.unassign', ['assigned']);
  }

  async assign(actor: Actor, id: string, user: string): Promise<Desktop> {
    const d = await this.get(id);
    const pool = await this.store.pools.get(d.pool);
    if (pool?.assignment !== 'dedicated') throw new BrokerError('conflict', 'Only desktops of dedicated pools are assigned by hand.', { field: 'user' });
    if (!(await this.store.users.get(user))) throw new BrokerError('validation_failed', `Unknown user: ${user}.`, { field: 'user' });
    const r = await this.store.desktops.assignOwner(id, user, this.now());
    if (r === 'already_exists') throw new BrokerError('already_exists', `${user} already has a desktop in pool ${d.pool}.`, { field: 'user' });
    if (r === 'illegal_transition') throw new BrokerError('illegal_transition', `A desktop in state ${d.state} cannot be assigned.`);
    if (r !== 'ok') throw new BrokerError('not_found', 'No such desktop.');
    await this.audit.record(actor, 'desktop.assign', { type: 'desktop', id }, { user });
    return this.get(id);
  }

  /** A user is gone: their sessions end and the desktops they own are destroyed (a namesake must not inherit them). */
  async reclaimFromUser(actor: Actor, user: string): Promise<void> {
    for (const sid of await this.store.sessions.liveIdsOfUser(user)) {
      const r = await this.store.sessions.release(sid, 'user deleted', this.now());
      if (r) await this.audit.record(actor, 'session.logoff', { type: 'session', id: sid }, { reason: 'user deleted', desktop: r.desktopId });
    }
    for (const pool of await this.store.pools.list()) {
      const id = await this.store.desktops.assignmentOf(pool.name, user);
      if (!id) continue;
      const d = await this.store.desktops.get(id);
      if (!d || d.user !== user || d.state === 'deleting' || d.state === 'deleted') continue;
      await this.move(actor, id, 'deleting', 'desktop.delete').catch((err: Error) => this.logger.warn({ desktop: id, err: err.message }, 'could not reclaim desktop'));
    }
  }

  private async provider(d: { provider: string }) {
    return this.providers.get(d.provider);
  }

  /** Runs a provider call for the helpdesk: audited either way, provider errors as 502. */
  private async providerAction<T>(actor: Actor, id: string, action: string, details: Record<string, unknown>, op: (d: Desktop) => Promise<T>): Promise<T> {
    const d = await this.get(id);
    if (!['ready', 'assigned', 'in_use'].includes(d.state)) throw new BrokerError('illegal_transition', `A desktop in state ${d.state} cannot do that now.`);
    try {
      const r = await op(d);
      // Operations that report something (a migration's hosts, duration, bytes) are audited with it.
      const outcome = r && typeof r === 'object' && !Array.isArray(r) ? (r as Record<string, unknown>) : {};
      await this.audit.record(actor, action, { type: 'desktop', id }, { ...details, ...outcome });
      return r;
    } catch (err) {
      await this.audit.record(actor, action, { type: 'desktop', id }, { ...details, error: (err as Error).message }, 'failed');
      throw err instanceof BrokerError ? err : new BrokerError('provider_error', `${action} failed: ${(err as Error).message}`);
    }
  }

  async snapshots(id: string) {
    const d = await this.get(id);
    return (await this.provider(d)).snapshotList(id);
  }

  snapshotCreate(actor: Actor, id: string, name: string) {
    return this.providerAction(actor, id, 'desktop.snapshot.create', { snapshot: name }, async (d) => (await this.provider(d)).snapshotCreate(id, name));
  }

  snapshotRevert(actor: Actor, id: string, name: string) {
    return this.providerAction(actor, id, 'desktop.snapshot.revert', { snapshot: name }, async (d) => (await this.provider(d)).snapshotRevert(id, name));
  }

  snapshotDelete(actor: Actor, id: string, name: string) {
    return this.providerAction(actor, id, 'desktop.snapshot.delete', { snapshot: name }, async (d) => (await this.provider(d)).snapshotDelete(id, name));
  }

  /** Live migration to another host; the desktop keeps running and its record follows. */
  async migrate(actor: Actor, id: string, host: string) {
    return this.providerAction(actor, id, 'desktop.migrate', { to: host }, async (d) => {
      const progress = recordMigration(this.store, id, host, this.logger, this.now);
      try {
        const r = await (await this.provider(d)).migrate(id, host, { onProgress: progress.onProgress });
        await this.store.desktops.setFields(id, { host: r.toHost });
        this.logger.info({ desktop: id, ...r }, 'desktop migrated');
        return r;
      } finally {
        await progress.done();
      }
    });
  }

  /** Hard reset through the provider; the state does not change. */
  async reset(actor: Actor, id: string): Promise<Desktop> {
    const d = await this.get(id);
    if (!['ready', 'assigned', 'in_use'].includes(d.state)) throw new BrokerError('illegal_transition', `A desktop in state ${d.state} cannot be reset.`);
    try {
      await this.providers.get(d.provider).reboot(id, { hard: true });
    } catch (err) {
      await this.audit.record(actor, 'desktop.reset', { type: 'desktop', id }, { error: (err as Error).message }, 'failed');
      throw err instanceof BrokerError ? err : new BrokerError('provider_error', `Reset failed: ${(err as Error).message}`);
    }
    await this.audit.record(actor, 'desktop.reset', { type: 'desktop', id });
    return d;
  }
}
