import { BrokerError } from '../../errors.ts';
import { splitRealm } from '../usernames.ts';
import type { Authenticator, AuthMethod, PasswordAuthenticator, RedirectAuthenticator } from './types.ts';

/**
 * The authenticators a broker offers, in the configured order, routable by realm: an explicit
 * realm from the login form, else `user@domain` by the authenticators' `domains`, else the
 * default realm (`auth.defaultRealm`).
 */
export class Authenticators {
  private readonly byName = new Map<string, Authenticator>();

  constructor(list: Authenticator[], readonly defaultRealm: string) {
    for (const a of list) {
      if (this.byName.has(a.name)) throw new Error(`two authenticators are named "${a.name}"`);
      this.byName.set(a.name, a);
    }
    const d = this.byName.get(defaultRealm);
    if (!d || d.kind === 'oidc') throw new Error(`auth.defaultRealm "${defaultRealm}" is not a password authenticator (local or ldap) that is enabled`);
  }

  list(): Authenticator[] {
    return [...this.byName.values()];
  }

  get(name: string): Authenticator | undefined {
    return this.byName.get(name);
  }

  password(name: string): PasswordAuthenticator | undefined {
    const a = this.byName.get(name);
    return a && a.kind !== 'oidc' ? a : undefined;
  }

  redirect(name: string): RedirectAuthenticator | undefined {
    const a = this.byName.get(name);
    return a?.kind === 'oidc' ? a : undefined;
  }

  /** What the login page offers (GET /auth/methods). */
  methods(): AuthMethod[] {
    return this.list().map((a) => ({
      name: a.name,
      label: a.label,
      kind: a.kind,
      domains: a.kind === 'oidc' ? [] : a.domains,
      ...(a.kind === 'oidc' ? { startUrl: `/api/v1/auth/oidc/${encodeURIComponent(a.name)}/start` } : {}),
    }));
  }

  /**
   * The password authenticator for a login and the name to give it. `user@domain` goes to the
   * authenticator that lists the domain, with the domain removed; an unknown domain keeps the
   * whole name (it then fails the user id rule, like any unknown user).
   */
  route(typed: string, realm?: string): { authenticator: PasswordAuthenticator; name: string } {
    if (realm !== undefined) {
      const a = this.password(realm);
      if (!a) throw new BrokerError('validation_failed', 'No password login by that name (see GET /auth/methods).', { field: 'realm' });
      const { name, domain } = splitRealm(typed);
      return { authenticator: a, name: domain !== undefined && a.domains.includes(domain) ? name : typed };
    }
    const { name, domain } = splitRealm(typed);
    if (domain !== undefined) {
      for (const a of this.byName.values()) if (a.kind !== 'oidc' && a.domains.includes(domain)) return { authenticator: a, name };
    }
    return { authenticator: this.password(this.defaultRealm)!, name: typed };
  }
}

/** The admin console's read-only list: kind, name, label, domains, cache and the authenticator's own settings. */
export function describeAuthenticators(a: Authenticators): Record<string, unknown>[] {
  return a.list().map((x) => ({
    name: x.name,
    label: x.label,
    kind: x.kind,
    domains: x.kind === 'oidc' ? [] : x.domains,
    groupCacheSeconds: x.groupCacheSeconds,
    default: x.name === a.defaultRealm,
    testable: typeof x.test === 'function',
    settings: x.describe?.() ?? {},
  }));
}
