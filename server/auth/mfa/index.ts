export { MfaService, type MfaOptions, type FactorStatus, type UserRef } from './mfa.service.ts';
export { relyingPartyOf, type RelyingParty } from './passkeys.ts';
export { TOTP_KEY_PURPOSE } from './totp.ts';
export { requiredBy, idpDidMfa, type MfaPolicy } from './policy.ts';
