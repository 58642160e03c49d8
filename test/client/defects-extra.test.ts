// test-lane: light (Xvnc and Chromium)
// Issue 13's defects D1-D8, one focused test each, in headless Chromium against a real broker
// (real Redis, reconcilers running) whose desktops stream a real X desktop (Xvnc). Each test
// asserts one defect and nothing the defect does not need, so each fails on the code before the
// fixes (914b0c6) for exactly its defect and passes after. Selectors and set-up use only what both
// versions have (rows found by their text, buttons by their names), so a test does not fail on
// the old code merely because a newer page looks different. The broader behaviour is tested in
// portal-defects, helpdesk-pages, viewer, shadowing and session-detail.
// One broker, one Xvnc, one browser for the file; everything is stopped by pid, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import type { TestBroker } from '../support/harness.ts';
import { login, until } from '../tunnel/support/fixtures.ts';
import { ARTIFACTS, deskMissing, startDesk, type Desk } from './support/desk.ts';

const missing = deskMissing();
let desk: Desk | undefined;
let tb: TestBroker | undefined;

before(async () => {
  if (missing) return;
  // Three desktops kept (min 3), so the pools table has three to count; alice is entitled.
  desk = await startDesk({ name: 'defects-extra', users: [['alice'], ['bob'], ['helen', 'helpdesk'], ['ada', 'admin']], pool: { name: 'p1', displayName: 'Office desktops', size: { min: 3, max: 5, spare: 1 }, entitlements: { users: ['alice', 'bob'], groups: [] } } });
  tb = desk.tb;
});

after(async () => desk?.close());

/** Waits for a condition but does not throw: the assertion after it says what went wrong. */
const settle = (fn: () => Promise<unknown>, ms: number) => until(fn, ms).then(() => true, () => false);
const activeDesktops = async () => (await tb!.app.store.desktops.listByPool('p1')).filter((d) => d.state !== 'deleted');
/** The pool form (Edit or New pool). */
const poolForm = (p: Page) => p.locator('form:has([name=displayName])');
const connState = (p: Page) => p.locator('[data-testid=conn-state]').textContent();

async function staffPage(user = 'ada', path = '/helpdesk/pools', viewport?: { width: number; height: number }): Promise<Page> {
  const p = await desk!.newPage(viewport);
  await desk!.uiLogin(p, user);
  await p.goto(`${tb!.url}${path}`);
  return p;
}

/** alice (or another user) launches p1 in the viewer; key instructions sent through the tunnel are recorded. */
async function openViewer(user = 'alice'): Promise<{ p: Page; sentKeys: [number, number][] }> {
  await until(async () => (await activeDesktops()).some((d) => d.state === 'ready'), 60_000, 'a ready desktop');
  const p = await desk!.newPage();
  const sentKeys: [number, number][] = [];
  p.on('websocket', (ws) => {
    if (!ws.url().includes('/api/v1/tunnel')) return;
    ws.on('framesent', (f) => {
      const text = typeof f.payload === 'string' ? f.payload : f.payload.toString('utf8');
      for (const m of text.matchAll(/3\.key,\d+\.(\d+),1\.([01]);/g)) sentKeys.push([Number(m[2]), Number(m[1])]);
    });
  });
  await desk!.uiLogin(p, user);
  await p.locator('[data-pool=p1]').getByRole('button', { name: /Launch|Reconnect/ }).click();
  await until(async () => (await connState(p)) === 'connected', 30_000, 'viewer connected');
  return { p, sentKeys };
}

// ---- D3 ----------------------------------------------------------------------------------
test('D3: the pools table counts the desktops of a pool (three desktops are 3), not every counter', { timeout: 150_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  // The pool keeps at least three; wait until none is in between states, so the count holds still.
  const states = async () => (await activeDesktops()).map((d) => d.state);
  await until(async () => { const s = await states(); return s.length >= 3 && s.every((x) => x === 'ready'); }, 120_000, 'at least three desktops, all ready')
    .catch(async (e) => { throw new Error(`${(e as Error).message}: ${(await states()).join(', ')}`); });
  const count = String((await activeDesktops()).length);
  const p = await staffPage();
  const cell = p.locator('tr[data-pool=p1] td').nth(3);
  await cell.waitFor({ timeout: 20_000 });
  await settle(async () => (await cell.textContent()) === count, 15_000);
  assert.equal((await cell.textContent())?.trim(), count, `the Desktops column of p1 (${count} desktops: ${(await states()).join(', ')})`);
  await p.context().close();
});

