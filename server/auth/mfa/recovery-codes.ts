// Recovery codes: ten random codes of 60 bits each, shown once; only a salted SHA-256 of each is
// kept (at this entropy a slow hash adds nothing), and each is spent by deleting it.
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

export const RECOVERY_CODE_COUNT = 10;
// Crockford-style alphabet: no I, L, O, U, so codes read back over the phone without confusion.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** "ABCD-EFGH-JKMN" */
function newCode(): string {
  let s = '';
  for (let i = 0; i < 12; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return `${s.slice(0, 4)}-${s.slice(4, 8)}-${s.slice(8)}`;
}

/** What a person typed, in the form codes are hashed in (case, spaces and dashes ignored). */
export function normaliseCode(typed: string): string {
  return typed.toUpperCase().replace(/[\s-]/g, '');
}

const digest = (salt: string, code: string) => createHash('sha256').update(`${salt}\0${normaliseCode(code)}`).digest();

/** New codes: the clear ones for the user, and id -> "salt:hash" for the store. */
export function newRecoveryCodes(): { codes: string[]; stored: Record<string, string> } {
  const codes: string[] = [];
  const stored: Record<string, string> = {};
  for (let i = 0; i < RECOVERY_CODE_COUNT; i++) {
    const code = newCode();
    const salt = randomBytes(16).toString('base64url');
    codes.push(code);
    stored[randomBytes(6).toString('base64url')] = `${salt}:${digest(salt, code).toString('base64url')}`;
  }
  return { codes, stored };
}

/** The id of the stored code that matches, or null. Every stored code is compared (no early exit). */
export function findRecoveryCode(stored: Record<string, string>, typed: string): string | null {
  if (normaliseCode(typed).length !== 12) return null;
  let found: string | null = null;
  for (const [id, v] of Object.entries(stored)) {
    const [salt, hash] = v.split(':');
    if (!salt || !hash) continue;
    const want = Buffer.from(hash, 'base64url');
    const got = digest(salt, typed);
    if (want.length === got.length && timingSafeEqual(want, got)) found = id;
  }
  return found;
}
