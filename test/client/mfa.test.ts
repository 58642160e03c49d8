// Second factors in the real web client, in headless Chromium against a real broker and Redis:
// TOTP enrolment during login and later logins (the test computes the codes with otplib, as a
// phone would), recovery codes used once, a passkey registered and used through Chromium's
// virtual authenticator (DevTools WebAuthn domain), and the helpdesk reset button. The page is
// opened at http://localhost:<port>: WebAuthn needs a host name as its RP ID (an IP address is
// refused) and localhost counts as a secure origin. Chromium is stopped by pid, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { generateSync } from 'otplib';
import { startTestBroker, ApiClient, PASSWORD, type TestBroker } from '../support/harness.ts';
import { ROOT } from '../support/process.ts';
import { webClientMissing, launchChromium, type LaunchedChromium } from '../support/chromium.ts';
import { testConfig } from '../support/harness.ts';
import { startTestIdp } from '../support/oidc-provider.ts';
import { SHARED_REDIS_URL, dropPrefix, freePort, uniquePrefix } from '../support/redis.ts';
import { createBrokerApp, createHttpServer } from '../../server/app.ts';
import { createLogger } from '../../server/observability/index.ts';
import type { Browser, BrowserContext, Page } from 'playwright-core';

const ARTIFACTS = join(ROOT, '.artifacts/client');
const missing = webClientMissing();
const STEP_MS = 30_000;

let tb: TestBroker | undefined;
let chrome: LaunchedChromium<Browser> | undefined;
let base = '';
/** Ada's recovery codes, as the page showed them when she registered her passkey. */
let adaCodes: string[] = [];

before(async () => {
  if (missing) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  tb = await startTestBroker({ name: 'mfa-client', config: { auth: { mfa: { requiredFor: { roles: ['helpdesk', 'admin'], groups: [] } } } } as never });
  base = tb.url.replace('127.0.0.1', 'localhost');
  await tb.addUser('helen', 'helpdesk');
  await tb.addUser('ada', 'admin');
  chrome = await launchChromium<Browser>();
});

after(async () => {
  await chrome?.stop();
  await tb?.close();
});

/** The current TOTP step, waiting out the last 3 s of a step so a code stays valid while it is typed. */
async function stableStep(): Promise<number> {
  for (let i = 0; i < 100 && Date.now() % STEP_MS > STEP_MS - 3000; i++) await new Promise((r) => setTimeout(r, 100));
  return Math.floor(Date.now() / STEP_MS);
}
const codeAt = (secret: string, step: number) => generateSync({ secret, epoch: step * 30 + 1 });

async function passwordStep(p: Page, user: string): Promise<void> {
  await p.goto(base + '/');
  await p.locator('input[name=username]').fill(user);
  await p.locator('input[name=password]').fill(PASSWORD);
  await p.getByRole('button', { name: 'Log in', exact: true }).click();
  await p.getByTestId('mfa-step').waitFor({ timeout: 15_000 });
}

async function loggedIn(p: Page, user: string): Promise<void> {
  await p.getByRole('button', { name: 'Log out' }).waitFor({ timeout: 15_000 });
  assert.match((await p.locator('.who').textContent()) ?? '', new RegExp(user));
}

async function logOut(p: Page): Promise<void> {
  await p.getByRole('button', { name: 'Log out' }).click();
  await p.locator('input[name=username]').waitFor({ timeout: 15_000 });
}

async function logins(user: string): Promise<string[]> {
  const { entries } = await tb!.app.broker.audit.query({ action: 'auth.login', target: user, outcome: 'ok', limit: 20 });
  return entries.map((e) => String(e.details.mfa)).reverse();
}

async function withPage(name: string, fn: (p: Page, ctx: BrowserContext) => Promise<void>): Promise<void> {
  const ctx = await chrome!.browser.newContext({ viewport: { width: 1100, height: 760 } });
  try {
    await fn(await ctx.newPage(), ctx);
  } catch (e) {
    for (const pg of ctx.pages()) await pg.screenshot({ path: join(ARTIFACTS, `${name}-failed.png`) }).catch(() => undefined);
    throw e;
  } finally {
    await ctx.close().catch(() => undefined);
  }
}

