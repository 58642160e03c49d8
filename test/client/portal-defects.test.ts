// The user portal's defects from issue 13 (D2, D5, part of D8), in headless Chromium against a
// real broker (real Redis, reconcilers running) whose desktops are a real X desktop (Xvnc):
// - My files: folders open in the page (the URL names the folder, breadcrumbs lead back), look
//   like folders, and a non-empty folder is deleted after a confirmation that counts its items;
//   uploads show their progress and can be cancelled; several files and dropped files upload;
//   the quota is a bar.
// - After a helpdesk logoff the viewer says so (and what happened to unsaved work), offers no
//   "Try again" and no "keeps running", and "Launch again" starts a new session.
// - A helpdesk/admin account without desktops lands on the console; a wrong password raises no
//   script error; the page has an icon (no 404s); a kiosk forgets the last user (their desktop
//   name, the tab title, the tab's storage) when they leave.
// One broker, one Xvnc, one browser for the file; screenshots go to $VDI_TEST_ARTIFACTS
// (default /tmp/vdi-artifacts). Everything is stopped by pid, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { PASSWORD, type TestBroker } from '../support/harness.ts';
import type { Xvnc } from '../gateway/support/xvnc.ts';
import { login, until } from '../tunnel/support/fixtures.ts';
import { ARTIFACTS, deskMissing, startDesk, type Desk } from './support/desk.ts';

const missing = deskMissing();

let desk: Desk | undefined;
let xvnc: Xvnc | undefined;
let tb: TestBroker | undefined;

before(async () => {
  if (missing) return;
  desk = await startDesk({ name: 'portal-defects', users: [['alice'], ['helen', 'helpdesk'], ['ada', 'admin']], pool: { name: 'p1', displayName: 'Office desktops', size: { min: 0, max: 3, spare: 1 }, entitlements: { users: ['alice'], groups: [] } } });
  ({ xvnc, tb } = desk);
});

after(async () => desk?.close());

const newPage = (viewport?: { width: number; height: number }) => desk!.newPage(viewport);
const shot = (p: Page, name: string) => p.screenshot({ path: join(ARTIFACTS, `portal-${name}.png`) });
/** Fills the login form of the page as it is (no navigation, no wait). */
const uiLogin = (p: Page, user: string, password = PASSWORD) => desk!.uiLogin(p, user, { password, goto: false, waitLoggedIn: false });
const connState = (p: Page) => p.locator('[data-testid=conn-state]').textContent();

