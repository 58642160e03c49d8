// The helpdesk console's management pages in headless Chromium against a real broker and real
// Redis: pool forms that keep what is typed while live updates arrive (and say the pool changed
// on the server), the first configured provider as the new pool's default, refusals next to the
// field, a valid pool-name pattern, the Desktops column counting desktops, clone and delete;
// Migrate offered only with another host; users (create, disable, unlock, reset MFA, role,
// groups), groups (members, pool entitlement) and images (versions, publish, rollout per pool).
// One broker and one browser for the file; screenshots go to VDI_TEST_ARTIFACTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startTestBroker, type TestBroker } from '../support/harness.ts';
import { login, until } from '../tunnel/support/fixtures.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { formLogin } from './support/desk.ts';
import { webClientMissing, launchChromium, type LaunchedChromium } from '../support/chromium.ts';

const ARTIFACTS = process.env.VDI_TEST_ARTIFACTS || '/tmp/vdi-artifacts';
const missing = webClientMissing();
let tb: TestBroker | undefined;
let chrome: LaunchedChromium<Browser> | undefined;
let ctx: BrowserContext | undefined;
let page: Page;
let imageDir = '';
const consoleMessages: string[] = [];
let p1Desktops: string[] = [];

before(async () => {
  if (missing) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  tb = await startTestBroker({ name: 'hd-pages' });
  await tb.addUser('ada', 'admin');
  await tb.addUser('una');
  await tb.app.broker.pools.create(tb.pool({ name: 'p1', displayName: 'Office', entitlements: { users: ['una'], groups: [] } }), SYSTEM_ACTOR);
  p1Desktops = await tb.readyDesktops('p1', 3);
  imageDir = mkdtempSync(join(tmpdir(), 'vdi-image-v2-'));
  writeFileSync(join(imageDir, 'disk.qcow2'), '');
  chrome = await launchChromium<Browser>();
  ctx = await chrome.browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await ctx.newPage();
  page.on('console', (m) => consoleMessages.push(m.text()));
  await formLogin(page, tb.url, 'ada');
  await page.getByRole('link', { name: 'Helpdesk' }).waitFor();
});

after(async () => {
  await ctx?.close().catch(() => undefined);
  await chrome?.stop();
  await tb?.close();
  if (imageDir) rmSync(imageDir, { recursive: true, force: true });
});

const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
const form = () => page.locator('[data-testid=pool-form]');
const input = (name: string) => form().locator(`[name=${name}]`);

