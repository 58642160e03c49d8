// End to end with real parts: Xvnc (non-ASCII VncAuth password) and a scripted RFB server →
// the built-in gateway → the broker's guacamole-lite tunnel → guacamole-common-js in headless
// Chromium (playwright-core driving Debian's /usr/bin/chromium). Pixels on the canvas, keys
// typed in the browser reaching the VNC server, a replayed ticket refused, a helpdesk shadow
// seeing the same pixels with its input ignored, and an idle tunnel never "unstable".
// Chromium, Xvnc and the test's servers are stopped by pid / closed, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ApiClient, TestBroker } from '../support/harness.ts';
import { hasXvnc, startXvnc, type Xvnc } from '../gateway/support/xvnc.ts';
import { FakeRfbServer, solidRawRect } from '../gateway/support/fake-rfb.ts';
import { CONSOLE_PASSWORD, connectTicket, liveSession, login, sleep, streamingBroker, until } from './support/fixtures.ts';
import { servePage, withLogin } from './support/page.ts';
import { chromiumMissing, launchChromium, type LaunchedChromium } from '../support/chromium.ts';

const missing = chromiumMissing() ?? (hasXvnc()
      ? null
      : 'Xvnc/xsetroot/vncpasswd not installed');

type Page = {
  goto(url: string): Promise<unknown>;
  evaluate<T>(fn: string): Promise<T>;
  keyboard: { type(s: string, o?: { delay?: number }): Promise<void>; press(k: string): Promise<void> };
  close(): Promise<void>;
  context(): { addCookies(c: Array<{ name: string; value: string; url: string }>): Promise<void> };
};
type Browser = { newPage(): Promise<Page>; close(): Promise<void> };

let xvnc: Xvnc | undefined;
let rfb: FakeRfbServer | undefined;
let tb: TestBroker | undefined;
let page: { url: string; close(): Promise<void> } | undefined;
let chrome: LaunchedChromium<Browser> | undefined;
let browser: Browser | undefined;

before(async () => {
  if (missing) return;
  xvnc = await startXvnc({ width: 320, height: 200, password: CONSOLE_PASSWORD });
  rfb = await FakeRfbServer.start({ width: 160, height: 100 });
  rfb.onConnection = (c) => {
    let sent = false;
    c.onRequest = (cc) => {
      if (sent) return;
      sent = true;
      cc.sendUpdate([solidRawRect(0, 0, 160, 100, [10, 200, 30])]);
    };
  };
  // The test page is another origin than the broker: allowed like a thin-client shell's.
  page = await servePage();
  tb = await streamingBroker('tunnel-browser', { tunnel: { allowedOrigins: [new URL(page.url).origin] } }, { protocol: 'vnc', host: '127.0.0.1', port: xvnc.port, password: CONSOLE_PASSWORD });
  chrome = await launchChromium<Browser>();
  browser = chrome.browser;
});

after(async () => {
  await chrome?.stop();
  await page?.close();
  await tb?.close();
  await rfb?.close();
  await xvnc?.stop();
});

const near = (a: number[] | null, b: number[]) => !!a && a.every((v, i) => Math.abs(v - b[i]!) <= 3);

async function openDesktop(ticket: string, as: ApiClient): Promise<{ p: Page; result: { ok: boolean; code?: number; message?: string } }> {
  const p = await browser!.newPage();
  await withLogin(p, tb!.url, as);
  await p.goto(page!.url);
  await p.evaluate('new Promise((r) => { const w = () => (window.start ? r() : setTimeout(w, 20)); w(); })');
  const wsUrl = tb!.url.replace(/^http/, 'ws') + '/api/v1/tunnel';
  const result = await p.evaluate<{ ok: boolean; code?: number; message?: string }>(`window.start(${JSON.stringify(wsUrl)}, ${JSON.stringify(ticket)})`);
  return { p, result };
}

async function waitPixel(p: Page, rgb: number[], what: string): Promise<void> {
  await until(async () => near(await p.evaluate<number[] | null>('window.pixel(10, 10)'), rgb), 15_000, what);
}

