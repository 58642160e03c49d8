// Accessibility, dark mode, languages and phone width of the web client in headless Chromium
// against a real broker and real Redis: axe-core (injected into the page) over every page of the
// portal (login, enrolment, my desktops, files, sign-in security), the viewer streaming a real
// desktop (Xvnc) and every page of the helpdesk console (the routes are read from
// client/src/main.tsx and client/src/helpdesk/Console.tsx, so new pages are covered), in light
// and dark colour schemes, with no `serious` or `critical` violation; the dark scheme gives a
// dark background; the browser's German gives German text and <html lang="de"> and the header's
// switch changes the language (kept across reloads); a helpdesk confirmation, its outcome and a
// refused login are German too; at 390 px the console and the viewer do not
// scroll sideways and the helpdesk navigation collapses into a menu button.
// One broker, one Xvnc and one browser for the file; screenshots go to VDI_TEST_ARTIFACTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { PASSWORD, type TestBroker } from '../support/harness.ts';
import { until } from '../tunnel/support/fixtures.ts';
import { deskMissing, startDesk, type Desk } from './support/desk.ts';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const ARTIFACTS = process.env.VDI_TEST_ARTIFACTS || '/tmp/vdi-artifacts';
const missing = deskMissing();
let desk: Desk | undefined;
let tb: TestBroker | undefined;

/** Client routes from the sources: the helpdesk's pages and the portal's fixed paths. */
function routes(): { portal: string[]; helpdesk: string[] } {
  const consoleSrc = readFileSync('client/src/helpdesk/Console.tsx', 'utf8');
  const mainSrc = readFileSync('client/src/main.tsx', 'utf8');
  const helpdesk = [...consoleSrc.matchAll(/path: '(\/helpdesk[^']*)'/g)].map((m) => m[1]!);
  const portal = [...new Set(['/', ...[...mainSrc.matchAll(/path === '(\/[a-z-]+)'/g)].map((m) => m[1]!)])].filter((p) => p !== '/enroll');
  return { portal, helpdesk };
}

before(async () => {
  if (missing) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  desk = await startDesk({ name: 'a11y', users: [['ada', 'admin']], pool: { name: 'p1', displayName: 'Office desktops', size: { min: 0, max: 2, spare: 1 }, entitlements: { users: ['ada'], groups: [] } }, xvnc: { width: 800, height: 500 } });
  tb = desk.tb;
});

after(async () => desk?.close());

function newPage(opts: { width?: number; height?: number; locale?: string; storageState?: Awaited<ReturnType<BrowserContext['storageState']>> } = {}): Promise<Page> {
  return desk!.newPage({ width: opts.width ?? 1280, height: opts.height ?? 900 }, { locale: opts.locale ?? 'en-US', storageState: opts.storageState, bypassCSP: true });
}

async function logIn(p: Page): Promise<void> {
  await p.goto(`${tb!.url}/`);
  await p.locator('input[name=username]').fill('ada');
  await p.locator('input[name=password]').fill(PASSWORD);
  await p.locator('form button.primary').click();
  await p.locator('header nav').waitFor({ state: 'attached' });
}

/** The page has rendered its content: a heading (or the viewer), no loading spinner. */
async function settled(p: Page): Promise<void> {
  await until(async () => p.evaluate<boolean>(`(() => !!document.querySelector('h1, h2, .viewer, form') && !/Loading…|Laden…/.test(document.body.innerText))()`), 20_000, `page ${p.url()} rendered`);
}

interface Violation { id: string; impact: string; help: string; nodes: { target: string[]; failureSummary: string }[] }

/** axe-core over the page: the serious and critical violations, printed readably. */
async function axe(p: Page): Promise<string[]> {
  if (!(await p.evaluate<boolean>(`typeof window.axe === 'object'`))) await p.addScriptTag({ path: AXE });
  const v = await p.evaluate<Violation[]>(`axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations)`);
  return v.filter((x) => x.impact === 'serious' || x.impact === 'critical').map((x) => `${x.impact} ${x.id} (${x.help}): ${x.nodes.slice(0, 5).map((n) => `${n.target.join(' ')} — ${n.failureSummary.replace(/\s+/g, ' ')}`).join(' | ')}`);
}

