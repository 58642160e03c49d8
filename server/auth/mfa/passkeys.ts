// WebAuthn passkeys with @simplewebauthn/server: the relying party is the broker's own origin
// (server.publicUrl, else the host the request was sent to, as for the tunnel's same-origin rule).
import { createHash } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransportFuture,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { StoredPasskey } from '../../store/index.ts';

export type { AuthenticationResponseJSON, RegistrationResponseJSON };

/** Where a ceremony runs: the RP ID (a host name) and the page origin the browser must report. */
export interface RelyingParty {
  rpID: string;
  origin: string;
}

/** The relying party for a request: server.publicUrl if set, else the request's own host. */
export function relyingPartyOf(publicUrl: string, req: { protocol: string; hostname: string; get(h: string): string | undefined }): RelyingParty {
  if (publicUrl) {
    const u = new URL(publicUrl);
    return { rpID: u.hostname, origin: u.origin };
  }
  return { rpID: req.hostname, origin: `${req.protocol}://${req.get('host') ?? req.hostname}` };
}

export const CHALLENGE_TTL_SECONDS = 300;

// The user handle the authenticator stores: derived from the user id, so it names no one by itself.
const userHandle = (user: string) => new Uint8Array(createHash('sha256').update(`vdi-broker user\0${user}`).digest().subarray(0, 16));

export function registrationOptions(rp: RelyingParty, rpName: string, user: { id: string; displayName: string }, existing: StoredPasskey[]): Promise<PublicKeyCredentialCreationOptionsJSON> {
  return generateRegistrationOptions({
    rpName,
    rpID: rp.rpID,
    userName: user.id,
    userDisplayName: user.displayName,
    userID: userHandle(user.id),
    timeout: CHALLENGE_TTL_SECONDS * 1000,
    attestationType: 'none',
    excludeCredentials: existing.map((p) => ({ id: p.id, transports: p.transports as AuthenticatorTransportFuture[] })),
    authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
  });
}

export function authenticationOptions(rp: RelyingParty, passkeys: StoredPasskey[]): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return generateAuthenticationOptions({
    rpID: rp.rpID,
    timeout: CHALLENGE_TTL_SECONDS * 1000,
    userVerification: 'preferred',
    allowCredentials: passkeys.map((p) => ({ id: p.id, transports: p.transports as AuthenticatorTransportFuture[] })),
  });
}

/** A verified new passkey (without name and times), or null when the response does not verify. */
export async function verifyRegistration(rp: RelyingParty, challenge: string, response: RegistrationResponseJSON): Promise<Pick<StoredPasskey, 'id' | 'publicKey' | 'counter' | 'transports'> | null> {
  try {
    const r = await verifyRegistrationResponse({ response, expectedChallenge: challenge, expectedOrigin: rp.origin, expectedRPID: rp.rpID, requireUserVerification: false });
    if (!r.verified) return null;
    const c = r.registrationInfo.credential;
    return { id: c.id, publicKey: Buffer.from(c.publicKey).toString('base64url'), counter: c.counter, transports: c.transports ?? response.response.transports ?? [] };
  } catch {
    return null;
  }
}

/**
 * The passkey's new signature counter when the assertion verifies, else null. The library
 * refuses a counter that did not grow (a cloned authenticator), unless both are 0 (passkeys
 * that do not count).
 */
export async function verifyAssertion(rp: RelyingParty, challenge: string, passkey: StoredPasskey, response: AuthenticationResponseJSON): Promise<number | null> {
  try {
    const r = await verifyAuthenticationResponse({
      response,
      expectedChallenge: challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.rpID,
      credential: { id: passkey.id, publicKey: new Uint8Array(Buffer.from(passkey.publicKey, 'base64url')), counter: passkey.counter, transports: passkey.transports as AuthenticatorTransportFuture[] },
      requireUserVerification: false,
    });
    return r.verified ? r.authenticationInfo.newCounter : null;
  } catch {
    return null;
  }
}
