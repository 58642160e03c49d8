// Session recording and live tunnel statistics, end to end with real parts: Xvnc (VncAuth
// password) → the built-in gateway → the broker's tunnel → guacamole-common-js in headless
// Chromium. A pool with recording 'on' is recorded by the tunnel; the helpdesk plays the file
// on the console's Recordings page (Guacamole.SessionRecording) and sees the live session's
// pixels; the file holds neither the console password nor the ticket; roles and the audit
// trail; retention; the SessionStatsRepository figures. Chromium and Xvnc are stopped by pid.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { ApiClient, TestBroker } from '../support/harness.ts';
import { hasXvnc, startXvnc, type Xvnc } from '../gateway/support/xvnc.ts';
import { CONSOLE_PASSWORD, liveSession, login, streamingBroker, until } from './support/fixtures.ts';
import { servePage, withLogin } from './support/page.ts';
import { launchChromium, webClientMissing, type LaunchedChromium } from '../support/chromium.ts';
import { RecordingRetention } from '../../server/jobs/index.ts';
import { createLogger } from '../../server/observability/index.ts';

const missing = webClientMissing() ?? (hasXvnc() ? null : 'Xvnc/xsetroot/vncpasswd not installed');

type Locator = { click(): Promise<void>; waitFor(o?: { timeout?: number }): Promise<void>; textContent(): Promise<string | null> };
type Page = {
  goto(url: string): Promise<unknown>;
  evaluate<T>(fn: string): Promise<T>;
  keyboard: { type(s: string, o?: { delay?: number }): Promise<void> };
  locator(sel: string): Locator;
  close(): Promise<void>;
  context(): { addCookies(c: Array<{ name: string; value: string; url: string }>): Promise<void> };
};
type Browser = { newPage(): Promise<Page>; close(): Promise<void> };

let xvnc: Xvnc | undefined;
let tb: TestBroker | undefined;
let page: { url: string; close(): Promise<void> } | undefined;
let chrome: LaunchedChromium<Browser> | undefined;
const dir = mkdtempSync(join(tmpdir(), 'vdi-rec-'));
const recDir = join(dir, 'recordings');

before(async () => {
  if (missing) return;
  xvnc = await startXvnc({ width: 320, height: 200, password: CONSOLE_PASSWORD });
  page = await servePage();
  tb = await streamingBroker('tunnel-recording', { tunnel: { allowedOrigins: [new URL(page.url).origin] }, recordings: { dir: recDir, retentionDays: 30 } }, { protocol: 'vnc', host: '127.0.0.1', port: xvnc.port, password: CONSOLE_PASSWORD });
  await tb.addUser('ada', 'admin');
  chrome = await launchChromium<Browser>();
});

