// OpenID Connect single sign-on against a real OpenID provider (`oidc-provider` in its own
// process) and the real broker, driven through headless Chromium across real redirects.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { ApiClient, testConfig, waitFor } from '../support/harness.ts';
import { launchChromium, webClientMissing, type LaunchedChromium } from '../support/chromium.ts';
import { startTestIdp, type TestIdp } from '../support/oidc-provider.ts';
import { dropPrefix, freePort, uniquePrefix } from '../support/redis.ts';
import { createBrokerApp, createHttpServer, type BrokerApp } from '../../server/app.ts';
import { createLogger } from '../../server/observability/index.ts';
import type { Config } from '../../server/config/index.ts';
import type { AuditEntry } from '../../server/store/index.ts';
import type { Browser, BrowserContext, Page } from 'playwright-core';

const SSO = 'corp-sso';
const ACCOUNTS = {
  alice: { password: 'alice-idp-pw', name: 'Alice Admin', email: 'alice@corp.test', groups: ['vdi-admins', 'staff'], roles: ['broker-admin'] },
  bob: { password: 'bob-idp-pw', name: 'Bob User', email: 'bob@corp.test', groups: ['staff'], roles: [] },
  carol: { password: 'carol-idp-pw', name: 'Carol Keycloak', email: 'carol@corp.test', groups: [], roles: ['broker-admin', 'offline_access'] },
};
// A second authenticator on the same IdP reads the roles from a nested claim (Keycloak's shape).
const ROLES_SSO = 'corp-roles';

interface Broker {
  app: BrokerApp;
  server: Server;
  url: string;
  config: Config;
  close(): Promise<void>;
}

/** The broker on a port chosen first: its public URL (and so the redirect URI) must be known before it starts. */
async function startBroker(idpIssuer: string, over: Record<string, unknown> = {}): Promise<Broker> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const prefix = uniquePrefix('oidc');
  const config = testConfig(prefix, {
    server: { publicUrl: url },
    auth: {
      authenticators: [
        {
          kind: 'oidc',
          name: SSO,
          label: 'Corporate sign-in',
          issuer: idpIssuer,
          clientId: 'vdi-broker',
          clientSecretEnv: 'VDI_TEST_OIDC_SECRET',
          scopes: ['openid', 'profile', 'email', 'groups'],
          usernameClaim: 'preferred_username',
          groupsClaim: 'groups',
          clockToleranceSeconds: 5,
          timeoutSeconds: 5,
          trustIdpMfa: true,
          ...over,
        },
        {
          kind: 'oidc',
          name: ROLES_SSO,
          label: 'Corporate sign-in (roles)',
          issuer: idpIssuer,
          clientId: 'vdi-broker',
          clientSecretEnv: 'VDI_TEST_OIDC_SECRET',
          scopes: ['openid', 'profile', 'groups'],
          groupsClaim: 'realm_access.roles',
          groupMap: { 'broker-admin': 'vdi-admins' },
          onlyMappedGroups: true,
        },
      ],
      roleMapping: { 'vdi-admins': 'admin' },
    },
  } as never);
  const app = await createBrokerApp({ config, logger: createLogger(config.logging.level), providers: [] });
  const server = createHttpServer(app);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    app,
    server,
    url,
    config,
    async close() {
      await app.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await dropPrefix(config.redis.url, prefix);
    },
  };
}

/** Audit entries of one action, newest first. */
async function auditOf(b: Broker, action: string): Promise<AuditEntry[]> {
  return (await b.app.store.audit.query({ action, limit: 500 })).entries;
}

/** Signs in on the test IdP's own form. */
async function idpSignIn(page: Page, idp: TestIdp, user: keyof typeof ACCOUNTS): Promise<void> {
  await page.waitForURL((u) => u.href.startsWith(`${idp.issuer}/interaction/`), { timeout: 30_000 });
  await page.fill('#idp-username', user);
  await page.fill('#idp-password', ACCOUNTS[user].password);
  await page.click('#idp-submit');
}

