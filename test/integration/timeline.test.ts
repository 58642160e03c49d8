// The logon timeline and helpdesk messages through the real API: a real broker on real Redis,
// real tunnels (built-in gateway, a scripted VNC server on loopback). Checks what the timeline
// records on a launch and shows in GET /sessions/{id} and /me/sessions, the first-frame route
// (validation, ownership, once per tunnel), the Prometheus histograms, and the message route
// (roles, validation, audit, delivery to the user's own message stream only).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { TestBroker, ApiClient } from '../support/harness.ts';
import { FakeRfbServer } from '../gateway/support/fake-rfb.ts';
import { TunnelClient } from '../tunnel/support/tunnel-client.ts';
import { connectTicket, liveSession, login, streamingBroker, until } from '../tunnel/support/fixtures.ts';
import { LOGON_PHASES } from '../../server/broker/index.ts';

let rfb: FakeRfbServer;
let tb: TestBroker;
let alice: ApiClient;
let bob: ApiClient;
let helen: ApiClient;
const clients: TunnelClient[] = [];

before(async () => {
  rfb = await FakeRfbServer.start({ width: 320, height: 200 });
  tb = await streamingBroker('timeline', {}, { protocol: 'vnc', host: '127.0.0.1', port: rfb.port });
  [alice, bob, helen] = await Promise.all([login(tb, 'alice'), login(tb, 'bob'), login(tb, 'helen')]);
});
after(async () => {
  for (const c of clients) c.close();
  await tb?.close();
  await rfb?.close();
});

/** Opens a real tunnel for the session and waits until the broker counts it connected. */
async function openTunnel(client: ApiClient, session: string): Promise<TunnelClient> {
  const before = (await tb.app.store.sessions.get(session))!.tunnels;
  const c = new TunnelClient(tb.url, { ticket: await connectTicket(client, session), as: client });
  clients.push(c);
  await c.ready(20_000);
  await until(async () => {
    const s = await tb.app.store.sessions.get(session);
    return s?.state === 'connected' && s.tunnels > before;
  }, 20_000, 'tunnel claimed');
  return c;
}

test('a launch on a ready desktop records the login\'s duration, assignment, a zero boot wait and tunnel connected (no home mapped without a guest agent); GET /sessions/{id} and /me/sessions show them', async () => {
  const t0 = Date.now();
  const { session } = await liveSession(tb, alice);
  const tunnel = await openTunnel(alice, session);
  const elapsed = Date.now() - t0;
  const s = await until(async () => {
    const r = await helen.get(`/sessions/${session}`);
    return r.body.session?.logon?.tunnel_connected !== undefined ? r.body.session : null;
  }, 10_000, 'tunnel_connected recorded');
  const logon = s.logon as Record<string, number>;
  assert.equal(logon.desktop_ready, 0, 'a ready spare has no boot wait');
  // The login (in before()) took at least one argon2 verification: its duration came with the HTTP session.
  assert.ok(Number.isInteger(logon.authentication) && logon.authentication! > 0 && logon.authentication! < 60_000, `authentication ${logon.authentication}`);
  for (const p of ['assignment', 'tunnel_connected'] as const) {
    assert.ok(Number.isInteger(logon[p]) && logon[p]! >= 0 && logon[p]! <= elapsed, `${p} = ${logon[p]} within the ${elapsed} ms the launch took`);
  }
  assert.equal(logon.first_frame, undefined, 'no first frame until the browser reports one');
  assert.equal(logon.guest_logon, undefined, 'no guest logon without an agent');
  assert.equal(logon.home_mapped, undefined, 'no agent mapped a folder');
  assert.ok(Object.keys(logon).every((k) => (LOGON_PHASES as readonly string[]).includes(k) || k === 'click_to_usable'), JSON.stringify(logon));
  const mine = (await alice.get('/me/sessions')).body.sessions.find((x: { id: string }) => x.id === session);
  assert.deepEqual(mine.logon, logon, 'the user sees the same timeline');
  // A reconnect (a second tunnel) does not rewrite the logon's timeline.
  tunnel.close();
  await until(async () => (await tb.app.store.sessions.get(session))?.state === 'disconnected', 10_000, 'disconnected');
  await openTunnel(alice, session);
  assert.deepEqual((await helen.get(`/sessions/${session}`)).body.session.logon, logon);
});

