// Broker users that a directory or identity provider vouches for (docs/authentication.md,
// "Groups, roles and when changes take effect"): created or updated just in time at login, and
// their groups re-read when older than their authenticator's cache.
import { BrokerError } from '../errors.ts';
import { ROLE_RANK, type Actor, type AuditService, type Principal, type Role } from '../broker/index.ts';
import type { StoredUser, UsersRepository } from '../store/index.ts';
import { LOCAL } from './authenticators/local.ts';
import type { Authenticators } from './authenticators/registry.ts';
import type { Authenticator, DirectoryIdentity, RoleMapping } from './authenticators/types.ts';

/** After a failed directory re-read, requests use the cached groups this long before trying again. */
const REFRESH_RETRY_MS = 30_000;

/** The highest role any of the groups grants (auth.roleMapping); "user" when none does. */
export function roleOf(groups: string[], mapping: RoleMapping): Role {
  let best: Role = 'user';
  for (const g of groups) {
    const r = Object.hasOwn(mapping, g) ? mapping[g] : undefined;
    if (r && ROLE_RANK[r] > ROLE_RANK[best]) best = r;
  }
  return best;
}

type Refreshable = Authenticator & { refresh: NonNullable<Authenticator['refresh']> };

export class DirectoryUsers {
  private readonly refreshing = new Map<string, Promise<StoredUser | null>>();
  private readonly refreshFailedAt = new Map<string, number>();

  constructor(
    private readonly users: Pick<UsersRepository, 'get' | 'create' | 'update' | 'missingGroups' | 'createGroup'>,
    private readonly audit: AuditService,
    private readonly authenticators: Authenticators,
    private readonly roleMapping: RoleMapping,
  ) {}

  /**
   * Creates or updates the broker user. Its groups are replaced by the directory's (broker
   * groups are created for new names), its role follows auth.roleMapping, and
   * `groupsRefreshedAt` starts the group cache. A user name that belongs to another
   * authenticator (or a local account) is refused, as is a user disabled in the broker.
   */
  async upsert(identity: DirectoryIdentity, actor: Actor): Promise<Principal> {
    const role = roleOf(identity.groups, this.roleMapping);
    const now = new Date().toISOString();
    await this.ensureGroups(identity.groups);
    let cur = await this.users.get(identity.username);
    const target = { type: 'user', id: identity.username };
    if (!cur) {
      const created = await this.users.create({
        id: identity.username, displayName: identity.displayName || identity.username, role, passwordHash: '', groups: identity.groups,
        source: identity.source, ...(identity.externalId ? { externalId: identity.externalId } : {}), groupsRefreshedAt: now,
      });
      if (created) {
        await this.audit.record({ principal: null, address: actor.address }, 'user.create', target, { source: identity.source, role, groups: identity.groups });
        return { kind: 'user', id: identity.username, role, groups: [...identity.groups].sort() };
      }
      cur = await this.users.get(identity.username); // created by a concurrent login
      if (!cur) throw new BrokerError('invalid_credentials');
    }
    if ((cur.source ?? LOCAL) !== identity.source) {
      await this.audit.record(actor, 'auth.login', target, { reason: `user name belongs to ${cur.source ?? LOCAL} accounts`, authenticator: identity.source }, 'denied');
      throw new BrokerError('invalid_credentials');
    }
    if (cur.disabled) {
      await this.audit.record(actor, 'auth.login', target, { reason: 'disabled in the broker', authenticator: identity.source }, 'denied');
      throw new BrokerError('account_disabled', 'This account is disabled in the broker; ask the helpdesk.');
    }
    await this.sync(cur, identity, role, now);
    return { kind: 'user', id: cur.id, role, groups: [...identity.groups].sort() };
  }

  /**
   * A directory user as a request should see them: re-read from the directory first when their
   * groups are older than the authenticator's `groupCacheSeconds` (removed from a group: no
   * entitlement from this request on; gone or disabled there, or its authenticator no longer
   * configured: null, logged out). If the directory cannot answer, the cached groups stand and
   * the next re-read waits REFRESH_RETRY_MS.
   */
  async current(u: StoredUser): Promise<StoredUser | null> {
    const a = this.authenticators.get(u.source ?? LOCAL);
    if (!a) return null;
    if (!(a.groupCacheSeconds > 0 && a.refresh && this.stale(u, a.groupCacheSeconds))) return u;
    return this.refresh(u, a as Refreshable);
  }

  /** Writes what the directory says now; audits a change of groups or role as user.sync. */
  private async sync(cur: StoredUser, identity: DirectoryIdentity, role: Role, now: string): Promise<void> {
    await this.ensureGroups(identity.groups);
    await this.users.update(cur.id, { displayName: identity.displayName || cur.id, role, groups: identity.groups, ...(identity.externalId ? { externalId: identity.externalId } : {}), groupsRefreshedAt: now });
    const added = identity.groups.filter((g) => !cur.groups.includes(g));
    const removed = cur.groups.filter((g) => !identity.groups.includes(g));
    if (added.length || removed.length || role !== cur.role) {
      await this.audit.record({ principal: null, address: '' }, 'user.sync', { type: 'user', id: cur.id }, { source: identity.source, added, removed, ...(role !== cur.role ? { role, was: cur.role } : {}) });
    }
  }

  /** Broker groups for directory group names seen for the first time. */
  private async ensureGroups(groups: string[]): Promise<void> {
    for (const g of await this.users.missingGroups(groups)) {
      await this.users.createGroup({ name: g, displayName: g, members: [] });
    }
  }

  private stale(u: StoredUser, ttlSeconds: number): boolean {
    const at = Date.parse(u.groupsRefreshedAt ?? '');
    if (Number.isFinite(at) && Date.now() - at < ttlSeconds * 1000) return false;
    const failed = this.refreshFailedAt.get(u.id);
    return failed === undefined || Date.now() - failed >= Math.min(REFRESH_RETRY_MS, ttlSeconds * 1000);
  }

  /** One directory re-read per user at a time, whatever the number of parallel requests. */
  private refresh(u: StoredUser, a: Refreshable): Promise<StoredUser | null> {
    let p = this.refreshing.get(u.id);
    if (!p) {
      p = (async () => {
        try {
          const identity = await a.refresh({ username: u.id, ...(u.externalId ? { externalId: u.externalId } : {}) });
          this.refreshFailedAt.delete(u.id);
          if (!identity) {
            await this.audit.record({ principal: null, address: '' }, 'user.sync', { type: 'user', id: u.id }, { source: a.name, reason: 'gone or disabled in the directory: logged out' }, 'denied');
            return null;
          }
          await this.sync(u, identity, roleOf(identity.groups, this.roleMapping), new Date().toISOString());
          return this.users.get(u.id);
        } catch (err) {
          if (!(err instanceof BrokerError && err.code === 'directory_unavailable')) throw err;
          if (this.refreshFailedAt.size > 10_000) this.refreshFailedAt.clear();
          this.refreshFailedAt.set(u.id, Date.now());
          return u;
        } finally {
          this.refreshing.delete(u.id);
        }
      })();
      this.refreshing.set(u.id, p);
    }
    return p;
  }
}
