// TOTP (RFC 6238) with otplib: 6 digits, 30-second steps, one step of clock drift either way.
// The secret is sealed (AES-256-GCM) before it reaches Redis, bound to its user id, so a Redis
// dump yields no usable secret and one user's sealed secret cannot be moved to another.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { generateSecret, generateURI, verify } from 'otplib';
import QRCode from 'qrcode';

export const TOTP_KEY_PURPOSE = 'mfa totp secrets v1';
export const TOTP_PERIOD_SECONDS = 30;

export function newTotpSecret(): string {
  return generateSecret({ length: 20 });
}

/** What an authenticator app needs: the otpauth:// URI and the same as a QR code (a PNG data: URL). */
export async function enrolmentOf(secret: string, issuer: string, user: string): Promise<{ secret: string; otpauthUrl: string; qrCode: string }> {
  const otpauthUrl = generateURI({ issuer, label: user, secret, period: TOTP_PERIOD_SECONDS, digits: 6, algorithm: 'sha1' });
  const qrCode = await QRCode.toDataURL(otpauthUrl, { errorCorrectionLevel: 'M', margin: 2, width: 220 });
  return { secret, otpauthUrl, qrCode };
}

/** The time step a code matched (current, one before or one after), or null. */
export async function matchTotp(secret: string, code: string, nowMs: number): Promise<number | null> {
  if (!/^\d{6}$/.test(code)) return null;
  const r = await verify({ secret, token: code, epoch: Math.floor(nowMs / 1000), period: TOTP_PERIOD_SECONDS, epochTolerance: TOTP_PERIOD_SECONDS });
  return r.valid && 'timeStep' in r ? r.timeStep : null;
}

export function currentStep(nowMs: number): number {
  return Math.floor(nowMs / 1000 / TOTP_PERIOD_SECONDS);
}

export function sealSecret(key: Buffer, user: string, secret: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(`totp\0${user}`));
  const body = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

export function openSecret(key: Buffer, user: string, sealed: string): string {
  const raw = Buffer.from(sealed, 'base64url');
  const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  d.setAAD(Buffer.from(`totp\0${user}`));
  d.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
}
