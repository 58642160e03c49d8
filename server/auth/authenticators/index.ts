// Builds the authenticators from config (auth.local, auth.authenticators, auth.defaultRealm).
import type { Config, AuthenticatorConfig } from '../../config/schema.ts';
import type { Logger } from '../../observability/index.ts';
import type { StoredUser } from '../../store/index.ts';
import type { Passwords } from '../passwords.ts';
import { LocalAuthenticator, LOCAL } from './local.ts';
import { Authenticators } from './registry.ts';
import { createLdapAuthenticator } from './ldap/index.ts';
import { createOidcAuthenticator } from './oidc.authenticator.ts';
import type { Authenticator } from './types.ts';

export interface AuthenticatorDeps {
  logger: Logger;
  /** The broker's public URL (redirect authenticators build their callback URL on it). */
  publicUrl: string;
}

export type AuthenticatorFactory<C = AuthenticatorConfig> = (config: C, deps: AuthenticatorDeps) => Authenticator;

/** One factory per `kind` of auth.authenticators; a new kind adds one line here. */
export const AUTHENTICATOR_KINDS: { [K in AuthenticatorConfig['kind']]: AuthenticatorFactory<Extract<AuthenticatorConfig, { kind: K }>> } = {
  ldap: createLdapAuthenticator,
  oidc: createOidcAuthenticator,
};

export function createAuthenticators(config: Config, deps: AuthenticatorDeps & { users: { get(id: string): Promise<StoredUser | null> }; passwords: Passwords }): Authenticators {
  const list: Authenticator[] = [];
  if (config.auth.local.enabled) list.push(new LocalAuthenticator(deps.users, deps.passwords, config.auth.local.label, []));
  for (const [i, c] of config.auth.authenticators.entries()) {
    const make = AUTHENTICATOR_KINDS[c.kind] as AuthenticatorFactory;
    try {
      list.push(make(c, deps));
    } catch (err) {
      // A missing CA or password file, a bad filter: stop startup naming the authenticator.
      throw new Error(`auth.authenticators.${i} (${c.name}): ${(err as Error).message}`, { cause: err });
    }
  }
  return new Authenticators(list, config.auth.defaultRealm || LOCAL);
}
