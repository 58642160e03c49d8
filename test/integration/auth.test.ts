// Logins, sessions, lockouts, CSRF and API keys, through real HTTP against a real Redis.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, ApiClient, PASSWORD, waitFor, type TestBroker, type HttpResult } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

let tb: TestBroker;
const brokers: TestBroker[] = [];

before(async () => {
  tb = await startTestBroker({ name: 'auth' });
  brokers.push(tb);
  await tb.addUser('root', 'admin');
});
after(async () => {
  const closed = await Promise.allSettled(brokers.map((b) => b.close()));
  for (const c of closed) if (c.status === 'rejected') throw c.reason;
});

async function adminClient(b = tb): Promise<ApiClient> {
  const c = new ApiClient(b.url);
  const r = await c.login('root');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return c;
}

/** The session id inside a signed express-session cookie value: vdi.sid=s%3A<id>.<signature>. */
function sessionId(cookie: string): string {
  const v = decodeURIComponent(cookie.replace(/^vdi\.sid=/, ''));
  const m = /^s:([^.]+)\./.exec(v);
  assert.ok(m, `not a signed session cookie: ${cookie}`);
  return m[1]!;
}

function withCookie(b: TestBroker, cookie: string, csrf = ''): ApiClient {
  const c = new ApiClient(b.url);
  c.cookie = cookie;
  c.csrf = csrf;
  return c;
}

const SECRET_MARKERS = [/passwordHash/i, /secretHash/i, /\$argon2/, new RegExp(PASSWORD)];
function assertNoSecrets(r: HttpResult, what: string, extra: string[] = []): void {
  const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
  for (const m of SECRET_MARKERS) assert.ok(!m.test(text), `${what} leaks ${m}: ${text.slice(0, 300)}`);
  for (const s of extra) assert.ok(!text.includes(s), `${what} leaks a secret`);
}