test('TOTP: a helpdesk user enrols during login with the QR code page, logs in with codes, and a recovery code works once', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  let codes: string[] = [];
  await withPage('mfa-totp', async (p) => {
    await passwordStep(p, 'helen');
    await p.getByRole('heading', { name: 'Set up a second factor' }).waitFor();
    await p.getByTestId('enrol-totp').click();
    const qr = p.getByTestId('totp-qr');
    await qr.waitFor();
    assert.match((await qr.getAttribute('src')) ?? '', /^data:image\/png;base64,/);
    assert.equal(await qr.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0), true, 'the QR code renders (CSP allows data: images)');
    const secret = ((await p.getByTestId('totp-secret').textContent()) ?? '').trim();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    await p.screenshot({ path: join(ARTIFACTS, '50-mfa-enrol-totp.png') });

    const enrolStep = await stableStep();
    await p.getByTestId('totp-code').fill(codeAt(secret, enrolStep));
    await p.getByRole('button', { name: 'Confirm and log in' }).click();
    const list = p.getByTestId('recovery-codes');
    await list.waitFor({ timeout: 15_000 });
    codes = (await list.locator('code').allTextContents()).map((c) => c.trim());
    assert.equal(codes.length, 10);
    await p.screenshot({ path: join(ARTIFACTS, '51-mfa-recovery-codes.png') });
    await p.getByRole('button', { name: 'I saved them, continue' }).click();
    await loggedIn(p, 'helen');
    await logOut(p);

    // The next login: a later step's code (the enrolment's code is spent).
    await passwordStep(p, 'helen');
    await p.getByTestId('totp-code').fill(codeAt(secret, Math.max(await stableStep(), enrolStep + 1)));
    await p.getByRole('button', { name: 'Log in', exact: true }).click();
    await loggedIn(p, 'helen');
    await logOut(p);

    // A recovery code, once.
    await passwordStep(p, 'helen');
    await p.getByTestId('use-recovery').click();
    await p.getByTestId('recovery-code').fill(codes[0]!);
    await p.getByRole('button', { name: 'Log in', exact: true }).click();
    await loggedIn(p, 'helen');
    await logOut(p);

    await passwordStep(p, 'helen');
    await p.getByTestId('use-recovery').click();
    await p.getByTestId('recovery-code').fill(codes[0]!);
    await p.getByRole('button', { name: 'Log in', exact: true }).click();
    await p.getByTestId('mfa-error').waitFor({ timeout: 15_000 });
    assert.match((await p.getByTestId('mfa-error').textContent()) ?? '', /not valid/);
    assert.equal(await p.getByRole('button', { name: 'Log out' }).count(), 0, 'still not logged in');
    await p.screenshot({ path: join(ARTIFACTS, '52-mfa-recovery-used.png') });
    await p.getByTestId('recovery-code').fill(codes[1]!);
    await p.getByRole('button', { name: 'Log in', exact: true }).click();
    await loggedIn(p, 'helen');
  });
  assert.deepEqual(await logins('helen'), ['totp', 'totp', 'recovery', 'recovery']);
  assert.equal((await tb!.app.store.mfa.summary('helen')).recoveryCodesLeft, 8);
});

test("passkey: an admin registers one during login through Chromium's virtual authenticator, logs in with it, and sees it on the security page", { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  await withPage('mfa-passkey', async (p, ctx) => {
    const cdp = await ctx.newCDPSession(p);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
    });

    await passwordStep(p, 'ada');
    await p.getByTestId('use-passkey').click();
    await p.getByTestId('recovery-codes').waitFor({ timeout: 15_000 });
    adaCodes = (await p.getByTestId('recovery-codes').locator('code').allTextContents()).map((c) => c.trim());
    assert.equal(adaCodes.length, 10);
    await p.getByRole('button', { name: 'I saved them, continue' }).click();
    await loggedIn(p, 'ada');
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1, 'the authenticator holds one credential');
    const stored = await tb!.app.store.mfa.passkeys('ada');
    assert.deepEqual(stored.map((k) => k.id), [credentials[0]!.credentialId.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')]);
    await logOut(p);

    await passwordStep(p, 'ada');
    await p.getByRole('heading', { name: 'Confirm it is you' }).waitFor();
    await p.getByTestId('use-passkey').click();
    await loggedIn(p, 'ada');
    const after = (await tb!.app.store.mfa.passkeys('ada'))[0]!;
    assert.ok(after.lastUsedAt, 'the use is recorded');
    assert.ok(after.counter >= stored[0]!.counter, 'the signature counter never goes back');

    await p.getByRole('link', { name: 'Sign-in security' }).click();
    const keys = p.getByTestId('factor-passkeys');
    await keys.locator('li[data-passkey]').first().waitFor({ timeout: 15_000 });
    assert.equal(await keys.locator('li[data-passkey]').count(), 1);
    assert.match((await p.getByTestId('factor-recovery').textContent()) ?? '', /10 unused codes left/);
    await p.screenshot({ path: join(ARTIFACTS, '53-mfa-security-page.png') });
  });
  assert.deepEqual(await logins('ada'), ['webauthn', 'webauthn']);
});

