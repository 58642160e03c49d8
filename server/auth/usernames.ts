// What a person types as their user name, turned into a broker user id (docs/authentication.md,
// "User names"). One rule for every authenticator, so "Admin", "admin@corp" and "ａdmin" cannot
// become three ways into one account, or one way into another's.

/** Longest user name a login form may send; longer is refused before any lookup. */
export const MAX_LOGIN_NAME = 256;

const USER_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/**
 * The broker user id for a typed name, or null when the name cannot be one: lower-cased, and
 * refused (not mapped) when Unicode compatibility normalisation (NFKC) would change it, since
 * `ａdmin` (fullwidth) would otherwise become `admin`. Non-ASCII names are refused by the id rule.
 */
export function normaliseUsername(raw: string): string | null {
  if (raw.length === 0 || raw.length > MAX_LOGIN_NAME) return null;
  if (raw.normalize('NFKC') !== raw) return null;
  const id = raw.toLowerCase();
  return USER_ID.test(id) ? id : null;
}

/** `user@domain` split at the last @ (domains lower-cased), or the name alone. */
export function splitRealm(raw: string): { name: string; domain?: string } {
  const at = raw.lastIndexOf('@');
  if (at <= 0 || at === raw.length - 1) return { name: raw };
  return { name: raw.slice(0, at), domain: raw.slice(at + 1).toLowerCase() };
}
