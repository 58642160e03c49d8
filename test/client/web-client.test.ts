// The web client (client/dist, built by `npm test` before this runs) in headless Chromium
// (playwright-core + Debian's /usr/bin/chromium) against a real broker with real Redis, its
// reconcilers running, and real VNC desktops: Xvnc (pixels drawn with xsetroot) and a
// scripted RFB server (to observe keys and clipboard and to draw in answer to them).
// A user logs in, launches, sees the desktop, types, copies text both ways, survives a
// dropped connection, disconnects, reconnects and logs off; a helpdesk agent shadows and logs
// the user off and sees the desktop refreshed; a user cannot reach helpdesk pages or another
// user's desktop. Screenshots go to .artifacts/client/. Chromium, Xvnc and the servers are
// stopped by pid / closed, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startTestBroker, PASSWORD, type TestBroker } from '../support/harness.ts';
import { ROOT } from '../support/process.ts';
import { hasXvnc, startXvnc, type Xvnc } from '../gateway/support/xvnc.ts';
import { FakeRfbServer, solidRawRect } from '../gateway/support/fake-rfb.ts';
import { login, sleep, until } from '../tunnel/support/fixtures.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { chromiumMissing, launchChromium, type LaunchedChromium } from '../support/chromium.ts';

const ARTIFACTS = join(ROOT, '.artifacts/client');
const missing = chromiumMissing() ?? (!existsSync(join(ROOT, 'client/dist/index.html'))
      ? 'client not built (npm run build:client)'
      : hasXvnc()
        ? null
        : 'Xvnc/xsetroot/vncpasswd not installed');

import type { Browser, BrowserContext as Context, Page, Locator } from 'playwright-core';

let xvnc: Xvnc | undefined;
let rfb: FakeRfbServer | undefined;
let tb: TestBroker | undefined;
let chrome: LaunchedChromium<Browser> | undefined;
let browser: Browser | undefined;
const contexts: Context[] = [];
const GREEN = [10, 200, 30];
const RED = [220, 20, 20];

before(async () => {
  if (missing) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  xvnc = await startXvnc({ width: 640, height: 400 });
  rfb = await FakeRfbServer.start({ width: 320, height: 200 });
  rfb.onConnection = (c) => {
    let sent = false;
    c.onRequest = (cc) => {
      if (sent) return;
      sent = true;
      cc.sendUpdate([solidRawRect(0, 0, 320, 200, GREEN as [number, number, number])]);
    };
  };
  tb = await startTestBroker({ name: 'web-client', config: { jobs: { enabled: true } } });
  tb.provider.consoleEndpoint = { protocol: 'vnc', host: '127.0.0.1', port: xvnc.port };
  for (const u of ['alice', 'bob']) await tb.addUser(u);
  await tb.addUser('helen', 'helpdesk');
  await tb.app.broker.pools.create(tb.pool({ name: 'p1', displayName: 'Office desktops', size: { min: 0, max: 5, spare: 0 }, entitlements: { users: ['alice', 'bob'], groups: [] } }), SYSTEM_ACTOR);
  await tb.app.broker.pools.create(tb.pool({ name: 'p2', displayName: 'Bob only', size: { min: 0, max: 5, spare: 0 }, entitlements: { users: ['bob'], groups: [] } }), SYSTEM_ACTOR);
  tb.app.startJobs();
  chrome = await launchChromium<Browser>();
  browser = chrome.browser;
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await chrome?.stop();
  await tb?.close();
  await rfb?.close();
  await xvnc?.stop();
});

async function newPage(): Promise<Page> {
  const c = await browser!.newContext({ viewport: { width: 1100, height: 720 } });
  contexts.push(c);
  return c.newPage();
}

const shot = (p: Page, name: string) => p.screenshot({ path: join(ARTIFACTS, `${name}.png`) });