const background = (p: Page) => p.evaluate<string>(`getComputedStyle(document.body).backgroundColor`);
/** Relative luminance of an rgb() colour (0 black .. 1 white). */
function luminance(rgb: string): number {
  const [r, g, b] = (rgb.match(/\d+(\.\d+)?/g) ?? ['255', '255', '255']).slice(0, 3).map((c) => {
    const s = Number(c) / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}

test('axe finds no serious or critical violation on any portal, viewer or helpdesk page, in light and dark mode; dark mode is dark', { timeout: 600_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const { portal, helpdesk } = routes();
  assert.ok(helpdesk.length >= 10 && portal.length >= 3, `routes found: ${portal} ${helpdesk}`);
  const failures: string[] = [];
  for (const scheme of ['light', 'dark'] as const) {
    const p = await newPage();
    await p.emulateMedia({ colorScheme: scheme });
    const check = async (what: string) => {
      for (const v of await axe(p)) failures.push(`[${scheme}] ${what}: ${v}`);
    };
    // Before login: the login page and enrolment.
    await p.goto(`${tb!.url}/`);
    await p.locator('input[name=username]').waitFor();
    await check('/ (login)');
    const bg = luminance(await background(p));
    if (scheme === 'dark') assert.ok(bg < 0.05, `dark mode background is dark (luminance ${bg.toFixed(3)})`);
    else assert.ok(bg > 0.8, `light mode background is light (luminance ${bg.toFixed(3)})`);
    // Enrolment (a page of its own: it changes what this browser is, so another context).
    const enroll = await newPage();
    await enroll.emulateMedia({ colorScheme: scheme });
    await enroll.goto(`${tb!.url}/enroll`);
    await settled(enroll);
    for (const v of await axe(enroll)) failures.push(`[${scheme}] /enroll: ${v}`);
    await enroll.context().close();
    await logIn(p);
    for (const path of [...portal, ...helpdesk, '/helpdesk/sessions/no-such-session', '/helpdesk/shadow/no-such-session']) {
      await p.goto(`${tb!.url}${path}`);
      await settled(p);
      if (path.startsWith('/helpdesk')) await p.locator('[data-testid=live-state]').or(p.locator('.shadow-bar, main h1')).first().waitFor();
      await check(path);
      if (scheme === 'dark') await p.screenshot({ path: join(ARTIFACTS, `a11y-dark${path.replace(/\//g, '_')}.png`), fullPage: true });
    }
    // The viewer on a real desktop, and its toolbar menus open.
    await p.goto(`${tb!.url}/`);
    await p.locator('[data-pool=p1]').getByRole('button', { name: /Launch|Reconnect/ }).click();
    await until(async () => (await p.locator('[data-testid=conn-state]').textContent()) === 'connected', 60_000, 'viewer connected');
    await check('viewer (connected)');
    await p.screenshot({ path: join(ARTIFACTS, `a11y-${scheme}-viewer.png`) });
    await p.context().close();
  }
  assert.deepEqual(failures, [], `axe violations:\n${failures.join('\n')}`);
});

test('German from the browser: German text and <html lang="de">; the header switch changes the language and is kept', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const en = await newPage();
  await logIn(en);
  assert.equal(await en.evaluate(`document.documentElement.lang`), 'en');
  const de = await newPage({ locale: 'de-DE', storageState: await en.context().storageState() });
  await de.goto(`${tb!.url}/helpdesk/sessions`);
  await de.getByRole('heading', { name: 'Sitzungen' }).waitFor();
  assert.equal(await de.evaluate(`document.documentElement.lang`), 'de');
  assert.ok(await de.getByRole('navigation', { name: 'Helpdesk' }).getByRole('link', { name: 'Übersicht' }).count());
  // The switch: English, also after a reload (localStorage), then back.
  await de.getByRole('combobox', { name: 'Sprache' }).selectOption('en');
  await de.getByRole('heading', { name: 'Sessions' }).waitFor();
  assert.equal(await de.evaluate(`document.documentElement.lang`), 'en');
  await de.reload();
  await de.getByRole('heading', { name: 'Sessions' }).waitFor();
  await de.getByRole('combobox', { name: 'Language' }).selectOption('de');
  await de.getByRole('heading', { name: 'Sitzungen' }).waitFor();
  await de.screenshot({ path: join(ARTIFACTS, 'a11y-german-sessions.png') });
});

test('German: a helpdesk confirmation and its outcome, and a refused login, are in German', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const en = await newPage();
  await logIn(en);
  const de = await newPage({ locale: 'de-DE', storageState: await en.context().storageState() });
  await de.goto(`${tb!.url}/helpdesk/pools`);
  const row = de.locator('tr[data-pool=p1]');
  const dialog = de.locator('dialog.confirm[open]');
  await row.getByRole('button', { name: 'Wartung ein' }).click();
  await dialog.getByRole('heading', { name: 'Wartung von p1 beginnen' }).waitFor();
  assert.match((await dialog.textContent()) ?? '', /Benutzer können keine neuen Sitzungen starten; laufende gehen weiter\./);
  await dialog.getByRole('button', { name: 'Wartung beginnen' }).click();
  await de.getByText('Wartung für p1 eingeschaltet.').waitFor();
  await de.screenshot({ path: join(ARTIFACTS, 'a11y-german-pool-maintenance.png') });
  // Back as it was: the other tests launch desktops of p1.
  await row.getByRole('button', { name: 'Wartung aus' }).click();
  await dialog.getByRole('button', { name: 'Wartung beenden' }).click();
  await de.getByText('Wartung für p1 ausgeschaltet.').waitFor();
  // The portal: a refused login (a user that does not exist, so no account gets locked).
  const anon = await newPage({ locale: 'de-DE' });
  await anon.goto(`${tb!.url}/`);
  await anon.locator('input[name=username]').fill('nobody');
  await anon.locator('input[name=password]').fill('not the password');
  await anon.locator('form button.primary').click();
  await anon.getByText('Falscher Benutzername oder falsches Passwort.').waitFor();
});

