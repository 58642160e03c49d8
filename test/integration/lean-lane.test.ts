// The lean lane (server/api/lean-lane.ts): logged-in callers of routes that leave the HTTP
// session alone are served ahead of express, without express-session and the per-request auth
// middlewares, and
// every refusal of the full path holds there too: CSRF, roles, logged-out sessions, disabled
// users, bad or revoked API keys, thin clients' device cookies, bad bodies. Real HTTP, real Redis.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { startTestBroker, ApiClient, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

let tb: TestBroker;

before(async () => {
  tb = await startTestBroker({ name: 'lean' });
  for (const u of ['ln-user', 'ln-gone', 'ln-out']) await tb.addUser(u);
  await tb.addUser('ln-admin', 'admin');
  await tb.app.broker.pools.create(tb.pool({ name: 'lean', size: { min: 0, max: 4, spare: 0 }, entitlements: { users: ['ln-user'], groups: [] } }), SYSTEM_ACTOR);
  await tb.readyDesktops('lean', 2);
});
after(async () => {
  await tb?.close();
});

/** Requests the lean lane has served so far. */
async function leanServed(): Promise<number> {
  return (await tb.app.metrics.httpLean.get()).values[0]?.value ?? 0;
}

/** What one request did: its answer and whether the lean lane served it. */
async function viaLane(fn: () => Promise<{ status: number; body: any }>): Promise<{ status: number; body: any; lean: boolean }> {
  const before = await leanServed();
  const r = await fn();
  // The counter moves when the answer is finished, which the client has seen by now.
  return { ...r, lean: (await leanServed()) > before };
}

async function login(user: string): Promise<ApiClient> {
  const c = new ApiClient(tb.url);
  assert.equal((await c.login(user)).status, 200);
  return c;
}

test('a logged-in user requests a desktop and logs off through the lean lane; the answers are the full path\'s', async () => {
  const c = await login('ln-user');
  const req = await viaLane(() => c.post('/me/pools/lean/request'));
  assert.equal(req.status, 200, JSON.stringify(req.body));
  assert.equal(req.lean, true, 'the request took the lean lane');
  assert.equal(req.body.outcome, 'assigned');
  const id = req.body.session.id as string;
  const mine = await viaLane(() => c.get('/me/sessions/'));
  assert.equal(mine.lean, true, 'a trailing slash is matched as express matches it');
  assert.deepEqual(mine.body.sessions.map((s: { id: string }) => s.id), [id]);
  const off = await viaLane(() => c.post(`/me/sessions/${encodeURIComponent(id)}/logoff`));
  assert.equal(off.status, 200, JSON.stringify(off.body));
  assert.equal(off.lean, true);
  assert.deepEqual((await c.get('/me/sessions')).body.sessions, [], 'the session logged off is no longer live');
  const audit = await tb.app.store.audit.query({ action: 'session.logoff', target: id, limit: 5 });
  assert.equal(audit.entries.length, 1, 'the logoff is in the audit trail');
  assert.equal(audit.entries[0]!.actor, 'ln-user');
});

test('CSRF holds on the lean lane: no token, a wrong token and another session\'s token are refused 403 csrf_invalid', async () => {
  const c = await login('ln-user');
  const other = await login('ln-out');
  for (const token of ['', 'x'.repeat(256), other.csrf]) {
    const forger = new ApiClient(tb.url);
    forger.cookie = c.cookie;
    forger.csrf = token;
    const r = await viaLane(() => forger.post('/me/pools/lean/request'));
    assert.equal(r.status, 403, `token '${token.slice(0, 8)}': ${JSON.stringify(r.body)}`);
    assert.equal(r.lean, true, 'refused on the lean lane itself');
    assert.equal(r.body.error.code, 'csrf_invalid');
  }
  assert.equal((await tb.app.broker.sessions.listLive({ user: 'ln-user' })).length, 0, 'no refused request assigned anything');
});

