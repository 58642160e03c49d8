// Active Directory / OpenLDAP logins (docs/authentication.md, "LDAP and Active Directory"):
// the service account finds the user by a filter built from escaped values, the user's own
// bind checks the password, then the service account reads the account's state and groups.
import { readFileSync } from 'node:fs';
import { InvalidCredentialsError, type Client, type Entry } from 'ldapts';
import { BrokerError } from '../../../errors.ts';
import type { LdapAuthenticatorConfig } from '../../../config/schema.ts';
import type { Logger } from '../../../observability/index.ts';
import { refuse } from '../refusal.ts';
import type { AuthenticatorTestResult, DirectoryIdentity, PasswordAuthenticator } from '../types.ts';
import { adAccountRefusal, parseAdBindError, PPOLICY_ERRORS } from './ad.ts';
import { fillFilter, placeholdersOf } from './filter.ts';
import { attr, brokerGroupOf, expandNested, MAX_GROUPS } from './groups.ts';
import { PasswordPolicyControl } from './ppolicy.ts';
import { LdapServers } from './servers.ts';

const DEFAULTS = {
  activeDirectory: {
    userFilter: '(&(objectCategory=person)(objectClass=user)(|(sAMAccountName={username})(userPrincipalName={login})))',
    usernameAttribute: 'sAMAccountName',
    // LDAP_MATCHING_RULE_IN_CHAIN: the DC returns nested memberships itself.
    groupFilter: '(&(objectClass=group)(member:1.2.840.113556.1.4.1941:={dn}))',
    nestedDepth: 0,
  },
  openldap: {
    userFilter: '(&(objectClass=person)(uid={username}))',
    usernameAttribute: 'uid',
    groupFilter: '(|(&(objectClass=groupOfNames)(member={dn}))(&(objectClass=groupOfUniqueNames)(uniqueMember={dn}))(&(objectClass=posixGroup)(memberUid={username})))',
    nestedDepth: 5,
  },
} as const;

interface Found {
  entry: Entry;
  disabled: { code: 'account_disabled' | 'password_change_required' | 'password_expired'; reason: string } | null;
}

export class LdapAuthenticator implements PasswordAuthenticator {
  readonly kind = 'ldap' as const;
  readonly name: string;
  readonly label: string;
  readonly domains: string[];
  readonly groupCacheSeconds: number;
  private readonly servers: LdapServers;
  private readonly bindPassword: string;
  private readonly userFilter: string;
  private readonly usernameAttribute: string;
  private readonly groupFilter: string;
  private readonly nestedDepth: number;

  constructor(private readonly c: LdapAuthenticatorConfig, private readonly logger: Logger, private readonly now: () => number = Date.now) {
    this.name = c.name;
    this.label = c.label;
    this.domains = c.domains;
    this.groupCacheSeconds = c.groupCacheSeconds;
    const d = DEFAULTS[c.directory];
    this.userFilter = c.userFilter ?? d.userFilter;
    this.usernameAttribute = c.usernameAttribute ?? d.usernameAttribute;
    this.groupFilter = c.groups.filter ?? d.groupFilter;
    this.nestedDepth = c.groups.nestedDepth ?? d.nestedDepth;
    // Typos in filters stop startup here, not at the first login.
    fillFilter(this.userFilter, { username: 'x', login: 'x' });
    fillFilter(this.groupFilter, { dn: 'x', username: 'x' });
    if (c.disabledFilter) fillFilter(c.disabledFilter, { username: 'x', login: 'x', dn: 'x' });
    if (!placeholdersOf(this.userFilter).length) throw new Error(`auth.authenticators ${c.name}: userFilter must use {username} or {login}`);
    this.bindPassword = c.bindPasswordFile ? readFileSync(c.bindPasswordFile, 'utf8').replace(/\r?\n$/, '') : c.bindPassword;
    const ca = c.caFile ? readFileSync(c.caFile, 'utf8') : undefined;
    this.servers = new LdapServers({ urls: c.urls, startTls: c.startTls, ...(ca ? { ca } : {}), timeoutMs: c.timeoutMs, maxConnections: c.maxConnections, logger, name: c.name });
  }

