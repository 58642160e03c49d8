import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { password } from './schemas.ts';
import { MAX_LOGIN_NAME, describeAuthenticators } from '../auth/index.ts';

export function authRoutes(t: RouteTable, { auth, identity }: ApiDeps): void {
  t.add({
    method: 'post',
    path: '/auth/login',
    tag: 'auth',
    summary: 'Log in with a password (local account or directory: `realm`, or user@domain); sets the session cookie and returns the CSRF token, or asks for the second factor',
    role: 'anyone',
    body: z.strictObject({
      // A user id, or user@domain (routed to the directory of that domain). Filter syntax,
      // markup and non-ASCII (fullwidth "ａdmin") are refused here; the pipeline then normalises
      // (docs/authentication.md) and answers names that cannot be users like unknown ones.
      username: z.string().min(1).max(MAX_LOGIN_NAME).regex(/^[A-Za-z0-9][A-Za-z0-9._@-]*$/, 'letters, digits, . _ - and @ only, starting with a letter or digit'),
      password,
      realm: z.string().min(1).max(63).regex(/^[a-z0-9][a-z0-9._-]*$/, 'an authenticator name').optional(),
    }),
    errors: ['invalid_credentials', 'account_locked', 'login_throttled', 'too_many_attempts', 'account_disabled', 'password_expired', 'password_change_required', 'directory_unavailable'],
    handler: async ({ req, res }) => {
      const out = await auth.login(req, res);
      if (out.status === 'mfa_required') return { status: out.status, methods: out.methods, enrol: out.enrol, csrfToken: auth.csrfToken(req) };
      return { status: out.status, user: await identity.getUser(out.principal.id), csrfToken: auth.csrfToken(req) };
    },
  });
  t.add({
    method: 'get',
    path: '/auth/methods',
    tag: 'auth',
    summary: 'The ways to log in the login page offers: password realms (local, directories) and single sign-on buttons',
    role: 'anyone',
    handler: async () => ({ defaultRealm: identity.authenticators.defaultRealm, methods: identity.authenticators.methods() }),
  });
  t.add({
    method: 'get',
    path: '/auth/authenticators',
    tag: 'auth',
    summary: 'The configured authenticators and their settings, without secrets (admin console, read-only)',
    role: 'admin',
    handler: async () => ({ defaultRealm: identity.authenticators.defaultRealm, authenticators: describeAuthenticators(identity.authenticators) }),
  });
  t.add({
    method: 'post',
    path: '/auth/authenticators/:name/test',
    tag: 'auth',
    summary: 'Check that an authenticator\'s directory answers (connect, TLS, service-account bind); audited',
    role: 'admin',
    params: z.strictObject({ name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'an authenticator name: lower-case letters, digits, . _ -') }),
    errors: ['directory_unavailable'],
    auditAction: 'authenticator.test',
    handler: async ({ params, actor }) => identity.testAuthenticator(actor, params.name),
  });
  t.add({
    method: 'get',
    path: '/auth/lockouts',
    tag: 'auth',
    summary: 'Users whose logins are locked, throttled or failing, and addresses blocked for password spraying',
    role: 'helpdesk',
    handler: async () => identity.lockouts(),
  });
  t.add({
    method: 'post',
    path: '/auth/logout',
    tag: 'auth',
    summary: 'End the login (desktops and their sessions keep running); 200 with `redirect` (the IdP\'s end-session URL) after a single sign-on login',
    role: 'user',
    status: 204,
    handler: async ({ req, res, actor, setStatus }) => {
      // A single sign-on login also ends at its IdP (RP-initiated logout): the client follows `redirect`.
      const sso = identity.authenticators.redirect(auth.authMethodOf(req)?.method ?? '');
      const redirect = sso?.logoutUrl ? await sso.logoutUrl({ req, res }) : undefined;
      await auth.logout(req);
      res.clearCookie(auth.cookieName);
      await identity.recordLogout(actor);
      if (!redirect) return undefined;
      setStatus(200);
      return { redirect };
    },
  });
  t.add({
    method: 'get',
    path: '/me',
    tag: 'me',
    summary: 'The caller, with a CSRF token for cookie sessions',
    role: 'user',
    // A session made by a redirect login (OIDC) gets its CSRF token here, on first use.
    writesSession: true,
    handler: async ({ req }) => {
      const p = req.principal!;
      if (p.kind === 'apikey') return { kind: 'apikey', id: p.id, role: p.role };
      return { kind: 'user', user: await identity.getUser(p.id), csrfToken: req.authKind === 'cookie' ? auth.csrfToken(req) : null };
    },
  });
}