test('login sets an HttpOnly SameSite=Lax session cookie and returns a CSRF token', async () => {
  await tb.addUser('cookie-user');
  const c = new ApiClient(tb.url);
  const r = await c.login('cookie-user');
  assert.equal(r.status, 200);
  const set = r.headers.getSetCookie().find((s) => s.startsWith('vdi.sid='));
  assert.ok(set, 'a session cookie is set');
  assert.match(set, /;\s*HttpOnly/i);
  assert.match(set, /;\s*SameSite=Lax/i);
  assert.match(set, /;\s*Path=\//i);
  assert.match(set, /;\s*Expires=/i, 'the cookie expires (session.maxAgeSeconds)');
  assert.doesNotMatch(set, /;\s*Domain=/i);
  assert.equal(typeof r.body.csrfToken, 'string');
  assert.ok(r.body.csrfToken.length >= 16);
  assert.equal(r.body.user.id, 'cookie-user');
  assertNoSecrets(r, 'login answer');
  const me = await c.get('/me');
  assert.equal(me.status, 200);
  assert.equal(me.body.kind, 'user');
  assert.equal(me.body.user.id, 'cookie-user');
  assert.equal(me.body.csrfToken, r.body.csrfToken, 'GET /me hands out the same token');
});

test('the session id is rotated at login: a cookie from before login is not the one after, and is dead', async () => {
  await tb.addUser('fix-a');
  await tb.addUser('fix-b');
  // An anonymous client that fails a login first: whatever cookie it holds must not survive.
  const c = new ApiClient(tb.url);
  const failed = await c.login('fix-b', 'wrong password!');
  assert.equal(failed.status, 401);
  const before = c.cookie;
  assert.equal((await c.login('fix-b')).status, 200);
  assert.ok(c.cookie, 'logged in');
  assert.notEqual(c.cookie, before);

  // Session fixation: a planted, valid session cookie (the attacker's own login) is replaced
  // when the victim logs in, and the planted one does not become the victim's session.
  const attacker = new ApiClient(tb.url);
  assert.equal((await attacker.login('fix-a')).status, 200);
  const planted = attacker.cookie;
  const victim = withCookie(tb, planted, attacker.csrf);
  const failedWithPlanted = await victim.login('fix-b', 'wrong password!');
  assert.equal(failedWithPlanted.status, 401);
  assert.equal(victim.cookie, planted, 'a failed login sets no new cookie');
  assert.equal((await victim.login('fix-b')).status, 200);
  assert.notEqual(victim.cookie, planted);
  assert.notEqual(sessionId(victim.cookie), sessionId(planted));
  const me = await victim.get('/me');
  assert.equal(me.body.user.id, 'fix-b');
  const old = await withCookie(tb, planted).get('/me');
  assert.equal(old.status, 401, 'the pre-login session is gone, not upgraded to the victim');
  assert.equal(old.body.error.code, 'unauthenticated');

  // Logging in again rotates too.
  const again = withCookie(tb, victim.cookie, victim.csrf);
  assert.equal((await again.login('fix-b')).status, 200);
  assert.notEqual(sessionId(again.cookie), sessionId(victim.cookie));
  assert.equal((await withCookie(tb, victim.cookie).get('/me')).status, 401);
});

test('logout ends the session on the server', async () => {
  await tb.addUser('leaver');
  const c = new ApiClient(tb.url);
  await c.login('leaver');
  const cookie = c.cookie;
  const out = await c.post('/auth/logout');
  assert.equal(out.status, 204);
  assert.ok(out.headers.getSetCookie().some((s) => /^vdi\.sid=;/.test(s) && /Expires=Thu, 01 Jan 1970/i.test(s)), 'the cookie is cleared');
  const me = await withCookie(tb, cookie).get('/me');
  assert.equal(me.status, 401);
  assert.equal(me.body.error.code, 'unauthenticated');
  const audit = (await (await adminClient()).get('/audit?action=auth.logout&actor=leaver')).body.entries;
  assert.equal(audit.length, 1);
});

test('wrong password and unknown user get the same 401 invalid_credentials', async () => {
  await tb.addUser('known');
  const a = await new ApiClient(tb.url).login('known', 'not the password');
  const b = await new ApiClient(tb.url).login('nobody-here', 'not the password');
  assert.equal(a.status, 401);
  assert.equal(a.body.error.code, 'invalid_credentials');
  assert.equal(b.status, a.status);
  assert.deepEqual(b.body, a.body);
  assert.equal(a.headers.get('set-cookie'), null);
  assert.equal(b.headers.get('set-cookie'), null);
  assert.equal(a.headers.get('retry-after'), null);
});

// Lockouts and throttling (per user name, per name + address, spraying, hard lock and unlock):
// test/integration/throttle.test.ts.

test('CSRF: cookie-authenticated state changes need the session token; bearer keys do not', async () => {
  const c = await adminClient();
  const other = await adminClient();
  assert.notEqual(other.csrf, c.csrf);
  const token = c.csrf;
  const tries: [string, string | undefined][] = [['no token', undefined], ['wrong token', 'x'.repeat(token.length)], ['empty token', ''], ["another session's token", other.csrf]];
  for (const [what, t] of tries) {
    c.csrf = '';
    const headers: Record<string, string> = t === undefined ? {} : { 'x-csrf-token': t };
    for (const [m, path, body] of [['POST', '/groups', { name: 'csrf-group' }], ['PATCH', '/users/root', { displayName: 'Hacked' }], ['DELETE', '/users/root', undefined], ['POST', '/auth/logout', {}]] as const) {
      const r = await c.request(m, path, body, headers);
      assert.equal(r.status, 403, `${what} ${m} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'csrf_invalid');
    }
  }
  c.csrf = token;
  assert.equal((await c.get('/groups/csrf-group')).status, 404, 'nothing was created');
  assert.equal((await c.get('/users/root')).body.user.displayName, 'root', 'nothing was changed');
  assert.equal((await c.get('/me')).status, 200, 'still logged in');
  const ok = await c.post('/groups', { name: 'csrf-group' });
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
  // GET needs no token
  c.csrf = '';
  assert.equal((await c.get('/groups/csrf-group')).status, 200);

  const { token: keyToken } = await tb.app.identity.createApiKey(SYSTEM_ACTOR, { name: 'csrf-key', role: 'admin' });
  const k = new ApiClient(tb.url);
  k.bearer = keyToken;
  const viaKey = await k.post('/groups', { name: 'key-group' });
  assert.equal(viaKey.status, 201, JSON.stringify(viaKey.body));
  assert.equal((await k.del('/groups/key-group')).status, 204);
});

test('API keys: the token is shown once, never listed; revoked keys are refused', async () => {
  const a = await adminClient();
  const created = await a.post('/api-keys', { name: 'ci-bot', role: 'helpdesk' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const { key, token } = created.body;
  assert.match(token, /^vdik_[A-Za-z0-9_-]{12}_[A-Za-z0-9_-]{43}$/);
  assert.equal(key.name, 'ci-bot');
  assert.equal(key.role, 'helpdesk');
  assert.equal(key.createdBy, 'root');
  assert.ok(!('secretHash' in key) && !('token' in key) && !('secret' in key));
  const secret = token.split('_').slice(2).join('_');
  assertNoSecrets(created, 'create answer (key part)', []);

  const list = await a.get('/api-keys');
  assert.equal(list.status, 200);
  const listed = list.body.apiKeys.find((x: { id: string }) => x.id === key.id);
  assert.ok(listed);
  assert.deepEqual(Object.keys(listed).sort(), ['createdAt', 'createdBy', 'id', 'lastUsedAt', 'name', 'role']);
  assertNoSecrets(list, 'GET /api-keys', [secret, token]);

  const bot = new ApiClient(tb.url);
  bot.bearer = token;
  const me = await bot.get('/me');
  assert.equal(me.status, 200);
  assert.deepEqual(me.body, { kind: 'apikey', id: key.id, role: 'helpdesk' });
  assert.equal((await bot.get('/pools')).status, 200);
  assert.equal((await bot.get('/api-keys')).status, 403, 'a helpdesk key is not an admin');
  const used = await waitFor(async () => {
    const k = (await a.get('/api-keys')).body.apiKeys.find((x: { id: string }) => x.id === key.id);
    return k.lastUsedAt ? k : null;
  }, 3000);
  assert.ok(Date.parse(used.lastUsedAt) > 0, 'lastUsedAt is recorded');

  const second = await a.post('/api-keys', { name: 'ci-bot', role: 'helpdesk' });
  assert.notEqual(second.body.token, token, 'every key has its own secret');

  for (const bad of [token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'), token + 'x', `vdik_${key.id}_`, 'vdik_', token.toUpperCase()]) {
    const x = new ApiClient(tb.url);
    x.bearer = bad;
    const r = await x.get('/me');
    assert.equal(r.status, 401, bad);
    assert.equal(r.body.error.code, 'unauthenticated');
  }

  assert.equal((await a.del(`/api-keys/${key.id}`)).status, 204);
  const revoked = await bot.get('/me');
  assert.equal(revoked.status, 401);
  assert.equal(revoked.body.error.code, 'unauthenticated');
  assert.equal((await bot.post('/groups', { name: 'after-revoke' })).status, 401);
  assert.equal((await a.del(`/api-keys/${key.id}`)).status, 404);
  assert.ok(!(await a.get('/api-keys')).body.apiKeys.some((x: { id: string }) => x.id === key.id));
});

test('a disabled user cannot log in, and a live session of a user disabled later is refused', async () => {
  const a = await adminClient();
  assert.equal((await a.post('/users', { id: 'dora', password: 'a long enough password' })).status, 201);
  assert.equal((await a.post('/users', { id: 'dave', password: 'a long enough password', role: 'helpdesk' })).status, 201);
  const dave = new ApiClient(tb.url);
  assert.equal((await dave.login('dave', 'a long enough password')).status, 200);
  assert.equal((await dave.get('/pools')).status, 200);

  assert.equal((await a.patch('/users/dora', { disabled: true })).status, 200);
  const r = await new ApiClient(tb.url).login('dora', 'a long enough password');
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, 'invalid_credentials', 'the same answer as a wrong password');

  // a role change applies on the next request
  assert.equal((await a.patch('/users/dave', { role: 'user' })).status, 200);
  assert.equal((await dave.get('/pools')).status, 403);
  assert.equal((await dave.get('/me')).status, 200);
  // disabling ends the login at once
  assert.equal((await a.patch('/users/dave', { disabled: true })).status, 200);
  const me = await dave.get('/me');
  assert.equal(me.status, 401);
  assert.equal(me.body.error.code, 'unauthenticated');
  assert.equal((await dave.post('/auth/logout')).status, 401);
  // re-enabled, the old session does not come back by itself... but a new login works
  assert.equal((await a.patch('/users/dave', { disabled: false })).status, 200);
  const fresh = new ApiClient(tb.url);
  assert.equal((await fresh.login('dave', 'a long enough password')).status, 200);
  // a deleted user's session is refused too
  assert.equal((await a.del('/users/dave')).status, 204);
  assert.equal((await fresh.get('/me')).status, 401);
});

test('secrets never appear in answers', async () => {
  const a = await adminClient();
  const { token } = await tb.app.identity.createApiKey(SYSTEM_ACTOR, { name: 'leak-check', role: 'admin' });
  const secret = token.split('_').slice(2).join('_');
  const created = await a.post('/users', { id: 'sam', password: 'sam secret password', groups: [] });
  assert.equal(created.status, 201);
  const changed = await a.patch('/users/sam', { password: 'sam other password' });
  assert.equal(changed.status, 200);
  const sam = new ApiClient(tb.url);
  const login = await sam.login('sam', 'sam other password');
  const extra = [secret, 'sam secret password', 'sam other password'];
  for (const [what, r] of [['POST /users', created], ['PATCH /users', changed], ['login', login]] as const) assertNoSecrets(r, what, extra);
  for (const path of ['/users', '/users/sam', '/users/root', '/api-keys', '/me', '/audit?limit=500', '/groups', '/metrics']) {
    const r = await a.get(path);
    assert.equal(r.status, 200, path);
    assertNoSecrets(r, path, extra);
  }
  assertNoSecrets(await sam.get('/me'), 'GET /me as user', extra);
  const users = (await a.get('/users')).body.users as Record<string, unknown>[];
  for (const u of users) assert.deepEqual(Object.keys(u).sort(), ['createdAt', 'disabled', 'displayName', 'groups', 'id', 'role', 'updatedAt']);
});

test('cookies are signed with the broker secret kept in Redis, not a constant', async () => {
  const { createHmac } = await import('node:crypto');
  const secret = await tb.app.store.redis.get(tb.app.store.keys.sessionSecret);
  assert.ok(secret && secret.length >= 40, 'a generated secret is stored');
  const c = await adminClient();
  const raw = decodeURIComponent(c.cookie.slice('vdi.sid='.length));
  const sid = raw.slice(2, raw.lastIndexOf('.'));
  const sign = (key: string) => `vdi.sid=${encodeURIComponent('s:' + sid + '.' + createHmac('sha256', key).update(sid).digest('base64').replace(/=+$/, ''))}`;
  assert.equal(sign(secret), c.cookie, 'the cookie is signed with the stored secret');
  for (const guess of ['unused', 'secret', 'keyboard cat', '']) {
    const forged = new ApiClient(tb.url);
    forged.cookie = sign(guess);
    assert.equal((await forged.get('/me')).status, 401, `a cookie signed with "${guess}" is refused`);
  }
});