after(async () => {
  await chrome?.stop();
  await page?.close();
  await tb?.close();
  await xvnc?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const clockOf = (ms: number) => `${Math.floor(ms / 60_000)}:${String(Math.floor(ms / 1000) % 60).padStart(2, '0')}`;
const near = (a: number[] | null, b: number[]) => !!a && a.every((v, i) => Math.abs(v - b[i]!) <= 3);
const RED = [200, 50, 100];
const BLUE = [30, 144, 255];

test('a recorded session plays back with the live pixels; the file holds no password or ticket; roles, audit, retention; live stats; notify shows the notice; unrecordable is refused', async () => {
  assert.equal(missing, null, `prerequisites missing: ${missing}`);
  const b = chrome!.browser;
  // The pool's policy, set through the API.
  const ada = await login(tb!, 'ada');
  const patched = await ada.patch('/pools/p1', { recording: 'on' });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  assert.equal((await ada.get('/pools/p1')).body.pool.recording, 'on');
  assert.equal((await ada.patch('/pools/p1', { recording: 'sometimes' })).status, 400);

  // The user's session, in Chromium through the real tunnel.
  const alice = await login(tb!, 'alice');
  const { session, desktop } = await liveSession(tb!, alice);
  await xvnc!.x('xsetroot', '-solid', '#c83264');
  const issued = await alice.post(`/me/sessions/${session}/connect`);
  assert.equal(issued.status, 200);
  assert.equal(issued.body.recording, true);
  const ticket = issued.body.ticket as string;
  const p = await b.newPage();
  await withLogin(p, tb!.url, alice);
  await p.goto(page!.url);
  await p.evaluate('new Promise((r) => { const w = () => (window.start ? r() : setTimeout(w, 20)); w(); })');
  const result = await p.evaluate(`window.start(${JSON.stringify(tb!.url.replace(/^http/, 'ws') + '/api/v1/tunnel')}, ${JSON.stringify(ticket)})`);
  assert.deepEqual(result, { ok: true });
  const livePixel = (x: number, y: number) => p.evaluate<number[] | null>(`window.pixel(${x}, ${y})`);
  await until(async () => near(await livePixel(10, 10), RED), 15_000, 'first colour live');
  // A span of time is what is being made here, not a condition awaited: a still screen sends no
  // syncs, so the recording's timeline only gets its second of red from the clock.
  await new Promise((r) => setTimeout(r, 1000));
  await xvnc!.x('xsetroot', '-solid', '#1e90ff');
  await until(async () => near(await livePixel(10, 10), BLUE), 15_000, 'second colour live');
  const liveEnd = [await livePixel(10, 10), await livePixel(300, 190)];
  await p.keyboard.type('x', { delay: 20 });

  // Live statistics, written by the tunnel every 2 s.
  const stats = await until(async () => {
    const s = await tb!.app.store.sessionStats.get(session);
    return s && s.bytesToClient > 0 && s.bytesFromClient > 0 && s.rttMs !== null && s.lastInputAt !== null ? s : null;
  }, 10_000, 'session stats with bytes, rtt and input');
  assert.ok(stats.rttMs! >= 0 && stats.rttMs! < 5000, `rtt ${stats.rttMs}`);
  assert.equal(stats.clientAddress, '127.0.0.1');
  assert.match(stats.userAgent, /Chrome/);
  assert.ok(stats.connectedAt > 0 && stats.updatedAt >= stats.connectedAt);
  await p.close();

  // The recording: indexed, ended, a 0600 file in a 0700 directory.
  const rec = await until(async () => (await tb!.app.store.recordings.list({ session, offset: 0, limit: 10 })).recordings.find((r) => r.endedAt !== null), 10_000, 'recording ended');
  assert.deepEqual([rec.user, rec.desktop, rec.pool, rec.policy], ['alice', desktop, 'p1', 'on']);
  assert.equal(statSync(recDir).mode & 0o777, 0o700);
  assert.equal(statSync(rec.file).mode & 0o777, 0o600);
  const raw = readFileSync(rec.file);
  assert.equal(rec.bytes, raw.length);
  const text = raw.toString('utf8');
  assert.ok(text.includes('4.sync,') && text.includes('4.size,'), 'a Guacamole instruction stream');
  for (const secret of [CONSOLE_PASSWORD, ticket]) {
    assert.ok(!raw.includes(Buffer.from(secret, 'utf8')) && !raw.includes(Buffer.from(secret, 'latin1')), 'a secret is in the recording');
  }
  assert.ok(!text.includes('7.connect,') && !text.includes('6.ticket,') && !text.startsWith('0.,'), 'handshake or internal instructions recorded');

  // Roles: a plain user may not list or play; the helpdesk may not delete.
  const helen = await login(tb!, 'helen');
  assert.equal((await alice.get('/recordings')).status, 403);
  assert.equal((await alice.get(`/recordings/${rec.id}/file`)).status, 403);
  assert.equal((await helen.del(`/recordings/${rec.id}`)).status, 403);
  const listed = await helen.get('/recordings?user=alice&pool=p1');
  assert.equal(listed.status, 200);
  assert.deepEqual(listed.body.recordings.map((r: { id: string }) => r.id), [rec.id]);
  assert.equal(listed.body.recordings[0].file, undefined, 'the file path is not shown');
  assert.equal((await helen.get('/recordings?user=bob')).body.total, 0);
  assert.equal((await helen.get('/recordings?since=2001-01-01T00:00:00Z&until=2001-01-02T00:00:00Z')).body.total, 0);

  // The helpdesk plays it on the console's Recordings page: the end shows the live end, a seek to the start shows the first colour.
  const h = await b.newPage();
  await withLogin(h, tb!.url, helen);
  await h.goto(tb!.url + '/helpdesk/recordings');
  await h.locator(`[data-recording="${rec.id}"] [data-testid=recording-open]`).click();
  await h.locator('[data-testid=recording-player][data-loaded=true]').waitFor({ timeout: 15_000 });
  const duration = await h.evaluate<number>(`Number(document.querySelector('[data-testid=recording-seek]').max)`);
  assert.ok(duration > 1000, `duration ${duration} ms`);
  assert.match((await h.locator('[data-testid=recording-duration]').textContent()) ?? '', /^\d+:\d\d$/);
  const seek = (ms: number) => h.evaluate(`(() => { const s = document.querySelector('[data-testid=recording-seek]'); s.value = '${ms}'; s.dispatchEvent(new Event('input', { bubbles: true })); })()`);
  const played = (x: number, y: number) => h.evaluate<number[] | null>(`(() => { const c = document.querySelector('[data-testid=recording-screen] canvas'); if (!c || c.width <= ${x}) return null; return Array.from(c.getContext('2d').getImageData(${x}, ${y}, 1, 1).data.slice(0, 3)); })()`);
  // Play from the start reaches the second colour; a seek to the end shows the live session's last picture.
  await h.locator('[data-testid=recording-play]').click();
  await until(async () => near(await played(10, 10), BLUE), 20_000, 'playing reaches the second colour');
  await seek(duration);
  await until(async () => near(await played(10, 10), liveEnd[0]!) && near(await played(300, 190), liveEnd[1]!), 15_000, 'played-back end matches the live pixels');
  assert.equal(await h.locator('[data-testid=recording-time]').textContent(), `${clockOf(duration)} / ${clockOf(duration)}`);
  await h.close();

  // An admin deletes it; every access is in the audit trail.
  assert.equal((await ada.del(`/recordings/${rec.id}`)).status, 204);
  assert.ok(!existsSync(rec.file));
  assert.equal((await helen.get(`/recordings/${rec.id}`)).status, 404);
  const audit = (await tb!.app.broker.audit.query({ targetType: 'recording', limit: 50 })).entries;
  const has = (action: string, actor: string, outcome = 'ok') => audit.some((e) => e.action === action && e.actor === actor && e.target === rec.id && e.outcome === outcome);
  assert.ok(has('recording.play', 'helen'), JSON.stringify(audit));
  assert.ok(has('recording.delete', 'helen', 'denied'), 'the refused delete is audited');
  assert.ok(has('recording.delete', 'ada'));

  // Retention: an old recording (file and index) goes, a recent one stays.
  const made = (id: string, startedAt: number) => {
    const file = join(recDir, `${id}.guac`);
    writeFileSync(file, '4.sync,1.0;', { mode: 0o600 });
    return tb!.app.store.recordings.add({ id, session: randomUUID(), user: 'bob', desktop: randomUUID(), pool: 'p1', policy: 'on', startedAt, endedAt: startedAt + 1000, bytes: 11, file }).then(() => file);
  };
  const oldId = randomUUID();
  const newId = randomUUID();
  const oldFile = await made(oldId, Date.now() - 31 * 86_400_000);
  const newFile = await made(newId, Date.now() - 29 * 86_400_000);
  await new RecordingRetention(tb!.app.store, tb!.app.broker.audit, { dir: recDir, retentionDays: 30 }).run({ now: Date.now(), logger: createLogger('silent'), holdsLease: () => true });
  assert.ok(!existsSync(oldFile) && (await tb!.app.store.recordings.get(oldId)) === null, 'the old recording is deleted');
  assert.ok(existsSync(newFile) && (await tb!.app.store.recordings.get(newId)) !== null, 'the recent recording stays');

  // Policy notify: the user's own viewer (the web client) says so, and the connection is recorded.
  assert.equal((await ada.patch('/pools/p1', { recording: 'notify' })).status, 200);
  const v = await b.newPage();
  await withLogin(v, tb!.url, alice);
  await v.goto(`${tb!.url}/desktop/p1`);
  await v.locator('[data-testid=recording-notice]').waitFor({ timeout: 15_000 });
  assert.match((await v.locator('[data-testid=recording-notice]').textContent()) ?? '', /This session is recorded/);
  await until(async () => near(await v.evaluate<number[] | null>(`(() => { const c = document.querySelector('.screen canvas'); if (!c || c.width < 10) return null; return Array.from(c.getContext('2d').getImageData(5, 5, 1, 1).data.slice(0, 3)); })()`), BLUE), 15_000, 'the desktop in the web client');
  const notified = await until(async () => (await tb!.app.store.recordings.list({ session, offset: 0, limit: 10 })).recordings.find((r) => r.policy === 'notify'), 10_000, 'a notify recording');
  assert.equal(notified.endedAt, null, 'still recording while the viewer is open');
  await v.close();

  // No place to record: a recorded pool does not stream unrecorded (0x0200).
  rmSync(recDir, { recursive: true, force: true });
  const u = await b.newPage();
  await withLogin(u, tb!.url, alice);
  await u.goto(page!.url);
  await u.evaluate('new Promise((r) => { const w = () => (window.start ? r() : setTimeout(w, 20)); w(); })');
  const refused = await u.evaluate<{ ok: boolean; code?: number }>(`window.start(${JSON.stringify(tb!.url.replace(/^http/, 'ws') + '/api/v1/tunnel')}, ${JSON.stringify((await alice.post(`/me/sessions/${session}/connect`)).body.ticket)})`);
  assert.deepEqual([refused.ok, refused.code], [false, 0x0200]);
  const why = (await tb!.app.broker.audit.query({ action: 'tunnel.refused', target: session, limit: 5 })).entries[0];
  assert.equal(why?.details.reason, 'recording_unavailable');
  await u.close();
});
