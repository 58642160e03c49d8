// Second factors (docs/authentication.md, "Second factors"): finishing a login that waits for
// one (/auth/mfa/...), the caller's own factors (/me/mfa/...), and the helpdesk reset.
import type { Request } from 'express';
import { z } from 'zod';
import { BrokerError } from '../errors.ts';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { userParams, displayText } from './schemas.ts';
import type { Principal } from '../broker/index.ts';
import { relyingPartyOf, type MfaService } from '../auth/mfa/index.ts';

// A TOTP code or a recovery code (ABCD-EFGH-JKMN), as typed: nothing else reaches the checks.
const code = z.string().trim().min(6).max(32).regex(/^[0-9A-Za-z -]+$/, 'digits, letters, spaces and dashes only');
const totpCode = z.strictObject({ code });
const base64url = (max: number) => z.string().min(1).max(max).regex(/^[A-Za-z0-9_-]+$/, 'base64url');
// A WebAuthn credential as @simplewebauthn/browser returns it (the library checks the rest).
const credential = z.strictObject({
  id: base64url(1024),
  rawId: base64url(1024),
  type: z.literal('public-key'),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
  response: z.strictObject({
    clientDataJSON: base64url(4096),
    // registration
    attestationObject: base64url(16_384).optional(),
    transports: z.array(z.enum(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb'])).max(8).optional(),
    publicKeyAlgorithm: z.number().int().min(-65_536).max(65_536).optional(),
    publicKey: base64url(4096).optional(),
    // authentication
    authenticatorData: base64url(4096).optional(),
    signature: base64url(1024).optional(),
    userHandle: base64url(512).optional(),
  }),
  // The extension outputs a browser reports for the options this broker sends.
  clientExtensionResults: z.strictObject({
    credProps: z.strictObject({ rk: z.boolean().optional() }).optional(),
    appid: z.boolean().optional(),
    hmacCreateSecret: z.boolean().optional(),
  }).default({}),
});
const passkeyParams = z.strictObject({ id: z.string().min(1).max(1024) });
const factorStatus = z.object({
  required: z.boolean(),
  totp: z.object({ enabled: z.boolean(), createdAt: z.string().nullable() }),
  passkeys: z.array(z.object({ id: z.string(), name: z.string(), createdAt: z.string(), lastUsedAt: z.string() })),
  recoveryCodesLeft: z.number(),
});

export function mfaRoutes(t: RouteTable, { auth, identity, mfa, publicUrl }: ApiDeps & { mfa: MfaService; publicUrl: string }): void {
  const rp = (req: Request) => relyingPartyOf(publicUrl, req);

  /** The login waiting for a second factor in this session, and its user. */
  const pending = async (req: Request) => {
    const p = auth.pendingLoginOf(req);
    const principal = p ? await identity.principalOf(p.userId) : null;
    if (!p || !principal) throw new BrokerError('mfa_required', 'No login is waiting for a second factor here (or it took more than 5 minutes); log in again.');
    return { pending: p, principal };
  };
  /** Finishes the pending login: a fresh session, audited auth.login with the factor used. */
  const finish = async (req: Request, principal: Principal, method: string, factor: string, extra: { recoveryCodes?: string[] } = {}) => {
    await auth.completeLogin(req, principal, { method, mfa: factor });
    return { status: 'ok' as const, user: await identity.getUser(principal.id), csrfToken: auth.csrfToken(req), ...extra };
  };
  const me = async (req: Request) => {
    const p = req.principal!;
    // An API key is nobody: it has no factors (as it has no files).
    if (p.kind !== 'user') throw new BrokerError('not_found', 'API keys have no second factors.');
    const u = await identity.getUser(p.id);
    return { id: u.id, role: u.role, groups: u.groups, displayName: u.displayName };
  };

  // ---- Finishing a login -----------------------------------------------------------------------

  t.add({
    method: 'post', path: '/auth/mfa/totp', tag: 'auth', role: 'anyone',
    summary: 'Finish a login with a code from the authenticator app (or confirm the app being enrolled during the login)',
    body: totpCode, errors: ['mfa_required', 'mfa_invalid', 'login_throttled'],
    handler: async ({ req, body, actor }) => {
      const { pending: p, principal } = await pending(req);
      const who = { principal: null, address: actor.address };
      if (await mfa.mayEnrolAtLogin(principal.id)) {
        const out = await mfa.confirmTotp(who, principal.id, body.code);
        return finish(req, principal, p.method, 'totp', out);
      }
      await mfa.verifyTotp(who, principal.id, body.code);
      return finish(req, principal, p.method, 'totp');
    },
  });
  t.add({
    method: 'post', path: '/auth/mfa/totp/enrol', tag: 'auth', role: 'anyone',
    summary: 'During a login that must enrol a second factor: a new authenticator-app secret and its QR code',
    errors: ['mfa_required', 'conflict'],
    handler: async ({ req }) => {
      const { principal } = await pending(req);
      if (!(await mfa.mayEnrolAtLogin(principal.id))) throw new BrokerError('conflict', 'This account has a second factor already; use it.');
      return mfa.startTotp(principal.id);
    },
  });
  t.add({
    method: 'post', path: '/auth/mfa/webauthn/options', tag: 'auth', role: 'anyone',
    summary: 'During a login: the passkey ceremony to run in the browser (authenticate, or register when enrolling)',
    errors: ['mfa_required', 'mfa_invalid'],
    handler: async ({ req }) => {
      const { principal } = await pending(req);
      if (await mfa.mayEnrolAtLogin(principal.id)) {
        const u = await identity.getUser(principal.id);
        return { ceremony: 'register', options: await mfa.passkeyRegistrationOptions({ id: u.id, displayName: u.displayName }, rp(req)) };
      }
      return { ceremony: 'authenticate', options: await mfa.passkeyAuthenticationOptions(principal.id, rp(req)) };
    },
  });
  t.add({
    method: 'post', path: '/auth/mfa/webauthn/verify', tag: 'auth', role: 'anyone',
    summary: "Finish a login with the browser's passkey answer (or the passkey registered during the login)",
    body: z.strictObject({ response: credential, name: displayText(60).optional() }), errors: ['mfa_required', 'mfa_invalid', 'login_throttled'],
    handler: async ({ req, body, actor }) => {
      const { pending: p, principal } = await pending(req);
      const who = { principal: null, address: actor.address };
      if (await mfa.mayEnrolAtLogin(principal.id)) {
        const out = await mfa.registerPasskey(who, principal.id, body.response as never, body.name ?? '', rp(req));
        return finish(req, principal, p.method, 'webauthn', out.recoveryCodes ? { recoveryCodes: out.recoveryCodes } : {});
      }
      await mfa.verifyPasskey(who, principal.id, body.response as never, rp(req));
      return finish(req, principal, p.method, 'webauthn');
    },
  });
  t.add({
    method: 'post', path: '/auth/mfa/recovery', tag: 'auth', role: 'anyone',
    summary: 'Finish a login with a recovery code (each works once)',
    body: totpCode, errors: ['mfa_required', 'mfa_invalid', 'login_throttled'],
    handler: async ({ req, body, actor }) => {
      const { pending: p, principal } = await pending(req);
      const { left } = await mfa.useRecoveryCode({ principal: null, address: actor.address }, principal.id, body.code);
      return { ...(await finish(req, principal, p.method, 'recovery')), recoveryCodesLeft: left };
    },
  });

  // ---- The caller's own factors ----------------------------------------------------------------

  t.add({
    method: 'get', path: '/me/mfa', tag: 'me', role: 'user', response: z.object({ mfa: factorStatus }),
    summary: "The caller's second factors: authenticator app, passkeys, recovery codes left, whether they are required",
    handler: async ({ req }) => ({ mfa: await mfa.status(await me(req)) }),
  });
  t.add({
    method: 'post', path: '/me/mfa/totp', tag: 'me', role: 'user', errors: ['conflict'],
    summary: 'Start setting up an authenticator app: its secret and QR code (confirm with a code)',
    handler: async ({ req }) => mfa.startTotp((await me(req)).id),
  });
  t.add({
    method: 'post', path: '/me/mfa/totp/confirm', tag: 'me', role: 'user', body: totpCode, errors: ['mfa_invalid', 'conflict', 'login_throttled'],
    summary: 'Confirm the authenticator app with its first code; returns recovery codes (shown once) if there were none',
    handler: async ({ req, body, actor }) => mfa.confirmTotp(actor, (await me(req)).id, body.code),
  });
  t.add({
    method: 'delete', path: '/me/mfa/totp', tag: 'me', role: 'user', status: 204, errors: ['not_found', 'conflict'],
    summary: 'Remove the authenticator app',
    handler: async ({ req, actor }) => {
      await mfa.removeTotp(actor, await me(req));
      return undefined;
    },
  });
  t.add({
    method: 'post', path: '/me/mfa/webauthn/options', tag: 'me', role: 'user',
    summary: 'Start registering a passkey: the options for navigator.credentials.create',
    handler: async ({ req }) => {
      const u = await me(req);
      return { ceremony: 'register', options: await mfa.passkeyRegistrationOptions({ id: u.id, displayName: u.displayName }, rp(req)) };
    },
  });
  t.add({
    method: 'post', path: '/me/mfa/webauthn', tag: 'me', role: 'user', status: 201, errors: ['already_exists'],
    summary: "Register a passkey from the browser's answer; returns recovery codes (shown once) if there were none",
    body: z.strictObject({ response: credential, name: displayText(60).optional() }),
    handler: async ({ req, body, actor }) => mfa.registerPasskey(actor, (await me(req)).id, body.response as never, body.name ?? '', rp(req)),
  });
  t.add({
    method: 'delete', path: '/me/mfa/passkeys/:id', tag: 'me', role: 'user', status: 204, params: passkeyParams, errors: ['not_found', 'conflict'],
    summary: 'Remove a passkey',
    handler: async ({ req, params, actor }) => {
      await mfa.removePasskey(actor, await me(req), params.id);
      return undefined;
    },
  });
  t.add({
    method: 'post', path: '/me/mfa/recovery-codes', tag: 'me', role: 'user', errors: ['conflict'],
    summary: 'New recovery codes (shown once); the old ones stop working',
    handler: async ({ req, actor }) => mfa.regenerateRecoveryCodes(actor, (await me(req)).id),
  });

  // ---- Helpdesk ----------------------------------------------------------------------------------

  t.add({
    method: 'get', path: '/users/:id/mfa', tag: 'users', role: 'helpdesk', params: userParams, errors: ['not_found'], response: z.object({ mfa: factorStatus }),
    summary: "A user's second factors (no secrets)",
    handler: async ({ params }) => ({ mfa: await mfa.status(await identity.getUser(params.id)) }),
  });
  t.add({
    method: 'delete', path: '/users/:id/mfa', tag: 'users', role: 'helpdesk', params: userParams, status: 204, errors: ['not_found', 'forbidden'],
    auditAction: 'user.mfa_reset',
    summary: "Reset a user's second factors (lost phone): they enrol again at their next login; helpdesk and admin accounts only by an admin",
    handler: async ({ params, actor }) => {
      await mfa.reset(actor, await identity.getUser(params.id));
      return undefined;
    },
  });
}
