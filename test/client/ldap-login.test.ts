// The login page with a directory in headless Chromium, against a real broker, Redis and slapd
// (StartTLS, CA made by the test; test/auth/slapd.ts): the realm select logs a directory user in,
// a wrong directory password shows the error, and an admin tests the directory connection from
// the console's Authentication page (audited). Chromium and slapd are stopped by pid.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { startTestBroker, PASSWORD, type TestBroker } from '../support/harness.ts';
import { ROOT } from '../support/process.ts';
import { webClientMissing, launchChromium, type LaunchedChromium } from '../support/chromium.ts';
import { startSlapd, treeLdif, SERVICE_DN, SERVICE_PW, SUFFIX, type Slapd } from '../auth/slapd.ts';

const ARTIFACTS = join(ROOT, '.artifacts/client');
const missing = webClientMissing();
const ALICE_PW = 'alice directory pw';

let slapd: Slapd | undefined;
let tb: TestBroker | undefined;
let chrome: LaunchedChromium<Browser> | undefined;

before(async () => {
  if (missing) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  slapd = await startSlapd(treeLdif({ default: 'directory pass 1', alice: ALICE_PW }));
  tb = await startTestBroker({
    name: 'ldap-client',
    config: {
      auth: {
        authenticators: [{
          kind: 'ldap', name: 'corp', label: 'Corp directory', directory: 'openldap', urls: [slapd.url], startTls: true, caFile: slapd.caFile,
          bindDn: SERVICE_DN, bindPassword: SERVICE_PW, baseDn: SUFFIX, timeoutMs: 3000,
        }],
      },
    } as never,
  });
  await tb.addUser('root', 'admin');
  chrome = await launchChromium<Browser>();
});

after(async () => {
  await chrome?.stop();
  await tb?.close();
  await slapd?.close();
});

test('login page: "Log in with" the directory logs alice in; a wrong directory password shows the error; an admin tests the directory from Authentication', { timeout: 90_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const ctx = await chrome!.browser.newContext({ viewport: { width: 1100, height: 720 } });
  try {
    const p = await ctx.newPage();
    await p.goto(tb!.url + '/');
    const realm = p.getByTestId('login-realm');
    await realm.waitFor({ timeout: 10_000 });
    assert.deepEqual(await realm.locator('option').allTextContents(), ['Local account', 'Corp directory']);
    await realm.selectOption('corp');
    await p.locator('input[name=username]').fill('alice');
    await p.locator('input[name=password]').fill('not her password');
    await p.getByRole('button', { name: 'Log in' }).click();
    await p.getByTestId('login-error').waitFor({ timeout: 10_000 });
    assert.match((await p.getByTestId('login-error').textContent()) ?? '', /Wrong user name or password/);
    await p.locator('input[name=password]').fill(ALICE_PW);
    await p.getByRole('button', { name: 'Log in' }).click();
    await p.getByText('Alice Lab').waitFor({ timeout: 10_000 });
    await p.screenshot({ path: join(ARTIFACTS, '60-ldap-login.png') });
    await ctx.clearCookies();

    await p.goto(tb!.url + '/');
    await p.getByTestId('login-realm').waitFor({ timeout: 10_000 });
    assert.equal(await p.getByTestId('login-realm').inputValue(), 'local', 'the default realm is preselected');
    await p.locator('input[name=username]').fill('root');
    await p.locator('input[name=password]').fill(PASSWORD);
    await p.getByRole('button', { name: 'Log in' }).click();
    await p.getByRole('link', { name: 'Helpdesk' }).click();
    await p.getByRole('link', { name: 'Authentication' }).click();
    const card = p.locator('article[data-authenticator=corp]');
    await card.waitFor({ timeout: 10_000 });
    assert.match((await card.textContent()) ?? '', /\(set\)/);
    assert.doesNotMatch((await p.content()), new RegExp(SERVICE_PW));
    await card.getByRole('button', { name: 'Test connection' }).click();
    await p.locator('dialog').getByRole('button', { name: 'Test connection' }).click();
    await p.getByText(/Corp directory: Connected with StartTLS/).waitFor({ timeout: 15_000 });
    await p.screenshot({ path: join(ARTIFACTS, '61-authentication-test.png') });
  } catch (e) {
    for (const pg of ctx.pages()) await pg.screenshot({ path: join(ARTIFACTS, '60-ldap-failed.png') }).catch(() => undefined);
    throw e;
  } finally {
    await ctx.close().catch(() => undefined);
  }
  const { entries } = await tb!.app.broker.audit.query({ action: 'authenticator.test', limit: 10 });
  assert.deepEqual(entries.map((e) => [e.actor, e.target, e.outcome]), [['root', 'corp', 'ok']]);
});
