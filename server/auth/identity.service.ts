import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BrokerError } from '../errors.ts';
import type { Store, StoredUser, StoredApiKey } from '../store/index.ts';
import type { Actor, AuditService, Group, Principal, Role, User, ApiKey, Broker } from '../broker/index.ts';
import type { Passwords } from './passwords.ts';
import type { LoginThrottle } from './throttle.ts';

const publicUser = ({ passwordHash: _h, ...u }: StoredUser): User => u;
const publicKey = ({ secretHash: _h, ...k }: StoredApiKey): ApiKey => k;
const sha256 = (s: string) => createHash('sha256').update(s).digest();

export interface NewUser {
  id: string;
  displayName?: string;
  role: Role;
  password: string;
  groups?: string[];
}

/** Users, groups and API keys: who may log in, with which role. */
export class IdentityService {
  constructor(
    private readonly store: Store,
    private readonly passwords: Passwords,
    private readonly throttle: LoginThrottle,
    private readonly audit: AuditService,
    private readonly minPasswordLength: number,
    /** The broker, to clean up after a deleted user or group (entitlements, sessions, desktops). */
    private readonly broker: Pick<Broker, 'pools' | 'desktops'>,
  ) {}

  private checkPassword(pw: string): void {
    if (pw.length < this.minPasswordLength) {
      throw new BrokerError('validation_failed', `The password must have at least ${this.minPasswordLength} characters.`, { field: 'password' });
    }
  }

  private async checkGroups(groups: string[]): Promise<void> {
    const missing = await this.store.users.missingGroups(groups);
    if (missing.length) throw new BrokerError('validation_failed', `Unknown group: ${missing[0]}.`, { field: 'groups' });
  }

  /** Local login. Throttled per account and address; the same answer for unknown users and wrong passwords. */
  async authenticate(username: string, password: string, address: string): Promise<Principal> {
    const id = username.toLowerCase();
    await this.throttle.reserve(id, address);
    const u = /^[a-z0-9][a-z0-9._-]{0,63}$/.test(id) ? await this.store.users.get(id) : null;
    const ok = await this.passwords.verify(u?.passwordHash ?? null, password);
    const actor: Actor = { principal: null, address };
    if (!u || !ok || u.disabled) {
      await this.throttle.failed(address);
      await this.audit.record(actor, 'auth.login', { type: 'user', id }, { reason: !u ? 'unknown user' : u.disabled ? 'disabled' : 'wrong password' }, 'denied');
      throw new BrokerError('invalid_credentials');
    }
    await this.throttle.succeeded(id);
    const principal: Principal = { kind: 'user', id: u.id, role: u.role, groups: u.groups };
    await this.audit.record({ principal, address }, 'auth.login', { type: 'user', id: u.id });
    return principal;
  }

  async recordLogout(actor: Actor): Promise<void> {
    await this.audit.record(actor, 'auth.logout', { type: 'user', id: actor.principal?.id ?? '' });
  }

  /** The principal behind a logged-in session, re-read every request so role changes and disabling apply at once. */
  async principalOf(userId: string): Promise<Principal | null> {
    const u = await this.store.users.get(userId);
    if (!u || u.disabled) return null;
    return { kind: 'user', id: u.id, role: u.role, groups: u.groups };
  }

  async getUser(id: string): Promise<User> {
    const u = await this.store.users.get(id);
    if (!u) throw new BrokerError('not_found', `No user named "${id}".`);
    return publicUser(u);
  }

  async listUsers(): Promise<User[]> {
    return (await this.store.users.list()).map(publicUser);
  }

  async createUser(actor: Actor, nu: NewUser): Promise<User> {
    this.checkPassword(nu.password);
    await this.checkGroups(nu.groups ?? []);
    const created = await this.store.users.create({
      id: nu.id,
      displayName: nu.displayName || nu.id,
      role: nu.role,
      passwordHash: await this.passwords.hash(nu.password),
      groups: nu.groups ?? [],
    });
    if (!created) throw new BrokerError('already_exists', `A user named "${nu.id}" exists.`, { field: 'id' });
    await this.audit.record(actor, 'user.create', { type: 'user', id: nu.id }, { role: nu.role });
    return this.getUser(nu.id);
  }

  async updateUser(actor: Actor, id: string, patch: { displayName?: string; role?: Role; password?: string; disabled?: boolean; groups?: string[] }): Promise<User> {
    if (patch.password !== undefined) this.checkPassword(patch.password);
    if (patch.groups) await this.checkGroups(patch.groups);
    const { password, ...rest } = patch;
    const fields = password !== undefined ? { ...rest, passwordHash: await this.passwords.hash(password) } : rest;
    if (!(await this.store.users.update(id, fields))) throw new BrokerError('not_found', `No user named "${id}".`);
    await this.audit.record(actor, 'user.update', { type: 'user', id }, { changed: Object.keys(patch) });
    return this.getUser(id);
  }

