// The second-factor gate of the login pipeline (docs/authentication.md). The pipeline asks it
// after the password or the identity provider said yes; server/auth/mfa (MFA policy, TOTP,
// passkeys) provides the real one. The default asks for nothing.
import type { Principal } from '../broker/index.ts';

export type SecondFactorMethod = 'totp' | 'webauthn' | 'recovery';

export interface SecondFactorContext {
  /** The authenticator that did the primary login (its name, e.g. "local", "corp-ldap"). */
  method: string;
  /** What the identity provider says it already checked (OIDC `amr`). */
  amr?: string[];
  /** The enrolled thin client the login comes from, if any (server/devices). */
  device?: unknown;
}

export type SecondFactorDecision = { required: false } | { required: true; methods: SecondFactorMethod[]; enrol: boolean };

export interface SecondFactorGate {
  check(principal: Principal, ctx: SecondFactorContext): Promise<SecondFactorDecision>;
}

export const noSecondFactor: SecondFactorGate = { check: async () => ({ required: false }) };
