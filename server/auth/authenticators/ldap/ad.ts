// What Active Directory and OpenLDAP say about an account beyond "wrong password".
import type { ErrorCode } from '../../../errors.ts';

/**
 * AD puts the reason of a failed bind (result 49) in the diagnostic message:
 * `80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 532, v4563`.
 * The sub-codes (hex) that mean more than a wrong password, and what the user is told.
 */
const AD_BIND_DATA: Record<string, { code: ErrorCode; reason: string }> = {
  '525': { code: 'invalid_credentials', reason: 'user not found (AD 525)' },
  '52e': { code: 'invalid_credentials', reason: 'wrong password (AD 52e)' },
  '530': { code: 'account_disabled', reason: 'logon not permitted at this time (AD 530)' },
  '531': { code: 'account_disabled', reason: 'logon not permitted from this workstation (AD 531)' },
  '532': { code: 'password_expired', reason: 'password expired (AD 532)' },
  '533': { code: 'account_disabled', reason: 'account disabled (AD 533)' },
  '568': { code: 'account_disabled', reason: 'too many security ids (AD 568)' },
  '701': { code: 'account_disabled', reason: 'account expired (AD 701)' },
  '773': { code: 'password_change_required', reason: 'password must be changed (AD 773)' },
  '775': { code: 'account_disabled', reason: 'account locked out (AD 775)' },
};

/** The AD sub-code of a failed bind's message, with its meaning; null when there is none. */
export function parseAdBindError(message: string): { data: string; code: ErrorCode; reason: string } | null {
  const m = /\bdata ([0-9a-f]{3,8})\b/i.exec(message);
  if (!m) return null;
  const data = m[1]!.toLowerCase();
  const known = AD_BIND_DATA[data];
  return known ? { data, ...known } : { data, code: 'invalid_credentials', reason: `bind refused (AD ${data})` };
}

/** userAccountControl flags (MS-ADTS 2.2.16). */
export const UAC = { ACCOUNTDISABLE: 0x2, LOCKOUT: 0x10, PASSWORD_EXPIRED: 0x800000 } as const;

/** accountExpires is a FILETIME: 100 ns steps since 1601-01-01 UTC; 0 and 2^63-1 mean never. */
export function adAccountExpired(accountExpires: string | undefined, now: number): boolean {
  if (!accountExpires || !/^\d+$/.test(accountExpires)) return false;
  const v = BigInt(accountExpires);
  if (v === 0n || v >= 0x7fffffffffffffffn) return false;
  const unixMs = Number(v / 10_000n) - 11_644_473_600_000;
  return unixMs <= now;
}

/**
 * Why an AD account found by the service account may not log in, before its password is tried
 * (answered only after the password proved right, see the authenticator): null when it may.
 */
export function adAccountRefusal(attrs: { userAccountControl?: string; accountExpires?: string; pwdLastSet?: string }, now: number): { code: ErrorCode; reason: string } | null {
  const uac = Number(attrs.userAccountControl ?? '0');
  if (Number.isFinite(uac) && uac & UAC.ACCOUNTDISABLE) return { code: 'account_disabled', reason: 'account disabled (userAccountControl)' };
  if (adAccountExpired(attrs.accountExpires, now)) return { code: 'account_disabled', reason: 'account expired (accountExpires)' };
  if (attrs.pwdLastSet === '0') return { code: 'password_change_required', reason: 'password must be changed (pwdLastSet 0)' };
  return null;
}

/** OpenLDAP ppolicy response control errors (draft-behera-ldap-password-policy). */
export const PPOLICY_ERRORS: Record<number, { code: ErrorCode; reason: string }> = {
  0: { code: 'password_expired', reason: 'password expired (ppolicy)' },
  1: { code: 'account_disabled', reason: 'account locked (ppolicy)' },
  2: { code: 'password_change_required', reason: 'password must be changed after reset (ppolicy)' },
};
