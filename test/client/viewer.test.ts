// test-lane: light (Xvnc and Chromium; QEMU is only mentioned)
// The desktop viewer (client/dist) in headless Chromium against a real broker (real Redis,
// reconcilers running) streaming a real X desktop (Xvnc), with `xev -root` recording the key
// events that arrive in the desktop. Checks what the person gets: "Type as keystrokes" types the clipboard
// text as keystrokes with Shift pressed around the characters that need it (what QEMU's VNC
// server needs: it turns keysyms into scancodes) and says how many characters went; "Send to
// desktop" confirms the copy; the desktop's own pointer is drawn and the local one hidden over
// it; the on-screen keyboard sends Esc, F-keys, arrows and shifted characters; the tab names the
// desktop; at phone width (390 px) the toolbar, its menu, the keyboard, the clipboard panel and
// the scaled desktop all fit on the screen. One broker, one Xvnc, one browser for the file; screenshots go to
// $VDI_TEST_ARTIFACTS (default /tmp/vdi-artifacts). Everything is stopped by pid, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startTestBroker, PASSWORD, type TestBroker } from '../support/harness.ts';
import { stopChild } from '../support/process.ts';
import { hasXvnc, startXvnc, type Xvnc } from '../gateway/support/xvnc.ts';
import { until } from '../tunnel/support/fixtures.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { launchChromium, webClientMissing, type LaunchedChromium } from '../support/chromium.ts';

const ARTIFACTS = process.env.VDI_TEST_ARTIFACTS || '/tmp/vdi-artifacts';
const XEV = '/usr/bin/xev';
const missing = webClientMissing() ?? (!hasXvnc() ? 'Xvnc/xsetroot/vncpasswd not installed' : !existsSync(XEV) ? 'xev not installed (apt-get install x11-utils)' : null);

let xvnc: Xvnc | undefined;
let xev: ChildProcess | undefined;
let xevOut = '';
let tb: TestBroker | undefined;
let chrome: LaunchedChromium<Browser> | undefined;
let ctx: BrowserContext | undefined;
let page: Page | undefined;
/** Key instructions the page sent through the tunnel: [pressed, keysym]. */
const sentKeys: [number, number][] = [];

