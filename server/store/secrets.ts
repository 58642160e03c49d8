import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

/** A secret from config, or one generated once into `key` (SET NX) so every replica shares it. */
export async function sharedSecret(redis: Redis, key: string, configured: string): Promise<string> {
  if (configured) return configured;
  await redis.set(key, randomBytes(48).toString('base64url'), 'NX');
  const s = await redis.get(key);
  if (!s) throw new Error(`secret ${key} missing from Redis`);
  return s;
}