  describe(): Record<string, unknown> {
    const c = this.c;
    return {
      directory: c.directory, urls: c.urls, startTls: c.startTls, caFile: c.caFile ?? null, timeoutMs: c.timeoutMs, maxConnections: c.maxConnections,
      bindDn: c.bindDn, bindPassword: this.bindPassword ? '(set)' : '(none)', baseDn: c.baseDn, userFilter: this.userFilter, usernameAttribute: this.usernameAttribute,
      disabledFilter: c.disabledFilter ?? null, groupBaseDn: c.groups.baseDn ?? c.baseDn, groupFilter: this.groupFilter, groupNameAttribute: c.groups.nameAttribute,
      nestedDepth: this.nestedDepth, groupMap: c.groups.map, onlyMappedGroups: c.groups.onlyMapped,
    };
  }

  private get timeLimitSeconds(): number {
    return Math.max(1, Math.ceil(this.c.timeoutMs / 1000));
  }

  /** The service account's bind; its refusal is a broken configuration, not the user's fault. */
  private async bindService(client: Client): Promise<void> {
    if (!this.c.bindDn) return;
    try {
      await client.bind(this.c.bindDn, this.bindPassword);
    } catch (err) {
      if (err instanceof InvalidCredentialsError) {
        this.logger.error({ authenticator: this.name, bindDn: this.c.bindDn }, 'the directory refused the service account (bindDn / bindPassword)');
        throw new BrokerError('directory_unavailable', 'The directory refused the broker\'s service account; the administrator has to fix its configuration.', { cause: err });
      }
      throw err;
    }
  }

  /** The one entry the user filter finds for this name, with what would refuse its login. */
  private async findUser(client: Client, username: string, login: string): Promise<Found | null> {
    const values = { username, login };
    const { searchEntries } = await client.search(this.c.baseDn, {
      scope: 'sub',
      filter: fillFilter(this.userFilter, values),
      attributes: [this.usernameAttribute, this.c.displayNameAttribute, this.c.emailAttribute, 'cn', 'userAccountControl', 'accountExpires', 'pwdLastSet', 'pwdAccountLockedTime', 'pwdReset'],
      sizeLimit: 2,
      timeLimit: this.timeLimitSeconds,
    });
    // None, or a filter that matches two people: no login (never "the first one").
    if (searchEntries.length !== 1) return null;
    const entry = searchEntries[0]!;
    return { entry, disabled: await this.refusalOf(client, entry, values) };
  }

  private async refusalOf(client: Client, entry: Entry, values: { username: string; login: string }): Promise<Found['disabled']> {
    if (this.c.directory === 'activeDirectory') {
      const r = adAccountRefusal({ userAccountControl: attr(entry, 'userAccountControl')[0], accountExpires: attr(entry, 'accountExpires')[0], pwdLastSet: attr(entry, 'pwdLastSet')[0] }, this.now());
      if (r) return r as Found['disabled'];
    }
    if (attr(entry, 'pwdAccountLockedTime').length) return { code: 'account_disabled', reason: 'account locked (pwdAccountLockedTime)' };
    if (attr(entry, 'pwdReset')[0]?.toUpperCase() === 'TRUE') return { code: 'password_change_required', reason: 'password must be changed after reset (pwdReset)' };
    if (this.c.disabledFilter) {
      const { searchEntries } = await client.search(entry.dn, { scope: 'base', filter: fillFilter(this.c.disabledFilter, { ...values, dn: entry.dn }), attributes: ['1.1'], timeLimit: this.timeLimitSeconds });
      if (searchEntries.length) return { code: 'account_disabled', reason: 'matches disabledFilter' };
    }
    return null;
  }

