// A machine's console credentials, sealed with AES-256-GCM under a key derived from the tunnel
// secret (store derivedKey, purpose 'machine credentials v1'). Redis holds only the sealed
// form; the clear form exists in memory while a connection ticket is made, and is never logged
// or returned by the API. The machine id is bound in as associated data, so a sealed blob
// copied onto another machine does not open.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export interface Credentials {
  username: string;
  password: string;
}

export const CREDENTIALS_KEY_PURPOSE = 'machine credentials v1';

export function sealCredentials(key: Buffer, machineId: string, c: Credentials): string {
  if (!c.username && !c.password) return '';
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(machineId));
  const body = Buffer.concat([cipher.update(JSON.stringify(c), 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

export function openCredentials(key: Buffer, machineId: string, sealed: string): Credentials {
  if (!sealed) return { username: '', password: '' };
  const raw = Buffer.from(sealed, 'base64url');
  const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  d.setAAD(Buffer.from(machineId));
  d.setAuthTag(raw.subarray(12, 28));
  const c = JSON.parse(Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8')) as Credentials;
  return { username: String(c.username ?? ''), password: String(c.password ?? '') };
}
