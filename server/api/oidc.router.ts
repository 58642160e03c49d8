// Single sign-on through OpenID Connect (docs/authentication.md, "OpenID Connect"). Both routes
// are browser navigations, so they answer with redirects: to the identity provider, back into
// the portal, or to the login page with an error code (`/?sso_error=<code>`), never a stack.
// API clients (no text/html in Accept) get the usual JSON errors instead.
import { z } from 'zod';
import type { Request, Response } from 'express';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { BrokerError, isRedisUnavailable } from '../errors.ts';
import { OidcAuthenticator, type OidcSessionData } from '../auth/authenticators/oidc.authenticator.ts';
import { LoginRefused } from '../auth/authenticators/refusal.ts';

const params = z.strictObject({ name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'an authenticator name') });
// Where to land after the login: a path of the portal, never another site.
const returnTo = z.string().max(512).regex(/^\/(?![/\\])[\x21-\x7E]*$/, 'a path of this site, like /desktop/lab');
const bounded = (n: number) => z.string().max(n);
// What an IdP sends back (RFC 6749 4.1.2, RFC 9207 `iss`); other parameters (session_state) pass unchecked and unused.
const callbackQuery = z.object({
  code: bounded(4096).optional(),
  state: bounded(512).optional(),
  iss: bounded(2048).optional(),
  error: bounded(256).optional(),
  error_description: bounded(2048).optional(),
});

/** A browser navigation (not fetch/XHR): errors go to the login page. */
const isNavigation = (req: Request) => req.get('sec-fetch-mode') === 'navigate' || req.accepts(['json', 'html']) === 'html';

const codeOf = (err: unknown) => (err instanceof BrokerError ? err.code : isRedisUnavailable(err) ? 'redis_unavailable' : 'internal_error');

/** Answers a failed SSO step: the login page with the code for a browser, the JSON error otherwise. */
function fail(req: Request, res: Response, err: unknown): void {
  if (!isNavigation(req)) throw err;
  res.redirect(303, `/?sso_error=${encodeURIComponent(codeOf(err))}`);
}

export function oidcRoutes(t: RouteTable, { auth, identity, broker }: ApiDeps): void {
  const authenticator = (name: string): OidcAuthenticator => {
    const a = identity.authenticators.redirect(name);
    if (!(a instanceof OidcAuthenticator)) throw new BrokerError('not_found', `No single sign-on method named "${name}".`, { field: 'name' });
    return a;
  };

  t.add({
    method: 'get',
    path: '/auth/oidc/:name/start',
    tag: 'auth',
    summary: 'Start a single sign-on login: redirects the browser to the identity provider (PKCE S256; state and nonce kept in the session)',
    role: 'anyone',
    params,
    query: z.strictObject({ returnTo: returnTo.optional() }),
    status: 302,
    errors: ['directory_unavailable'],
    handler: async ({ req, res, params: p, query }) => {
      try {
        const a = authenticator(p.name);
        await auth.preLoginSession(req, res);
        const { url } = await a.begin(req.session as unknown as OidcSessionData, query.returnTo ?? '/');
        await auth.saveSession(req);
        res.redirect(302, url);
      } catch (err) {
        fail(req, res, err);
      }
      return undefined;
    },
  });

  t.add({
    method: 'get',
    path: '/auth/oidc/:name/callback',
    tag: 'auth',
    summary: "The identity provider's redirect back: checks state, PKCE, nonce and the id_token, then logs in (or asks for the second factor)",
    role: 'anyone',
    params,
    query: callbackQuery,
    status: 303,
    errors: ['sso_state_invalid', 'sso_failed', 'directory_unavailable', 'account_disabled'],
    handler: async ({ req, res, params: p, actor }) => {
      try {
        const a = authenticator(p.name);
        await auth.preLoginSession(req, res);
        const session = req.session as unknown as OidcSessionData;
        let done: Awaited<ReturnType<OidcAuthenticator['finish']>>;
        try {
          done = await a.finish(session, a.callbackUrlOf(req.originalUrl));
        } catch (err) {
          // Tampered or replayed state, the IdP's refusal, a failed id_token check: audited here
          // (the JIT user step below audits its own refusals).
          if (!isRedisUnavailable(err)) {
            const e = err instanceof BrokerError ? err : new BrokerError('internal_error');
            const reason = err instanceof LoginRefused ? err.reason : e.message;
            await broker.audit.record({ principal: null, address: actor.address }, 'auth.login', { type: 'authenticator', id: a.name }, { authenticator: a.name, code: e.code, reason }, e.status >= 500 ? 'failed' : 'denied');
          }
          throw err;
        } finally {
          // The state is spent whatever the outcome (single use).
          if (req.session) await auth.saveSession(req).catch(() => undefined);
        }
        const { idToken, ...vouched } = done.identity;
        // The id_token stays in the server-side session (across the second-factor step) as the hint of RP-initiated logout.
        const outcome = await auth.loginWithIdentity(req, res, vouched, { startedAt: done.startedAt, idToken });
        // The second factor is asked on the login page: it reads the challenge from the query.
        res.redirect(303, outcome.status === 'mfa_required' ? `/?sso_mfa=${outcome.methods.join(',')}&enrol=${outcome.enrol ? 1 : 0}` : done.returnTo);
      } catch (err) {
        fail(req, res, err);
      }
      return undefined;
    },
  });
}