  private async groupsOf(client: Client, entry: Entry, username: string): Promise<string[]> {
    const base = this.c.groups.baseDn ?? this.c.baseDn;
    const nameAttr = this.c.groups.nameAttribute;
    const { searchEntries } = await client.search(base, { scope: 'sub', filter: fillFilter(this.groupFilter, { dn: entry.dn, username }), attributes: [nameAttr], sizeLimit: MAX_GROUPS, timeLimit: this.timeLimitSeconds });
    const all = this.nestedDepth > 0 ? await expandNested(client, base, searchEntries, this.nestedDepth, nameAttr, this.timeLimitSeconds) : searchEntries;
    const ids = new Set<string>();
    for (const g of all) {
      const name = attr(g, nameAttr)[0];
      const id = name === undefined ? null : brokerGroupOf(name, this.c.groups);
      if (id) ids.add(id);
    }
    return [...ids].sort();
  }

  private identityOf(entry: Entry, username: string, groups: string[]): DirectoryIdentity {
    const email = attr(entry, this.c.emailAttribute)[0];
    const displayName = (attr(entry, this.c.displayNameAttribute)[0] ?? attr(entry, 'cn')[0] ?? username).slice(0, 80);
    return { source: this.name, username, displayName, groups, externalId: entry.dn, ...(email ? { email } : {}) };
  }

  async authenticate(username: string, password: string): Promise<DirectoryIdentity> {
    // An empty password would be an "unauthenticated bind", which servers answer with success.
    if (!password) throw refuse('invalid_credentials', 'empty password');
    const login = this.domains.length ? `${username}@${this.domains[0]}` : username;
    return this.servers.withClient(async (client) => {
      await this.bindService(client);
      const found = await this.findUser(client, username, login);
      if (!found) throw refuse('invalid_credentials', 'unknown user');
      const policy = new PasswordPolicyControl();
      try {
        await client.bind(found.entry.dn, password, policy);
      } catch (err) {
        if (!(err instanceof InvalidCredentialsError)) throw err;
        const pp = policy.error !== undefined ? PPOLICY_ERRORS[policy.error] : undefined;
        if (pp) throw refuse(pp.code, pp.reason);
        const ad = this.c.directory === 'activeDirectory' ? parseAdBindError(err.message) : null;
        if (ad) throw refuse(ad.code, ad.reason);
        throw refuse('invalid_credentials', 'wrong password');
      }
      // The password is right: now the account's state may be told.
      const pp = policy.error !== undefined ? PPOLICY_ERRORS[policy.error] : undefined;
      if (pp) throw refuse(pp.code, pp.reason);
      if (found.disabled) throw refuse(found.disabled.code, found.disabled.reason);
      // Groups are read as the service account (the user may not see group entries).
      if (this.c.bindDn) await this.bindService(client);
      return this.identityOf(found.entry, username, await this.groupsOf(client, found.entry, username));
    });
  }

  async refresh(who: { username: string }): Promise<DirectoryIdentity | null> {
    const login = this.domains.length ? `${who.username}@${this.domains[0]}` : who.username;
    return this.servers.withClient(async (client) => {
      await this.bindService(client);
      const found = await this.findUser(client, who.username, login);
      if (!found || found.disabled?.code === 'account_disabled') return null;
      return this.identityOf(found.entry, who.username, await this.groupsOf(client, found.entry, who.username));
    });
  }

  async test(): Promise<AuthenticatorTestResult> {
    const t0 = Date.now();
    let server: string | undefined;
    try {
      await this.servers.withClient(async (client, url) => {
        server = url;
        await this.bindService(client);
        await client.search(this.c.baseDn, { scope: 'base', filter: '(objectClass=*)', attributes: ['1.1'], timeLimit: this.timeLimitSeconds });
      });
      return { ok: true, ...(server ? { server } : {}), milliseconds: Date.now() - t0, message: `Connected${this.c.startTls ? ' with StartTLS' : ''}, ${this.c.bindDn ? 'service account accepted' : 'anonymous'}, base DN found.` };
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      const detail = cause instanceof Error ? `: ${cause.message}` : '';
      return { ok: false, ...(server ? { server } : {}), milliseconds: Date.now() - t0, message: `${(err as Error).message}${detail}`.slice(0, 500) };
    }
  }
}