async function uiLogin(p: Page, user: string, password = PASSWORD): Promise<void> {
  await p.locator('input[name=username]').fill(user);
  await p.locator('input[name=password]').fill(password);
  await p.getByRole('button', { name: 'Log in' }).click();
}

const near = (a: number[] | null, b: number[]) => !!a && a.every((v, i) => Math.abs(v - b[i]!) <= 3);
const pixel = (p: Page) =>
  p.evaluate<number[] | null>(`(() => { const c = document.querySelector('.screen canvas'); if (!c || c.width < 10) return null; return Array.from(c.getContext('2d').getImageData(5, 5, 1, 1).data.slice(0, 3)); })()`);
async function waitPixel(p: Page, rgb: number[], what: string): Promise<void> {
  await until(async () => near(await pixel(p), rgb), 20_000, what);
}
const connState = (p: Page) => p.locator('[data-testid=conn-state]').textContent();
async function waitConn(p: Page, state: string, timeout = 20_000): Promise<void> {
  await until(async () => (await connState(p)) === state, timeout, `viewer ${state}`);
}

test('user: login errors, launch with progress, pixels, typing, clipboard both ways, auto-reconnect, disconnect, reconnect, log off', { timeout: 180_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  await xvnc!.x('xsetroot', '-solid', '#c83264');
  const p = await newPage();
  const tunnelUrls: string[] = [];
  p.on('websocket', (ws) => tunnelUrls.push(ws.url()));
  await p.goto(tb!.url + '/');
  await uiLogin(p, 'alice', 'wrong password');
  const err = p.locator('[data-testid=login-error]');
  await err.waitFor();
  assert.match((await err.textContent()) ?? '', /Wrong user name or password/);
  await shot(p, '01-login-wrong-password');

  await uiLogin(p, 'alice');
  await p.getByRole('heading', { name: 'My desktops' }).waitFor();
  await p.getByText('Office desktops').waitFor();
  assert.equal(await p.getByText('Bob only').count(), 0);
  await shot(p, '02-my-desktops');

  // Launch: a fresh desktop is provisioned by the reconcilers (slowed down so the progress shows).
  tb!.provider.delayMs = 1500;
  await p.locator('[data-pool=p1]').getByRole('button', { name: 'Launch' }).click();
  await p.locator('[data-testid=preparing]').waitFor({ timeout: 10_000 });
  await shot(p, '03-preparing');
  await waitConn(p, 'connected', 30_000);
  tb!.provider.delayMs = 0;
  await waitPixel(p, [200, 50, 100], 'Xvnc colour on the canvas');
  // The ticket went as the WebSocket's first message, in no URL (proxy logs, history).
  assert.ok(tunnelUrls.some((u) => u.includes('/api/v1/tunnel')) && !tunnelUrls.some((u) => /token=/.test(u)), `tunnel URLs ${tunnelUrls}`);
  await xvnc!.x('xsetroot', '-solid', '#1e90ff');
  await waitPixel(p, [30, 144, 255], 'the new Xvnc colour');
  await shot(p, '04-viewer');
  const alice = await login(tb!, 'alice');
  const first = (await alice.get('/me/pools')).body.pools.find((x: { name: string }) => x.name === 'p1').desktop;
  assert.equal(first.state, 'in_use');
  const sessionId = first.session as string;
  await until(async () => (await tb!.app.store.sessions.get(sessionId))?.state === 'connected', 10_000, 'session connected');

  // Disconnect: the tunnel closes, the desktop keeps running.
  await p.getByRole('button', { name: 'Disconnect' }).click();
  await p.getByText(/Disconnected from .* keeps running/).waitFor();
  await until(async () => (await tb!.app.store.sessions.get(sessionId))?.state === 'disconnected', 10_000, 'session disconnected');
  await shot(p, '05-disconnected');

  // Reconnect to the same desktop, now streaming from the scripted VNC server.
  tb!.provider.consoleEndpoint = { protocol: 'vnc', host: '127.0.0.1', port: rfb!.port };
  const before = rfb!.connections.length;
  await p.locator('[data-pool=p1]').getByRole('button', { name: 'Reconnect' }).click();
  await waitConn(p, 'connected');
  await waitPixel(p, GREEN, 'the scripted desktop');
  const again = (await alice.get('/me/pools')).body.pools.find((x: { name: string }) => x.name === 'p1').desktop;
  assert.equal(again.id, first.id);
  assert.equal(again.session, sessionId);
  const conn = rfb!.connections[before]!;
  assert.ok(conn);

  // Typing reaches the desktop, which answers by drawing.
  const keys = () => conn.messages.filter((m) => m.type === 'key' && m.down).map((m) => (m as { keysym: number }).keysym);
  await p.locator('.screen').click();
  await p.keyboard.type('hi', { delay: 30 });
  await until(() => keys().includes(0x68) && keys().includes(0x69), 10_000, 'keys h and i at the VNC server');
  conn.sendUpdate([solidRawRect(0, 0, 320, 200, RED as [number, number, number])]);
  await waitPixel(p, RED, 'the desktop changed after typing');

  // Ctrl-Alt-Del button.
  await p.getByRole('button', { name: 'Ctrl-Alt-Del', exact: true }).click();
  await until(() => [0xffe3, 0xffe9, 0xffff].every((k) => keys().includes(k)), 10_000, 'Ctrl-Alt-Del at the VNC server');

  // Clipboard: out of the desktop, and into it.
  await p.getByRole('button', { name: 'Clipboard' }).click();
  conn.sendCutText('copied from the desktop');
  await until(async () => (await p.locator('textarea[name=clipboard]').inputValue()) === 'copied from the desktop', 10_000, 'desktop clipboard in the page');
  await shot(p, '06-viewer-clipboard');
  await p.locator('textarea[name=clipboard]').fill('pasted into the desktop');
  await p.getByRole('button', { name: 'Send to desktop' }).click();
  await until(() => conn.messages.some((m) => m.type === 'cut' && (m as { text: string }).text === 'pasted into the desktop'), 10_000, 'clipboard at the VNC server');
  await p.getByRole('button', { name: 'Clipboard' }).click();

  // A dropped connection: the viewer says so and reconnects by itself with a fresh ticket.
  const n = rfb!.connections.length;
  conn.socket.destroy();
  await until(async () => ['reconnecting', 'connecting'].includes((await connState(p)) ?? ''), 10_000, 'viewer shows the drop');
  await shot(p, '07-reconnecting');
  await waitConn(p, 'connected', 30_000);
  await waitPixel(p, GREEN, 'the desktop after the automatic reconnect');
  assert.ok(rfb!.connections.length > n);

  // Resize: the remote display is rescaled to fill the smaller window.
  const displayWidth = () => p.evaluate<number>(`document.querySelector('.guac-display').getBoundingClientRect().width`);
  const wide = await displayWidth();
  await p.setViewportSize({ width: 700, height: 500 });
  await until(async () => (await displayWidth()) < wide && (await displayWidth()) <= 700, 10_000, 'display rescaled to the window');
  await waitPixel(p, GREEN, 'the desktop after the resize');

  // Log off: explained, confirmed; the non-persistent desktop is refreshed and back to ready.
  await p.getByRole('button', { name: 'Log off', exact: true }).click();
  await shot(p, '08-logoff-confirm');
  await p.getByRole('button', { name: 'Log off now' }).click();
  await p.getByText(/Logged off from/).waitFor();
  await until(async () => (await tb!.app.store.sessions.get(sessionId))?.state === 'ended', 10_000, 'session ended');
  await until(async () => (await tb!.app.store.desktops.get(first.id))?.state === 'ready', 20_000, 'desktop refreshed to ready');
  await p.close();
});