  async deleteUser(actor: Actor, id: string): Promise<void> {
    if (actor.principal?.id === id) throw new BrokerError('conflict', 'You cannot delete your own account.');
    if (!(await this.store.users.remove(id))) throw new BrokerError('not_found', `No user named "${id}".`);
    await this.audit.record(actor, 'user.delete', { type: 'user', id });
    await this.broker.pools.forget('users', id, actor);
    await this.broker.desktops.reclaimFromUser(actor, id);
  }

  async getGroup(name: string): Promise<Group> {
    const g = await this.store.users.getGroup(name);
    if (!g) throw new BrokerError('not_found', `No group named "${name}".`);
    return g;
  }

  listGroups(): Promise<Group[]> {
    return this.store.users.listGroups();
  }

  private async checkMembers(members: string[]): Promise<void> {
    const missing = await this.store.users.missingUsers(members);
    if (missing.length) throw new BrokerError('validation_failed', `Unknown user: ${missing[0]}.`, { field: 'members' });
  }

  async createGroup(actor: Actor, g: { name: string; displayName?: string; members?: string[] }): Promise<Group> {
    await this.checkMembers(g.members ?? []);
    if (!(await this.store.users.createGroup({ name: g.name, displayName: g.displayName || g.name, members: g.members ?? [] }))) {
      throw new BrokerError('already_exists', `A group named "${g.name}" exists.`, { field: 'name' });
    }
    await this.audit.record(actor, 'group.create', { type: 'group', id: g.name });
    return this.getGroup(g.name);
  }

  async updateGroup(actor: Actor, name: string, patch: { displayName?: string; members?: string[] }): Promise<Group> {
    if (patch.members) await this.checkMembers(patch.members);
    if (!(await this.store.users.updateGroup(name, patch))) throw new BrokerError('not_found', `No group named "${name}".`);
    await this.audit.record(actor, 'group.update', { type: 'group', id: name }, { changed: Object.keys(patch) });
    return this.getGroup(name);
  }

  async deleteGroup(actor: Actor, name: string): Promise<void> {
    if (!(await this.store.users.removeGroup(name))) throw new BrokerError('not_found', `No group named "${name}".`);
    await this.audit.record(actor, 'group.delete', { type: 'group', id: name });
    await this.broker.pools.forget('groups', name, actor);
  }

  // API keys: "vdik_<id>_<secret>"; only a SHA-256 of the 256-bit secret is stored, so a
  // stolen Redis dump does not yield usable keys (a slow hash adds nothing at this entropy).

  async createApiKey(actor: Actor, k: { name: string; role: Role }): Promise<{ key: ApiKey; token: string }> {
    const id = randomBytes(9).toString('base64url');
    const secret = randomBytes(32).toString('base64url');
    await this.store.apiKeys.create({ id, name: k.name, role: k.role, createdBy: actor.principal?.id ?? '', secretHash: sha256(secret).toString('hex') });
    await this.audit.record(actor, 'apikey.create', { type: 'apikey', id }, { name: k.name, role: k.role });
    const stored = await this.store.apiKeys.get(id);
    return { key: publicKey(stored!), token: `vdik_${id}_${secret}` };
  }

  async listApiKeys(): Promise<ApiKey[]> {
    return (await this.store.apiKeys.list()).map(publicKey);
  }

  async revokeApiKey(actor: Actor, id: string): Promise<void> {
    if (!(await this.store.apiKeys.remove(id))) throw new BrokerError('not_found', 'No such API key.');
    await this.audit.record(actor, 'apikey.revoke', { type: 'apikey', id });
  }

  /** The principal for a bearer token, or null. */
  async principalOfToken(token: string): Promise<Principal | null> {
    const m = /^vdik_([A-Za-z0-9_-]{12})_([A-Za-z0-9_-]{43})$/.exec(token);
    if (!m) return null;
    const key = await this.store.apiKeys.get(m[1]!);
    if (!key) return null;
    const want = Buffer.from(key.secretHash, 'hex');
    const got = sha256(m[2]!);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return null;
    // lastUsedAt is best effort; a failed write must not fail the request.
    this.store.apiKeys.touch(key.id).catch(() => undefined);
    return { kind: 'apikey', id: key.id, role: key.role, groups: [] };
  }
}
