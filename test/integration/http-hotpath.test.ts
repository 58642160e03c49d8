// The HTTP request path made cheaper for the assignment load (issue 14): sessions are rewritten
// (expiry pushed out, cookie renewed) only once a refresh is due instead of on every request,
// the user behind a cookie is still re-read on every request, helmet's headers are computed
// once, and common JSON bodies are read without body-parser. Real HTTP, real Redis.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import helmet from 'helmet';
import { startTestBroker, ApiClient, type TestBroker } from '../support/harness.ts';
import { sessionRefreshIntervalMs } from '../../server/auth/http.ts';
import { precomputedHeaders } from '../../server/app.ts';

let tb: TestBroker;
const MAX_AGE = 3600;

before(async () => {
  tb = await startTestBroker({ name: 'hotpath', config: { session: { maxAgeSeconds: MAX_AGE } } });
  for (const u of ['hp-user', 'hp-gone', 'hp-out']) await tb.addUser(u);
  await tb.addUser('hp-admin', 'admin');
});
after(async () => {
  await tb?.close();
});

function sessionKey(c: ApiClient): string {
  const v = decodeURIComponent(c.cookie.replace(/^vdi\.sid=/, ''));
  const m = /^s:([^.]+)\./.exec(v);
  assert.ok(m, `not a signed session cookie: ${c.cookie}`);
  return `${tb.app.store.keys.httpSessionPrefix}${m[1]}`;
}

async function stored(c: ApiClient): Promise<{ refreshedAt?: number; cookie: { expires: string }; passport?: { user?: string } }> {
  const raw = await tb.app.store.redis.get(sessionKey(c));
  assert.ok(raw, 'the session is in Redis');
  return JSON.parse(raw);
}

test('an active session is rewritten only when its refresh is due: TTL, stored expiry and cookie renewed then, nothing written in between', async () => {
  assert.equal(sessionRefreshIntervalMs(28800), 60_000);
  assert.equal(sessionRefreshIntervalMs(60), 6_000);
  const c = new ApiClient(tb.url);
  assert.equal((await c.login('hp-user')).status, 200);
  const key = sessionKey(c);
  const atLogin = await stored(c);
  assert.equal(typeof atLogin.refreshedAt, 'number', 'login records when the expiry was set');

  // Not due: the session is neither written nor its TTL touched, and no cookie is sent.
  await tb.app.store.redis.expire(key, 1000);
  const quiet = await c.get('/me');
  assert.equal(quiet.status, 200);
  assert.equal(quiet.headers.getSetCookie().filter((s) => s.startsWith('vdi.sid=')).length, 0, 'no Set-Cookie while no refresh is due');
  const ttl = await tb.app.store.redis.ttl(key);
  assert.ok(ttl > 0 && ttl <= 1000, `the TTL was left alone (${ttl})`);
  assert.deepEqual(await stored(c), atLogin, 'the stored session is unchanged');

  // Due (last refresh longer ago than the interval): one request pushes everything out again.
  const old = { ...atLogin, refreshedAt: Date.now() - sessionRefreshIntervalMs(MAX_AGE) - 1000, cookie: { ...atLogin.cookie, expires: new Date(Date.now() + 1000_000).toISOString() } };
  await tb.app.store.redis.set(key, JSON.stringify(old), 'EX', 1000);
  const before = Date.now();
  const due = await c.get('/me');
  assert.equal(due.status, 200);
  const set = due.headers.getSetCookie().find((s) => s.startsWith('vdi.sid='));
  assert.ok(set, 'the cookie is renewed');
  assert.equal(set.split(';')[0], c.cookie, 'same session id, same signed value');
  const expires = Date.parse(/;\s*Expires=([^;]+)/i.exec(set)?.[1] ?? '');
  assert.ok(expires >= before + MAX_AGE * 1000 - 2000, 'the renewed cookie lives maxAge from now');
  const after = await stored(c);
  assert.ok(after.refreshedAt! >= before, 'refreshedAt moved');
  assert.ok(Date.parse(after.cookie.expires) >= before + MAX_AGE * 1000 - 2000, 'the stored expiry (read by the tunnel) moved');
  assert.ok((await tb.app.store.redis.ttl(key)) > MAX_AGE - 5, 'the Redis TTL is maxAge again');
  assert.equal(after.passport?.user, 'hp-user', 'the login is kept');
});

