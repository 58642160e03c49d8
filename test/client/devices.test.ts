// Enrolled thin clients in headless Chromium (playwright-core + Debian's /usr/bin/chromium)
// against a real broker with real Redis and its reconcilers, streaming a real VNC desktop
// (Xvnc, pixels drawn with xsetroot): a kiosk browser is enrolled by opening /enroll?code=...,
// logs in straight into its location's default pool, and is sent back to the enrolment page
// when the helpdesk revokes it; a kiosk elsewhere is refused the location-restricted pool; a
// shared lab terminal logs off after idle time and wipes the browser's state. Screenshots go
// to .artifacts/client/. Chromium and Xvnc are stopped by pid / closed, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startTestBroker, PASSWORD, type TestBroker } from '../support/harness.ts';
import { ROOT } from '../support/process.ts';
import { hasXvnc, startXvnc, type Xvnc } from '../gateway/support/xvnc.ts';
import { login, until } from '../tunnel/support/fixtures.ts';
import { SYSTEM_ACTOR, type DeviceMode } from '../../server/broker/index.ts';
import { launchChromium, webClientMissing, type LaunchedChromium } from '../support/chromium.ts';

const ARTIFACTS = join(ROOT, '.artifacts/client');
const missing = webClientMissing() ?? (hasXvnc() ? null : 'Xvnc/xsetroot/vncpasswd not installed');

let xvnc: Xvnc | undefined;
let tb: TestBroker | undefined;
let chrome: LaunchedChromium<Browser> | undefined;
const contexts: BrowserContext[] = [];

