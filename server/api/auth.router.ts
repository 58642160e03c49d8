import { z } from 'zod';
import type { RouteTable } from './route.ts';
import type { ApiDeps } from './deps.ts';
import { password, username } from './schemas.ts';

export function authRoutes(t: RouteTable, { auth, identity }: ApiDeps): void {
  t.add({
    method: 'post',
    path: '/auth/login',
    tag: 'auth',
    summary: 'Log in with a local account; sets the session cookie and returns the CSRF token',
    role: 'anyone',
    body: z.strictObject({ username, password }),
    errors: ['invalid_credentials', 'account_locked', 'login_throttled', 'too_many_attempts'],
    handler: async ({ req, res }) => {
      const principal = await auth.login(req, res);
      return { user: await identity.getUser(principal.id), csrfToken: auth.csrfToken(req) };
    },
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
    summary: 'End the login (desktops and their sessions keep running)',
    role: 'user',
    status: 204,
    handler: async ({ req, res, actor }) => {
      await auth.logout(req);
      res.clearCookie(auth.cookieName);
      await identity.recordLogout(actor);
      return undefined;
    },
  });
  t.add({
    method: 'get',
    path: '/me',
    tag: 'me',
    summary: 'The caller, with a CSRF token for cookie sessions',
    role: 'user',
    handler: async ({ req }) => {
      const p = req.principal!;
      if (p.kind === 'apikey') return { kind: 'apikey', id: p.id, role: p.role };
      return { kind: 'user', user: await identity.getUser(p.id), csrfToken: req.authKind === 'cookie' ? auth.csrfToken(req) : null };
    },
  });
}