describe('OpenID Connect single sign-on', { timeout: 300_000 }, () => {
  let idp: TestIdp | undefined;
  let idpPort: number;
  let broker: Broker;
  let chromium: LaunchedChromium<Browser>;
  const contexts: BrowserContext[] = [];
  const newPage = async () => {
    const ctx = await chromium.browser.newContext();
    contexts.push(ctx);
    return ctx.newPage();
  };

  before(async () => {
    assert.equal(webClientMissing(), null);
    process.env.VDI_TEST_OIDC_SECRET = 'test-client-secret-0123456789abcdef';
    idpPort = await freePort();
    // The broker starts while the IdP is still down: it must start anyway.
    broker = await startBroker(`http://127.0.0.1:${idpPort}`);
    chromium = await launchChromium<Browser>();
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await chromium?.stop();
    await idp?.stop();
    await broker?.close();
  });

  test('an IdP that is down: the broker runs, start answers 503 directory_unavailable, a browser lands on the login page with the message', async () => {
    const api = new ApiClient(broker.url);
    assert.equal((await api.get('/auth/methods')).status, 200);
    const r = await api.request('GET', `/auth/oidc/${SSO}/start`, undefined, { accept: 'application/json' });
    assert.equal(r.status, 503);
    assert.equal(r.body.error.code, 'directory_unavailable');
    assert.doesNotMatch(JSON.stringify(r.body), /at .*\.ts|ECONNREFUSED/);

    const page = await newPage();
    await page.goto(`${broker.url}/`);
    await page.click(`a[href*="/auth/oidc/${SSO}/start"]`);
    await page.waitForURL((u) => u.searchParams.get('sso_error') === 'directory_unavailable', { timeout: 30_000 });
    await page.getByTestId('login-error').waitFor({ timeout: 10_000 });
    assert.match(await page.getByTestId('login-error').innerText(), /cannot be reached/i);
  });

  test('the IdP comes up later: discovery is retried at the next login', async () => {
    idp = await startTestIdp({
      port: idpPort,
      redirectUris: [`${broker.url}/api/v1/auth/oidc/${SSO}/callback`, `${broker.url}/api/v1/auth/oidc/${ROLES_SSO}/callback`],
      postLogoutRedirectUris: [`${broker.url}/`],
      accounts: ACCOUNTS,
    });
    const r = await new ApiClient(broker.url).request('GET', `/auth/oidc/${SSO}/start`, undefined, { accept: 'application/json' });
    assert.equal(r.status, 302);
    const to = new URL(r.headers.get('location')!);
    assert.equal(to.origin, idp.issuer);
    assert.equal(to.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(to.searchParams.get('code_challenge') && to.searchParams.get('state') && to.searchParams.get('nonce'));
    assert.equal(to.searchParams.get('redirect_uri'), `${broker.url}/api/v1/auth/oidc/${SSO}/callback`);
  });

  let callbackUrl = '';
  let alicePage: Page;

  test('login button → the IdP’s page → back in the portal as admin, from the groups claim (user created just in time)', async () => {
    const page = (alicePage = await newPage());
    page.on('request', (req) => {
      if (req.url().startsWith(`${broker.url}/api/v1/auth/oidc/${SSO}/callback?`)) callbackUrl = req.url();
    });
    await page.goto(`${broker.url}/`);
    await page.click(`a[href*="/auth/oidc/${SSO}/start"]`);
    await idpSignIn(page, idp!, 'alice');
    await page.waitForURL((u) => u.origin === broker.url && !u.pathname.startsWith('/api/'), { timeout: 30_000 });
    await page.locator('.who').waitFor({ timeout: 30_000 });
    assert.match(await page.locator('.who').innerText(), /Alice Admin.*\(admin\)/s);
    assert.ok(callbackUrl, 'the browser came back through the callback');

    const user = await broker.app.store.users.get('alice');
    assert.ok(user);
    assert.equal(user.role, 'admin');
    assert.equal(user.source, SSO);
    assert.deepEqual([...user.groups].sort(), ['staff', 'vdi-admins']);
    const logins = (await auditOf(broker, 'auth.login')).filter((e) => e.outcome === 'ok' && e.target === 'alice');
    assert.equal(logins.length, 1);
    assert.equal(logins[0]!.details.authenticator, SSO);
  });

  test('groups from a nested claim (realm_access.roles) through groupMap give the mapped role', async () => {
    const page = await newPage();
    await page.goto(`${broker.url}/`);
    await page.click(`a[href*="/auth/oidc/${ROLES_SSO}/start"]`);
    await idpSignIn(page, idp!, 'carol');
    await page.locator('.who').waitFor({ timeout: 30_000 });
    assert.match(await page.locator('.who').innerText(), /Carol Keycloak.*\(admin\)/s);
    const user = await broker.app.store.users.get('carol');
    assert.equal(user?.source, ROLES_SSO);
    assert.deepEqual(user?.groups, ['vdi-admins'], 'only mapped roles count (offline_access dropped)');
  });

  test('a replayed callback is refused, in the same browser after the login and in another one, and audited', async () => {
    assert.ok(callbackUrl);
    const before = (await auditOf(broker, 'auth.login')).filter((e) => e.outcome === 'denied').length;
    // The same browser (its session still holds nothing for that state)…
    await alicePage.goto(callbackUrl);
    await alicePage.waitForURL((u) => u.searchParams.get('sso_error') === 'sso_state_invalid', { timeout: 30_000 });
    // …and another browser that steals the URL.
    const thief = await newPage();
    await thief.goto(callbackUrl);
    await thief.waitForURL((u) => u.searchParams.get('sso_error') === 'sso_state_invalid', { timeout: 30_000 });
    await thief.getByTestId('login-error').waitFor({ timeout: 10_000 });
    assert.equal(await thief.locator('.who').count(), 0);
    const denied = (await auditOf(broker, 'auth.login')).filter((e) => e.outcome === 'denied');
    assert.equal(denied.length - before, 2);
    assert.equal(denied[0]!.details.code, 'sso_state_invalid');
  });

  /**
   * Signs in at the IdP but keeps the browser from following the IdP's last redirect: the
   * callback URL is returned instead (Playwright does not route redirects, so the form post and
   * the IdP's resume step are replayed through the context's own request API, cookies shared).
   */
  async function callbackWithoutFollowing(page: Page, user: keyof typeof ACCOUNTS): Promise<string> {
    let callback = '';
    await page.route(`${idp!.issuer}/interaction/*/login`, async (route) => {
      let res = await route.fetch({ maxRedirects: 0 });
      for (let hop = 0; hop < 5 && res.status() >= 300 && res.status() < 400; hop++) {
        const next = new URL(res.headers().location!, route.request().url());
        if (next.origin === broker.url) {
          callback = next.href;
          break;
        }
        res = await page.request.get(next.href, { maxRedirects: 0 });
      }
      await route.fulfill({ status: 200, contentType: 'text/html', body: '<p id="held">callback held by the test</p>' });
    });
    await page.goto(`${broker.url}/api/v1/auth/oidc/${SSO}/start`);
    await idpSignIn(page, idp!, user);
    await page.locator('#held').waitFor({ timeout: 30_000 });
    assert.ok(callback.startsWith(`${broker.url}/api/v1/auth/oidc/${SSO}/callback?`), `the IdP sent the browser back to the callback (${callback})`);
    return callback;
  }

  test('a tampered state is refused and audited; the genuine answer still logs in', async () => {
    const page = await newPage();
    const genuine = await callbackWithoutFollowing(page, 'bob');
    const tampered = new URL(genuine);
    tampered.searchParams.set('state', `${tampered.searchParams.get('state')!.slice(0, -2)}xx`);
    await page.goto(tampered.href);
    await page.waitForURL((u) => u.searchParams.get('sso_error') === 'sso_state_invalid', { timeout: 30_000 });
    const denied = (await auditOf(broker, 'auth.login')).filter((e) => e.outcome === 'denied');
    assert.equal(denied[0]!.details.code, 'sso_state_invalid');
    assert.match(String(denied[0]!.details.reason), /state/);
    assert.equal(await broker.app.store.users.get('bob'), null);

    await page.goto(genuine);
    await page.locator('.who').waitFor({ timeout: 30_000 });
    assert.match(await page.locator('.who').innerText(), /Bob User.*\(user\)/s);
  });

  test('state is single use: once a callback spent it (here on a forged code), the genuine answer is refused too', async () => {
    const page = await newPage();
    const genuine = await callbackWithoutFollowing(page, 'bob');
    const forged = new URL(genuine);
    forged.searchParams.set('code', 'forged-authorization-code');
    await page.goto(forged.href);
    await page.waitForURL((u) => u.searchParams.get('sso_error') === 'sso_failed', { timeout: 30_000 });
    await page.goto(genuine);
    await page.waitForURL((u) => u.searchParams.get('sso_error') === 'sso_state_invalid', { timeout: 30_000 });
    assert.equal(await page.locator('.who').count(), 0);
    const denied = (await auditOf(broker, 'auth.login')).filter((e) => e.outcome === 'denied');
    assert.deepEqual([denied[0]!.details.code, denied[1]!.details.code], ['sso_state_invalid', 'sso_failed']);
    assert.match(String(denied[1]!.details.reason), /invalid_grant/);
  });

  test('an id_token with a nonce other than the one this login sent is refused', async () => {
    const page = await newPage();
    // Rewrite the nonce in the broker's redirect to the IdP: the IdP then signs an id_token with
    // a nonce this login never sent (what an injected or swapped id_token looks like).
    await page.route(`${broker.url}/api/v1/auth/oidc/${SSO}/start`, async (route) => {
      const res = await route.fetch({ maxRedirects: 0 });
      const to = new URL(res.headers().location!);
      to.searchParams.set('nonce', 'attacker-chosen-nonce');
      await route.fulfill({ response: res, headers: { ...res.headers(), location: to.href } });
    });
    await page.goto(`${broker.url}/api/v1/auth/oidc/${SSO}/start`);
    await idpSignIn(page, idp!, 'bob');
    await page.waitForURL((u) => u.searchParams.get('sso_error') === 'sso_failed', { timeout: 30_000 });
    const denied = (await auditOf(broker, 'auth.login')).filter((e) => e.outcome === 'denied');
    assert.equal(denied[0]!.details.code, 'sso_failed');
    assert.match(String(denied[0]!.details.reason), /nonce/);
  });

  test('logout of an SSO user is RP-initiated: the browser reaches the IdP’s end_session_endpoint and comes back', async () => {
    const ended = idp!.events('end_session.success');
    await alicePage.goto(`${broker.url}/`);
    await alicePage.locator('.who').waitFor({ timeout: 30_000 });
    await alicePage.getByRole('button', { name: 'Log out' }).click();
    await alicePage.waitForURL((u) => u.href.startsWith(`${idp!.issuer}/session/end`), { timeout: 30_000 });
    const endSession = new URL(alicePage.url());
    assert.ok(endSession.searchParams.get('id_token_hint'), 'the id_token of the login is the hint');
    assert.equal(endSession.searchParams.get('post_logout_redirect_uri'), `${broker.url}/`);
    await alicePage.click('#idp-logout');
    await idp!.waitForEvent('end_session.success', ended + 1);
    await alicePage.waitForURL((u) => u.origin === broker.url, { timeout: 30_000 });
    const me = await alicePage.evaluate(async () => (await fetch('/api/v1/me')).status);
    assert.equal(me, 401);
  });
  test('clock skew: an id_token that expired a minute ago is refused with a 10 s tolerance and accepted with 300 s', async () => {
    // An IdP whose clock is 2 minutes behind, issuing id_tokens valid for 1 minute.
    const port = await freePort();
    const strict = await startBroker(`http://127.0.0.1:${port}`, { clockToleranceSeconds: 10 });
    const lenient = await startBroker(`http://127.0.0.1:${port}`, { clockToleranceSeconds: 300 });
    let skewed: TestIdp | undefined;
    try {
      skewed = await startTestIdp({
        port,
        redirectUris: [strict, lenient].map((b) => `${b.url}/api/v1/auth/oidc/${SSO}/callback`),
        accounts: ACCOUNTS,
        clockOffsetSeconds: -120,
        idTokenTtlSeconds: 60,
      });
      const page = await newPage();
      await page.goto(`${strict.url}/api/v1/auth/oidc/${SSO}/start`);
      await idpSignIn(page, skewed, 'bob');
      await page.waitForURL((u) => u.origin === strict.url && u.searchParams.get('sso_error') === 'sso_failed', { timeout: 30_000 });
      const denied = (await auditOf(strict, 'auth.login')).filter((e) => e.outcome === 'denied');
      assert.match(String(denied[0]!.details.reason), /exp|expired|timestamp/i);

      await page.goto(`${lenient.url}/api/v1/auth/oidc/${SSO}/start`);
      // The IdP still has bob's session: it sends the browser straight back.
      await page.waitForURL((u) => u.origin === lenient.url && !u.pathname.startsWith('/api/'), { timeout: 30_000 });
      await page.locator('.who').waitFor({ timeout: 30_000 });
      assert.match(await page.locator('.who').innerText(), /Bob User/);
    } finally {
      await skewed?.stop();
      await strict.close();
      await lenient.close();
    }
  });
});
