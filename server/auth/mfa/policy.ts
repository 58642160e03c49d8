// Who must use a second factor (auth.mfa.requiredFor), and when the identity provider's own
// MFA counts (its `amr`, passed on only by authenticators with trustIdpMfa).
import type { Principal, Role } from '../../broker/index.ts';

export interface MfaPolicy {
  requiredFor: { roles: Role[]; groups: string[] };
  /** `amr` values that mean the IdP checked a second factor. */
  idpMethods: string[];
}

export function requiredBy(policy: MfaPolicy, p: Pick<Principal, 'role' | 'groups'>): boolean {
  return policy.requiredFor.roles.includes(p.role) || p.groups.some((g) => policy.requiredFor.groups.includes(g));
}

/** The IdP says it did a second factor (RFC 8176 `amr` values such as mfa, otp, hwk). */
export function idpDidMfa(policy: MfaPolicy, amr: readonly string[] | undefined): boolean {
  return !!amr?.some((m) => policy.idpMethods.includes(m));
}