test('pools: typing survives live updates, the default provider exists, refusals sit next to the field, Desktops counts desktops, clone and delete', { timeout: 300_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const ada = await login(tb!, 'ada');
  try {
    await page.goto(`${tb!.url}/helpdesk/pools`);
    await until(async () => (await page.getByText('● live').count()) > 0, 20_000, 'live updates');
    // D3: three desktops are 3, not the sum of every counter (total and sessions included).
    await until(async () => (await page.locator('tr[data-pool=p1] td').nth(3).textContent()) === '3', 20_000, 'p1 shows 3 desktops');

    // D1 (edit): what is typed stays while live updates arrive; the form says the pool changed.
    await page.locator('tr[data-pool=p1]').getByRole('button', { name: 'Edit' }).click();
    await input('displayName').fill('Typed while live');
    await input('description').fill('kept too');
    assert.equal((await ada.patch('/pools/p1', { description: 'changed by someone else' })).status, 200);
    await form().locator('[data-testid=changed-on-server]').waitFor({ timeout: 20_000 });
    assert.equal((await ada.post('/pools/p1/resize', { min: 0, max: 9, spare: 0 })).status, 200);
    await until(async () => (await page.locator('tr[data-pool=p1] td').nth(2).textContent())?.includes('/ 9 /'), 20_000, 'the table follows the server');
    assert.equal(await input('displayName').inputValue(), 'Typed while live');
    assert.equal(await input('description').inputValue(), 'kept too');
    await shot('hd-pages-pool-edit-changed-on-server');
    await form().getByRole('button', { name: 'Save' }).click();
    await page.getByText('Pool p1 saved.').waitFor();
    const p1 = (await ada.get('/pools/p1')).body.pool;
    assert.equal(p1.displayName, 'Typed while live');
    assert.equal(p1.description, 'kept too');

    // D1 (new) + D8: the provider defaults to the first configured one; the name pattern is valid.
    await page.getByRole('button', { name: 'New pool' }).click();
    await until(async () => (await input('provider').inputValue()) === 'fake', 20_000, 'provider defaults to the configured "fake"');
    await input('name').fill('p-two');
    assert.equal(await input('name').evaluate((el) => (el as HTMLInputElement).checkValidity()), true);
    await input('name').fill('Bad_Name');
    assert.equal(await input('name').evaluate((el) => (el as HTMLInputElement).checkValidity()), false, 'the pattern refuses upper case and _');
    assert.deepEqual(consoleMessages.filter((m) => /Pattern attribute value .* is not a valid regular expression/.test(m)), []);
    await input('name').fill('p-two');
    await input('displayName').fill('Second pool');
    await input('naming').fill('no-counter');
    await form().getByRole('button', { name: 'Save' }).click();
    // The refusal sits next to the Naming field, in words; everything typed is still there.
    const namingError = form().locator('[data-error-for=naming]');
    await namingError.waitFor({ timeout: 20_000 });
    assert.match((await namingError.textContent())!, /\{n\}/);
    assert.doesNotMatch((await namingError.textContent())!, /^naming:/);
    assert.equal(await input('displayName').inputValue(), 'Second pool');
    assert.equal(await input('name').inputValue(), 'p-two');
    await shot('hd-pages-pool-field-error');
    await input('naming').fill('two-{n:02}');
    await form().getByRole('button', { name: 'Save' }).click();
    await page.getByText('Pool p-two created.').waitFor();
    assert.equal((await ada.get('/pools/p-two')).body.pool.provider, 'fake');

    // Clone: the source's settings under a new name.
    await page.locator('tr[data-pool=p1]').getByRole('button', { name: 'Clone' }).click();
    assert.equal(await input('name').inputValue(), '');
    await input('name').fill('p1-copy');
    await input('naming').fill('copy-{n:02}');
    await form().getByRole('button', { name: 'Save' }).click();
    await page.getByText('Pool p1-copy created as a copy of p1.').waitFor();
    const copy = (await ada.get('/pools/p1-copy')).body.pool;
    assert.deepEqual([copy.size, copy.entitlements, copy.resources, copy.image, copy.provider, copy.persistence, copy.description], [p1.size, p1.entitlements, p1.resources, p1.image, p1.provider, p1.persistence, p1.description]);

    // Delete, confirmed by typing the name.
    await page.locator('tr[data-pool=p1-copy]').getByRole('button', { name: 'Delete' }).click();
    const dialog = page.locator('dialog.confirm[open]');
    await dialog.locator('input').fill('p1-copy');
    await dialog.getByRole('button', { name: 'Delete pool' }).click();
    await page.getByText('Pool p1-copy is being deleted.').waitFor();
    await until(async () => { const r = await ada.get('/pools/p1-copy'); return r.status === 404 || r.body.pool?.deleting; }, 20_000, 'p1-copy deleting');
    await shot('hd-pages-pools');
  } catch (e) {
    await shot('hd-pages-pools-failed').catch(() => undefined);
    throw e;
  }
});

test('desktops: Migrate is not offered without another host of the provider', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  // The fake provider has one host, host-a, where these desktops run.
  for (const id of p1Desktops) await tb!.app.store.desktops.setFields(id, { host: 'host-a' });
  await page.goto(`${tb!.url}/helpdesk/desktops?pool=p1`);
  const row = page.locator('[data-desktop=p1-001]');
  await row.getByRole('button', { name: 'Snapshot' }).waitFor({ timeout: 20_000 });
  await until(async () => (await page.evaluate(() => fetch('/api/v1/hosts').then((r) => r.json()))).hosts.length === 1, 10_000, 'hosts loaded');
  assert.equal(await row.getByRole('button', { name: 'Migrate' }).count(), 0);
  await shot('hd-pages-desktops-no-migrate');
});