test('roles hold on the lean lane: a user is refused a helpdesk change (403, audited), unknown callers 401', async () => {
  const c = await login('ln-user');
  const r = await viaLane(() => c.patch('/pools/lean', { enabled: false }));
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, 'forbidden');
  assert.equal((await tb.app.store.pools.get('lean'))!.enabled, true);
  const audit = await tb.app.store.audit.query({ action: 'pool.update', actor: 'ln-user', limit: 5 });
  assert.equal(audit.entries[0]?.outcome, 'denied', 'the refusal is audited');
  const anon = new ApiClient(tb.url);
  assert.equal((await anon.get('/me/sessions')).status, 401);
  const forged = new ApiClient(tb.url);
  forged.cookie = c.cookie.replace(/.$/, (ch) => (ch === 'A' ? 'B' : 'A'));
  forged.csrf = c.csrf;
  assert.equal((await forged.get('/me/sessions')).status, 401, 'a cookie with a bad signature is no login');
});

test('a logged-out session and a disabled user are refused on the next lean request', async () => {
  const out = await login('ln-out');
  const stale = { cookie: out.cookie, csrf: out.csrf };
  assert.equal((await out.post('/auth/logout')).status, 204);
  const replay = new ApiClient(tb.url);
  Object.assign(replay, stale);
  assert.equal((await replay.get('/me/sessions')).status, 401);
  const gone = await login('ln-gone');
  assert.equal((await viaLane(() => gone.get('/me/sessions'))).lean, true);
  await tb.app.store.users.update('ln-gone', { disabled: true });
  const r = await gone.get('/me/sessions');
  assert.equal(r.status, 401, JSON.stringify(r.body));
});

test('API keys on the lean lane: a valid key is served, a malformed, unknown or revoked one is refused 401', async () => {
  const admin = await login('ln-admin');
  const created = await admin.post('/api-keys', { name: 'lean-bot', role: 'helpdesk' });
  assert.equal(created.status, 201);
  const bot = new ApiClient(tb.url);
  bot.bearer = created.body.token;
  const ok = await viaLane(() => bot.get('/pools'));
  assert.equal(ok.status, 200);
  assert.equal(ok.lean, true);
  assert.equal((await bot.get('/api-keys')).status, 403, 'a helpdesk key is not an admin');
  for (const bearer of ['not-a-key', `vdik_${'a'.repeat(12)}_${'b'.repeat(43)}`]) {
    const k = new ApiClient(tb.url);
    k.bearer = bearer;
    const r = await k.get('/pools');
    assert.equal(r.status, 401, bearer);
    assert.equal(r.body.error.code, 'unauthenticated');
  }
  assert.equal((await admin.del(`/api-keys/${created.body.key.id}`)).status, 204);
  assert.equal((await bot.get('/pools')).status, 401, 'a revoked key is refused at once');
  // A malformed Authorization header is refused even beside a valid cookie (as on the full path).
  const both = await login('ln-admin');
  const r = await both.request('GET', '/pools', undefined, { authorization: 'Basic abc' });
  assert.equal(r.status, 401);
});

test('a thin client\'s device cookie takes the full path: an unknown device is refused (401 device_unknown) on a route the lean lane serves', async () => {
  const c = await login('ln-user');
  const thin = new ApiClient(tb.url);
  thin.cookie = `${c.cookie}; ${tb.config.devices.cookieName}=bogus`;
  const r = await viaLane(() => thin.get('/me/sessions'));
  assert.equal(r.lean, false);
  assert.equal(r.status, 401, JSON.stringify(r.body));
  assert.equal(r.body.error.code, 'device_unknown');
});

