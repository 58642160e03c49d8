// The helpdesk console's tables in headless Chromium against a real broker and real Redis:
// desktops searched, sorted and paged by the server with the view in the URL (a reload or a
// shared link shows the same rows), bulk refresh with one confirmation and a summary (each
// desktop audited), the users table, and bulk logoff of three real sessions. One broker and
// one browser for the file; screenshots go to VDI_TEST_ARTIFACTS (default /tmp/vdi-artifacts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
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

/** n desktops straight into the store, ready (no provider work: the table only reads them). */
async function desktops(pool: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await tb!.app.store.desktops.provisionSpare(pool, Date.now());
    assert.ok('id' in r, JSON.stringify(r));
    assert.ok((await tb!.app.store.desktops.transition(r.id, 'settled', { expect: ['provisioning'] })).ok);
    ids.push(r.id);
  }
  return ids;
}

before(async () => {
  if (missing) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  tb = await startTestBroker({ name: 'hd-tables' });
  await tb.addUser('helen', 'helpdesk');
  for (const u of ['una', 'uwe', 'ute']) await tb.addUser(u);
  await tb.app.broker.pools.create(tb.pool({ name: 'tp', size: { min: 0, max: 100, spare: 0 } }), SYSTEM_ACTOR);
  await tb.app.broker.pools.create(tb.pool({ name: 'op', naming: 'other-{n:02}' }), SYSTEM_ACTOR);
  await tb.app.broker.pools.create(tb.pool({ name: 'sp', naming: 'sess-{n:02}', entitlements: { users: ['una', 'uwe', 'ute'], groups: [] } }), SYSTEM_ACTOR);
  await desktops('tp', 60);
  await desktops('op', 3);
  chrome = await launchChromium<Browser>();
  ctx = await chrome.browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await ctx.newPage();
  await formLogin(page, tb.url, 'helen');
  await page.getByRole('link', { name: 'Helpdesk' }).waitFor();
});

after(async () => {
  await ctx?.close().catch(() => undefined);
  await chrome?.stop();
  await tb?.close();
});

const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
const names = () => page.locator('[data-testid=desktops-table] tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-desktop')));
const pageInfo = () => page.locator('[data-testid=desktops-table] [data-testid=page-info]').textContent();

test('desktops: server-side pages, sort, search and filters live in the URL; bulk refresh asks once and reports each', { timeout: 300_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  try {
    // The API: one page with the total; the old shape stays for existing callers.
    const helen = await login(tb!, 'helen');
    const r = await helen.get('/desktops?pool=tp&limit=5&sort=name&order=desc');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.total, 60);
    assert.deepEqual(r.body.items.map((d: { name: string }) => d.name), ['tp-060', 'tp-059', 'tp-058', 'tp-057', 'tp-056']);
    assert.equal(r.body.nextCursor, '5');
    const next = await helen.get(`/desktops?pool=tp&limit=5&sort=name&order=desc&cursor=${r.body.nextCursor}`);
    assert.equal(next.body.items[0].name, 'tp-055');
    assert.equal((await helen.get('/desktops?pool=op')).body.desktops.length, 3);
    assert.equal((await helen.get('/desktops?limit=201')).body.error.field, 'limit');

    // A shared link: pool filter, sort by name descending, page 2.
    await page.goto(`${tb!.url}/helpdesk/desktops?pool=tp&sort=name&order=desc&page=2`);
    await until(async () => (await pageInfo())?.startsWith('51–60 of 60'), 20_000, 'page 2 of the pool tp');
    assert.deepEqual((await names()).slice(0, 3), ['tp-010', 'tp-009', 'tp-008']);
    assert.equal(await page.locator('select[name=pool]').inputValue(), 'tp');
    // Page 1's answer is held back in the browser: while page 2's rows are on screen, the pager
    // still names them (it moved ahead of the rows before).
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    let asked = false;
    await page.route((u) => u.pathname === '/api/v1/desktops' && u.searchParams.get('offset') !== '50' && u.searchParams.get('pool') === 'tp', async (route) => {
      asked = true;
      await held;
      await route.continue();
    });
    await page.getByRole('button', { name: 'Previous' }).click();
    await until(async () => asked, 20_000, "page 1's request sent");
    assert.match((await pageInfo()) ?? '', /^51–60 of 60/, 'the pager names the rows on screen while the next page loads');
    assert.equal((await names())[0], 'tp-010');
    release();
    await until(async () => (await pageInfo())?.startsWith('1–50 of 60'), 20_000, 'back to page 1');
    await page.unrouteAll();
    assert.ok(!new URL(page.url()).searchParams.has('page'));
    // The pager names the rows on screen: once it says 1–50, the rows are page 1's.
    assert.equal((await names())[0], 'tp-060');

    // Sorting by a header: ascending by name.
    await page.locator('button[data-sort=name]').click();
    await until(async () => (await names())[0] === 'tp-001', 20_000, 'sorted ascending');
    assert.equal(new URL(page.url()).searchParams.get('order'), 'asc');
    assert.equal(await page.locator('th[aria-sort=ascending]').count(), 1);

    // Free-text search (the server filters); the URL keeps it and a reload shows the same rows.
    await page.locator('input[name=q]').fill('tp-05');
    await until(async () => (await pageInfo())?.startsWith('1–10 of 10'), 20_000, 'search results');
    assert.equal(new URL(page.url()).searchParams.get('q'), 'tp-05');
    await page.reload();
    await until(async () => (await pageInfo())?.startsWith('1–10 of 10'), 20_000, 'the same view after a reload');
    assert.deepEqual(await names(), Array.from({ length: 10 }, (_, i) => `tp-05${i}`));
    assert.equal(await page.locator('input[name=q]').inputValue(), 'tp-05');
    await shot('hd-tables-desktops-search');

    // Bulk refresh of two selected rows: one confirmation, one summary, each desktop audited.
    await page.locator('[data-testid=desktops-table] tbody input[type=checkbox]').nth(0).check();
    await page.locator('[data-testid=desktops-table] tbody input[type=checkbox]').nth(1).check();
    await page.locator('[data-testid=selected-count]').getByText('2 selected').waitFor();
    await page.locator('.bulk-bar').getByRole('button', { name: 'Refresh' }).click();
    const dialog = page.locator('dialog.confirm[open]');
    await dialog.getByText('tp-050, tp-051').waitFor();
    await shot('hd-tables-bulk-confirm');
    await dialog.getByRole('button', { name: 'Refresh 2' }).click();
    await page.getByText('Refresh: 2 of 2 being refreshed.').waitFor();
    const [a, b] = (await helen.get('/desktops?pool=tp&limit=2&q=tp-05&sort=name')).body.items;
    assert.deepEqual([a.state, b.state], ['refreshing', 'refreshing']);
    const audit = (await helen.get('/audit?action=desktop.refresh&limit=10')).body.entries as { target: string; actor: string }[];
    assert.deepEqual(audit.map((e) => e.target).sort(), [a.id, b.id].sort());
    assert.ok(audit.every((e) => e.actor === 'helen'));
    // The state filter (in the URL too) shows them.
    await page.locator('select[name=state]').selectOption('refreshing');
    await until(async () => (await pageInfo())?.startsWith('1–2 of 2'), 20_000, 'state filter');
    assert.equal(new URL(page.url()).searchParams.get('state'), 'refreshing');
    await shot('hd-tables-bulk-done');
  } catch (e) {
    await shot('hd-tables-desktops-failed').catch(() => undefined);
    throw e;
  }
});

