// The helpdesk's session detail page and the overview's server-side history and alerts, in the
// built web client (client/dist) in headless Chromium against a real broker (real Redis,
// reconcilers running) streaming a real X desktop (Xvnc). The detail page names the user, the
// desktop, its host, the client's address and browser, when it connected, the bytes the tunnel
// carried and the round trip of the Guacamole sync after traffic, idle time, the logon phases;
// Disconnect closes the user's viewer while the session stays. The overview lists the alert of
// a pool left without a spare, and its 24-hour chart comes from the broker, so a reload and a
// second browser context show it at once; the history in Redis is one sample a minute, bounded.
// One broker, one Xvnc, one browser; screenshots go to $VDI_TEST_ARTIFACTS (default
// /tmp/vdi-artifacts). Everything is stopped by pid, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import type { TestBroker } from '../support/harness.ts';
import type { Xvnc } from '../gateway/support/xvnc.ts';
import { ARTIFACTS, deskMissing, startDesk, type Desk } from './support/desk.ts';
import { login, until } from '../tunnel/support/fixtures.ts';
import { HistoryRepository, HISTORY_POINTS } from '../../server/store/history.repository.ts';

const missing = deskMissing();

let desk: Desk | undefined;
let xvnc: Xvnc | undefined;
let tb: TestBroker | undefined;

before(async () => {
  if (missing) return;
  // One desktop at most, one spare wanted: once alice holds it, the pool is out of spares.
  desk = await startDesk({ name: 'session-detail', users: [['alice'], ['helen', 'helpdesk']], pool: { name: 'p1', displayName: 'Office desktops', size: { min: 0, max: 1, spare: 1 }, entitlements: { users: ['alice'], groups: [] } } });
  ({ xvnc, tb } = desk);
});

after(async () => desk?.close());

const newPage = () => desk!.newPage({ width: 1100, height: 800 });
const uiLogin = (p: Page, user: string) => desk!.uiLogin(p, user);

const shot = (p: Page, name: string) => p.screenshot({ path: join(ARTIFACTS, `session-detail-${name}.png`), fullPage: true });
const field = (p: Page, name: string) => p.locator(`[data-testid=session-detail] tr[data-field=${name}] td`);
const text = async (p: Page, name: string) => ((await field(p, name).textContent()) ?? '').trim();