test('helpdesk: console pages, find the session, shadow read-only, log the user off, desktop refreshing then ready', { timeout: 180_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  tb!.provider.consoleEndpoint = { protocol: 'vnc', host: '127.0.0.1', port: xvnc!.port };
  await xvnc!.x('xsetroot', '-solid', '#ffd700');
  const u = await newPage();
  await u.goto(tb!.url + '/');
  await uiLogin(u, 'alice');
  await u.locator('[data-pool=p1]').getByRole('button', { name: 'Launch' }).click();
  await waitConn(u, 'connected', 30_000);
  await waitPixel(u, [255, 215, 0], 'user sees the desktop');
  const alice = await login(tb!, 'alice');
  const desk = (await alice.get('/me/pools')).body.pools.find((x: { name: string }) => x.name === 'p1').desktop;

  const h = await newPage();
  await h.goto(tb!.url + '/');
  await uiLogin(h, 'helen');
  await h.getByRole('link', { name: 'Helpdesk' }).click();
  await h.getByRole('heading', { name: 'Overview' }).waitFor();
  await until(async () => (await h.locator('[data-testid=live-state]').textContent())?.includes('live'), 10_000, 'live updates (server-sent events)');
  await h.getByText('Office desktops').first().waitFor();
  await sleep(5500); // a second sample for the chart
  await shot(h, '10-helpdesk-overview');
  for (const [link, heading, file] of [['Pools', 'Pools', '11-pools'], ['Hosts', 'Hosts', '13-hosts'], ['Audit log', 'Audit log', '14-audit']] as const) {
    await h.getByRole('link', { name: link, exact: true }).click();
    await h.getByRole('heading', { name: heading }).waitFor();
    await sleep(300);
    await shot(h, file);
  }
  await h.getByText('session.start').first().waitFor();
  await h.getByRole('link', { name: 'Desktops', exact: true }).click();
  await h.locator(`[data-desktop="${desk.name}"]`).waitFor();
  await shot(h, '12-desktops');

  await h.getByRole('link', { name: 'Sessions', exact: true }).click();
  const row = h.locator('tr[data-user=alice]');
  await row.waitFor();
  await shot(h, '15-sessions');
  await row.getByRole('button', { name: 'Shadow' }).click();
  await waitConn(h, 'connected', 20_000);
  await waitPixel(h, [255, 215, 0], 'the shadow sees the desktop');
  assert.equal(await h.getByRole('button', { name: 'Ctrl-Alt-Del', exact: true }).count(), 0);
  await h.getByText('read-only').waitFor();
  await shot(h, '16-shadow');
  await xvnc!.x('xsetroot', '-solid', '#2e8b57');
  await waitPixel(h, [46, 139, 87], 'the shadow follows the desktop');
  await h.getByRole('button', { name: 'Stop watching' }).click();

  // Log the user off; the refresh is slowed so the desktop is seen refreshing.
  tb!.provider.delayMs = 8000;
  await h.locator('tr[data-user=alice]').getByRole('button', { name: 'Log off' }).click();
  await h.locator('dialog.confirm').getByRole('button', { name: 'Log off' }).click();
  await h.getByText('alice was logged off.').waitFor();
  await h.getByRole('link', { name: 'Desktops', exact: true }).click();
  const badge = h.locator(`[data-desktop="${desk.name}"] .badge`);
  await until(async () => (await badge.textContent()) === 'refreshing', 15_000, 'desktop refreshing in the table');
  await shot(h, '17-desktop-refreshing');
  // The user's viewer says why it closed (tunnels check their sessions every 5 s).
  await waitConn(u, 'closed', 20_000);
  await u.getByText(/logged off/).first().waitFor();
  await shot(u, '09-user-logged-off-by-helpdesk');
  await until(async () => (await badge.textContent()) === 'ready', 30_000, 'desktop ready again in the table');
  tb!.provider.delayMs = 0;

  // A desktop action: confirmed, then its outcome shown.
  await h.locator(`[data-desktop="${desk.name}"]`).getByRole('button', { name: 'Snapshot' }).click();
  await h.locator('dialog.confirm input').fill('before-update');
  await h.locator('dialog.confirm').getByRole('button', { name: 'Take snapshot' }).click();
  await h.getByText(`Snapshot before-update of ${desk.name} taken.`).waitFor();
  assert.deepEqual((await tb!.provider.snapshotList(desk.id)).map((s) => s.name), ['before-update']);
  await shot(h, '18-desktop-action-outcome');
  await h.close();
  await u.close();
});

