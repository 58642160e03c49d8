// The one interface every authenticator implements (docs/authentication.md). An authenticator
// proves who someone is and says which directory groups they are in; the login pipeline
// (server/auth/login.ts) turns that into a broker user, a role and a session.
import type { Role } from '../../broker/index.ts';

/** Who the directory or identity provider says logged in. */
export interface DirectoryIdentity {
  /** The authenticator's name, e.g. "corp-ldap" (recorded on the user as its source). */
  source: string;
  /** The broker user id it maps to (normalised: see usernames.ts). */
  username: string;
  displayName: string;
  email?: string;
  /** Broker group ids (the directory's names already mapped, see groups.ts). */
  groups: string[];
  /** The DN, or the OIDC `sub`. */
  externalId?: string;
  /** Methods the IdP says it used (OIDC `amr`), for the MFA policy. */
  amr?: string[];
}

export interface LoginContext {
  /** The client address (after server.trustProxy). */
  address: string;
}

export interface AuthenticatorBase {
  name: string;
  /** Shown on the login page. */
  label: string;
  /**
   * How long a logged-in user's groups are trusted before a request re-checks them with the
   * directory (0 = only at login). Local users' groups live in the broker and never expire.
   */
  groupCacheSeconds: number;
  /** Its settings for the admin console, without secrets. */
  describe?(): Record<string, unknown>;
}

export interface PasswordAuthenticator extends AuthenticatorBase {
  kind: 'local' | 'ldap';
  /** The `user@domain` suffixes routed to this authenticator (lower-case). */
  domains: string[];
  /**
   * Checks a password. Throws BrokerError `invalid_credentials` (wrong name or password, unknown
   * user), `account_disabled`, `password_expired`, `password_change_required` or
   * `directory_unavailable`; never anything that tells an unknown user from a wrong password.
   */
  authenticate(username: string, password: string, ctx: LoginContext): Promise<DirectoryIdentity>;
  /**
   * Re-reads a known user's groups and state without their password (the group cache TTL);
   * null when the user is gone or disabled. Throws `directory_unavailable`.
   */
  refresh?(identity: { username: string; externalId?: string }): Promise<DirectoryIdentity | null>;
  /** Checks that the directory answers (admin console "test connection"). */
  test?(): Promise<AuthenticatorTestResult>;
}

export interface RedirectAuthenticator extends AuthenticatorBase {
  kind: 'oidc';
  start(ctx: { req: unknown; res: unknown }): Promise<{ url: string }>;
  callback(ctx: { req: unknown; res: unknown }): Promise<DirectoryIdentity>;
  logoutUrl?(ctx: { req: unknown; res: unknown }): Promise<string | undefined>;
  refresh?(identity: { username: string; externalId?: string }): Promise<DirectoryIdentity | null>;
  test?(): Promise<AuthenticatorTestResult>;
}

export type Authenticator = PasswordAuthenticator | RedirectAuthenticator;

export interface AuthenticatorTestResult {
  ok: boolean;
  /** Which server answered (or the last one tried). */
  server?: string;
  milliseconds: number;
  message: string;
}

/** What the login page lists (GET /auth/methods): nothing secret. */
export interface AuthMethod {
  name: string;
  label: string;
  kind: Authenticator['kind'];
  domains: string[];
  /** For redirect authenticators: where the login button points. */
  startUrl?: string;
}

/** A group → role rule (auth.roleMapping): the highest role any of a user's groups grants wins. */
export type RoleMapping = Record<string, Role>;