test('My files: folders open with breadcrumbs in the URL, a non-empty folder is deleted after a counted confirmation, uploads show progress and cancel, several and dropped files upload, the quota is a bar', { timeout: 90_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const home = tb!.app.shares.shares.shares[0]!.homePath('alice');
  mkdirSync(join(home, 'Projects/2026'), { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'Projects/readme.txt'), 'about the projects');
  writeFileSync(join(home, 'Projects/2026/a.txt'), 'a');
  writeFileSync(join(home, 'Projects/2026/b.txt'), 'b');
  writeFileSync(join(home, 'notes.txt'), 'top level');

  const p = await newPage();
  const dialogs: string[] = [];
  p.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.accept();
  });
  await p.goto(`${tb!.url}/files`);
  await uiLogin(p, 'alice');
  const row = (name: string) => p.locator(`[data-testid=file-row][data-name="${name}"]`);
  await row('Projects').waitFor();
  assert.equal(await row('Projects').getAttribute('data-type'), 'folder', 'the folder is shown as a folder');
  assert.equal(await row('Projects').locator('a[download]').count(), 0, 'a folder is no download link');
  const meter = p.locator('[data-testid=usage] [role=meter]');
  await meter.waitFor();
  assert.ok(Number(await meter.getAttribute('aria-valuemax')) > 0, 'the quota bar has the hard limit');
  await shot(p, '01-files-root');

  // Into the folder, and one deeper: the URL names the folder; the breadcrumbs lead back.
  await row('Projects').getByRole('link').click();
  await row('readme.txt').waitFor();
  assert.equal(new URL(p.url()).searchParams.get('path'), 'Projects');
  await row('2026').getByRole('link').click();
  await row('a.txt').waitFor();
  assert.equal(new URL(p.url()).searchParams.get('path'), 'Projects/2026');
  assert.equal((await p.locator('[data-testid=crumbs]').innerText()).replace(/\s+/g, ' ').trim(), 'My folder / Projects / 2026');
  await shot(p, '02-files-subfolder');
  // A reload keeps the folder (deep link), the back button goes up.
  await p.reload();
  await row('b.txt').waitFor();
  await p.goBack();
  await row('readme.txt').waitFor();
  await p.locator('[data-testid=crumbs]').getByRole('link', { name: 'My folder' }).click();
  await row('notes.txt').waitFor();

  // Deleting the non-empty folder: the confirmation counts what goes with it, then it is gone from the share.
  await row('Projects').getByRole('button', { name: 'Delete' }).click();
  await until(() => !existsSync(join(home, 'Projects')), 10_000, 'the folder deleted on the share');
  assert.match(dialogs.at(-1) ?? '', /Delete the folder Projects\? It contains 4 items/);
  await p.locator('[data-testid=files-message]').getByText('Deleted the folder Projects and 4 items in it.').waitFor();

  // Several files at once, and a file dropped on the page.
  const up = join(ARTIFACTS, 'upload');
  mkdirSync(up, { recursive: true });
  writeFileSync(join(up, 'one.txt'), 'one');
  writeFileSync(join(up, 'two.txt'), 'two');
  await p.locator('[data-testid=upload]').setInputFiles([join(up, 'one.txt'), join(up, 'two.txt')]);
  await p.locator('[data-testid=files-message]').getByText('Uploaded 2 files.').waitFor();
  assert.ok(existsSync(join(home, 'one.txt')) && existsSync(join(home, 'two.txt')));
  const dt = await p.evaluateHandle(`(() => { const dt = new DataTransfer(); dt.items.add(new File(['dropped here'], 'dropped.txt', { type: 'text/plain' })); return dt; })()`);
  await p.dispatchEvent('[data-testid=my-files]', 'drop', { dataTransfer: dt });
  await until(() => existsSync(join(home, 'dropped.txt')), 10_000, 'the dropped file on the share');

  // A slow upload (throttled to 64 KiB/s) shows its progress and is cancelled: nothing is kept.
  const big = join(up, 'big.bin');
  writeFileSync(big, Buffer.alloc(2 * 1024 * 1024, 7));
  const cdp = await p.context().newCDPSession(p);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 64 * 1024 });
  await p.locator('[data-testid=upload]').setInputFiles(big);
  const progress = p.locator('[data-testid=upload-progress]');
  await progress.waitFor();
  await until(async () => Number(await progress.locator('progress').getAttribute('value')) > 0, 20_000, 'upload progress above 0');
  assert.match(await progress.innerText(), /Uploading big\.bin: .* of 2\.0 MiB/);
  await shot(p, '03-files-upload-progress');
  await progress.getByRole('button', { name: 'Cancel' }).click();
  await p.locator('[data-testid=files-message]').getByText('Upload of big.bin cancelled.').waitFor();
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await until(() => !readdirSync(home).some((n) => n === 'big.bin'), 10_000, 'no big.bin kept');
  await shot(p, '04-files-after-cancel');
  await p.context().close();
});

test('after a helpdesk logoff the viewer tells the truth, offers no Try again, and Launch again starts a new session', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  await xvnc!.x('xsetroot', '-solid', '#c83264');
  await until(async () => (await tb!.app.store.desktops.listByPool('p1')).some((d) => d.state === 'ready'), 30_000, 'a ready spare');
  const p = await newPage();
  await p.goto(`${tb!.url}/`);
  await uiLogin(p, 'alice');
  await p.locator('[data-pool=p1]').getByRole('button', { name: 'Launch' }).click();
  await until(async () => (await connState(p)) === 'connected', 30_000, 'viewer connected');
  const [first] = await tb!.app.broker.sessions.listLive({ user: 'alice' });
  assert.ok(first);

  const helen = await login(tb!, 'helen');
  assert.equal((await helen.post(`/sessions/${first.id}/logoff`)).status, 200);
  const ended = p.locator('[data-testid=session-ended]');
  await ended.waitFor({ timeout: 15_000 });
  await ended.getByText(/You were logged off from .* by the helpdesk\./).waitFor({ timeout: 5000 });
  const said = await ended.innerText();
  assert.match(said, /work that was not saved is lost/);
  assert.doesNotMatch(said, /keeps running|reconnect/i);
  assert.equal(await p.getByRole('button', { name: 'Try again' }).count(), 0, 'no Try again');
  await shot(p, '05-helpdesk-logoff');

  // Launch again: a new request, so a new session, connected.
  await ended.getByRole('button', { name: 'Launch again' }).click();
  const second = await until(async () => (await tb!.app.broker.sessions.listLive({ user: 'alice' })).find((s) => s.id !== first.id), 30_000, 'a new session');
  await until(async () => (await connState(p)) === 'connected', 30_000, 'viewer connected again');
  assert.notEqual(second.id, first.id);
  await shot(p, '06-launched-again');
  // Back from an ended session says what happened, not that the desktop keeps running.
  assert.equal((await helen.post(`/sessions/${second.id}/logoff`)).status, 200);
  await ended.getByText(/You were logged off from .* by the helpdesk\./).waitFor({ timeout: 15_000 });
  await ended.getByRole('button', { name: 'Back to my desktops' }).click();
  const notice = p.locator('[role=status]').filter({ hasText: /by the helpdesk/ });
  await notice.waitFor();
  assert.doesNotMatch(await notice.innerText(), /keeps running/);
  await p.context().close();
});

