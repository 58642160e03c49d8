// End to end with a real QEMU desktop: the demo image under TCG (or KVM when it works), made by
// the broker's own reconcilers through the QEMU driver → the built-in gateway → the broker's
// guacamole-lite tunnel → guacamole-common-js in headless Chromium (playwright-core driving
// Debian's /usr/bin/chromium). The browser's canvas shows the guest's text-mode desktop (it
// matches QEMU's own screendump of the VM), keys typed in the browser reach the guest's shell
// on tty1 (checked on the serial console), and the console password never reaches the browser.
// Chromium is stopped by pid, QEMU by TestEnv.cleanup (by pid), also on failure.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import crypto from 'node:crypto';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startTestBroker, type HttpResult, type TestBroker } from '../support/harness.ts';
import { ensureDemoImage, SerialShell, TestEnv } from '../qemu/helpers.ts';
import { imageFilesIn } from '../../server/providers/qemu/config.ts';
import type { QemuProvider } from '../../server/providers/qemu/qemu.provider.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { login, sleep, until } from './support/fixtures.ts';
import { servePage, withLogin } from './support/page.ts';
import { chromiumMissing, launchChromium, type LaunchedChromium } from '../support/chromium.ts';

const hasQemu = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0 && spawnSync('qemu-img', ['--version'], { stdio: 'ignore' }).status === 0;
const hasBusybox = spawnSync('bash', ['-c', 'command -v busybox'], { stdio: 'ignore' }).status === 0;
const missing = chromiumMissing() ?? (!hasQemu
      ? 'qemu-system-x86 / qemu-utils not installed'
      : !hasBusybox
        ? 'busybox-static not installed (needed for the demo image)'
        : null);

type WsFrame = { payload: string | Buffer };
type Ws = { url(): string; on(ev: 'framereceived' | 'framesent', f: (f: WsFrame) => void): void };
type Res = { url(): string; body(): Promise<Buffer> };
type Page = {
  goto(url: string): Promise<unknown>;
  evaluate<T>(fn: string): Promise<T>;
  on(ev: 'websocket', f: (ws: Ws) => void): void;
  on(ev: 'response', f: (r: Res) => void): void;
  on(ev: 'request', f: (r: { url(): string; postData(): string | null }) => void): void;
  keyboard: { type(s: string, o?: { delay?: number }): Promise<void>; press(k: string): Promise<void> };
  close(): Promise<void>;
  context(): { addCookies(c: Array<{ name: string; value: string; url: string }>): Promise<void> };
};
type Browser = { newPage(): Promise<Page>; close(): Promise<void> };

const env = missing ? undefined : new TestEnv('qbrowser');
let tb: TestBroker | undefined;
let page: { url: string; close(): Promise<void> } | undefined;
let chrome: LaunchedChromium<Browser> | undefined;
let browser: Browser | undefined;
let serial: SerialShell | undefined;

after(async () => {
  serial?.close();
  await chrome?.stop();
  await page?.close();
  await tb?.close().catch(() => undefined);
  await env?.cleanup();
});

// In-page helpers (test code): the flattened Guacamole display, compared with a PNG.
const SCAN = `(() => {
  const c = window.client.getDisplay().flatten();
  const w = c.width, h = c.height;
  if (!w || !h) return { w, h, colours: 0, lit: 0, rows: [] };
  const d = c.getContext('2d').getImageData(0, 0, w, h).data;
  const colours = new Set();
  const rows = [];
  let lit = 0;
  for (let y = 0; y < h; y++) {
    let sig = 0, n = 0;
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 4;
      if (colours.size < 64) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      if (d[i] + d[i + 1] + d[i + 2] > 96) { n++; sig = (sig * 31 + x + 1) >>> 0; }
    }
    lit += n;
    rows.push(n ? n + ':' + sig : '');
  }
  return { w, h, colours: colours.size, lit, rows };
})()`;

const compareWith = (pngBase64: string) => `new Promise((resolve) => {
  const img = new Image();
  img.onerror = () => resolve({ error: 'png did not load' });
  img.onload = () => {
    const c = window.client.getDisplay().flatten();
    if (img.width !== c.width || img.height !== c.height) return resolve({ error: 'size ' + img.width + 'x' + img.height + ' vs ' + c.width + 'x' + c.height });
    const o = document.createElement('canvas');
    o.width = img.width; o.height = img.height;
    const ctx = o.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const a = ctx.getImageData(0, 0, o.width, o.height).data;
    const b = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let diff = 0, lit = 0;
    for (let i = 0; i < a.length; i += 4) {
      if (a[i] + a[i + 1] + a[i + 2] > 96) lit++;
      if (Math.abs(a[i] - b[i]) > 8 || Math.abs(a[i + 1] - b[i + 1]) > 8 || Math.abs(a[i + 2] - b[i + 2]) > 8) diff++;
    }
    resolve({ diff, lit, total: a.length / 4 });
  };
  img.src = 'data:image/png;base64,${pngBase64}';
})`;

type Scan = { w: number; h: number; colours: number; lit: number; rows: string[] };

