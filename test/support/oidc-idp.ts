// The test identity provider: the certified `oidc-provider` package run as its own process
// (test/support/oidc-provider.ts starts it) so the broker and the browser cross real HTTP
// redirects. One static client, test accounts with groups, and a minimal login form of its
// own that a headless browser can fill in. Settings come as one JSON argument.
//
// It prints "IDP LISTENING <issuer>" when ready and "IDP EVENT <name> <detail>" for what a
// test wants to observe (logins, RP-initiated logouts).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import Provider, { type Configuration } from 'oidc-provider';

interface Account {
  password: string;
  name: string;
  email: string;
  groups: string[];
  roles: string[];
}

interface IdpSettings {
  port: number;
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  accounts: Record<string, Account>;
  /** Seconds added to the IdP's clock (negative: the IdP lives in the past). */
  clockOffsetSeconds?: number;
  idTokenTtlSeconds?: number;
}

const settings = JSON.parse(process.argv[2] ?? '{}') as IdpSettings;
if (settings.clockOffsetSeconds) {
  // The IdP's own clock, skewed: every token it signs carries the skewed times.
  const realNow = Date.now.bind(Date);
  Date.now = () => realNow() + settings.clockOffsetSeconds! * 1000;
}
const issuer = `http://127.0.0.1:${settings.port}`;
const event = (name: string, detail = '') => process.stdout.write(`IDP EVENT ${name} ${detail}\n`);
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const config: Configuration = {
  clients: [
    {
      client_id: settings.clientId,
      client_secret: settings.clientSecret,
      redirect_uris: settings.redirectUris,
      post_logout_redirect_uris: settings.postLogoutRedirectUris,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  async findAccount(_ctx, sub) {
    const a = settings.accounts[sub];
    if (!a) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, preferred_username: sub, name: a.name, email: a.email, groups: a.groups, realm_access: { roles: a.roles } };
      },
    };
  },
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'], groups: ['groups', 'realm_access'] },
  scopes: ['openid', 'profile', 'email', 'groups'],
  // Scope claims in the id_token too (the broker reads them there, and from userinfo).
  conformIdTokenClaims: false,
  ttl: { IdToken: settings.idTokenTtlSeconds ?? 3600 },
  cookies: { keys: ['test-idp-cookie-key-not-secret'] },
  pkce: { required: () => true },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = `<!DOCTYPE html><html><head><title>Test IdP: sign out</title></head><body>${form}<h1>Sign out of the test IdP?</h1><button id="idp-logout" type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button></body></html>`;
      },
    },
  },
  // A first-party client: no consent screen, every requested scope granted.
  async loadExistingGrant(ctx) {
    const client = ctx.oidc.client!;
    const session = ctx.oidc.session!;
    const grantId = ctx.oidc.result?.consent?.grantId ?? session.grantIdFor(client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId! });
    grant.addOIDCScope('openid profile email groups');
    grant.addOIDCClaims(['preferred_username', 'name', 'email', 'groups', 'realm_access']);
    await grant.save();
    session.grantIdFor(client.clientId, grant.jti);
    return grant;
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><body><h1>Test IdP error</h1><pre id="idp-error">${esc(JSON.stringify(out))}</pre></body></html>`;
  },
};

const provider = new Provider(issuer, config);
provider.on('end_session.success', () => event('end_session.success'));
provider.on('authorization.success', () => event('authorization.success'));
provider.on('server_error', (_ctx, err) => event('server_error', String(err)));

function loginForm(uid: string, error = ''): string {
  return `<!DOCTYPE html><html><head><title>Test IdP: sign in</title></head><body>
<h1>Test IdP</h1>${error ? `<p id="idp-login-error">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
<label>User <input id="idp-username" name="username" autocomplete="off"></label>
<label>Password <input id="idp-password" name="password" type="password"></label>
<button id="idp-submit" type="submit">Sign in</button></form></body></html>`;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > 10_000) break;
  }
  return new URLSearchParams(body);
}

async function interaction(req: IncomingMessage, res: ServerResponse, uid: string, action: string | undefined): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (req.method === 'GET' && !action) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(loginForm(uid));
    return;
  }
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const username = form.get('username') ?? '';
    const account = settings.accounts[username];
    if (!account || account.password !== (form.get('password') ?? '')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(loginForm(uid, 'Wrong user name or password.'));
      return;
    }
    event('login', username);
    // amr/acr as an IdP that asked for a password and a one-time code would report them.
    await provider.interactionFinished(req, res, { login: { accountId: username, amr: ['pwd', 'otp'], acr: 'urn:test:mfa' } }, { mergeWithLastSubmission: false });
    return;
  }
  res.writeHead(404).end();
}

const callback = provider.callback();
const server = createServer((req, res) => {
  const m = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login))?$/.exec(new URL(req.url ?? '/', issuer).pathname);
  if (!m) return void callback(req, res);
  interaction(req, res, m[1]!, m[2]).catch((err: unknown) => {
    event('interaction_error', String(err));
    if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' }).end(`interaction failed: ${String(err)}`);
  });
});
server.listen(settings.port, '127.0.0.1', () => process.stdout.write(`IDP LISTENING ${issuer}\n`));
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
