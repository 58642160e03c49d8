// Two existing machines (Xvnc, each painted its own colour) in a manual pool, brokered through
// the built-in gateway to the web client in headless Chromium: user A launches and sees the
// pixels of the machine the broker gave A, user B those of the other machine. The admin adds
// the machines in the helpdesk console's Machines page. Chromium and Xvnc are stopped by pid,
// also on failure. Screenshots go to .artifacts/manual/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startManualBroker, type ManualBroker } from './support/broker.ts';
import { VncMachine } from './support/vnc-machine.ts';
import { PASSWORD } from '../support/harness.ts';
import { ROOT } from '../support/process.ts';
import { freePort } from '../support/redis.ts';
import { until } from '../tunnel/support/fixtures.ts';
import { webClientMissing, launchChromium, type LaunchedChromium } from '../support/chromium.ts';

const ARTIFACTS = join(ROOT, '.artifacts/manual');
const missing = webClientMissing();

import type { Browser, BrowserContext as Context, Page, Locator } from 'playwright-core';

const RED = { hex: '#c81e1e', rgb: [200, 30, 30] };
const BLUE = { hex: '#1e64c8', rgb: [30, 100, 200] };
let machines: VncMachine[] = [];
let tb: ManualBroker;
let chrome: LaunchedChromium<Browser> | undefined;
const contexts: Context[] = [];

before(async () => {
  if (missing) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  machines = [new VncMachine(await freePort(), RED.hex), new VncMachine(await freePort(), BLUE.hex)];
  await Promise.all(machines.map((m) => m.start()));
  tb = await startManualBroker('manual-browser');
  for (const u of ['anna', 'ben']) await tb.addUser(u);
  await tb.addUser('ada', 'admin');
  await tb.pool('lab', { displayName: 'Lab PCs', entitlements: { users: ['anna', 'ben'], groups: [] } });
  chrome = await launchChromium<Browser>();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await chrome?.stop();
  await tb?.close();
  await Promise.all(machines.map((m) => m.stop()));
});

async function page(): Promise<Page> {
  const c = await chrome!.browser.newContext({ viewport: { width: 1100, height: 720 } });
  contexts.push(c);
  return c.newPage();
}

async function uiLogin(p: Page, user: string): Promise<void> {
  await p.goto(tb.url + '/');
  await p.locator('input[name=username]').fill(user);
  await p.locator('input[name=password]').fill(PASSWORD);
  await p.getByRole('button', { name: 'Log in' }).click();
  await p.locator('input[name=password]').waitFor({ state: 'detached' });
}

const near = (a: number[] | null, b: number[]) => !!a && a.every((v, i) => Math.abs(v - b[i]!) <= 3);
const pixel = (p: Page) =>
  p.evaluate<number[] | null>(`(() => { const c = document.querySelector('.screen canvas'); if (!c || c.width < 10) return null; return Array.from(c.getContext('2d').getImageData(5, 5, 1, 1).data.slice(0, 3)); })()`);

test('two users launch a manual pool in the browser and each sees the pixels of the machine the broker gave them', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  // The admin adds both machines in the helpdesk console.
  const a = await page();
  await uiLogin(a, 'ada');
  await a.goto(tb.url + '/helpdesk/machines');
  for (const [i, m] of machines.entries()) {
    const form = a.locator('[data-testid=machine-form]');
    await form.waitFor().catch(async (e) => {
      await a.screenshot({ path: join(ARTIFACTS, 'fail-form.png') });
      throw e;
    });
    await form.locator('input[name=name]').fill(`lab-pc-${i + 1}`);
    await form.locator('select[name=pool]').selectOption('lab');
    await form.locator('input[name=address]').fill('127.0.0.1');
    await form.locator('input[name=port]').fill(String(m.port));
    await form.locator('input[name=password]').fill('pixel-secret');
    await form.getByRole('button', { name: 'Add machine' }).click();
    await a.locator(`[data-machine="lab-pc-${i + 1}"]`).waitFor();
  }
  await until(async () => (await tb.app.store.pools.counts('lab')).ready === 2, 15_000, 'both machines ready');
  await a.goto(tb.url + '/helpdesk/machines');
  await a.locator('[data-machine="lab-pc-2"] [data-health=answering]').waitFor({ timeout: 10_000 });
  await a.screenshot({ path: join(ARTIFACTS, '01-machines.png') });
  assert.ok(!((await a.locator('main').textContent()) ?? '').includes('pixel-secret'));

  const admin = await tb.client('ada');
  const seen: Record<string, string> = {};
  for (const user of ['anna', 'ben']) {
    const p = await page();
    await uiLogin(p, user);
    await p.getByText('Lab PCs').waitFor();
    await p.locator('[data-pool=lab]').getByRole('button', { name: 'Launch' }).click();
    // Which machine the broker gave the user, as the helpdesk sees it (a second login of the user would not do: tickets are bound to the browser's login).
    const mine = await until(async () => (await admin.get('/machines?pool=lab')).body.machines.find((m: { desktop: { user: string } | null }) => m.desktop?.user === user)?.name as string | undefined, 15_000, `${user}'s machine`);
    const colour = mine === 'lab-pc-1' ? RED : BLUE;
    await until(async () => near(await pixel(p), colour.rgb), 20_000, `${user} sees ${mine}'s colour`).catch(async (e) => {
      await p.screenshot({ path: join(ARTIFACTS, `fail-${user}.png`) });
      console.log(await pixel(p), tb.logs.filter((l) => /tunnel|gateway|ticket|refus/i.test(l)).slice(-12).join(''));
      throw e;
    });
    await p.screenshot({ path: join(ARTIFACTS, `02-${user}.png`) });
    seen[user] = mine;
  }
  assert.notEqual(seen.anna, seen.ben, 'each user got a machine of their own');
});