before(async () => {
  if (missing) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  xvnc = await startXvnc({ width: 800, height: 500 });
  // Key events on the root window (no window manager: the focus follows the pointer to the root).
  xev = spawn(XEV, ['-display', `:${xvnc.display}`, '-root', '-event', 'keyboard'], { stdio: ['ignore', 'pipe', 'ignore'] });
  xev.stdout!.on('data', (d: Buffer) => void (xevOut += d.toString('latin1')));
  tb = await startTestBroker({ name: 'viewer', config: { jobs: { enabled: true } } });
  tb.provider.consoleEndpoint = { protocol: 'vnc', host: '127.0.0.1', port: xvnc.port };
  await tb.addUser('alice');
  await tb.app.broker.pools.create(tb.pool({ name: 'p1', displayName: 'Office desktops', size: { min: 0, max: 2, spare: 1 }, entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  tb.app.startJobs();
  chrome = await launchChromium<Browser>();
});

after(async () => {
  await ctx?.close().catch(() => undefined);
  await chrome?.stop();
  await tb?.close();
  if (xev) await stopChild(xev);
  await xvnc?.stop();
});

const shot = (p: Page, name: string) => p.screenshot({ path: join(ARTIFACTS, `viewer-${name}.png`) });

/** KeyPress events xev saw since `from`: keysym names and whether Shift was held (state bit 0). */
function keyPresses(from: number): { name: string; shift: boolean }[] {
  const out: { name: string; shift: boolean }[] = [];
  const re = /KeyPress event[\s\S]*?state (0x[0-9a-f]+), keycode \d+ \(keysym 0x[0-9a-f]+, ([^)]+)\)/g;
  for (const m of xevOut.slice(from).matchAll(re)) out.push({ name: m[2]!, shift: (parseInt(m[1]!, 16) & 1) === 1 });
  return out;
}
const typedNames = (from: number) => keyPresses(from).filter((k) => !/^(Shift|Control|Alt|Super)_/.test(k.name));

async function openViewer(): Promise<Page> {
  ctx = await chrome!.browser.newContext({ viewport: { width: 1100, height: 720 }, hasTouch: true });
  const p = await ctx.newPage();
  p.on('websocket', (ws) => {
    if (!ws.url().includes('/api/v1/tunnel')) return;
    ws.on('framesent', (f) => {
      const text = typeof f.payload === 'string' ? f.payload : f.payload.toString('utf8');
      for (const m of text.matchAll(/3\.key,\d+\.(\d+),1\.([01]);/g)) sentKeys.push([Number(m[2]), Number(m[1])]);
    });
  });
  await p.goto(`${tb!.url}/`);
  await p.locator('input[name=username]').fill('alice');
  await p.locator('input[name=password]').fill(PASSWORD);
  await p.getByRole('button', { name: 'Log in' }).click();
  await p.locator('[data-pool=p1]').getByRole('button', { name: /Launch|Reconnect/ }).click();
  await until(async () => (await p.locator('[data-testid=conn-state]').textContent()) === 'connected', 30_000, 'viewer connected');
  await until(async () => p.evaluate<boolean>(`(() => { const c = document.querySelector('.screen canvas'); return !!c && c.width >= 100; })()`), 15_000, 'the desktop drawn');
  return p;
}

test('viewer: Type as keystrokes sends correctly shifted keystrokes that arrive in the desktop, clipboard feedback, the desktop pointer replaces the local one, the tab names the desktop', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  // A coloured desktop with the usual arrow pointer (so the screenshots show both).
  await xvnc!.x('xsetroot', '-solid', '#3c6e8f', '-cursor_name', 'left_ptr');
  await until(async () => (await tb!.app.store.desktops.listByPool('p1')).some((d) => d.state === 'ready'), 30_000, 'a ready spare');
  page = await openViewer();
  const p = page;
  const desktop = (await p.locator('.toolbar .title').textContent())!.trim();
  assert.equal(await p.title(), `${desktop} — vdi-broker`, 'the tab names the desktop');

  // The desktop's pointer: once the desktop sent one, it is drawn where the mouse is and the local pointer is hidden.
  const box = (await p.locator('.screen canvas').first().boundingBox())!;
  await p.mouse.move(box.x + 200, box.y + 150);
  await p.mouse.move(box.x + 240, box.y + 180);
  await until(async () => (await p.locator('.screen[data-remote-cursor="1"]').count()) === 1, 10_000, 'the desktop sent its pointer');
  assert.equal(await p.evaluate<string>(`getComputedStyle(document.querySelector('.screen canvas')).cursor`), 'none', 'no local pointer over the desktop');
  const pointerLayer = () => p.evaluate<{ x: number; y: number; shown: boolean } | null>(`(() => {
    const layers = [...document.querySelectorAll('.guac-display canvas')].map((c) => c.parentElement);
    const cur = layers[layers.length - 1];
    if (!cur || !cur.isConnected) return null;
    const r = cur.getBoundingClientRect();
    return { x: r.left, y: r.top, shown: r.width > 0 };
  })()`);
  // The layer follows the mouse as the page handles the moves (a busy machine lags): wait for it.
  type Layer = { x: number; y: number; shown: boolean } | null;
  const last: { at: Layer } = { at: null };
  const near = (c: Layer) => !!c?.shown && Math.abs(c.x - (box.x + 240)) < 40 && Math.abs(c.y - (box.y + 180)) < 40;
  await until(async () => near((last.at = await pointerLayer())), 10_000, 'the pointer layer near the mouse').catch(() => undefined);
  assert.ok(last.at?.shown, 'the pointer layer is on the display');
  assert.ok(near(last.at), `pointer drawn near the mouse: ${JSON.stringify(last.at)} vs ${box.x + 240},${box.y + 180}`);
  // The desktop resized (here by its own X server, as when the viewer's size request lands after
  // the mouse moved): the new scale keeps the desktop's pointer under the mouse. It used to stay
  // where the old scale had put it, off the mouse until the mouse moved again.
  const scaleNow = () => p.evaluate<number>(`(() => { const c = document.querySelector('.screen canvas'); return c ? c.getBoundingClientRect().width / c.width : 0; })()`);
  const scaleBefore = await scaleNow();
  await xvnc!.x('xrandr', '--fb', '1600x1000');
  await until(async () => Math.abs((await scaleNow()) - scaleBefore) > 0.2, 10_000, 'the desktop rescaled after its resize');
  await until(async () => near((last.at = await pointerLayer())), 10_000, 'the pointer layer near the mouse after the resize').catch(() => undefined);
  assert.ok(near(last.at), `pointer drawn near the mouse after the desktop resized: ${JSON.stringify(last.at)} vs ${box.x + 240},${box.y + 180}`);
  // Back to the window's size (the viewer asks for it when its window changes).
  await p.setViewportSize({ width: 1100, height: 719 });
  await p.setViewportSize({ width: 1100, height: 720 });

  // Type as keystrokes: the text arrives in the desktop as typed; Shift is pressed around $, >, ", A, & (QEMU needs it).
  const text = 'echo $HOME > "A&b"';
  await p.getByRole('button', { name: 'Clipboard', exact: true }).click();
  await p.locator('textarea[name=clipboard]').fill(text);
  const from = xevOut.length;
  const sentFrom = sentKeys.length;
  await p.getByRole('button', { name: 'Type as keystrokes' }).click();
  await p.locator('[data-testid=clipboard-note]').getByText(`Sent ${text.length} characters as keystrokes.`).waitFor({ timeout: 10_000 });
  await until(() => typedNames(from).length >= text.length, 10_000, 'every character in the desktop');
  const NAMES: Record<string, string> = { ' ': 'space', $: 'dollar', '>': 'greater', '"': 'quotedbl', '&': 'ampersand' };
  assert.deepEqual(typedNames(from).map((k) => k.name), Array.from(text).map((c) => NAMES[c] ?? c), 'the desktop got the text as typed');
  for (const k of typedNames(from)) assert.equal(k.shift, /^(dollar|greater|quotedbl|ampersand|[A-Z])$/.test(k.name), `Shift held for ${k.name} only when needed`);
  // On the wire (what a scancode console like QEMU's gets): Shift_L down, the key down and up, Shift_L up.
  const wire = sentKeys.slice(sentFrom);
  for (const ch of ['$', '>', '"', 'A', '&']) {
    const i = wire.findIndex(([down, k]) => down === 1 && k === ch.charCodeAt(0));
    assert.ok(i > 0, `${ch} sent`);
    assert.deepEqual(wire[i - 1], [1, 0xffe1], `Shift_L pressed before ${ch}`);
    assert.deepEqual(wire.slice(i + 1, i + 3), [[0, ch.charCodeAt(0)], [0, 0xffe1]], `${ch} released, then Shift_L`);
  }
  const b = wire.findIndex(([down, k]) => down === 1 && k === 0x62); // 'b' needs no Shift
  assert.notDeepEqual(wire[b - 1], [1, 0xffe1], 'no Shift for b');
  await shot(p, '01-type-clipboard');

  // Send to desktop: the copy is confirmed, with a hint for consoles that have no clipboard.
  await p.getByRole('button', { name: 'Send to desktop' }).click();
  await p.locator('[data-testid=clipboard-note]').getByText(/Copied to the desktop clipboard \(18 characters\)/).waitFor({ timeout: 5000 });
  await shot(p, '02-send-clipboard');
});

test('viewer: the on-screen keyboard sends Esc, F-keys, arrows and shifted characters; at 390 px wide everything fits', { timeout: 90_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  assert.ok(page, 'the viewer from the first test');
  const p = page!;
  await p.getByRole('button', { name: 'Clipboard', exact: true }).click(); // closes the panel
  await p.getByRole('button', { name: 'Keyboard' }).click();
  const osk = p.locator('[data-testid=osk]');
  await osk.waitFor();
  const from = xevOut.length;
  const key = (label: string) => osk.getByRole('button', { name: label, exact: true });
  await key('Esc').click();
  await key('F5').click();
  await key('←').click();
  await key('Shift').click();
  await key('$').click(); // the 4 key, shown as $ while Shift is latched
  await key('q').click();
  await until(() => typedNames(from).length >= 5, 10_000, 'on-screen keys in the desktop');
  assert.deepEqual(typedNames(from).map((k) => `${k.name}${k.shift ? '+shift' : ''}`), ['Escape', 'F5', 'Left', 'dollar+shift', 'q']);
  await shot(p, '03-on-screen-keyboard');

  // Phone width: nothing sticks out; the menu and the keyboard are on screen; the desktop is scaled to fit.
  await p.setViewportSize({ width: 390, height: 844 });
  await until(async () => {
    const w = await p.evaluate<number>(`document.querySelector('.guac-display').getBoundingClientRect().width`);
    return w > 0 && w <= 390;
  }, 10_000, 'the desktop scaled to the width');
  await p.getByRole('button', { name: 'Keys ▾' }).click();
  const outside = await p.evaluate<string[]>(`(() => {
    const vw = window.innerWidth, vh = window.innerHeight;
    const bad = [];
    for (const el of document.querySelectorAll('.toolbar button, .menu-items button, .osk button, .guac-display')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0) continue;
      if (r.left < -1 || r.right > vw + 1 || r.top < -1 || r.bottom > vh + 1) bad.push((el.textContent || el.className) + ' ' + JSON.stringify([r.left, r.top, r.right, r.bottom]));
    }
    if (document.documentElement.scrollWidth > vw + 1) bad.push('page scrolls sideways: ' + document.documentElement.scrollWidth);
    return bad;
  })()`);
  assert.deepEqual(outside, [], 'everything within 390 × 844');
  await shot(p, '04-phone-width');
  // The clipboard panel at that width: the text box gets the width, its buttons stay on screen.
  await p.getByRole('button', { name: 'Keys ▾' }).click();
  await p.getByRole('button', { name: 'Hide keyboard' }).click();
  await p.getByRole('button', { name: 'Clipboard', exact: true }).click();
  const panel = await p.evaluate<{ box: number; off: string[] }>(`(() => {
    const vw = window.innerWidth;
    const off = [...document.querySelectorAll('[data-testid=clipboard-panel] button')].filter((b) => { const r = b.getBoundingClientRect(); return r.left < 0 || r.right > vw + 1; }).map((b) => b.textContent);
    return { box: document.querySelector('textarea[name=clipboard]').getBoundingClientRect().width, off };
  })()`);
  assert.ok(panel.box >= 0.8 * 390, `the clipboard box is ${panel.box} px wide at 390 px`);
  assert.deepEqual(panel.off, [], 'clipboard buttons on screen');
  await shot(p, '05-phone-clipboard');
});