// ---- D1 ----------------------------------------------------------------------------------
let poolMax = 5;
/** Opens p1's Edit form, types a display name, and makes a change on the server the page sees live. */
async function typeThenLiveUpdate(p: Page, typed: string): Promise<void> {
  const ada = await login(tb!, 'ada');
  await p.locator('tr[data-pool=p1]').getByRole('button', { name: 'Edit' }).click();
  await poolForm(p).locator('[name=displayName]').fill(typed);
  const max = ++poolMax; // a new size each time, so the table changes
  assert.equal((await ada.post('/pools/p1/resize', { min: 3, max, spare: 1 })).status, 200);
  // The table shows the new size: the page has taken the live update (at most a 10 s poll).
  await until(async () => (await p.locator('tr[data-pool=p1] td').nth(2).textContent())?.includes(`/ ${max} /`), 30_000, 'the table follows the server');
}

test('D1: in Edit, a typed display name stays while a live update arrives', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await staffPage();
  await typeThenLiveUpdate(p, 'Typed while live');
  assert.equal(await poolForm(p).locator('[name=displayName]').inputValue(), 'Typed while live', 'the typed display name after a live update');
  await p.context().close();
});

test('D1: in Edit, Save after a live update writes what was typed, not the old value', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await staffPage();
  await typeThenLiveUpdate(p, 'Saved as typed');
  await poolForm(p).getByRole('button', { name: 'Save' }).click();
  await p.getByText('Pool p1 saved.').waitFor({ timeout: 10_000 }).catch(async (e) => {
    await p.screenshot({ path: join(ARTIFACTS, 'defects-extra-d1-save.png'), fullPage: true });
    throw e;
  });
  const ada = await login(tb!, 'ada');
  assert.equal((await ada.get('/pools/p1')).body.pool.displayName, 'Saved as typed', 'the display name the server has');
  await p.context().close();
});

test('D1: New pool: the provider defaults to the configured one ("fake"), not the absent "qemu"', { timeout: 60_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await staffPage();
  await p.getByRole('button', { name: 'New pool' }).click();
  const provider = poolForm(p).locator('[name=provider]');
  await provider.waitFor();
  await settle(async () => (await provider.inputValue()) === 'fake', 10_000);
  assert.equal(await provider.inputValue(), 'fake', 'the default provider');
  await p.context().close();
});

test('D1: New pool: a refused save keeps what was typed', { timeout: 60_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await staffPage();
  await p.getByRole('button', { name: 'New pool' }).click();
  const input = (name: string) => poolForm(p).locator(`[name=${name}]`);
  await input('name').fill('p-refused');
  await input('displayName').fill('Typed before refusal');
  await input('naming').fill('no-counter'); // refused by the server: a name needs {n}
  await poolForm(p).getByRole('button', { name: 'Save' }).click();
  // The refusal is shown (as a banner or next to the field).
  await p.locator('.banner.bad, [data-error-for], .field-error').first().waitFor({ timeout: 15_000 });
  assert.equal(await input('displayName').inputValue(), 'Typed before refusal', 'the display name after the refusal');
  assert.equal(await input('naming').inputValue(), 'no-counter', 'the refused value itself');
  await p.context().close();
});

// ---- D8: pool-name pattern -------------------------------------------------------------------
test('D8: the New pool name pattern is a valid regular expression in Chromium (and refuses Bad_Name)', { timeout: 60_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await desk!.newPage();
  const console: string[] = [];
  p.on('console', (m) => console.push(m.text()));
  await desk!.uiLogin(p, 'ada');
  await p.goto(`${tb!.url}/helpdesk/pools`);
  await p.getByRole('button', { name: 'New pool' }).click();
  const name = poolForm(p).locator('[name=name]');
  await name.fill('Bad_Name');
  const valid = await name.evaluate((el) => (el as HTMLInputElement).checkValidity());
  assert.deepEqual(console.filter((m) => /Pattern attribute value .* is not a valid regular expression/.test(m)), [], 'Chromium compiles the pattern');
  assert.equal(valid, false, 'Bad_Name is refused by the pattern');
  await p.context().close();
});

