import { BrokerError } from '../errors.ts';
import type { Store, PoolCounts } from '../store/index.ts';
import type { ProviderRegistry } from '../providers/index.ts';
import type { AuditService, Actor } from './audit.service.ts';
import type { ImageService } from './image.service.ts';
import { isEntitled, locationAllows, type DeviceContext, type Pool, type PoolSpec, type PoolUpdate, type Principal } from './model.ts';
import type { DesktopState } from './state-machine.ts';

export interface RolloutProgress {
  /** "name:version" new desktops get. */
  target: string | null;
  upToDate: number;
  total: number;
}

/** Desktop states in which a live session is handed back on request (as lua/assign.lua does). */
const HOLDING: ReadonlySet<DesktopState> = new Set(['in_use', 'assigned', 'provisioning', 'refreshing']);

export type PoolView = Pool & { deleting: boolean; counts: PoolCounts; rollout: RolloutProgress };

export class PoolService {
  constructor(
    private readonly store: Store,
    private readonly providers: ProviderRegistry,
    private readonly audit: AuditService,
    private readonly images: ImageService,
    private readonly now: () => number = Date.now,
  ) {}

  /** The pool's driver makes no desktops (kind manual: existing machines); unknown = false. */
  private machinesOnly(provider: string): boolean {
    if (!this.providers.has(provider)) return false;
    const c = this.providers.get(provider).capabilities;
    return !c.linkedClones && !c.fullClones;
  }

  /**
   * A manual pool's desktops are the machines an admin adds: no sizes to grow to (assign.lua
   * would otherwise make desktops the driver cannot build) and never deleted at logoff.
   */
  private checkMachinesOnly(p: Pick<PoolSpec, 'provider' | 'size' | 'persistence'>): void {
    if (!this.machinesOnly(p.provider)) return;
    if (p.size.min !== 0 || p.size.max !== 0 || p.size.spare !== 0) {
      throw new BrokerError('validation_failed', 'A manual pool has no sizes (its desktops are its machines): set size min, max and spare to 0.', { field: 'size' });
    }
    if (p.persistence === 'delete') {
      throw new BrokerError('validation_failed', 'A manual pool cannot delete its machines at logoff: use persistent or refresh.', { field: 'persistence' });
    }
  }

  private async checkReferences(spec: Partial<Pick<PoolSpec, 'provider' | 'entitlements' | 'image'>>): Promise<void> {
    // Manual pools are not built from an image: the image is only a label there.
    if (spec.image !== undefined && !(spec.provider !== undefined && this.machinesOnly(spec.provider))) await this.images.currentRef(spec.image);
    if (spec.provider !== undefined && !this.providers.has(spec.provider)) {
      throw new BrokerError('validation_failed', `No provider named "${spec.provider}" is configured.`, { field: 'provider' });
    }
    if (!spec.entitlements) return;
    const users = await this.store.users.missingUsers(spec.entitlements.users);
    if (users.length) throw new BrokerError('validation_failed', `Unknown user: ${users[0]}.`, { field: 'entitlements.users' });
    const groups = await this.store.users.missingGroups(spec.entitlements.groups);
    if (groups.length) throw new BrokerError('validation_failed', `Unknown group: ${groups[0]}.`, { field: 'entitlements.groups' });
  }

  async create(spec: PoolSpec, actor: Actor): Promise<PoolView> {
    await this.checkReferences(spec);
    this.checkMachinesOnly(spec);
    const ts = new Date(this.now()).toISOString();
    const pool: Pool = { ...spec, createdAt: ts, updatedAt: ts };
    const r = await this.store.pools.save(pool, 'create');
    if (r === 'already_exists') throw new BrokerError('already_exists', `A pool named "${spec.name}" exists.`, { field: 'name' });
    await this.audit.record(actor, 'pool.create', { type: 'pool', id: spec.name }, { size: spec.size, provider: spec.provider });
    return this.get(spec.name);
  }

