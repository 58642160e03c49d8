import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BrokerError } from '../errors.ts';
import type { Store, StoredUser, StoredApiKey } from '../store/index.ts';
import type { Actor, AuditService, Group, Principal, Role, User, ApiKey, Broker } from '../broker/index.ts';
import type { Passwords } from './passwords.ts';
import type { LoginThrottle, LockoutStatus, LockoutPolicy, BlockedAddress, RefusalScope } from './throttle.ts';
import { Authenticators } from './authenticators/registry.ts';
import { LocalAuthenticator, LOCAL } from './authenticators/local.ts';
import { LoginRefused, refuse } from './authenticators/refusal.ts';
import type { AuthenticatorTestResult, DirectoryIdentity, RoleMapping } from './authenticators/types.ts';
import { DirectoryUsers } from './directory-users.ts';
import { MAX_LOGIN_NAME, normaliseUsername } from './usernames.ts';

const publicUser = ({ passwordHash: _h, ...u }: StoredUser): User => u;

/** The primary step of a login: who it is, what the authenticator said, and which one. */
export interface PasswordLogin {
  principal: Principal;
  identity: DirectoryIdentity;
  authenticator: string;
}
const publicKey = ({ secretHash: _h, ...k }: StoredApiKey): ApiKey => k;
const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** The audit trail's words for a refused login attempt. */
const REFUSAL_REASON: Record<RefusalScope, Partial<Record<string, string>>> = {
  address: { too_many_attempts: 'address blocked (password spraying)' },
  pair: { login_throttled: 'throttled (user name from this address)' },
  account: { login_throttled: 'throttled (user name)', account_locked: 'account locked' },
};

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
    /** Authenticators and group → role mapping (auth.authenticators, auth.roleMapping); local accounts only by default. */
    login?: { authenticators: Authenticators; roleMapping: RoleMapping },
  ) {
    this.login = login ?? { authenticators: new Authenticators([new LocalAuthenticator(store.users, passwords, 'Local account', [])], LOCAL), roleMapping: {} };
    this.directoryUsers = new DirectoryUsers(store.users, audit, this.login.authenticators, this.login.roleMapping);
  }

  private readonly directoryUsers: DirectoryUsers;

  private readonly login: { authenticators: Authenticators; roleMapping: RoleMapping };

  /**
   * Local login (kept for callers that know only local accounts): the pipeline's primary step,
   * with the login audited here.
   */
  async authenticate(username: string, password: string, address: string): Promise<Principal> {
    const { principal } = await this.passwordLogin(username, password, address, LOCAL);
    await this.audit.record({ principal, address }, 'auth.login', { type: 'user', id: principal.id }, { authenticator: LOCAL });
    return principal;
  }

  private checkPassword(pw: string): void {
    if (pw.length < this.minPasswordLength) {
      throw new BrokerError('validation_failed', `The password must have at least ${this.minPasswordLength} characters.`, { field: 'password' });
    }
  }

  private async checkGroups(groups: string[]): Promise<void> {
    const missing = await this.store.users.missingGroups(groups);
    if (missing.length) throw new BrokerError('validation_failed', `Unknown group: ${missing[0]}.`, { field: 'groups' });
  }

  /**
   * The primary step of a password login (local or directory), before any second factor:
   * routes the typed name to its authenticator, normalises it, checks the password there and,
   * for a directory, creates or updates the broker user from what the directory says (groups,
   * role). Throttled per user name, per user name and address, and per address (spraying);
   * unknown and invalid user names take exactly the same path as wrong passwords, so neither the
   * answer nor its timing tells whether an account exists. Audits refusals; the caller audits
   * the finished login (HttpAuth.completeLogin).
   */
  async passwordLogin(typed: string, password: string, address: string, realm?: string): Promise<PasswordLogin> {
    const { authenticator, name } = this.login.authenticators.route(typed, realm);
    const id = normaliseUsername(name);
    // Names that cannot be user ids are throttled under their lower-cased form (bounded length).
    const throttleId = id ?? name.toLowerCase().slice(0, 128);
    const actor: Actor = { principal: null, address };
    const r = await this.throttle.reserve(throttleId, address);
    if (!r.ok) {
      // Audited once per wait or block, not per refused attempt: refusals cost an attacker
      // nothing, and must not flush the audit trail.
      if (r.first) {
        const target = r.scope === 'address' ? { type: 'address', id: address } : { type: 'user', id: throttleId };
        await this.audit.record(actor, 'auth.login', target, { reason: REFUSAL_REASON[r.scope][r.error.code] ?? r.error.code, code: r.error.code, retryAfterSeconds: r.retryAfterSeconds, authenticator: authenticator.name }, 'denied');
      }
      throw r.error;
    }
    let identity: DirectoryIdentity;
    try {
      if (!id) {
        // Spend the time a password check takes: an invalid name must not answer faster.
        await this.passwords.verify(null, password);
        throw refuse('invalid_credentials', name.length > MAX_LOGIN_NAME ? 'user name too long' : 'not a valid user name');
      }
      identity = await authenticator.authenticate(id, password, { address });
    } catch (err) {
      // No verdict on the password (Redis or the directory failed): the attempt is given back,
      // best effort (Redis may still be away), so users retrying through an outage are not throttled.
      if (!(err instanceof BrokerError) || err.code !== 'invalid_credentials') await this.throttle.released(throttleId, address).catch(() => undefined);
      if (!(err instanceof BrokerError)) throw err;
      const reason = err instanceof LoginRefused ? err.reason : err.message;
      const target = { type: 'user', id: throttleId };
      if (err.code === 'invalid_credentials') {
        const spray = await this.throttle.failed(throttleId, address);
        await this.audit.record(actor, 'auth.login', target, { reason, failures: r.accountAttempts, authenticator: authenticator.name }, 'denied');
        await this.auditThrottleSteps(actor, throttleId, r, spray);
        throw new BrokerError('invalid_credentials');
      }
      // The directory is down: not the user's failure, so not counted for spraying.
      await this.audit.record(actor, 'auth.login', target, { reason, code: err.code, authenticator: authenticator.name }, err.status >= 500 ? 'failed' : 'denied');
      throw err instanceof LoginRefused ? new BrokerError(err.code, err.message) : err;
    }
    await this.throttle.succeeded(throttleId, address);
    const principal = authenticator.kind === 'local' ? await this.localPrincipal(identity) : await this.upsertFromDirectory(identity, actor);
    return { principal, identity, authenticator: authenticator.name };
  }

  private async localPrincipal(identity: DirectoryIdentity): Promise<Principal> {
    const u = await this.store.users.get(identity.username);
    if (!u) throw new BrokerError('invalid_credentials');
    return { kind: 'user', id: u.id, role: u.role, groups: u.groups };
  }

  /** Just-in-time user from what a directory or identity provider vouched for (DirectoryUsers.upsert). */
  upsertFromDirectory(identity: DirectoryIdentity, actor: Actor): Promise<Principal> {
    return this.directoryUsers.upsert(identity, actor);
  }

  /** The failure that crossed a limit: the lock, the start of waits, a blocked pair or address. */
  private async auditThrottleSteps(actor: Actor, id: string, r: { accountAttempts: number; pairAttempts: number }, spray: { addressBlocked: boolean; distinctNames: number }): Promise<void> {
    const { lockout: l, throttle: t } = this.throttle.options;
    const user = { type: 'user', id };
    if (l.mode === 'hard' && r.accountAttempts === l.threshold) await this.audit.record(actor, 'auth.lock', user, { mode: 'hard', failures: r.accountAttempts, seconds: l.durationSeconds });
    if (l.mode === 'progressive' && r.accountAttempts === l.freeFailures) await this.audit.record(actor, 'auth.slowdown', user, { failures: r.accountAttempts, maxDelaySeconds: l.maxDelaySeconds });
    if (r.pairAttempts === t.pairFailures) await this.audit.record(actor, 'auth.block', user, { scope: 'user from address', address: actor.address, failures: r.pairAttempts, seconds: t.pairBlockSeconds });
    if (spray.addressBlocked) await this.audit.record(actor, 'auth.block', { type: 'address', id: actor.address }, { scope: 'address', reason: 'password spraying', userNames: spray.distinctNames, seconds: t.sprayBlockSeconds });
  }

  /** The login throttle's view of a user: locked, throttled, failing or clear. */
  async lockoutOf(id: string): Promise<LockoutStatus> {
    await this.getUser(id);
    return this.throttle.status(id);
  }

  /** Existing users with throttle state, and addresses blocked for spraying (the helpdesk's list). */
  async lockouts(): Promise<{ mode: LockoutPolicy['mode']; accounts: LockoutStatus[]; addresses: BlockedAddress[] }> {
    const { accounts, addresses } = await this.throttle.list();
    // Names nobody has (guesses, spraying) are not the helpdesk's to unlock; their state expires.
    const missing = new Set(await this.store.users.missingUsers(accounts.map((a) => a.user)));
    return { mode: this.throttle.options.lockout.mode, accounts: accounts.filter((a) => !missing.has(a.user)), addresses };
  }

  /** Clears a user's lock, waits and per-address blocks (helpdesk, admin, CLI); always audited. */
  async unlockUser(actor: Actor, id: string): Promise<LockoutStatus> {
    await this.getUser(id);
    const before = await this.throttle.status(id);
    await this.throttle.unlock(id);
    await this.audit.record(actor, 'user.unlock', { type: 'user', id }, { was: before.state, failures: before.failures, addresses: before.addresses.map((a) => a.address) });
    return this.throttle.status(id);
  }

  /** A finished login (HttpAuth.completeLogin): which authenticator, which second factor, how long. */
  async recordLogin(actor: Actor, userId: string, details: { authenticator: string; mfa: string; durationMs: number }): Promise<void> {
    await this.audit.record(actor, 'auth.login', { type: 'user', id: userId }, details);
  }

  /** The first step passed and the second factor is asked for. */
  async recordSecondFactorRequired(actor: Actor, userId: string, authenticator: string): Promise<void> {
    await this.audit.record(actor, 'auth.mfa_required', { type: 'user', id: userId }, { authenticator });
  }

  async recordLogout(actor: Actor): Promise<void> {
    await this.audit.record(actor, 'auth.logout', { type: 'user', id: actor.principal?.id ?? '' });
  }

  /**
   * The principal behind a logged-in session, re-read every request so role changes and
   * disabling apply at once; a directory user's groups are re-checked when older than their
   * authenticator's cache (DirectoryUsers.current).
   */
  async principalOf(userId: string): Promise<Principal | null> {
    return this.principalOfStored(await this.store.users.get(userId));
  }

  /** principalOf() for a user record read already (with the HTTP session: users.withSession). */
  async principalOfStored(stored: StoredUser | null): Promise<Principal | null> {
    if (!stored || stored.disabled) return null;
    const u = (stored.source ?? LOCAL) === LOCAL ? stored : await this.directoryUsers.current(stored);
    return u ? { kind: 'user', id: u.id, role: u.role, groups: u.groups } : null;
  }

  /** Admin console "test connection": does the authenticator's directory answer? Audited either way. */
  async testAuthenticator(actor: Actor, name: string): Promise<AuthenticatorTestResult> {
    const a = this.login.authenticators.get(name);
    if (!a) throw new BrokerError('not_found', `No authenticator named "${name}".`);
    const result: AuthenticatorTestResult = a.test ? await a.test() : { ok: true, milliseconds: 0, message: 'Nothing to connect to: accounts are kept by the broker.' };
    await this.audit.record(actor, 'authenticator.test', { type: 'authenticator', id: name }, { ...result }, result.ok ? 'ok' : 'failed');
    return result;
  }

  /** The authenticators this broker offers (GET /auth/methods, the admin console). */
  get authenticators(): Authenticators {
    return this.login.authenticators;
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
    // A new account of the same name starts without the old one's second factors.
    await this.store.mfa.removeAll(id);
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