test('users, groups and images pages: create, disable, unlock, reset MFA, role, membership, entitlement, versions, publish, rollout', { timeout: 300_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const ada = await login(tb!, 'ada');
  try {
    // Groups: create with a member, entitle to a pool.
    await page.goto(`${tb!.url}/helpdesk/groups`);
    const gf = page.locator('[data-testid=group-form]');
    await gf.locator('[name=name]').fill('lab');
    await gf.locator('[name=members]').fill('una');
    await gf.getByRole('button', { name: 'Create group' }).click();
    await page.getByText('Group lab created.').waitFor();
    const g = page.locator('tr[data-group=lab]');
    await g.getByRole('button', { name: 'Entitle to pool' }).click();
    await page.locator('dialog.confirm[open] select').selectOption('p1');
    await page.locator('dialog.confirm[open]').getByRole('button', { name: 'Entitle' }).click();
    await page.getByText('lab is entitled to p1.').waitFor();
    await until(async () => (await g.locator('[data-testid=entitled]').textContent())?.includes('p1'), 20_000, 'entitlement shown');
    assert.deepEqual((await ada.get('/pools/p1')).body.pool.entitlements.groups, ['lab']);
    await shot('hd-pages-groups');

    // Users: a refused field is shown next to it in words; then created.
    await page.getByRole('link', { name: 'Users', exact: true }).click();
    await page.getByRole('button', { name: 'New user' }).click();
    const uf = page.locator('[data-testid=user-form]');
    await uf.locator('[name=id]').fill('nora');
    await uf.locator('[name=displayName]').fill('Nora <b>');
    await uf.locator('[name=password]').fill('a long enough password');
    await uf.getByRole('button', { name: 'Create' }).click();
    await uf.locator('[data-error-for=displayName]').waitFor({ timeout: 20_000 });
    assert.equal(await uf.locator('[name=id]').inputValue(), 'nora');
    await uf.locator('[name=displayName]').fill('Nora North');
    await uf.getByRole('button', { name: 'Create' }).click();
    await page.getByText('User nora created.').waitFor();
    const row = page.locator('tr[data-user=nora]');
    await row.waitFor({ timeout: 20_000 });
    const confirm = async (button: string, action: string, value?: string) => {
      await row.getByRole('button', { name: button, exact: true }).click();
      const d = page.locator('dialog.confirm[open]');
      if (value !== undefined) {
        // The dialog's field first (it renders after the click): then whether it is a list or a text box.
        await d.locator('select, input').first().waitFor();
        if (await d.locator('select').count()) await d.locator('select').selectOption(value);
        else await d.locator('input').fill(value);
      }
      await d.getByRole('button', { name: action }).click();
    };
    await confirm('Disable', 'Disable');
    await page.getByText('nora disabled.').waitFor();
    await until(async () => (await row.textContent())?.includes('disabled'), 20_000, 'shown disabled');
    await confirm('Unlock', 'Unlock');
    await page.getByText('nora unlocked.').waitFor();
    await confirm('Reset MFA', 'Reset second factors');
    await page.getByText("nora's second factors were reset.").waitFor();
    await confirm('Role', 'Change role', 'helpdesk');
    await page.getByText('nora is now helpdesk.').waitFor();
    await confirm('Groups', 'Save groups', 'lab');
    await page.getByText("nora's groups: lab.").waitFor();
    const nora = (await ada.get('/users/nora')).body.user;
    assert.deepEqual([nora.disabled, nora.role, nora.groups, nora.displayName], [true, 'helpdesk', ['lab'], 'Nora North']);
    const actions = ((await ada.get('/audit?target=nora&limit=20')).body.entries as { action: string }[]).map((e) => e.action);
    for (const a of ['user.update', 'user.unlock', 'user.mfa_reset']) assert.ok(actions.includes(a), `${a} audited: ${actions.join(', ')}`);
    assert.deepEqual([...(await ada.get('/groups/lab')).body.group.members].sort(), ['nora', 'una'], 'membership shows in the group');
    await shot('hd-pages-users');

    // Images: add a version, publish it, the pool's rollout shows it.
    await page.getByRole('link', { name: 'Images', exact: true }).click();
    const img = page.locator('[data-image=demo]');
    await img.locator('[data-version="1"]').waitFor({ timeout: 20_000 });
    await img.getByRole('button', { name: 'Add version' }).click();
    await page.locator('dialog.confirm[open] input').fill(imageDir);
    await page.locator('dialog.confirm[open]').getByRole('button', { name: 'Add version' }).click();
    await page.getByText('Version added to demo.').waitFor();
    await img.locator('[data-version="2"]').getByRole('button', { name: 'Publish' }).click();
    await page.locator('dialog.confirm[open]').getByRole('button', { name: 'Publish' }).click();
    await page.getByText('demo version 2 published; rollout started.').waitFor();
    await until(async () => (await img.locator('[data-rollout=p1]').textContent())?.includes('0/3 on demo:2'), 20_000, 'rollout progress of p1');
    assert.equal((await ada.get('/images/demo')).body.image.current, 2);
    await shot('hd-pages-images');
  } catch (e) {
    await shot('hd-pages-users-failed').catch(() => undefined);
    throw e;
  }
});