test('Xvnc in Chromium: pixels, live updates, no "unstable" when idle, a replayed ticket refused, a shadow sees the same', async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const alice = await login(tb!, 'alice');
  const { session } = await liveSession(tb!, alice);
  await xvnc!.x('xsetroot', '-solid', '#c83264');
  const ticket = await connectTicket(alice, session);
  const { p, result } = await openDesktop(ticket, alice);
  assert.deepEqual(result, { ok: true });
  await until(async () => (await p.evaluate<number[]>('window.size()')).join() === '320,200', 15_000, 'display size');
  await waitPixel(p, [200, 50, 100], 'xsetroot colour on the canvas');
  await xvnc!.x('xsetroot', '-solid', '#1e90ff');
  await waitPixel(p, [30, 144, 255], 'the new colour');
  assert.equal((await tb!.app.store.sessions.get(session))?.state, 'connected');

  // Idle: guacamole-common-js marks the tunnel UNSTABLE (3) after 1.5 s without data unless its pings are answered.
  await sleep(4000);
  const t = await p.evaluate<{ tunnelStates: number[]; clientStates: number[]; errors: unknown[] }>('window.t');
  assert.ok(!t.tunnelStates.includes(3), `tunnel states ${t.tunnelStates}`);
  assert.deepEqual(t.errors, []);
  assert.equal(t.clientStates.at(-1), 3);

  // The same ticket again: refused with CLIENT_UNAUTHORIZED, shown as such by guacamole-common-js.
  const again = await openDesktop(ticket, alice);
  assert.equal(again.result.ok, false);
  assert.equal(again.result.code, 0x0301, JSON.stringify(again.result));
  await again.p.close();

  // A helpdesk shadow sees the same pixels.
  const helen = await login(tb!, 'helen');
  const sh = await helen.post(`/sessions/${session}/shadow`);
  assert.equal(sh.status, 200, JSON.stringify(sh.body));
  const shadow = await openDesktop(sh.body.ticket, helen);
  assert.deepEqual(shadow.result, { ok: true });
  await waitPixel(shadow.p, [30, 144, 255], 'the shadow sees the desktop');
  await xvnc!.x('xsetroot', '-solid', '#ffd700');
  await waitPixel(p, [255, 215, 0], 'user sees the change');
  await waitPixel(shadow.p, [255, 215, 0], 'shadow sees the change');
  await shadow.p.close();
  await p.close();
  await until(async () => (await tb!.app.store.sessions.get(session))?.state === 'disconnected', 10_000, 'disconnected after the tab closed');
});

test('keys typed in Chromium reach the VNC server; a shadow\'s keys do not', async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  tb!.provider.consoleEndpoint = { protocol: 'vnc', host: '127.0.0.1', port: rfb!.port };
  const bob = await login(tb!, 'bob');
  const { session } = await liveSession(tb!, bob);
  const { p, result } = await openDesktop(await connectTicket(bob, session), bob);
  assert.deepEqual(result, { ok: true });
  await waitPixel(p, [10, 200, 30], 'the scripted desktop');
  const keys = () => rfb!.connections.flatMap((c) => c.messages).filter((m) => m.type === 'key' && m.down).map((m) => (m as { keysym: number }).keysym);
  await p.keyboard.type('hi', { delay: 30 });
  await until(() => keys().includes(0x68) && keys().includes(0x69), 10_000, 'keys h and i at the VNC server');

  const helen = await login(tb!, 'helen');
  const sh = await helen.post(`/sessions/${session}/shadow`);
  assert.equal(sh.status, 200);
  const shadow = await openDesktop(sh.body.ticket, helen);
  assert.deepEqual(shadow.result, { ok: true });
  await waitPixel(shadow.p, [10, 200, 30], 'the shadow sees the desktop');
  await shadow.p.keyboard.type('zq', { delay: 30 });
  await p.keyboard.type('k', { delay: 30 });
  await until(() => keys().includes(0x6b), 10_000, 'the user still types');
  await sleep(300);
  assert.ok(!keys().includes(0x7a) && !keys().includes(0x71), `shadow keys reached the server: ${keys()}`);
  await shadow.p.close();
  await p.close();
});