test('first-frame route: validated, own session only, once per tunnel; the first one is the logon first_frame and completes click-to-usable', async () => {
  const { session } = await liveSession(tb, alice);
  const path = `/me/sessions/${session}/first-frame`;
  for (const [body, field] of [[{ ms: -1 }, 'ms'], [{ ms: 600_001 }, 'ms'], [{ ms: 12.5 }, 'ms'], [{}, 'ms'], [{ ms: '100' }, 'ms'], [{ ms: 100, extra: 1 }, 'extra']] as const) {
    const r = await alice.post(path, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.error.code, 'validation_failed');
    assert.equal(r.body.error.field, field, JSON.stringify(body));
  }
  const bad = await alice.post('/me/sessions/not-a-uuid/first-frame', { ms: 10 });
  assert.equal(bad.status, 400);
  // Not yours looks like not found, for another user and for the helpdesk alike.
  assert.equal((await bob.post(path, { ms: 100 })).status, 404);
  assert.equal((await helen.post(path, { ms: 100 })).status, 404);
  assert.equal((await alice.post(`/me/sessions/${crypto.randomUUID()}/first-frame`, { ms: 100 })).status, 404);

  await openTunnel(alice, session);
  const first = await alice.post(path, { ms: 850 });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(first.body.recorded, true);
  const again = await alice.post(path, { ms: 900 });
  assert.equal(again.status, 409, 'a second report for the same tunnel');
  assert.equal(again.body.error.code, 'conflict');
  let logon = (await helen.get(`/sessions/${session}`)).body.session.logon;
  assert.equal(logon.first_frame, 850);
  assert.equal(logon.click_to_usable, 850, 'no guest agent on this image: usable at the first frame');

  // A new tunnel may report its own first frame once; the logon keeps the first launch's.
  await openTunnel(alice, session);
  const reconnect = await alice.post(path, { ms: 300 });
  assert.equal(reconnect.status, 200);
  assert.equal(reconnect.body.recorded, false);
  logon = (await helen.get(`/sessions/${session}`)).body.session.logon;
  assert.equal(logon.first_frame, 850);

  assert.equal((await alice.post(`/me/sessions/${session}/logoff`)).status, 200);
  assert.equal((await alice.post(path, { ms: 100 })).status, 409, 'an ended session takes no reports');
});

test('/metrics exports the logon phases and click-to-usable as histograms', async () => {
  const { session } = await liveSession(tb, alice);
  await openTunnel(alice, session);
  assert.equal((await alice.post(`/me/sessions/${session}/first-frame`, { ms: 1200 })).status, 200);
  const text = (await helen.get('/metrics')).body as string;
  for (const phase of ['authentication', 'assignment', 'desktop_ready', 'tunnel_connected', 'first_frame']) {
    assert.match(text, new RegExp(`^vdi_logon_phase_seconds_bucket\\{le="[^"]+",phase="${phase}"\\} [1-9]`, 'm'), `bucket lines for ${phase}`);
    assert.match(text, new RegExp(`^vdi_logon_phase_seconds_count\\{phase="${phase}"\\} [1-9]`, 'm'), `count for ${phase}`);
  }
  assert.match(text, /^vdi_logon_click_to_usable_seconds_bucket\{le="1.5"\} [1-9]/m, 'the 1.2 s click-to-usable falls in the 1.5 s bucket');
  assert.match(text, /^vdi_logon_click_to_usable_seconds_count [1-9]/m);
  assert.equal((await alice.get('/metrics')).status, 403, 'metrics are for the helpdesk');
});

/** Reads a server-sent events stream until `done` says so (bounded). */
async function readEvents(client: ApiClient, path: string, done: (text: string) => boolean, timeoutMs = 15_000): Promise<{ status: number; text: string }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    const res = await fetch(`${tb.url}/api/v1${path}`, { headers: { cookie: client.cookie }, signal: ac.signal });
    if (res.status !== 200) return { status: res.status, text: await res.text() };
    const reader = res.body!.getReader();
    let text = '';
    for (;;) {
      const { value, done: end } = await reader.read();
      if (value) text += Buffer.from(value).toString('utf8');
      if (end || done(text)) break;
    }
    await reader.cancel().catch(() => undefined);
    return { status: 200, text };
  } finally {
    clearTimeout(timer);
  }
}