test('a QEMU desktop in Chromium: the guest\'s screen on the canvas, typed keys reach the guest, no console password in the browser', { timeout: 170_000 }, async (t) => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const t0 = Date.now();
  const imageDir = path.join(ensureDemoImage(), 'demo', '1');
  let broker: TestBroker | undefined;
  const provider: QemuProvider = env!.provider([env!.host('h1')], {
    // The broker's image registry decides which files a version is (as in production).
    images: async (ref) => imageFilesIn((await broker!.app.broker.images.resolve(ref)).path),
  });
  // The test page is another origin than the broker: allowed like a thin-client shell's.
  page = await servePage();
  tb = broker = await startTestBroker({ name: 'qemu-browser', providers: [provider], config: { jobs: { enabled: true }, tunnel: { allowedOrigins: [new URL(page.url).origin] } } });
  await tb.app.broker.images.create(SYSTEM_ACTOR, 'qdemo', 'QEMU demo');
  await tb.app.broker.images.addVersion(SYSTEM_ACTOR, 'qdemo', { path: imageDir, publish: true });
  await tb.addUser('alice');
  await tb.app.broker.pools.create(
    {
      ...tb.pool({ name: 'qp', provider: 'local', image: 'qdemo', naming: 'qb-{n:02}', size: { min: 1, max: 1, spare: 1 }, entitlements: { users: ['alice'], groups: [] } }),
      resources: { vcpu: 1, memoryMiB: 160, diskGiB: 1, network: 'default', graphics: 'vga' },
    },
    SYSTEM_ACTOR,
  );
  tb.app.startJobs();

  // Chromium starts while the desktop is being provisioned.
  chrome = await launchChromium<Browser>();
  browser = chrome.browser;

  // The reconcilers create and start the VM; the pool's one desktop becomes ready.
  const desktop = await until(async () => {
    const ds = await tb!.app.store.desktops.listByPool('qp');
    const bad = ds.find((d) => d.state === 'error');
    if (bad) throw new Error(`desktop went to error: ${JSON.stringify(bad)}`);
    return ds.find((d) => d.state === 'ready');
  }, 100_000, 'a ready QEMU desktop');
  const pid = await provider.pid(desktop.id);
  assert.ok(pid && env!.qemuPids().includes(pid), 'the desktop runs in a QEMU process under the test dir');

  // What the user's client receives from the API, kept to check for the console password.
  const apiBodies: string[] = [];
  const keep = (r: HttpResult) => {
    apiBodies.push(JSON.stringify(r.body) + JSON.stringify([...r.headers]));
    return r;
  };
  const alice = await login(tb, 'alice');
  const got = keep(await alice.post('/me/pools/qp/request'));
  assert.equal(got.status, 200, JSON.stringify(got.body));
  assert.equal(got.body.outcome, 'assigned');
  assert.equal(got.body.desktop.id, desktop.id);
  const session = got.body.session.id as string;
  keep(await alice.get('/me/sessions'));
  const conn = await until(async () => {
    const r = keep(await alice.post(`/me/sessions/${session}/connect`));
    if (r.status === 409) return sleep(500).then(() => null);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r;
  }, 30_000, 'a connect ticket');
  const ticket = conn.body.ticket as string;
  assert.match(ticket, /^[A-Za-z0-9_-]{43}$/);

  // The real console password (8 characters, set by the driver over QMP).
  const { password } = await provider.console(desktop.id);
  assert.ok(password && password.length >= 8, 'the QEMU console has a password');

  // The browser: every response body, request body and WebSocket frame is recorded.
  const p = await browser.newPage();
  await withLogin(p, tb.url, alice);
  const seen: Buffer[] = [];
  const wsUrls: string[] = [];
  const pending: Promise<unknown>[] = [];
  p.on('response', (r) => pending.push(r.body().then((b) => seen.push(b), () => undefined)));
  p.on('request', (r) => seen.push(Buffer.from(`${r.url()}\n${r.postData() ?? ''}`)));
  let framesIn = 0;
  p.on('websocket', (ws) => {
    seen.push(Buffer.from(ws.url()));
    wsUrls.push(ws.url());
    ws.on('framereceived', (f) => {
      framesIn++;
      seen.push(Buffer.from(f.payload));
    });
    ws.on('framesent', (f) => seen.push(Buffer.from(f.payload)));
  });
  await p.goto(page.url);
  await p.evaluate('new Promise((r) => { const w = () => (window.start ? r() : setTimeout(w, 20)); w(); })');
  const wsUrl = tb.url.replace(/^http/, 'ws') + '/api/v1/tunnel';
  const result = await p.evaluate<{ ok: boolean; code?: number; message?: string }>(`window.start(${JSON.stringify(wsUrl)}, ${JSON.stringify(ticket)})`);
  assert.deepEqual(result, { ok: true }, 'guacamole-common-js connected');
  await until(async () => (await tb!.app.store.sessions.get(session))?.state === 'connected', 10_000, 'session connected');

  // The guest's VGA text console: the size QEMU reports, then the banner (a boxed header whose
  // top and bottom border lines are identical rows of lit pixels on a dark background).
  const size = await until(async () => {
    const s = await p.evaluate<number[]>('window.size()');
    return s[0]! >= 320 && s[1]! >= 200 ? s : null;
  }, 30_000, 'the guest display size');
  const banner = await until(async () => {
    const s = await p.evaluate<Scan>(SCAN);
    if (s.w !== size[0] || s.colours < 2 || s.lit < 2000) return sleep(250).then(() => null);
    // Text lines: runs of rows with lit pixels. Lines 0 and 2 of the banner are the same border.
    const lines: string[] = [];
    let cur: string[] = [];
    for (const r of s.rows) {
      if (r) cur.push(r);
      else if (cur.length) {
        lines.push(cur.join('|'));
        cur = [];
      }
    }
    if (cur.length) lines.push(cur.join('|'));
    return lines.length >= 6 && lines[0] === lines[2] && lines[0] !== lines[1] ? { ...s, lines } : sleep(250).then(() => null);
  }, 60_000, "the guest's banner on the canvas");
  assert.ok(banner.colours >= 2 && banner.lit > 2000, `canvas ${banner.w}x${banner.h}, ${banner.colours} colours, ${banner.lit} lit pixels`);

  // The canvas equals QEMU's own screendump of the VM (up to the blinking cursor).
  serial = await SerialShell.open((await provider.serial(desktop.id)).socket, 60_000);
  assert.match(await serial.run('cat /run/vdi-name'), new RegExp(desktop.name));
  const shot = path.join(env!.root, 'shot.png');
  const same = await until(async () => {
    await provider.screenshot(desktop.id, shot);
    await sleep(300); // let the last update reach the browser
    const c = await p.evaluate<{ error?: string; diff: number; lit: number; total: number }>(compareWith(readFileSync(shot).toString('base64')));
    assert.equal(c.error, undefined);
    return c.lit > 2000 && c.diff <= c.total * 0.005 ? c : sleep(500).then(() => null);
  }, 30_000, 'the canvas matching QEMU\'s screendump');
  assert.ok(same.diff <= same.total * 0.005, JSON.stringify(same));
  t.diagnostic(`desktop ${desktop.name} ready after ${Date.now() - t0} ms; canvas ${banner.w}x${banner.h}, ${banner.colours} colours, ${banner.lines.length} text lines; screendump diff ${same.diff}/${same.total} px`);

  // Keys typed in the browser reach the shell on the guest's tty1: a command creates a file.
  const marker = `vdi${crypto.randomBytes(4).toString('hex')}`;
  assert.equal(await serial.run(`ls /tmp/${marker} 2>/dev/null; echo end`), 'end');
  const before = (await p.evaluate<Scan>(SCAN)).rows.join();
  await p.keyboard.press('Enter'); // a fresh prompt
  await p.keyboard.type(`touch /tmp/${marker}`, { delay: 60 });
  await p.keyboard.press('Enter');
  const made = await until(async () => {
    const out = await serial!.run(`ls /tmp/${marker} 2>/dev/null; echo end`);
    return out.includes(`/tmp/${marker}`) ? out : sleep(300).then(() => null);
  }, 30_000, 'the file created by keys typed in the browser');
  assert.match(made, new RegExp(marker));
  await until(async () => (await p.evaluate<Scan>(SCAN)).rows.join() !== before, 10_000, 'the typed command echoed on the canvas');

  // No "unstable" tunnel, no errors shown by guacamole-common-js.
  const tstate = await p.evaluate<{ tunnelStates: number[]; clientStates: number[]; errors: unknown[] }>('window.t');
  assert.deepEqual(tstate.errors, []);
  assert.ok(!tstate.tunnelStates.includes(3), `tunnel states ${tstate.tunnelStates}`);
  assert.equal(tstate.clientStates.at(-1), 3);

  // The console password: nowhere in what the browser or the user's API client received or sent.
  await p.close();
  await Promise.all(pending);
  assert.ok(framesIn > 10, `the browser received frames (${framesIn})`);
  const all = Buffer.concat(seen);
  assert.ok(all.length > 10_000, `recorded ${all.length} bytes`);
  // (the recording works: it has the ticket the page sent and the keys it typed)
  assert.notEqual(all.indexOf(ticket), -1);
  // The ticket went as a message, in no URL (proxy logs, history).
  assert.ok(wsUrls.length === 1 && !wsUrls[0]!.includes(ticket), `ticket in ${wsUrls}`);
  assert.notEqual(all.indexOf('3.key,'), -1);
  for (const needle of [password, Buffer.from(password).toString('base64'), Buffer.from(password).toString('hex')]) {
    assert.equal(all.indexOf(needle), -1, 'the console password reached the browser');
    assert.ok(!apiBodies.some((b) => b.includes(needle)), 'the console password is in an API answer');
  }
  await until(async () => (await tb!.app.store.sessions.get(session))?.state === 'disconnected', 10_000, 'disconnected after the tab closed');
  t.diagnostic(`${framesIn} WebSocket frames, ${all.length} bytes checked; ${Date.now() - t0} ms in all`);
  assert.ok(Date.now() - t0 < 160_000, `took ${Date.now() - t0} ms`);
});
