import type { LdapAuthenticatorConfig } from '../../../config/schema.ts';
import type { AuthenticatorDeps } from '../index.ts';
import { LdapAuthenticator } from './ldap.authenticator.ts';

export { LdapAuthenticator } from './ldap.authenticator.ts';
export { escapeFilterValue, fillFilter } from './filter.ts';
export { parseAdBindError, adAccountRefusal, adAccountExpired } from './ad.ts';

export function createLdapAuthenticator(c: LdapAuthenticatorConfig, deps: AuthenticatorDeps): LdapAuthenticator {
  return new LdapAuthenticator(c, deps.logger);
}