// ---- D4 ----------------------------------------------------------------------------------
test('D4: Migrate is not offered when the provider has no other host', { timeout: 60_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await staffPage('ada', '/helpdesk/desktops');
  const row = p.locator('tr[data-desktop]').first();
  await row.getByRole('button', { name: 'Snapshot' }).waitFor({ timeout: 20_000 });
  const hosts = await p.evaluate<{ hosts: { name: string }[] }>(`fetch('/api/v1/hosts').then((r) => r.json())`);
  assert.equal(hosts.hosts.length, 1, 'the fake provider has one host');
  assert.equal(await row.getByRole('button', { name: 'Migrate' }).count(), 0, 'a Migrate button');
  await p.context().close();
});

// ---- D2 ----------------------------------------------------------------------------------
async function filesPage(): Promise<{ p: Page; home: string; row: (name: string) => ReturnType<Page['locator']> }> {
  const home = tb!.app.shares.shares.shares[0]!.homePath('alice');
  const p = await desk!.newPage();
  await p.goto(`${tb!.url}/files`);
  await desk!.uiLogin(p, 'alice', { goto: false });
  await p.goto(`${tb!.url}/files`);
  const row = (name: string) => p.locator('[data-testid=file-row]').filter({ has: p.getByRole('link', { name: new RegExp(`^\\W*${name}/?$`) }) });
  return { p, home, row };
}

test('D2: My files: a folder is not a download link (it looks like a folder)', { timeout: 60_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const home = tb!.app.shares.shares.shares[0]!.homePath('alice');
  mkdirSync(join(home, 'Looks'), { recursive: true, mode: 0o700 });
  const { p, row } = await filesPage();
  await row('Looks').waitFor({ timeout: 15_000 });
  assert.equal(await row('Looks').locator('a[download]').count(), 0, 'the folder is a download link');
  await p.context().close();
});

test('D2: My files: clicking a folder opens it in the page (its files listed), nothing is downloaded', { timeout: 60_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const home = tb!.app.shares.shares.shares[0]!.homePath('alice');
  mkdirSync(join(home, 'Opens'), { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'Opens/inside.txt'), 'inside');
  const { p, row } = await filesPage();
  const downloads: string[] = [];
  p.on('download', (d) => downloads.push(d.suggestedFilename()));
  await row('Opens').getByRole('link').click();
  const opened = await settle(() => row('inside.txt').count().then((n) => n > 0), 10_000);
  assert.deepEqual(downloads, [], 'a download instead of the folder');
  assert.ok(opened, 'inside.txt listed after clicking the folder');
  await p.context().close();
});

test('D2: My files: deleting a non-empty folder removes it from the share', { timeout: 60_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const home = tb!.app.shares.shares.shares[0]!.homePath('alice');
  mkdirSync(join(home, 'Full/deeper'), { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'Full/deeper/x.txt'), 'x');
  const { p, row } = await filesPage();
  p.on('dialog', (d) => void d.accept());
  await row('Full').getByRole('button', { name: 'Delete' }).click();
  const gone = await settle(async () => !existsSync(join(home, 'Full')), 10_000);
  assert.ok(gone, 'the non-empty folder is still on the share');
  await p.context().close();
});

// ---- D5 ----------------------------------------------------------------------------------
/** alice in her desktop, logged off by the helpdesk; waits until the viewer has stopped trying. */
async function loggedOffByHelpdesk(): Promise<Page> {
  const { p } = await openViewer('alice');
  const [s] = await tb!.app.broker.sessions.listLive({ user: 'alice' });
  assert.ok(s);
  const helen = await login(tb!, 'helen');
  assert.equal((await helen.post(`/sessions/${s.id}/logoff`)).status, 200);
  // Either version ends with a way back to the list of desktops.
  await p.getByRole('button', { name: /^Back/ }).first().waitFor({ timeout: 60_000 });
  return p;
}

test('D5: after a helpdesk logoff the viewer offers no "Try again"', { timeout: 150_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await loggedOffByHelpdesk();
  assert.equal(await p.getByRole('button', { name: 'Try again' }).count(), 0, 'a Try again button');
  await p.context().close();
});

test('D5: after a helpdesk logoff the portal does not say the desktop keeps running', { timeout: 150_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await loggedOffByHelpdesk();
  await p.getByRole('button', { name: /^Back/ }).first().click();
  await p.locator('[data-pool=p1]').waitFor({ timeout: 15_000 });
  const text = await p.locator('body').innerText();
  assert.doesNotMatch(text, /keeps running|launch it again to reconnect/i, 'what the user reads');
  await p.context().close();
});