test('overview: a 24 h history that survives a reload and a second context, the out-of-spares alert; session detail: who, where, bytes and the sync round trip after traffic, idle, logon phases, disconnect', { timeout: 180_000 }, async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  await until(async () => (await tb!.app.store.desktops.listByPool('p1')).some((d) => d.state === 'ready'), 30_000, 'a ready spare');

  // alice works in her desktop; the screen changes, so the tunnel carries frames and syncs.
  const u = await newPage();
  await uiLogin(u, 'alice');
  await u.locator('[data-pool=p1]').getByRole('button', { name: /Launch|Reconnect/ }).click();
  await until(async () => (await u.locator('[data-testid=conn-state]').textContent()) === 'connected', 30_000, 'viewer connected');
  for (const c of ['#1e90ff', '#ffd700', '#2e8b57']) await xvnc!.x('xsetroot', '-solid', c);
  const [s] = await tb!.app.broker.sessions.listLive({ user: 'alice' });
  assert.ok(s);
  const d = (await tb!.app.store.desktops.get(s.desktop))!;

  const h = await newPage();
  await uiLogin(h, 'helen');
  const helen = await login(tb!, 'helen');

  // Overview: the 24-hour chart comes from the broker: there at once, after a reload, and in
  // another browser context (no tab storage); the pool is out of spares (its only desktop is alice's).
  await h.goto(`${tb!.url}/helpdesk`);
  const chart = h.locator('figure.chart svg');
  await chart.waitFor({ timeout: 10_000 });
  await h.reload();
  await chart.waitFor({ timeout: 10_000 });
  const opened = Date.now();
  const other = await newPage();
  await uiLogin(other, 'helen');
  await other.goto(`${tb!.url}/helpdesk`);
  await other.locator('figure.chart svg').waitFor({ timeout: 10_000 });
  const from = Number(await other.locator('figure.chart svg').getAttribute('data-from'));
  assert.ok(from > 0 && from < opened - 5_000, `the new context's chart starts before it was opened (at ${new Date(from).toISOString()}, opened ${new Date(opened).toISOString()})`);
  const hist = (await helen.get('/stats/history?hours=24')).body;
  assert.ok(hist.pools.find((p: { pool: string }) => p.pool === 'p1')?.samples.length >= 1, JSON.stringify(hist));
  assert.equal((await helen.get('/stats/history?hours=48')).status, 400, 'at most 24 hours');
  const alert = h.locator('[data-alert=pool_out_of_spares][data-target=p1]');
  await alert.waitFor({ timeout: 15_000 });
  assert.match((await alert.textContent()) ?? '', /Critical:.*Office desktops \(p1\) has no ready spare desktop.*maximum 1/);
  await shot(h, '01-overview');

  // The helpdesk opens the session from the Sessions page.
  await h.goto(`${tb!.url}/helpdesk/sessions`);
  await h.locator(`tr[data-session="${s.id}"]`).getByRole('link', { name: 'alice' }).click();
  await h.getByRole('heading', { name: `Session of alice on ${d.name}` }).waitFor();
  assert.equal(new URL(h.url()).pathname, `/helpdesk/sessions/${s.id}`);
  assert.equal(await text(h, 'user'), 'alice');
  assert.match(await text(h, 'desktop'), new RegExp(`^${d.name}`));
  assert.match(await text(h, 'pool'), /Office desktops \(p1\)/);
  assert.equal(await text(h, 'host'), `${d.host || '—'} (${d.provider})`);
  assert.equal(await text(h, 'client-address'), '127.0.0.1');
  assert.match(await text(h, 'browser'), /^Chrome \d+ \(headless\) on Linux/);
  assert.match(await text(h, 'state'), /connected/);
  assert.notEqual(await text(h, 'connected-at'), '—');
  assert.equal(await text(h, 'disconnected-at'), '—');
  // Live figures: bytes both ways and the sync round trip, once the tunnel has reported.
  await until(async () => /^[\d.]+ (B|KiB|MiB) \/ [\d.]+ (B|KiB|MiB)$/.test(await text(h, 'bytes')) && !/^0 B/.test(await text(h, 'bytes')) && /^\d+ ms$/.test(await text(h, 'rtt')), 20_000, 'bytes and round trip on the page');
  assert.match(await text(h, 'bandwidth'), /\/s$/);
  assert.notEqual(await text(h, 'idle'), '—');
  const api = (await helen.get(`/sessions/${s.id}`)).body;
  assert.ok(api.stats.bytesToClient > 0 && api.stats.bytesFromClient > 0, JSON.stringify(api.stats));
  assert.ok(typeof api.stats.rttMs === 'number' && api.stats.rttMs >= 0 && api.stats.rttMs < 5000, `rtt ${api.stats.rttMs}`);
  assert.deepEqual({ name: api.desktop.name, host: api.desktop.host }, { name: d.name, host: d.host });
  // The logon timeline, phase by phase as they arrived.
  const phases = h.locator('[data-testid=logon-phases] li');
  await until(async () => (await phases.allTextContents()).some((t) => /^Tunnel connected: /.test(t)), 10_000, 'the tunnel phase listed');
  assert.ok((await phases.allTextContents()).some((t) => /^Assignment: /.test(t)));
  await shot(h, '02-detail');

  // Disconnect: the user's viewer closes, the session stays (disconnected), audited.
  await h.getByRole('button', { name: 'Disconnect' }).click();
  await h.locator('dialog.confirm[open]').getByRole('button', { name: 'Disconnect' }).click();
  await until(async () => (await tb!.app.store.sessions.get(s.id))?.state === 'disconnected', 15_000, 'session disconnected');
  await until(async () => (await u.locator('[data-testid=conn-state]').textContent()) === 'closed', 10_000, "the user's viewer closed, not reconnecting");
  await until(async () => /disconnected/.test(await text(h, 'state')) && (await text(h, 'disconnected-at')) !== '—', 10_000, 'the page shows it');
  const { entries } = await tb!.app.store.audit.query({ action: 'session.disconnect', target: s.id, limit: 5 });
  assert.equal(entries.length, 1);
  assert.equal(entries[0]!.actor, 'helen');
  await shot(h, '03-disconnected');
});

test('history in Redis: one sample per minute (the last write of a minute wins), at most 24 h per pool', async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const key = `${tb!.prefix}test-history`;
  // The trimming is the same at any bound: a small one keeps the test quick (the broker's is 24 h of minutes).
  assert.equal(HISTORY_POINTS, 24 * 60);
  const max = 30;
  const repo = new HistoryRepository(tb!.app.store.redis, () => key, max);
  const t0 = Date.UTC(2026, 0, 1);
  const sample = (t: number, ready: number) => ({ t, ready, inUse: 1, provisioning: 0, error: 0, connected: 1, disconnected: 0 });
  await repo.put('x', sample(t0 + 5_000, 1));
  await repo.put('x', sample(t0 + 50_000, 2));
  assert.deepEqual((await repo.since('x', 0)).map((s) => [s.t, s.ready]), [[t0, 2]], 'same minute: replaced');
  for (let i = 1; i <= max + 10; i++) await repo.put('x', sample(t0 + i * 60_000, i % 7));
  const all = await repo.since('x', 0);
  assert.equal(all.length, max, 'bounded');
  assert.equal(all.at(-1)!.t, t0 + (max + 10) * 60_000);
  assert.equal(all[0]!.t, t0 + 11 * 60_000, 'the oldest dropped');
  await tb!.app.store.redis.del(key);
});