test('a user cannot open the helpdesk console or another user\'s desktop (UI and API)', { timeout: 60_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await newPage();
  await p.goto(tb!.url + '/helpdesk/sessions');
  await uiLogin(p, 'alice');
  await p.locator('[data-testid=forbidden]').waitFor();
  assert.equal(await p.locator('table').count(), 0);
  assert.equal(await p.getByRole('link', { name: 'Helpdesk' }).count(), 0);
  await shot(p, '19-user-forbidden');
  // A pool of someone else's: the launch page refuses, like the API.
  await p.goto(tb!.url + '/desktop/p2');
  await p.getByText(/No pool|not found|not entitled/i).first().waitFor();
  await shot(p, '19-user-other-pool');

  const alice = await login(tb!, 'alice');
  for (const path of ['/pools', '/sessions', '/desktops', '/hosts', '/audit']) assert.equal((await alice.get(path)).status, 403, path);
  const bob = await login(tb!, 'bob');
  const got = await bob.post('/me/pools/p2/request');
  assert.ok([200, 202].includes(got.status), JSON.stringify(got.body));
  const bobSession = got.body.session.id as string;
  assert.equal((await alice.post(`/me/sessions/${bobSession}/connect`)).status, 404);
  assert.equal((await alice.post(`/me/sessions/${bobSession}/logoff`)).status, 404);
  assert.equal((await alice.post(`/sessions/${bobSession}/shadow`)).status, 403);
  // Deep links to client routes are served the app (SPA fallback); API paths are not.
  const page = await fetch(`${tb!.url}/helpdesk/desktops`, { headers: { accept: 'text/html' } });
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<div id="app">/);
  assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  assert.equal((await fetch(`${tb!.url}/api/v1/nope`, { headers: { accept: 'text/html' } })).status, 404);
  await p.close();
});