test('at 390 px the console and the viewer do not scroll sideways; the helpdesk navigation is a menu button; Tab reaches the skip link first', { timeout: 300_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const { helpdesk } = routes();
  const p = await newPage({ width: 390, height: 844 });
  await logIn(p);
  const wide: string[] = [];
  const width = () => p.evaluate<number>(`Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)`);
  for (const path of helpdesk) {
    await p.goto(`${tb!.url}${path}`);
    await settled(p);
    await p.locator('[data-testid=live-state]').waitFor();
    const w = await width();
    if (w > 390) {
      // Name the elements that stick out, for the failure message.
      const out = await p.evaluate<string[]>(`[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 391 && ![...e.children].some((c) => c.getBoundingClientRect().right > 391)).slice(0, 5).map((e) => e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).split(' ').join('.') : '') + ' ' + Math.round(e.getBoundingClientRect().right) + 'px')`);
      wide.push(`${path}: ${w}px (${out.join(', ')})`);
    }
  }
  assert.deepEqual(wide, [], 'pages wider than 390 px');
  // The navigation is collapsed behind a menu button, which opens it.
  const nav = p.getByRole('navigation', { name: 'Helpdesk' });
  const menu = nav.getByRole('button', { expanded: false });
  assert.equal(await nav.getByRole('link', { name: 'Sessions' }).isVisible(), false, 'links hidden behind the menu');
  await menu.click();
  await nav.getByRole('link', { name: 'Sessions' }).click();
  await p.getByRole('heading', { name: 'Sessions' }).waitFor();
  assert.equal(await nav.getByRole('link', { name: 'Sessions' }).isVisible(), false, 'the menu closes after navigating');
  // Keyboard: on a fresh page the first Tab lands on the skip link, which moves to the main content.
  await p.reload();
  await p.getByRole('heading', { name: 'Sessions' }).waitFor();
  await p.keyboard.press('Tab');
  assert.equal(await p.evaluate(`document.activeElement?.className`), 'skip-link');
  await p.keyboard.press('Enter');
  assert.equal(await p.evaluate(`document.activeElement?.tagName`), 'MAIN');
  await p.screenshot({ path: join(ARTIFACTS, 'a11y-390-sessions.png'), fullPage: true });
  // The viewer at phone width.
  await p.goto(`${tb!.url}/`);
  await p.locator('[data-pool=p1]').getByRole('button', { name: /Launch|Reconnect/ }).click();
  await until(async () => (await p.locator('[data-testid=conn-state]').textContent()) === 'connected', 60_000, 'viewer connected');
  assert.ok((await width()) <= 390, `viewer is ${await width()} px wide`);
  await p.screenshot({ path: join(ARTIFACTS, 'a11y-390-viewer.png') });
});
