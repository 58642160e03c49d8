import { hkdfSync, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

/** A secret from config, or one generated once into `key` (SET NX) so every replica shares it. */
export async function sharedSecret(redis: Redis, key: string, configured: string): Promise<string> {
  if (configured) return configured;
  await redis.set(key, randomBytes(48).toString('base64url'), 'NX');
  const s = await redis.get(key);
  if (!s) throw new Error(`secret ${key} missing from Redis`);
  return s;
}

/**
 * A 256-bit key for one purpose, derived from a shared secret (HKDF-SHA256). The one place
 * keys are derived: tunnel tickets ('tunnel tickets v1') and manual machines' credentials
 * ('machine credentials v1') use different purposes of the same tunnel secret.
 */
export function derivedKey(secret: string, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'vdi-broker', purpose, 32));
}