test('kiosk: full-screen login, straight into the only desktop, back to the login on disconnect and on log off', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  tb!.provider.consoleEndpoint = { protocol: 'vnc', host: '127.0.0.1', port: xvnc!.port };
  await xvnc!.x('xsetroot', '-solid', '#c83264');
  const p = await newPage();
  await p.goto(tb!.url + '/?kiosk=1');
  await p.locator('main.login.kiosk').waitFor();
  await shot(p, '20-kiosk-login');
  await uiLogin(p, 'alice');
  await waitConn(p, 'connected', 30_000);
  await waitPixel(p, [200, 50, 100], 'the kiosk shows the desktop');
  assert.equal(await p.getByRole('heading', { name: 'My desktops' }).count(), 0);
  await p.getByRole('button', { name: 'Disconnect' }).click();
  await p.locator('main.login.kiosk').waitFor();
  await p.getByText(/Disconnected from/).waitFor();
  assert.equal(await p.evaluate<number>(`fetch('/api/v1/me').then((r) => r.status)`), 401);

  // The kiosk setting stays on this device: the next login goes straight in again; log off returns to the login.
  await p.goto(tb!.url + '/');
  await uiLogin(p, 'alice');
  await waitConn(p, 'connected', 30_000);
  await p.getByRole('button', { name: 'Log off', exact: true }).click();
  await p.getByRole('button', { name: 'Log off now' }).click();
  await p.locator('main.login.kiosk').waitFor();
  await p.getByText(/Logged off from/).waitFor();
  await p.close();
});