test('helpdesk message: roles, validation, audit; delivered to the user\'s own viewer stream only', async () => {
  const { session } = await liveSession(tb, alice);
  const path = `/sessions/${session}/message`;
  const ok = { title: 'Maintenance at 18:00', text: 'Please save your work.\nThe desktop restarts at 18:00.' };
  const denied = await alice.post(path, ok);
  assert.equal(denied.status, 403, 'users cannot send messages');
  for (const [body, field] of [
    [{ title: '', text: 'x' }, 'title'],
    [{ title: 'x'.repeat(81), text: 'x' }, 'title'],
    [{ title: 'x', text: 'y'.repeat(1001) }, 'text'],
    [{ title: 'x', text: 'escape \u001b[2J sequences' }, 'text'],
    [{ title: 'bidi \u202e override', text: 'x' }, 'title'],
    [{ title: 'line\nbreak', text: 'x' }, 'title'],
    [{ title: 'x' }, 'text'],
    [{ title: 'x', text: 'y', urgent: true }, 'urgent'],
  ] as const) {
    const r = await helen.post(path, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.error.code, 'validation_failed');
    assert.equal(r.body.error.field, field, JSON.stringify(body));
  }
  assert.equal((await helen.post(`/sessions/${crypto.randomUUID()}/message`, ok)).status, 404);

  const sent = await helen.post(path, ok);
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  assert.deepEqual(sent.body.message, { id: 1, viewer: true, guest: false }, 'no guest agent here: only the viewer gets it');
  const audit = await helen.get(`/audit?action=session.message&target=${session}`);
  const entry = audit.body.entries.find((e: { outcome: string }) => e.outcome === 'ok');
  assert.ok(entry, JSON.stringify(audit.body));
  assert.equal(entry.actor, 'helen');
  assert.equal(entry.details.title, ok.title);
  assert.equal(entry.details.guest, false);
  assert.ok(audit.body.entries.some((e: { outcome: string; details: { code?: string } }) => e.outcome === 'denied' && e.details.code === 'validation_failed'), 'refusals are audited too');

  // The user's stream replays it (with an id to resume after), the second one arrives live.
  const stream = readEvents(alice, `/me/sessions/${session}/messages`, (t) => (t.match(/event: message/g) ?? []).length >= 2);
  assert.equal((await helen.post(path, { title: 'Second', text: 'Still there?' })).status, 200);
  const got = await stream;
  assert.equal(got.status, 200);
  const events = got.text.split('\n\n').filter((b) => b.includes('event: message')).map((b) => ({ id: /^id: (\d+)$/m.exec(b)?.[1], data: JSON.parse(/^data: (.*)$/m.exec(b)![1]!) }));
  assert.deepEqual(events.map((e) => [e.id, e.data.title, e.data.text]), [['1', ok.title, ok.text], ['2', 'Second', 'Still there?']]);
  // Resuming after the last seen id gives nothing old.
  const resumed = await readEvents(alice, `/me/sessions/${session}/messages?after=2&limit=1`, (t) => t.includes('retry:'), 5000);
  assert.ok(!resumed.text.includes('event: message'));
  // Nobody else can read them: another user, or the helpdesk through the user's route.
  assert.equal((await readEvents(bob, `/me/sessions/${session}/messages`, () => true)).status, 404);
  assert.equal((await readEvents(helen, `/me/sessions/${session}/messages`, () => true)).status, 404);

  // Ended: the stream says so and closes; no more messages can be sent.
  assert.equal((await alice.post(`/me/sessions/${session}/logoff`)).status, 200);
  const ended = await readEvents(alice, `/me/sessions/${session}/messages?after=2`, (t) => t.includes('event: ended'));
  assert.match(ended.text, /event: ended/);
  const late = await helen.post(path, ok);
  assert.equal(late.status, 409);
  assert.equal(late.body.error.code, 'conflict');
});
