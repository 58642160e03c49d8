// Helpdesk shadowing as both people live it: the built web client (client/dist) in headless
// Chromium, the user and the helpdesk in two browser contexts, against a real broker (real
// Redis, reconcilers running) streaming a real X desktop (Xvnc) whose key events `xev -root`
// records. The user sees a notice naming who watches; the shadow's title names the user and
// the desktop; keys are ignored until the helpdesk asks for control and the user allows it,
// then they reach the desktop; the user takes control back; with the pool's consent policy the
// shadow waits until the user clicks Allow, and Deny refuses it with a clear message; every
// step is in the audit trail; consent not given within 30 s (the service's clock moved by the
// test) refuses it. One broker, one Xvnc, one browser; screenshots go to
// $VDI_TEST_ARTIFACTS (default /tmp/vdi-artifacts). Everything is stopped by pid, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import type { TestBroker } from '../support/harness.ts';
import { stopChild } from '../support/process.ts';
import type { Xvnc } from '../gateway/support/xvnc.ts';
import { ARTIFACTS, deskMissing, startDesk, type Desk } from './support/desk.ts';
import { login, until } from '../tunnel/support/fixtures.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { ShadowService } from '../../server/broker/shadow.service.ts';
import { ShadowRepository } from '../../server/store/shadow.repository.ts';
import type { BrokerError } from '../../server/errors.ts';

const XEV = '/usr/bin/xev';
const missing = deskMissing() ?? (!existsSync(XEV) ? 'xev not installed (apt-get install x11-utils)' : null);

let desk: Desk | undefined;
let xvnc: Xvnc | undefined;
let xev: ChildProcess | undefined;
let xevOut = '';
let tb: TestBroker | undefined;

before(async () => {
  if (missing) return;
  desk = await startDesk({ name: 'shadowing', users: [['alice'], ['helen', 'helpdesk']], pool: { name: 'p1', displayName: 'Office desktops', size: { min: 0, max: 2, spare: 1 }, entitlements: { users: ['alice'], groups: [] } } });
  ({ xvnc, tb } = desk);
  xev = spawn(XEV, ['-display', `:${xvnc.display}`, '-root', '-event', 'keyboard'], { stdio: ['ignore', 'pipe', 'ignore'] });
  xev.stdout!.on('data', (d: Buffer) => void (xevOut += d.toString('latin1')));
});

after(async () => {
  if (xev) await stopChild(xev);
  await desk?.close();
});

const newPage = () => desk!.newPage();
const uiLogin = (p: Page, user: string) => desk!.uiLogin(p, user);

const shot = (p: Page, name: string) => p.screenshot({ path: join(ARTIFACTS, `shadowing-${name}.png`) });
/** Key names xev saw pressed in the desktop. */
const pressed = () => [...xevOut.matchAll(/KeyPress event[\s\S]*?keycode \d+ \(keysym 0x[0-9a-f]+, ([^)]+)\)/g)].map((m) => m[1]!);
const connected = (p: Page) => until(async () => (await p.locator('[data-testid=conn-state]').textContent()) === 'connected', 30_000, 'viewer connected');