test('users and audit tables: search, sort and filters on the server, in the URL', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  await page.goto(`${tb!.url}/helpdesk/users?sort=id&order=desc&q=u`);
  const ids = () => page.locator('[data-testid=users-table] tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-user')));
  await until(async () => (await ids()).join() === 'uwe,ute,una', 20_000, 'users matching "u", newest name first');
  await page.locator('select[name=role]').selectOption('helpdesk');
  await until(async () => (await ids()).length === 0, 20_000, 'no helpdesk user matches "u"');
  await page.locator('input[name=q]').fill('');
  await until(async () => (await ids()).join() === 'helen', 20_000, 'the helpdesk user');
  assert.equal(new URL(page.url()).searchParams.get('role'), 'helpdesk');

  // The audit table: the search goes to the server and into the URL; a shared link shows it.
  await page.goto(`${tb!.url}/helpdesk/audit?q=REFRESH`);
  const actions = () => page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-audit')));
  await until(async () => { const a = await actions(); return a.length === 2 && a.every((x) => x === 'desktop.refresh'); }, 20_000, 'the two refreshes of the first test');
  await page.locator('input[name=q]').fill('auth.login');
  await until(async () => new URL(page.url()).searchParams.get('q') === 'auth.login', 20_000, 'search in the URL');
  await until(async () => { const a = await actions(); return a.length > 0 && a.every((x) => x === 'auth.login'); }, 20_000, 'only logins');
});

test('bulk logoff of three sessions: one confirmation, three sessions ended, a summary', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  await desktops('sp', 3);
  const sids: string[] = [];
  for (const u of ['una', 'uwe', 'ute']) {
    const r = await tb!.app.store.sessions.assign('sp', u, '192.0.2.7', Date.now());
    assert.equal(r.outcome, 'assigned', JSON.stringify(r));
    sids.push((r as { sessionId: string }).sessionId);
  }
  try {
    // The API pages sessions too.
    const helen = await login(tb!, 'helen');
    const pageOf = await helen.get('/sessions?pool=sp&limit=2&sort=user');
    assert.equal(pageOf.body.total, 3);
    assert.deepEqual(pageOf.body.items.map((s: { user: string }) => s.user), ['una', 'ute']);

    await page.goto(`${tb!.url}/helpdesk/sessions?pool=sp`);
    for (const u of ['una', 'uwe', 'ute']) await page.locator(`tr[data-user=${u}]`).waitFor();
    await page.getByRole('checkbox', { name: 'Select all on this page' }).check();
    await page.locator('[data-testid=selected-count]').getByText('3 selected').waitFor();
    await page.locator('.bulk-bar').getByRole('button', { name: 'Log off' }).click();
    const dialog = page.locator('dialog.confirm[open]');
    await dialog.getByRole('button', { name: 'Log off 3' }).click();
    await page.getByText(/Log off: 3 of 3 logged off\./).waitFor();
    for (const id of sids) assert.equal((await tb!.app.store.sessions.get(id))?.state, 'ended');
    const audit = (await helen.get('/audit?action=session.logoff&limit=10')).body.entries as { target: string }[];
    assert.deepEqual(audit.map((e) => e.target).sort(), [...sids].sort());
    await shot('hd-tables-bulk-logoff');
  } catch (e) {
    await shot('hd-tables-logoff-failed').catch(() => undefined);
    throw e;
  }
});
