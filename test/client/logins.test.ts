// The helpdesk console's Logins page in headless Chromium against a real broker and real Redis
// (hard lockout mode): a locked-out user is listed as locked, the agent unlocks them with the
// Unlock button, the user logs in again, and the audit names the agent. Chromium is stopped by
// pid, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startTestBroker, ApiClient, PASSWORD, type TestBroker } from '../support/harness.ts';
import { ROOT } from '../support/process.ts';
import { until } from '../tunnel/support/fixtures.ts';
import { webClientMissing, launchChromium, type LaunchedChromium } from '../support/chromium.ts';

const ARTIFACTS = join(ROOT, '.artifacts/client');
const missing = webClientMissing();

import type { Browser, BrowserContext as Context, Page, Locator } from 'playwright-core';

let tb: TestBroker | undefined;
let chrome: LaunchedChromium<Browser> | undefined;

before(async () => {
  if (missing) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  tb = await startTestBroker({ name: 'logins-client', config: { auth: { lockout: { mode: 'hard', threshold: 3, durationSeconds: 600 } } } });
  await tb.addUser('carol');
  await tb.addUser('helen', 'helpdesk');
  chrome = await launchChromium<Browser>();
});

after(async () => {
  await chrome?.stop();
  await tb?.close();
});

test('helpdesk console: a locked-out user is shown as locked and the Unlock button lets them log in again (audited)', { timeout: 60_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  for (let i = 0; i < 3; i++) assert.equal((await new ApiClient(tb!.url).login('carol', `wrong ${i}`)).status, 401);
  const locked = await new ApiClient(tb!.url).login('carol');
  assert.equal(locked.status, 429);
  assert.equal(locked.body.error.code, 'account_locked');

  const ctx = await chrome!.browser.newContext({ viewport: { width: 1100, height: 720 } });
  try {
    const p = await ctx.newPage();
    await p.goto(tb!.url + '/');
    await p.locator('input[name=username]').fill('helen');
    await p.locator('input[name=password]').fill(PASSWORD);
    await p.getByRole('button', { name: 'Log in' }).click();
    await p.getByRole('link', { name: 'Helpdesk' }).click();
    await p.getByRole('link', { name: 'Logins' }).click();
    const row = p.locator('tr[data-user=carol]');
    await row.waitFor({ timeout: 10_000 });
    assert.match((await row.textContent()) ?? '', /locked/);
    await p.screenshot({ path: join(ARTIFACTS, '40-logins-locked.png') });

    await row.getByRole('button', { name: 'Unlock' }).click();
    await p.locator('dialog').getByRole('button', { name: 'Unlock' }).click();
    await p.getByText('carol was unlocked.').waitFor({ timeout: 10_000 });
    await until(async () => (await p.locator('tr[data-user=carol]').count()) === 0, 10_000, 'carol leaves the list');
    await p.screenshot({ path: join(ARTIFACTS, '41-logins-unlocked.png') });
  } catch (e) {
    for (const pg of ctx.pages()) await pg.screenshot({ path: join(ARTIFACTS, '40-logins-failed.png') }).catch(() => undefined);
    throw e;
  } finally {
    await ctx.close().catch(() => undefined);
  }
  assert.equal((await new ApiClient(tb!.url).login('carol')).status, 200, 'carol logs in after the unlock');
  const { entries } = await tb!.app.broker.audit.query({ action: 'user.unlock', target: 'carol', outcome: 'ok', limit: 10 });
  assert.deepEqual(entries.map((e) => [e.actor, e.details.was]), [['helen', 'locked']]);
});