test('shadowing: the user is told and named who watches, control only when the user allows it (keys then reach the desktop) and taken back, consent waits for Allow and Deny refuses, all audited', { timeout: 240_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  await until(async () => (await tb!.app.store.desktops.listByPool('p1')).some((d) => d.state === 'ready'), 30_000, 'a ready spare');

  // The user works in their desktop.
  const u = await newPage();
  await uiLogin(u, 'alice');
  await u.locator('[data-pool=p1]').getByRole('button', { name: /Launch|Reconnect/ }).click();
  await connected(u);
  const [s] = await tb!.app.broker.sessions.listLive({ user: 'alice' });
  assert.ok(s);
  const desktopName = (await tb!.app.store.desktops.get(s.desktop))!.name;
  const notice = u.locator('[data-testid=shadow-notice]');
  assert.equal(await notice.count(), 0, 'no notice before anyone watches');

  // The helpdesk shadows from the Sessions page (pool policy: notify).
  const h = await newPage();
  await uiLogin(h, 'helen');
  await h.goto(`${tb!.url}/helpdesk/sessions`);
  await h.locator(`tr[data-session="${s.id}"]`).getByRole('button', { name: 'Shadow' }).click();
  await connected(h);
  const title = (await h.locator('.toolbar .title').textContent()) ?? '';
  assert.match(title, new RegExp(`alice on ${desktopName}`), `the shadow's title names the user and the desktop: ${title}`);
  assert.ok(!title.includes(s.id), 'not the session id');
  assert.match(await h.title(), new RegExp(`alice on ${desktopName}`), 'the tab too');

  // The user sees who watches.
  await notice.waitFor({ timeout: 10_000 });
  assert.match((await notice.textContent()) ?? '', /helen.*watching your screen/);
  await shot(u, '01-user-notice');
  await shot(h, '02-helpdesk-view-only');

  // View only: the helpdesk's keys do not reach the desktop.
  await h.locator('.screen').click();
  await h.keyboard.type('z', { delay: 30 });

  // Control: asked for, allowed by the user, then the helpdesk's keys arrive.
  await h.getByRole('button', { name: 'Request control' }).click();
  const ask = u.locator('[data-testid=shadow-control]');
  await ask.waitFor({ timeout: 10_000 });
  assert.match((await ask.textContent()) ?? '', /helen asks to use your keyboard and mouse/);
  await shot(u, '03-user-control-request');
  await ask.getByRole('button', { name: 'Allow control' }).click();
  await h.locator('[data-testid=shadow-control-state]', { hasText: 'You have control' }).waitFor({ timeout: 10_000 });
  await connected(h);
  await until(async () => (await h.locator('.toolbar .badge.st-readonly').count()) === 0, 10_000, 'the shadow viewer takes input');
  await h.locator('.screen').click();
  await h.keyboard.type('q', { delay: 30 });
  await until(() => pressed().includes('q'), 10_000, "the helpdesk's key q in the desktop");
  assert.ok(!pressed().includes('z'), `a key typed while view-only reached the desktop: ${pressed().join(' ')}`);
  assert.match((await notice.textContent()) ?? '', /helen.*controlling your desktop/);
  await shot(h, '04-helpdesk-control');

  // The user takes control back: the helpdesk watches read-only again.
  await notice.getByRole('button', { name: 'Take back control' }).click();
  await h.locator('[data-testid=shadow-control-state]', { hasText: 'View only' }).waitFor({ timeout: 10_000 });
  await connected(h);
  const before = pressed().length;
  await h.locator('.screen').click();
  await h.keyboard.type('x', { delay: 30 });
  await u.locator('.screen').click();
  await u.keyboard.type('k', { delay: 30 });
  await until(() => pressed().slice(before).includes('k'), 10_000, "the user's own key k");
  assert.ok(!pressed().slice(before).includes('x'), 'the helpdesk typed after control was taken back');

  // Leaving ends the shadow: the notice goes.
  await h.getByRole('button', { name: 'Stop watching' }).click();
  await notice.waitFor({ state: 'detached', timeout: 10_000 });

  // Consent: the shadow waits until the user allows it.
  await tb!.app.broker.pools.update('p1', { shadow: 'consent' }, SYSTEM_ACTOR);
  await h.goto(`${tb!.url}/helpdesk/shadow/${s.id}`);
  await h.locator('[data-testid=shadow-waiting]').waitFor({ timeout: 10_000 });
  assert.match((await h.locator('[data-testid=shadow-waiting]').textContent()) ?? '', /Waiting for alice to allow/);
  const helen = await login(tb!, 'helen');
  const early = await helen.post(`/sessions/${s.id}/shadow`);
  assert.equal(early.status, 409, 'no ticket before the user allows');
  assert.equal(early.body.error.code, 'shadow_consent_pending');
  const consent = u.locator('[data-testid=shadow-consent]');
  await consent.waitFor({ timeout: 10_000 });
  assert.match((await consent.textContent()) ?? '', /helen asks to watch your desktop/);
  assert.equal(await notice.count(), 0, 'not watched yet');
  await shot(u, '05-user-consent');
  await consent.getByRole('button', { name: 'Allow' }).click();
  await connected(h);
  await notice.waitFor({ timeout: 10_000 });
  await shot(h, '06-helpdesk-after-consent');
  await h.getByRole('button', { name: 'Stop watching' }).click();
  await notice.waitFor({ state: 'detached', timeout: 10_000 });

  // Deny: the helpdesk is told, and gets no ticket.
  await h.goto(`${tb!.url}/helpdesk/shadow/${s.id}`);
  await consent.waitFor({ timeout: 10_000 });
  await consent.getByRole('button', { name: 'Deny' }).click();
  const refused = h.locator('[data-testid=shadow-refused]');
  await refused.waitFor({ timeout: 10_000 });
  assert.match((await refused.textContent()) ?? '', /alice declined to be shadowed/);
  const denied = await helen.post(`/sessions/${s.id}/shadow`);
  assert.equal(denied.status, 403);
  assert.equal(denied.body.error.code, 'shadow_denied');
  assert.equal(await notice.count(), 0, 'a refused shadow shows no notice');
  await shot(h, '07-helpdesk-denied');
  await h.getByRole('button', { name: 'Back to sessions' }).click();

  // Every step is audited, in order.
  const trail = await until(async () => {
    const { entries } = await tb!.app.store.audit.query({ target: s.id, limit: 200 });
    const got = entries.filter((e) => e.action.startsWith('session.shadow.')).reverse();
    return got.filter((e) => e.action === 'session.shadow.end').length >= 3 ? got : null;
  }, 10_000, 'the shadow audit trail');
  const steps = trail.map((e) => `${e.action}${e.details.answer ? `:${String(e.details.answer)}` : ''}`);
  assert.deepEqual(steps, [
    'session.shadow.start', 'session.shadow.control_request', 'session.shadow.control:granted', 'session.shadow.control:revoked', 'session.shadow.end',
    'session.shadow.start', 'session.shadow.consent:allowed', 'session.shadow.end',
    'session.shadow.start', 'session.shadow.consent:denied', 'session.shadow.end',
  ]);
  assert.ok(trail.filter((e) => e.action === 'session.shadow.consent' || e.action === 'session.shadow.control').every((e) => e.actor === 'alice'), 'the user answered');
  assert.ok(trail.filter((e) => /start|end|control_request/.test(e.action)).every((e) => e.actor === 'helen'));
  await u.locator('[data-testid=conn-state]', { hasText: 'connected' }).waitFor();
});