// ---- D6 ----------------------------------------------------------------------------------
let shadow: { user: Page; helpdesk: Page; session: string; desktop: string } | undefined;

async function shadowBob(): Promise<NonNullable<typeof shadow>> {
  if (shadow) return shadow;
  const { p: user } = await openViewer('bob');
  const [s] = await tb!.app.broker.sessions.listLive({ user: 'bob' });
  assert.ok(s);
  const desktop = (await tb!.app.store.desktops.get(s.desktop))!.name;
  const helpdesk = await staffPage('helen', '/helpdesk/sessions');
  await helpdesk.locator(`tr[data-session="${s.id}"]`).getByRole('button', { name: 'Shadow' }).click();
  await until(async () => (await connState(helpdesk)) === 'connected', 30_000, 'shadow viewer connected');
  shadow = { user, helpdesk, session: s.id, desktop };
  return shadow;
}

test('D6: the user is told that the helpdesk watches, and by whom', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const { user } = await shadowBob();
  const told = await settle(async () => /helen/.test(await user.locator('body').innerText()) && /watch/i.test(await user.locator('body').innerText()), 10_000);
  assert.ok(told, "the user's page names helen watching");
});

test("D6: the shadow viewer's title names the user and the desktop, not the session id", { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const { helpdesk, session, desktop } = await shadowBob();
  const title = ((await helpdesk.locator('.toolbar .title').textContent()) ?? '').trim();
  assert.ok(!title.includes(session), `the title shows the session id: ${title}`);
  assert.match(title, new RegExp(`bob on ${desktop}`), 'the title names user and desktop');
  await shadow!.helpdesk.context().close();
  await shadow!.user.context().close();
});

// ---- D7 + D8 tab title ---------------------------------------------------------------------
let viewer: { p: Page; sentKeys: [number, number][] } | undefined;
const aliceViewer = async () => (viewer ??= await openViewer('alice'));

test('D8: the tab title names the open desktop', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const { p } = await aliceViewer();
  const desktop = (await p.locator('.toolbar .title').textContent())!.trim();
  assert.ok(desktop, 'the toolbar names the desktop');
  assert.match(await p.title(), new RegExp(desktop), 'the tab title');
});

test('D7: "Send to desktop" confirms the copy', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const { p } = await aliceViewer();
  await p.getByRole('button', { name: 'Clipboard', exact: true }).click();
  await p.locator('textarea[name=clipboard]').fill('hello there');
  await p.getByRole('button', { name: 'Send to desktop' }).click();
  const confirmed = await settle(() => p.getByText(/Copied to the desktop clipboard/).count().then((n) => n > 0), 5000);
  assert.ok(confirmed, 'a confirmation after Send to desktop');
});

test('D7: clipboard text can be typed into a console without a clipboard, with Shift pressed for shifted characters', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const { p, sentKeys } = await aliceViewer();
  if (!(await p.locator('textarea[name=clipboard]').isVisible())) await p.getByRole('button', { name: 'Clipboard', exact: true }).click();
  await p.locator('textarea[name=clipboard]').fill('A$b');
  const from = sentKeys.length;
  const typeButton = p.getByRole('button', { name: 'Type as keystrokes' });
  assert.equal(await typeButton.count(), 1, 'a way to type the clipboard as keystrokes (a text console has no clipboard)');
  await typeButton.click();
  await until(() => sentKeys.slice(from).some(([down, k]) => down === 0 && k === 0x62), 10_000, 'b sent');
  const wire = sentKeys.slice(from);
  for (const ch of ['A', '$']) {
    const i = wire.findIndex(([down, k]) => down === 1 && k === ch.charCodeAt(0));
    assert.deepEqual(wire[i - 1], [1, 0xffe1], `Shift_L pressed before ${ch}`);
  }
  await p.context().close();
});

// ---- D8 (portal) ---------------------------------------------------------------------------
test('D8: the page has an icon (declared and served)', { timeout: 60_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await desk!.newPage();
  await p.goto(`${tb!.url}/`);
  const icon = await p.locator('link[rel=icon]').getAttribute('href', { timeout: 5000 }).catch(() => null);
  assert.ok(icon, 'a <link rel=icon>');
  const status = await p.evaluate<number>(`fetch(${JSON.stringify(icon)}).then((r) => r.status)`);
  assert.equal(status, 200, 'the icon is served');
  await p.context().close();
});