test('staff without desktops land on the console, a wrong password raises no script error, the page has an icon, a kiosk forgets the last user', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await newPage();
  const errors: string[] = [];
  const notFound: string[] = [];
  p.on('pageerror', (e) => errors.push(e.message));
  p.on('response', (r) => void (r.status() === 404 && notFound.push(r.url())));
  await p.goto(`${tb!.url}/`);
  // The icon: declared, and served.
  const icon = await p.locator('link[rel=icon]').getAttribute('href');
  assert.ok(icon, 'a <link rel=icon>');
  const got = await p.evaluate<{ status: number; type: string }>(`fetch(${JSON.stringify(icon)}).then((r) => ({ status: r.status, type: r.headers.get('content-type') || '' }))`);
  assert.equal(got.status, 200);
  assert.match(got.type, /image\/svg\+xml/);
  // Browsers and tools that ask for /favicon.ico anyway get one too.
  const ico = await p.evaluate<{ status: number; type: string }>(`fetch('/favicon.ico').then((r) => ({ status: r.status, type: r.headers.get('content-type') || '' }))`);
  assert.equal(ico.status, 200, '/favicon.ico');
  assert.match(ico.type, /image\//);

  // Wrong password: the message, the password selected to retype, and no script error.
  await uiLogin(p, 'ada', 'wrong password');
  await p.locator('[data-testid=login-error]').getByText(/Wrong user name or password/).waitFor();
  await until(() => p.evaluate<boolean>(`(() => { const i = document.activeElement; return !!i && i.name === 'password' && i.selectionStart === 0 && i.selectionEnd === i.value.length && i.value.length > 0; })()`), 5000, 'the password selected');
  assert.deepEqual(errors, [], 'no script error');

  // An admin without desktops of their own lands on the console, not on "not entitled".
  await uiLogin(p, 'ada');
  await until(() => new URL(p.url()).pathname.startsWith('/helpdesk'), 10_000, 'landed on /helpdesk');
  assert.equal(await p.getByText(/not entitled/).count(), 0);
  await shot(p, '07-admin-lands-on-console');
  assert.deepEqual(errors, [], 'no script error');
  assert.deepEqual(notFound, [], 'no 404 (favicon or anything else)');
  await p.context().close();

  // Kiosk: alice goes straight into her desktop; once she leaves, the login page, the tab title and
  // the tab's storage keep nothing of her (the next person reads this screen).
  const k = await newPage();
  await k.goto(`${tb!.url}/?kiosk=1`);
  await uiLogin(k, 'alice');
  await until(async () => (await connState(k)) === 'connected', 30_000, 'kiosk viewer connected');
  const desktop = (await k.locator('.toolbar .title').textContent())!.trim();
  assert.match(await k.title(), new RegExp(desktop), 'the tab names the desktop while it is open');
  await k.evaluate(`sessionStorage.setItem('vdi.dismissed.x', '[1]')`);
  await k.getByRole('button', { name: 'Disconnect' }).click();
  await k.locator('main.login.kiosk').waitFor();
  await k.getByText(/Disconnected from your desktop/).waitFor();
  assert.doesNotMatch(await k.locator('body').innerText(), new RegExp(desktop), 'the login page does not name the last desktop');
  assert.doesNotMatch(await k.title(), new RegExp(desktop), 'nor does the tab title');
  assert.equal(await k.evaluate<number>(`Object.keys(sessionStorage).filter((x) => x.startsWith('vdi.')).length`), 0, 'nor the tab storage');
  assert.equal(await k.locator('input[name=username]').inputValue(), '');
  await shot(k, '08-kiosk-after-leaving');
});