test('bodies on the lean lane: bad JSON is 400 invalid_json, unknown fields 400 validation_failed naming the field, a chunked body is read by the full path', async () => {
  const admin = await login('ln-admin');
  const bad = await admin.request('PATCH', '/pools/lean', '{"enabled":', { 'content-type': 'application/json' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'invalid_json');
  const unknown = await viaLane(() => admin.patch('/pools/lean', { enabled: true, colour: 'red' }));
  assert.equal(unknown.lean, true);
  assert.equal(unknown.status, 400);
  assert.equal(unknown.body.error.code, 'validation_failed');
  assert.equal(unknown.body.error.field, 'colour');
  // Chunked (no Content-Length): not read by the fast reader, so the lean lane leaves it to express.json.
  const u = new URL(tb.url);
  const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const r = httpRequest({ host: u.hostname, port: u.port, method: 'PATCH', path: '/api/v1/pools/lean', headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrf, 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    r.on('error', reject);
    r.write('{"description":');
    r.end('"chunked"}');
  });
  assert.equal(chunked.status, 200, chunked.body);
  assert.equal((await tb.app.store.pools.get('lean'))!.description, 'chunked');
});

test('a path the lean lane does not match exactly goes to the full path: wrong case, empty segments, bad escapes answer as before', async () => {
  const c = await login('ln-user');
  assert.equal((await c.get('/Me/sessions')).status, 404);
  assert.equal((await c.get('/me//sessions')).status, 404);
  const bad = await c.post('/me/sessions/%E0%A4%A/logoff');
  assert.equal(bad.status >= 400 && bad.status < 500, true, `a bad escape is the client's error (${bad.status})`);
});

test('a session without a CSRF token yet (as a redirect login leaves it) gets one from GET /me, kept in the session, and then works on the lean lane', async () => {
  const c = await login('ln-user');
  const v = decodeURIComponent(c.cookie.replace(/^vdi\.sid=/, ''));
  const key = `${tb.app.store.keys.httpSessionPrefix}${/^s:([^.]+)\./.exec(v)![1]}`;
  const stored = JSON.parse((await tb.app.store.redis.get(key))!);
  delete stored.csrfToken;
  await tb.app.store.redis.set(key, JSON.stringify(stored), 'KEEPTTL');
  const me = await viaLane(() => c.get('/me'));
  assert.equal(me.status, 200, JSON.stringify(me.body));
  assert.equal(me.lean, false, 'GET /me may write the session: the full path');
  assert.equal(typeof me.body.csrfToken, 'string');
  assert.equal(JSON.parse((await tb.app.store.redis.get(key))!).csrfToken, me.body.csrfToken, 'the token is kept in the session');
  c.csrf = me.body.csrfToken;
  const r = await viaLane(() => c.post('/me/pools/lean/request'));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.lean, true);
  assert.equal((await c.post(`/me/sessions/${r.body.session.id}/logoff`)).status, 200);
});

test('a request the lane read the body of and then passed on (a session due for its refresh) keeps its body on the full path, which refreshes the session; every step applies once', async () => {
  const c = await login('ln-user');
  const sid = decodeURIComponent(c.cookie.slice('vdi.sid='.length)).replace(/^s:/, '').replace(/\.[^.]*$/, '');
  const key = `${tb.prefix}http:${sid}`;
  const stored = JSON.parse((await tb.app.store.redis.get(key))!);
  // Due for its refresh: the lane never writes the session, so it passes the request on.
  await tb.app.store.redis.set(key, JSON.stringify({ ...stored, refreshedAt: Date.now() - 3_600_000 }), 'KEEPTTL');
  const path = '/me/sessions/00000000-0000-4000-8000-000000000000/first-frame';
  const aged = await viaLane(() => c.post(path, { ms: 5 }));
  // The body reached the route's validation (else 400 "ms: Required."): the session is unknown.
  assert.equal(aged.status, 404, JSON.stringify(aged.body));
  assert.equal(aged.body.error.code, 'not_found');
  assert.equal(aged.lean, false, 'the full path served it');
  const refreshed = JSON.parse((await tb.app.store.redis.get(key))!);
  assert.ok(refreshed.refreshedAt > Date.now() - 60_000, 'the full path refreshed the session');
  // Fresh again: the lane serves the same request, body and all, with the same answer.
  const lean = await viaLane(() => c.post(path, { ms: 5 }));
  assert.equal(lean.lean, true);
  assert.deepEqual([lean.status, lean.body.error.code], [404, 'not_found']);
  assert.deepEqual([(await viaLane(() => c.post(path, {}))).status, (await c.post(path, { ms: -1 })).body.error.code], [400, 'validation_failed']);
  // One request id and the security headers, whichever path answered.
  for (const via of ['lane', 'full path']) {
    if (via === 'full path') await tb.app.store.redis.set(key, JSON.stringify({ ...(JSON.parse((await tb.app.store.redis.get(key))!)), refreshedAt: Date.now() - 3_600_000 }), 'KEEPTTL');
    const raw = await new Promise<{ headers: string[] }>((resolve, reject) => {
      const r = httpRequest(`${tb.url}/api/v1${path}`, { method: 'POST', headers: { cookie: c.cookie, 'x-csrf-token': c.csrf, 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ headers: res.rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase()) }));
      });
      r.on('error', reject);
      r.end(JSON.stringify({ ms: 5 }));
    });
    for (const h of ['x-request-id', 'content-security-policy', 'x-content-type-options', 'content-type']) assert.equal(raw.headers.filter((x) => x === h).length, 1, `${via}: one ${h} header`);
  }
});