test('D8: a wrong password raises no script error', { timeout: 60_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await desk!.newPage();
  const errors: string[] = [];
  p.on('pageerror', (e) => errors.push(e.message));
  await desk!.uiLogin(p, 'ada', { password: 'wrong password', waitLoggedIn: false });
  await p.locator('[data-testid=login-error]').waitFor({ timeout: 10_000 });
  // The handler that showed the message has run; a frame's round trip delivers what it threw.
  await p.evaluate(`new Promise((r) => requestAnimationFrame(() => r(0)))`);
  assert.deepEqual(errors, [], 'script errors');
  await p.context().close();
});

test('D8: an admin without desktops lands on the helpdesk console, not on "not entitled"', { timeout: 60_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await desk!.newPage();
  await desk!.uiLogin(p, 'ada');
  const landed = await settle(async () => new URL(p.url()).pathname.startsWith('/helpdesk'), 10_000);
  assert.ok(landed, `landed on ${new URL(p.url()).pathname}: ${(await p.locator('main').innerText()).slice(0, 120)}`);
  await p.context().close();
});

test('D8: at 390 px the helpdesk console pages do not scroll sideways', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await staffPage('ada', '/helpdesk', { width: 390, height: 844 });
  const wide: string[] = [];
  for (const path of ['/helpdesk', '/helpdesk/sessions', '/helpdesk/desktops', '/helpdesk/pools']) {
    await p.goto(`${tb!.url}${path}`);
    await p.locator('main h1, section h1, h1').first().waitFor({ timeout: 15_000 });
    await p.locator('table tbody tr').first().waitFor({ timeout: 10_000 }).catch(() => undefined);
    const w = await p.evaluate<number>(`Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)`);
    if (w > 390) wide.push(`${path}: ${w}px`);
  }
  assert.deepEqual(wide, [], 'pages wider than 390 px');
  await p.context().close();
});

test('D8: a kiosk does not show the previous user\'s desktop name after they leave', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  await until(async () => (await activeDesktops()).some((d) => d.state === 'ready'), 60_000, 'a ready desktop');
  const k = await desk!.newPage();
  await k.goto(`${tb!.url}/?kiosk=1`);
  await desk!.uiLogin(k, 'alice', { goto: false, waitLoggedIn: false });
  await until(async () => (await connState(k)) === 'connected', 30_000, 'kiosk viewer connected');
  const desktop = (await k.locator('.toolbar .title').textContent())!.trim();
  await k.getByRole('button', { name: 'Disconnect' }).click();
  await k.locator('input[name=username]').waitFor({ timeout: 15_000 });
  await k.getByText(/Disconnected/).first().waitFor({ timeout: 5000 }).catch(() => undefined);
  assert.doesNotMatch(await k.locator('body').innerText(), new RegExp(desktop), 'the login page names the last desktop');
  await k.context().close();
});

// ---- D8 (overview history) -----------------------------------------------------------------
test('D8: the overview chart in a second browser context shows the history from before it was opened (not only what that tab saw)', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  // One tab watches the overview until its chart is drawn.
  const first = await staffPage('helen', '/helpdesk');
  await first.locator('figure.chart svg').waitFor({ timeout: 60_000 });
  // A second context (none of the first tab's storage) opens the overview later.
  const opened = Date.now();
  const second = await staffPage('helen', '/helpdesk');
  await second.getByRole('heading').first().waitFor();
  const shown = await settle(() => second.locator('figure.chart svg').count().then((n) => n > 0), 5000);
  assert.ok(shown, 'the chart in the second context within 5 s');
  // Where its time axis starts: the label under its left end (a local time of day, to the second).
  const start = await second.evaluate<{ label: string; t: number }>(`(() => {
    const label = document.querySelectorAll('figure.chart svg text')[2].textContent;
    return { label, t: new Date(new Date().toDateString() + ' ' + label).getTime() };
  })()`);
  assert.ok(Number.isFinite(start.t), `a time under the chart: ${start.label}`);
  assert.ok(start.t < opened - 2000, `the second context's chart starts at ${start.label}, not before it was opened (${new Date(opened).toLocaleTimeString('en')})`);
  await first.context().close();
  await second.context().close();
});