test("helpdesk console: an admin resets a helpdesk user's factors with the button; the user enrols again at the next login (audited)", { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  assert.ok((await tb!.app.store.mfa.summary('helen')).totp, 'helen has TOTP (first test)');
  assert.equal(adaCodes.length, 10, "ada's recovery codes (second test)");
  await withPage('mfa-reset', async (p) => {
    // Ada's passkey went with the other test's virtual authenticator: she uses a recovery code.
    await passwordStep(p, 'ada');
    await p.getByTestId('use-recovery').click();
    await p.getByTestId('recovery-code').fill(adaCodes[0]!);
    await p.getByRole('button', { name: 'Log in', exact: true }).click();
    await loggedIn(p, 'ada');
    await p.getByRole('link', { name: 'Helpdesk' }).click();
    await p.getByRole('link', { name: 'Logins' }).click();
    await p.getByTestId('factors-user').fill('helen');
    await p.getByRole('button', { name: 'Show' }).click();
    await p.getByTestId('factors-of').waitFor({ timeout: 15_000 });
    assert.match((await p.getByTestId('factors-of').textContent()) ?? '', /authenticator app/);
    await p.getByTestId('reset-factors').click();
    await p.locator('dialog').getByRole('button', { name: 'Reset' }).click();
    await p.getByText("helen's second factors were reset.").waitFor({ timeout: 15_000 });
    await p.screenshot({ path: join(ARTIFACTS, '54-mfa-helpdesk-reset.png') });
  });
  const helen = await new ApiClient(tb!.url).login('helen');
  assert.equal(helen.body.status, 'mfa_required');
  assert.equal(helen.body.enrol, true);
  const { entries } = await tb!.app.broker.audit.query({ action: 'user.mfa_reset', target: 'helen', limit: 5 });
  assert.deepEqual(entries.map((e) => [e.actor, e.outcome]), [['ada', 'ok']]);
});

test('single sign-on without MFA at the identity provider: an admin from the IdP sets up an authenticator app before the portal opens', { timeout: 180_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  process.env.VDI_TEST_OIDC_SECRET = 'test-client-secret-0123456789abcdef';
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const prefix = uniquePrefix('mfa-sso');
  const idp = await startTestIdp({
    redirectUris: [`${url}/api/v1/auth/oidc/corp-sso/callback`],
    accounts: { alice: { password: 'alice-idp-pw', name: 'Alice Admin', email: 'alice@corp.test', groups: ['vdi-admins'], roles: [] } },
  });
  let stopBroker = async (): Promise<void> => undefined;
  try {
    const config = testConfig(prefix, {
      server: { publicUrl: url },
      auth: {
        mfa: { requiredFor: { roles: ['admin'], groups: [] } },
        // trustIdpMfa: the IdP's amr is passed on, but this IdP reports no second factor.
        authenticators: [{ kind: 'oidc', name: 'corp-sso', label: 'Corporate sign-in', issuer: idp.issuer, clientId: idp.clientId, clientSecretEnv: 'VDI_TEST_OIDC_SECRET', scopes: ['openid', 'profile', 'email', 'groups'], usernameClaim: 'preferred_username', groupsClaim: 'groups', trustIdpMfa: true }],
        roleMapping: { 'vdi-admins': 'admin' },
      },
    } as never);
    const app = await createBrokerApp({ config, logger: createLogger(config.logging.level), providers: [] });
    const server = createHttpServer(app);
    stopBroker = async () => {
      await app.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    };
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    await withPage('mfa-sso', async (p) => {
      await p.goto(`${url}/`);
      await p.click('a[href*="/auth/oidc/corp-sso/start"]');
      await p.waitForURL((u) => u.href.startsWith(`${idp.issuer}/interaction/`), { timeout: 30_000 });
      await p.fill('#idp-username', 'alice');
      await p.fill('#idp-password', 'alice-idp-pw');
      await p.click('#idp-submit');
      await p.getByTestId('mfa-step').waitFor({ timeout: 30_000 });
      assert.equal(new URL(p.url()).search, '', 'the challenge is read from the URL once and removed');
      await p.getByTestId('enrol-totp').click();
      const secret = ((await p.getByTestId('totp-secret').textContent()) ?? '').trim();
      await p.getByTestId('totp-code').fill(codeAt(secret, await stableStep()));
      await p.getByRole('button', { name: 'Confirm and log in' }).click();
      await p.getByRole('button', { name: 'I saved them, continue' }).click({ timeout: 15_000 });
      await p.locator('.who').waitFor({ timeout: 15_000 });
      assert.match(await p.locator('.who').innerText(), /Alice Admin.*\(admin\)/s);
    });
    const { entries } = await app.broker.audit.query({ action: 'auth.login', target: 'alice', outcome: 'ok', limit: 5 });
    assert.deepEqual(entries.map((e) => [e.details.authenticator, e.details.mfa]), [['corp-sso', 'totp']]);
  } finally {
    await stopBroker();
    await idp.stop();
    await dropPrefix(SHARED_REDIS_URL, prefix);
  }
});