before(async () => {
  if (missing) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  xvnc = await startXvnc({ width: 640, height: 400 });
  await xvnc.x('xsetroot', '-solid', '#c83264');
  tb = await startTestBroker({ name: 'devices-client', config: { jobs: { enabled: true }, devices: { locations: [{ name: 'lab-1', defaultPool: 'lab' }] } } });
  tb.provider.consoleEndpoint = { protocol: 'vnc', host: '127.0.0.1', port: xvnc.port };
  await tb.addUser('alice');
  await tb.addUser('helen', 'helpdesk');
  await tb.addUser('ada', 'admin');
  // alice may use both pools; "lab" only from lab-1's devices, and it is lab-1's default.
  await tb.app.broker.pools.create(tb.pool({ name: 'lab', displayName: 'Lab desktops', size: { min: 0, max: 5, spare: 0 }, entitlements: { users: ['alice'], groups: [], locations: ['lab-1'] } }), SYSTEM_ACTOR);
  await tb.app.identity.createGroup(SYSTEM_ACTOR, { name: 'room-displays' });
  await tb.app.broker.pools.create(tb.pool({ name: 'hall', displayName: 'Hall display', size: { min: 0, max: 5, spare: 0 }, entitlements: { users: [], groups: ['room-displays'] } }), SYSTEM_ACTOR);
  await tb.app.broker.pools.create(tb.pool({ name: 'office', displayName: 'Office desktops', size: { min: 0, max: 5, spare: 0 }, entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
  tb.app.startJobs();
  chrome = await launchChromium<Browser>();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await chrome?.stop();
  await tb?.close();
  await xvnc?.stop();
});

async function newPage(): Promise<Page> {
  const c = await chrome!.browser.newContext({ viewport: { width: 1000, height: 700 } });
  contexts.push(c);
  return c.newPage();
}

const shot = (p: Page, name: string) => p.screenshot({ path: join(ARTIFACTS, `${name}.png`) });

async function code(location: string, mode: DeviceMode = 'personal-kiosk', o: { name?: string; idleSeconds?: number; displayPool?: string } = {}): Promise<string> {
  return (await tb!.app.devices.createCode(SYSTEM_ACTOR, { location, mode, uses: 1, expiresInSeconds: 600, ...o })).code;
}

async function kioskLogin(p: Page, user = 'alice'): Promise<void> {
  await p.locator('main.login.kiosk input[name=username]').waitFor({ timeout: 20_000 });
  await p.locator('input[name=username]').fill(user);
  await p.locator('input[name=password]').fill(PASSWORD);
  await p.getByRole('button', { name: 'Log in' }).click();
}

const near = (a: number[] | null, b: number[]) => !!a && a.every((v, i) => Math.abs(v - b[i]!) <= 3);
const pixel = (p: Page) =>
  p.evaluate<number[] | null>(`(() => { const c = document.querySelector('.screen canvas'); if (!c || c.width < 10) return null; return Array.from(c.getContext('2d').getImageData(5, 5, 1, 1).data.slice(0, 3)); })()`);

test('a kiosk enrolled with /enroll?code= logs in straight into its location\'s desktop; revoked, it is back at the enrolment page', { timeout: 180_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await newPage();
  const enrolCode = await code('lab-1', 'personal-kiosk', { name: 'Lab 1 front' });
  await p.goto(`${tb!.url}/enroll?code=${encodeURIComponent(enrolCode)}`);
  await p.locator('[data-testid=enrolled]').waitFor({ timeout: 20_000 });
  assert.equal(new URL(p.url()).search, '', 'the code left the address bar');
  assert.ok(!(await p.evaluate<string>('location.href')).includes(enrolCode));
  await shot(p, 'devices-01-enrolled');
  // The credential is an HttpOnly cookie: the page cannot read it.
  assert.ok(!(await p.evaluate<string>('document.cookie')).includes('vdi.device'));
  const cookie = (await p.context().cookies(`${tb!.url}/api/v1/devices/me`)).find((c) => c.name === 'vdi.device')!;
  assert.ok(cookie.httpOnly);
  assert.equal(cookie.sameSite, 'Strict');

  // The page starts over as a kiosk: kiosk login, then straight into lab-1's default pool.
  await until(async () => new URL(p.url()).pathname === '/', 20_000, 'back at / after enrolment');
  await shot(p, 'devices-02-kiosk-login');
  await kioskLogin(p);
  await until(async () => new URL(p.url()).pathname === '/desktop/lab', 20_000, 'straight into the lab pool');
  await until(async () => near(await pixel(p), [200, 50, 100]), 60_000, 'the Xvnc desktop on the canvas');
  await shot(p, 'devices-03-desktop');
  const helen = await login(tb!, 'helen');
  const devices = (await helen.get('/devices?location=lab-1')).body.devices as { id: string; name: string; user: string | null }[];
  const me = devices.find((d) => d.name === 'Lab 1 front')!;
  assert.equal(me.user, 'alice');
  const sessions = (await helen.get('/sessions?pool=lab')).body.sessions as { user: string; device?: { id: string } }[];
  assert.equal(sessions.find((s) => s.user === 'alice')?.device?.id, me.id, 'the session came from this device');

  // Revoked: the kiosk's next request is refused and it shows the enrolment page.
  assert.equal((await helen.post(`/devices/${me.id}/revoke`)).status, 200);
  await p.locator('[data-testid=enroll-revoked]').waitFor({ timeout: 30_000 });
  assert.equal(new URL(p.url()).pathname, '/enroll');
  await shot(p, 'devices-04-revoked');
  await p.close();
});

test('a kiosk at another location is not offered the location-restricted pool and is refused it', { timeout: 180_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await newPage();
  await p.goto(`${tb!.url}/enroll`);
  await p.locator('input[name=code]').fill((await code('lab-2')).toLowerCase());
  await p.getByRole('button', { name: 'Enrol' }).click();
  await p.locator('[data-testid=enrolled]').waitFor({ timeout: 20_000 });
  await kioskLogin(p);
  // Only "office" is left from here, so the kiosk launches that one.
  await until(async () => new URL(p.url()).pathname === '/desktop/office', 20_000, 'into the only pool usable here');
  await until(async () => near(await pixel(p), [200, 50, 100]), 60_000, 'the office desktop');
  await p.goto(`${tb!.url}/desktop/lab`);
  const refusal = p.locator('.banner.bad[role=alert]');
  await refusal.waitFor({ timeout: 20_000 });
  assert.match((await refusal.textContent()) ?? '', /cannot be used from location "lab-2"/);
  await shot(p, 'devices-05-location-refused');
  await p.close();
});

test('a shared lab terminal logs the user off after idle seconds and wipes the browser state, keeping its enrolment', { timeout: 180_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await newPage();
  await p.goto(`${tb!.url}/enroll?code=${encodeURIComponent(await code('lab-1', 'shared-lab', { idleSeconds: 4 }))}`);
  await p.locator('[data-testid=enrolled]').waitFor({ timeout: 20_000 });
  await kioskLogin(p);
  await until(async () => new URL(p.url()).pathname === '/desktop/lab', 20_000, 'straight into the lab pool');
  await p.evaluate(`localStorage.setItem('left-behind', 'secret notes'); sessionStorage.setItem('tab', 'x'); document.cookie = 'tracker=1; Path=/'`);
  // No input from now on: the kiosk logs off by itself.
  await p.locator('main.login.kiosk').waitFor({ timeout: 30_000 });
  await shot(p, 'devices-06-idle-logoff');
  assert.equal(await p.evaluate(`localStorage.getItem('left-behind')`), null);
  assert.equal(await p.evaluate(`sessionStorage.getItem('tab')`), null);
  assert.ok(!(await p.evaluate<string>('document.cookie')).includes('tracker'));
  const alice = await login(tb!, 'alice');
  await until(async () => ((await alice.get('/me/sessions')).body.sessions as { pool: string }[]).every((s) => s.pool !== 'lab'), 20_000, "alice's lab session logged off");
  const device = await p.evaluate<{ device: { mode: string } | null }>(`fetch('/api/v1/devices/me').then((r) => r.json())`);
  assert.equal(device.device?.mode, 'shared-lab', 'the device credential survived the wipe');
  await p.close();
});

test('a room display shows its pool\'s desktop without anyone logging in', { timeout: 180_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await newPage();
  await p.goto(`${tb!.url}/enroll?code=${encodeURIComponent(await code('hall-1', 'room-display', { displayPool: 'hall' }))}`);
  await p.locator('[data-testid=enrolled]').waitFor({ timeout: 20_000 });
  await until(async () => new URL(p.url()).pathname === '/desktop/hall', 30_000, 'straight into the hall pool');
  await until(async () => near(await pixel(p), [200, 50, 100]), 60_000, 'the hall desktop on the canvas');
  assert.equal(await p.locator('input[name=password]').count(), 0, 'no login form');
  await shot(p, 'devices-07-room-display');
  await p.close();
});

test('helpdesk console: an admin makes an enrolment code (shown once) and renames and revokes the device it enrolled', { timeout: 120_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const p = await newPage();
  await p.goto(`${tb!.url}/helpdesk/devices`);
  await p.locator('input[name=username]').fill('ada');
  await p.locator('input[name=password]').fill(PASSWORD);
  await p.getByRole('button', { name: 'Log in' }).click();
  await p.getByRole('heading', { name: 'Devices' }).waitFor({ timeout: 20_000 });
  const form = p.locator('[data-testid=new-code]');
  await form.locator('input[name=location]').fill('lab-9');
  await form.locator('input[name=name]').fill('Console made');
  await form.getByRole('button', { name: 'Make code' }).click();
  const shown = (await p.locator('[data-testid=code]').textContent({ timeout: 20_000 }))!;
  assert.match(shown, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$/);
  await shot(p, 'devices-08-console-code');
  const enrolled = await fetch(`${tb!.url}/api/v1/devices/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: shown }) });
  assert.equal(enrolled.status, 201);
  const id = ((await enrolled.json()) as { device: { id: string } }).device.id;
  const row = p.locator(`tr[data-device="${id}"]`);
  await row.waitFor({ timeout: 20_000 });
  assert.match((await row.textContent()) ?? '', /Console made.*lab-9/);
  const dialog = p.locator('dialog.confirm');
  await row.getByRole('button', { name: 'Rename' }).click();
  await dialog.locator('input').fill('Console renamed');
  await dialog.getByRole('button', { name: 'Rename' }).click();
  await p.getByText('Renamed to Console renamed.').waitFor({ timeout: 20_000 });
  await row.getByRole('button', { name: 'Revoke' }).click();
  await dialog.getByRole('button', { name: 'Revoke' }).click();
  await p.getByText('Console renamed was revoked.').waitFor({ timeout: 20_000 });
  const d = (await tb!.app.store.devices.get(id))!;
  assert.equal(d.name, 'Console renamed');
  assert.equal(d.state, 'revoked');
  assert.equal(d.revokedBy, 'ada');
  await shot(p, 'devices-09-console-revoked');
  await p.close();
});