test('a logged-out session and the session of a disabled user are refused at once, on the next request', async () => {
  const out = new ApiClient(tb.url);
  assert.equal((await out.login('hp-out')).status, 200);
  const stale = out.cookie;
  assert.equal((await out.post('/auth/logout')).status, 204);
  const replay = new ApiClient(tb.url);
  replay.cookie = stale;
  assert.equal((await replay.get('/me')).status, 401, 'the old cookie is no login');

  const admin = new ApiClient(tb.url);
  assert.equal((await admin.login('hp-admin')).status, 200);
  const gone = new ApiClient(tb.url);
  assert.equal((await gone.login('hp-gone')).status, 200);
  assert.equal((await gone.get('/me')).status, 200);
  assert.equal((await admin.patch('/users/hp-gone', { disabled: true })).status, 200);
  const r = await gone.get('/me');
  assert.equal(r.status, 401, 'refused on the very next request');
  assert.equal(r.body.error.code, 'unauthenticated');
  assert.equal((await stored(gone)).passport?.user, undefined, 'the login is dropped from the session');
  // Enabling the user again does not bring that login back.
  assert.equal((await admin.patch('/users/hp-gone', { disabled: false })).status, 200);
  assert.equal((await gone.get('/me')).status, 401);
});

test('precomputed security headers are exactly helmet\'s, on API answers too', async () => {
  const opts = { contentSecurityPolicy: { directives: { 'img-src': ["'self'", 'data:'] } }, strictTransportSecurity: false } as const;
  const want: Record<string, unknown> = {};
  const removed: string[] = [];
  const fake = { setHeader: (n: string, v: unknown) => void (want[n.toLowerCase()] = v), removeHeader: (n: string) => void removed.push(n), getHeader: () => undefined };
  helmet(opts)({} as never, fake as never, () => undefined);
  const got: Record<string, unknown> = {};
  precomputedHeaders(helmet(opts))({} as never, { setHeader: (n: string, v: unknown) => void (got[n.toLowerCase()] = v), removeHeader: () => undefined } as never, () => undefined);
  assert.deepEqual(got, want);
  assert.ok(Object.keys(want).length >= 10);
  const r = await new ApiClient(tb.url).get('/auth/methods');
  assert.match(r.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('x-frame-options'), 'SAMEORIGIN');
});

/** A raw POST, so the body bytes and headers are exactly what the test says. */
function rawPost(path: string, body: Buffer | string, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const u = new URL(`${tb.url}/api/v1${path}`);
    const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : null }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('JSON bodies: the fast path and express.json give the same answers (valid, BOM, empty, not an object, broken, chunked)', async () => {
  const login = (body: Buffer | string, extra: Record<string, string> = {}) => {
    const b = typeof body === 'string' ? Buffer.from(body) : body;
    return rawPost('/auth/login', b, { 'content-type': 'application/json', 'content-length': String(b.length), ...extra });
  };
  const ok = JSON.stringify({ username: 'hp-body', password: 'wrong password' });
  // Parsed: the login runs and refuses the password (not a body error).
  assert.equal((await login(ok)).body.error.code, 'invalid_credentials');
  assert.equal((await login(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(ok)]))).body.error.code, 'invalid_credentials', 'a leading BOM is dropped');
  assert.equal((await login(ok, { 'content-type': 'application/json; charset=utf-8' })).body.error.code, 'invalid_credentials');
  // Empty body = {}: the route's own validation answers.
  const empty = await login('');
  assert.equal(empty.status, 400);
  assert.equal(empty.body.error.code, 'validation_failed');
  for (const bad of ['1', '"x"', 'null', '{"username":', '  tru']) {
    const r = await login(bad);
    assert.equal(r.status, 400, bad);
    assert.equal(r.body.error.code, 'invalid_json', bad);
    assert.equal(r.body.error.field, 'body');
  }
  // Chunked (no Content-Length) goes through express.json and answers the same.
  const chunked = await rawPost('/auth/login', ok, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
  assert.equal(chunked.body.error.code, 'invalid_credentials');
  const chunkedBad = await rawPost('/auth/login', '1', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
  assert.equal(chunkedBad.body.error.code, 'invalid_json');
  // Over the limit: refused before it is read, by either path.
  const big = `{"username":"${'x'.repeat(tb.config.server.bodyLimitBytes)}"}`;
  assert.equal((await login(big)).body.error.code, 'payload_too_large');
});

test('a web client file that does not exist is a 404, never a 500 (serve-static refusals go through the error handler)', async () => {
  for (const path of ['/assets/no-such-file.js.map', '/assets/no-such-dir/x.css']) {
    const res = await fetch(`${tb.url}${path}`);
    assert.equal(res.status, 404, path);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'route_not_found');
  }
});