test('consent not given within 30 s refuses the shadow (shadow_consent_timeout), audited as a timeout', async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  // The service with its clock in the test's hands, on the same Redis and audit trail as the broker.
  let clock = Date.now();
  const shadows = new ShadowService(tb!.app.store, new ShadowRepository(tb!.app.store.redis, tb!.app.store.keys.sessionShadow), tb!.app.broker.audit, () => clock);
  await tb!.app.broker.pools.update('p1', { shadow: 'consent' }, SYSTEM_ACTOR);
  const [s] = (await tb!.app.broker.sessions.listLive({ user: 'alice' })).filter((x) => x.state === 'connected');
  assert.ok(s, "alice's connected session (from the test above)");
  const helen = { principal: { kind: 'user' as const, id: 'helen', role: 'helpdesk' as const, groups: [] }, address: '127.0.0.1' };
  assert.equal((await shadows.start(helen, s.id)).consent, 'pending');
  await assert.rejects(shadows.admit(helen, s.id), (e: BrokerError) => e.code === 'shadow_consent_pending');
  clock += 29_000;
  assert.equal((await shadows.status(helen, s.id)).consent, 'pending', 'still asking after 29 s');
  clock += 2_000;
  await assert.rejects(shadows.admit(helen, s.id), (e: BrokerError) => e.code === 'shadow_consent_timeout' && /did not answer within 30 seconds/.test(e.message));
  const { entries } = await tb!.app.store.audit.query({ action: 'session.shadow.consent', target: s.id, limit: 20 });
  assert.equal(entries.filter((e) => e.details.answer === 'timeout').length, 1, 'one timeout entry');
  await shadows.end(helen, s.id);
});