  async update(name: string, patch: PoolUpdate, actor: Actor, action = 'pool.update'): Promise<PoolView> {
    const cur = await this.store.pools.get(name);
    if (!cur || cur.deleting) throw new BrokerError('not_found', `No pool named "${name}".`);
    const { deleting: _d, ...base } = cur;
    const next: Pool = { ...base, ...patch, updatedAt: new Date(this.now()).toISOString() } as Pool;
    if (next.size.min > next.size.max || next.size.spare > next.size.max) {
      throw new BrokerError('validation_failed', 'min and spare must not exceed max.', { field: 'size' });
    }
    this.checkMachinesOnly(next);
    // Only what the patch changes is checked: a pool stays manageable whatever else happened.
    await this.checkReferences({ ...(patch.entitlements ? { entitlements: next.entitlements } : {}), ...(patch.image ? { image: patch.image, ...(this.machinesOnly(next.provider) ? { provider: next.provider } : {}) } : {}) });
    if ((await this.store.pools.save(next, 'update')) !== 'ok') throw new BrokerError('not_found', `No pool named "${name}".`);
    await this.audit.record(actor, action, { type: 'pool', id: name }, { changed: Object.keys(patch) });
    return this.get(name);
  }

  async remove(name: string, actor: Actor): Promise<void> {
    const r = await this.store.pools.markDeleting(name);
    if (r === 'missing') throw new BrokerError('not_found', `No pool named "${name}".`);
    if (r === 'marked') await this.audit.record(actor, 'pool.delete', { type: 'pool', id: name });
  }

  /** A user or group is gone: no pool may keep entitling it (a namesake would inherit the access). */
  async forget(kind: 'users' | 'groups', name: string, actor: Actor): Promise<void> {
    for (const p of await this.store.pools.list()) {
      if (p.deleting || !p.entitlements[kind].includes(name)) continue;
      const entitlements = { ...p.entitlements, [kind]: p.entitlements[kind].filter((x) => x !== name) };
      const { deleting: _d, ...spec } = p;
      await this.store.pools.save({ ...spec, entitlements, updatedAt: new Date(this.now()).toISOString() }, 'update');
      await this.audit.record(actor, 'pool.update', { type: 'pool', id: p.name }, { changed: ['entitlements'], removed: { [kind]: name } });
    }
  }

  async get(name: string): Promise<PoolView> {
    const p = await this.store.pools.get(name);
    if (!p) throw new BrokerError('not_found', `No pool named "${name}".`);
    return this.view(p);
  }

  async list(): Promise<PoolView[]> {
    return Promise.all((await this.store.pools.list()).map((p) => this.view(p)));
  }

  private async view(p: Pool & { deleting: boolean }): Promise<PoolView> {
    const desktops = (await this.store.desktops.listByPool(p.name)).filter((d) => d.state !== 'deleting');
    const target = await this.images.currentRef(p.image).catch(() => null);
    const rollout = { target, upToDate: desktops.filter((d) => d.image === target).length, total: desktops.length };
    return { ...p, counts: await this.store.pools.counts(p.name), rollout };
  }

  /**
   * The pools a user may use, each with the user's desktop there if any. `available` says
   * whether launching works for this user now: the pool takes new sessions, or the user holds
   * a live session there (a disabled pool or one in maintenance never keeps a user from it).
   */
  async entitled(principal: Principal, device?: DeviceContext) {
    // Pools restricted to other locations (or to devices, from a plain browser) are not offered here.
    const pools = (await this.store.pools.list()).filter((p) => !p.deleting && isEntitled(p, principal) && locationAllows(p, device));
    return Promise.all(
      pools.map(async (p) => {
        const id = await this.store.desktops.assignmentOf(p.name, principal.id);
        const d = id ? await this.store.desktops.get(id) : null;
        const session = d?.session ? await this.store.sessions.get(d.session) : null;
        const live = !!session && session.state !== 'ended' && HOLDING.has(d!.state);
        return {
          name: p.name,
          displayName: p.displayName,
          description: p.description,
          assignment: p.assignment,
          persistence: p.persistence,
          available: (p.enabled && !p.maintenance) || live,
          maintenance: p.maintenance,
          desktop: d ? { id: d.id, name: d.name, state: d.state, session: d.session || null } : null,
        };
      }),
    );
  }
}
