// "My files" in the portal: a file in the user's folder is listed, one uploaded through the page
// lands in the folder, and a rename and a delete from the page reach the share.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestBroker, PASSWORD, type TestBroker } from '../support/harness.ts';
import { ROOT } from '../support/process.ts';
import { webClientMissing, launchChromium, type LaunchedChromium } from '../support/chromium.ts';

import type { Browser, Page, Locator } from 'playwright-core';

const missing = webClientMissing();
const ARTIFACTS = join(ROOT, '.artifacts/client');
let tb: TestBroker | undefined;
let chrome: LaunchedChromium<Browser> | undefined;

before(async () => {
  tb = await startTestBroker({ name: 'files-page' });
  await tb.addUser('alice');
  if (!missing) chrome = await launchChromium<Browser>();
});
after(async () => {
  await chrome?.stop();
  await tb?.close();
});

async function until(fn: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('My files: list, upload, rename and delete from the portal reach the share', { timeout: 60_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const share = tb!.app.shares.shares.shares[0]!;
  const home = share.homePath('alice');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'from-desktop.txt'), 'written in a desktop');

  const ctx = await chrome!.browser.newContext();
  const page = await ctx.newPage();
  page.on('dialog', (d) => void d.accept('renamed.txt'));
  await page.goto(`${tb!.url}/files`);
  await page.locator('input[name=username]').fill('alice');
  await page.locator('input[name=password]').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  // logged in: the portal shows its navigation; open My files from it
  await until(async () => (await page.locator('nav a:has-text("My files")').count()) > 0);
  await page.locator('nav a:has-text("My files")').click();
  await until(async () => (await page.getByText('from-desktop.txt').count()) > 0);
  assert.match((await page.locator('[data-testid=usage]').textContent()) ?? '', /used of/);

  const upload = join(ROOT, '.artifacts/client/upload-me.txt');
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(upload, 'uploaded through the portal');
  await page.locator('[data-testid=upload]').setInputFiles(upload);
  await until(async () => existsSync(join(home, 'upload-me.txt')));
  assert.equal(readFileSync(join(home, 'upload-me.txt'), 'utf8'), 'uploaded through the portal');
  await until(async () => (await page.getByText('upload-me.txt').count()) > 0);
  await page.screenshot({ path: join(ARTIFACTS, '22-my-files.png') });

  // rename (the prompt answers "renamed.txt"), then delete (the confirm is accepted)
  const row = (name: string) => page.locator(`[data-testid=file-row]:has-text("${name}")`);
  await row('from-desktop.txt').locator('button:has-text("Rename")').click();
  await until(async () => existsSync(join(home, 'renamed.txt')) && !existsSync(join(home, 'from-desktop.txt')));
  await until(async () => (await page.getByText('renamed.txt').count()) > 0);
  await row('renamed.txt').locator('button:has-text("Delete")').click();
  await until(async () => !existsSync(join(home, 'renamed.txt')));
  await ctx.close();
});
