// Helpdesk messages and the logon timeline in the web client (client/dist), headless Chromium
// against a real broker on real Redis with its reconcilers, streaming a real VNC desktop (Xvnc).
// A user launches a ready spare: the viewer reports the first frame (the session's timeline
// gets first_frame, counted from the Launch click, and the helpdesk's Sessions page shows the
// timeline); the helpdesk sends a message from the Sessions page: it appears over the user's
// viewer, and is gone once dismissed while the desktop stays connected. Screenshots go to
// .artifacts/client/. Chromium and Xvnc are stopped by pid, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import type { TestBroker } from '../support/harness.ts';
import type { Xvnc } from '../gateway/support/xvnc.ts';
import { ARTIFACTS, deskMissing, startDesk, type Desk } from './support/desk.ts';
import { login, until } from '../tunnel/support/fixtures.ts';

const missing = deskMissing();

let desk: Desk | undefined;
let xvnc: Xvnc | undefined;
let tb: TestBroker | undefined;

before(async () => {
  if (missing) return;
  desk = await startDesk({ name: 'message-overlay', users: [['alice'], ['helen', 'helpdesk']], pool: { name: 'p1', displayName: 'Office desktops', size: { min: 0, max: 3, spare: 1 }, entitlements: { users: ['alice'], groups: [] } } });
  ({ xvnc, tb } = desk);
});

after(async () => desk?.close());

const newPage = () => desk!.newPage();
/** Submits the login form (no wait: the caller waits for what its page shows next). */
const uiLogin = (p: Page, user: string) => desk!.uiLogin(p, user, { waitLoggedIn: false });

const shot = (p: Page, name: string) => p.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
const pixel = (p: Page) =>
  p.evaluate<number[] | null>(`(() => { const c = document.querySelector('.screen canvas'); if (!c || c.width < 10) return null; return Array.from(c.getContext('2d').getImageData(5, 5, 1, 1).data.slice(0, 3)); })()`);

test('the viewer reports its first frame, the helpdesk sees the timeline, and a helpdesk message appears over the viewer until dismissed', { timeout: 180_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  await xvnc!.x('xsetroot', '-solid', '#c83264');
  await until(async () => (await tb!.app.store.desktops.listByPool('p1')).some((d) => d.state === 'ready'), 30_000, 'a ready spare');

  const u = await newPage();
  await uiLogin(u, 'alice');
  await u.getByRole('heading', { name: 'My desktops' }).waitFor();
  const clicked = Date.now();
  await u.locator('[data-pool=p1]').getByRole('button', { name: 'Launch' }).click();
  await until(async () => (await u.locator('[data-testid=conn-state]').textContent()) === 'connected', 30_000, 'viewer connected');
  await until(async () => {
    const px = await pixel(u);
    return !!px && Math.abs(px[0]! - 200) <= 3 && Math.abs(px[1]! - 50) <= 3;
  }, 20_000, 'the desktop drawn');
  const drawnBy = Date.now();

  // First frame: reported by the browser, counted from the Launch click.
  const sessions = await until(async () => {
    const live = await tb!.app.broker.sessions.listLive({ user: 'alice' });
    return live[0]?.logon.first_frame !== undefined ? live : null;
  }, 15_000, 'first frame reported');
  const s = sessions[0]!;
  assert.ok(s.logon.first_frame! > 0 && s.logon.first_frame! <= drawnBy - clicked + 50, `first_frame ${s.logon.first_frame} ms within the ${drawnBy - clicked} ms from click to pixels`);
  assert.equal(s.logon.desktop_ready, 0, 'a ready spare');
  assert.ok(s.logon.tunnel_connected !== undefined && s.logon.assignment !== undefined, JSON.stringify(s.logon));

  // The helpdesk sees the timeline and sends a message.
  const h = await newPage();
  // Logged in (the cookie set) before the next navigation: a goto during the form's submit would land on the login page.
  await desk!.uiLogin(h, 'helen');
  await h.goto(tb!.url + '/helpdesk/sessions');
  const row = h.locator(`tr[data-session="${s.id}"]`);
  await row.waitFor();
  const timeline = row.locator('[data-testid=logon-timeline]');
  await timeline.waitFor();
  assert.match((await timeline.getAttribute('title')) ?? '', /First frame \(from Launch\): \d/);
  await shot(h, '30-sessions-timeline');
  await row.getByRole('button', { name: 'Message' }).click();
  const dialog = h.locator('dialog.confirm[open]');
  await dialog.locator('input[name=title]').fill('Maintenance tonight');
  await dialog.locator('textarea[name=text]').fill('Please save your work before 18:00.\nThe desktop restarts then.');
  await shot(h, '31-message-dialog');
  await dialog.getByRole('button', { name: 'Send' }).click();
  await h.getByText(/Message shown to alice in their viewer/).waitFor();

  // It appears over the user's viewer, in their words, and goes away when dismissed.
  const overlay = u.locator('[data-testid=helpdesk-message]');
  await overlay.waitFor({ timeout: 15_000 });
  assert.equal(await overlay.getByRole('heading').textContent(), 'Maintenance tonight');
  assert.equal(await overlay.locator('#helpdesk-message-text').innerText(), 'Please save your work before 18:00.\nThe desktop restarts then.');
  await shot(u, '32-message-overlay');
  await overlay.getByRole('button', { name: 'Dismiss' }).click();
  await overlay.waitFor({ state: 'detached', timeout: 5000 });
  assert.equal(await u.locator('[data-testid=conn-state]').textContent(), 'connected', 'the desktop stays connected');
  await shot(u, '33-message-dismissed');
  // A dismissed message is not queued again: the next one comes alone.
  const helen = await login(tb!, 'helen');
  assert.equal((await helen.post(`/sessions/${s.id}/message`, { title: 'Second', text: 'Done, thanks.' })).status, 200);
  await overlay.waitFor({ timeout: 15_000 });
  assert.equal(await overlay.getByRole('heading').textContent(), 'Second');
  assert.equal(await overlay.getByRole('button').textContent(), 'Dismiss', 'nothing else queued behind it');
  // From the keyboard: the message takes the focus, so Enter dismisses it.
  await u.keyboard.press('Enter');
  await overlay.waitFor({ state: 'detached', timeout: 5000 });
});
