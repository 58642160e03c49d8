// A pool put in maintenance while a user's desktop runs: in headless Chromium the user, back in
// the portal after disconnecting, still launches it and gets the same desktop and session in
// the viewer (no maintenance error), against a real broker, real Redis and a scripted VNC
// server. Chromium and the VNC server are stopped by pid / closed, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startTestBroker, PASSWORD, type TestBroker } from '../support/harness.ts';
import { ROOT } from '../support/process.ts';
import { FakeRfbServer, solidRawRect } from '../gateway/support/fake-rfb.ts';
import { login, until } from '../tunnel/support/fixtures.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { webClientMissing, launchChromium, type LaunchedChromium } from '../support/chromium.ts';

const ARTIFACTS = join(ROOT, '.artifacts/client');
const missing = webClientMissing();

import type { Browser, BrowserContext as Context, Page, Locator } from 'playwright-core';

const GREEN: [number, number, number] = [10, 200, 30];
let tb: TestBroker | undefined;
let rfb: FakeRfbServer | undefined;
let chrome: LaunchedChromium<Browser> | undefined;

before(async () => {
  if (missing) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  rfb = await FakeRfbServer.start({ width: 320, height: 200 });
  rfb.onConnection = (c) => {
    let sent = false;
    c.onRequest = (cc) => {
      if (sent) return;
      sent = true;
      cc.sendUpdate([solidRawRect(0, 0, 320, 200, GREEN)]);
    };
  };
  tb = await startTestBroker({ name: 'maint-client' });
  tb.provider.consoleEndpoint = { protocol: 'vnc', host: '127.0.0.1', port: rfb.port };
  await tb.addUser('alice');
  await tb.addUser('ada', 'admin');
  await tb.app.broker.pools.create(tb.pool({ name: 'm1', displayName: 'Office desktops', entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  await tb.readyDesktops('m1', 1);
  chrome = await launchChromium<Browser>();
});

after(async () => {
  await chrome?.stop();
  await tb?.close();
  await rfb?.close();
});

const near = (a: number[] | null, b: number[]) => !!a && a.every((v, i) => Math.abs(v - b[i]!) <= 3);
const pixel = (p: Page) =>
  p.evaluate<number[] | null>(`(() => { const c = document.querySelector('.screen canvas'); if (!c || c.width < 10) return null; return Array.from(c.getContext('2d').getImageData(5, 5, 1, 1).data.slice(0, 3)); })()`);
const connState = (p: Page) => p.locator('[data-testid=conn-state]').textContent();

test('a user whose desktop runs in a pool put in maintenance launches it from the portal and gets the same desktop in the viewer', { timeout: 90_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const ctx = await chrome!.browser.newContext({ viewport: { width: 1100, height: 720 } });
  try {
    const p = await ctx.newPage();
    await p.goto(tb!.url + '/');
    await p.locator('input[name=username]').fill('alice');
    await p.locator('input[name=password]').fill(PASSWORD);
    await p.getByRole('button', { name: 'Log in' }).click();
    const tile = p.locator('[data-pool=m1]');
    await tile.getByRole('button', { name: 'Launch' }).click();
    await until(async () => (await connState(p)) === 'connected', 20_000, 'viewer connected');
    await until(async () => near(await pixel(p), GREEN), 20_000, 'the desktop on the canvas');
    const alice = await login(tb!, 'alice');
    const held = (await alice.get('/me/pools')).body.pools.find((x: { name: string }) => x.name === 'm1').desktop;
    assert.equal(held.state, 'in_use');

    // She closes the viewer; her apps keep running. Then the pool goes into maintenance.
    await p.getByRole('button', { name: 'Disconnect' }).click();
    await p.getByText(/Disconnected from .* keeps running/).waitFor();
    await until(async () => (await tb!.app.store.sessions.get(held.session))?.state === 'disconnected', 10_000, 'session disconnected');
    const admin = await login(tb!, 'ada');
    assert.equal((await admin.patch('/pools/m1', { maintenance: true })).status, 200);
    await tile.locator('[data-testid=maintenance]').waitFor({ timeout: 10_000 }); // the portal polls every 3 s
    await p.screenshot({ path: join(ARTIFACTS, '23-maintenance-running-desktop.png') });

    const launch = tile.getByRole('button', { name: /Launch|Reconnect/ });
    assert.equal(await launch.isEnabled(), true, 'the portal lets her launch her running desktop');
    const before = rfb!.connections.length;
    await launch.click();
    await until(async () => (await connState(p)) === 'connected', 20_000, 'viewer connected again');
    await until(async () => near(await pixel(p), GREEN), 20_000, 'her desktop on the canvas again');
    assert.ok(rfb!.connections.length > before, 'a new console connection was made');
    assert.equal(await p.getByText(/maintenance/i).count(), 0, 'no maintenance error shown');
    const now = (await alice.get('/me/pools')).body.pools.find((x: { name: string }) => x.name === 'm1').desktop;
    assert.equal(now.id, held.id, 'the same desktop');
    assert.equal(now.session, held.session, 'the same session');
    await until(async () => (await tb!.app.store.sessions.get(held.session))?.state === 'connected', 10_000, 'session connected again');
    await p.screenshot({ path: join(ARTIFACTS, '24-maintenance-reconnected.png') });
  } catch (e) {
    // What the user saw when it failed, for the report.
    for (const pg of (ctx as unknown as { pages(): Page[] }).pages()) await pg.screenshot({ path: join(ARTIFACTS, '23-maintenance-failed.png') }).catch(() => undefined);
    throw e;
  } finally {
    await ctx.close().catch(() => undefined);
  }
});
