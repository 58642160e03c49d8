// Enrolled thin-client devices through the HTTP API against a real broker and real Redis (own
// key prefix): enrolment codes (shown once, stored hashed, expiring, single or N uses), the
// device credential cookie (HttpOnly, SameSite=Strict, stored hashed, rotated with a grace for
// parallel requests), forged cookies refused and audited, revocation, location-restricted
// pools, the session's device, roles, and kiosk logins without a device when they are refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startTestBroker, PASSWORD, waitFor, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { DeviceService, secretHash } from '../../server/devices/index.ts';

let tb: TestBroker;
let redis: Redis;
const GRACE_SECONDS = 5;

/** A browser: a cookie jar (every cookie, as a browser keeps them) and the CSRF token of its login. */
class Browser {
  readonly jar = new Map<string, string>();
  readonly setCookies: string[] = [];
  csrf = '';
  constructor(readonly base: string) {}

  async req(method: string, path: string, body?: unknown): Promise<{ status: number; body: any; setCookie: string[] }> {
    const headers: Record<string, string> = {};
    if (this.jar.size) headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    if (this.csrf && method !== 'GET') headers['x-csrf-token'] = this.csrf;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.base}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const setCookie = res.headers.getSetCookie();
    for (const c of setCookie) {
      this.setCookies.push(c);
      const [kv] = c.split(';');
      const eq = kv!.indexOf('=');
      const name = kv!.slice(0, eq);
      const value = kv!.slice(eq + 1);
      if (!value || /expires=Thu, 01 Jan 1970/i.test(c) || /max-age=0\b/i.test(c)) this.jar.delete(name);
      else this.jar.set(name, value);
    }
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, setCookie };
  }

  get = (p: string) => this.req('GET', p);
  post = (p: string, b: unknown = {}) => this.req('POST', p, b);

  async login(user: string): Promise<void> {
    const r = await this.post('/auth/login', { username: user, password: PASSWORD });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    this.csrf = r.body.csrfToken;
  }

  get device(): string | undefined {
    return this.jar.get('vdi.device');
  }
}

const admin = () => {
  const b = new Browser(tb.url);
  return b.login('ada').then(() => b);
};

async function newCode(o: Record<string, unknown> = {}): Promise<{ code: string; id: string }> {
  const a = await admin();
  const r = await a.post('/devices/enrolment-codes', { location: 'lab-1', mode: 'personal-kiosk', ...o });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return { code: r.body.code, id: r.body.enrolment.id };
}

/** A browser enrolled as a device at `location`. */
async function enrolled(location = 'lab-1', name?: string): Promise<{ kiosk: Browser; id: string }> {
  const { code } = await newCode({ location, ...(name ? { name } : {}) });
  const kiosk = new Browser(tb.url);
  const r = await kiosk.post('/devices/enroll', { code });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return { kiosk, id: r.body.device.id };
}

async function audit(action: string, target?: string) {
  return (await tb.app.broker.audit.query({ action, ...(target !== undefined ? { target } : {}), limit: 100 })).entries;
}

/** Every string stored under the broker's prefix (values of strings, hashes, sets, zsets, lists). */
async function everythingStored(): Promise<string> {
  const out: string[] = [];
  let cursor = '0';
  for (let i = 0; i < 10_000; i++) {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${tb.prefix}*`, 'COUNT', 500);
    for (const k of keys) {
      out.push(k);
      const type = await redis.type(k);
      if (type === 'string') out.push((await redis.get(k)) ?? '');
      else if (type === 'hash') out.push(JSON.stringify(await redis.hgetall(k)));
      else if (type === 'set') out.push(...(await redis.smembers(k)));
      else if (type === 'zset') out.push(...(await redis.zrange(k, 0, -1)));
      else if (type === 'list') out.push(...(await redis.lrange(k, 0, -1)));
      else if (type === 'stream') out.push(JSON.stringify(await redis.xrange(k, '-', '+')));
    }
    cursor = next;
    if (cursor === '0') break;
  }
  return out.join('\n');
}

before(async () => {
  tb = await startTestBroker({ name: 'devices-api', config: { devices: { graceSeconds: GRACE_SECONDS, locations: [{ name: 'lab-1', defaultPool: 'lab' }] } } });
  redis = new Redis(tb.config.redis.url, { lazyConnect: false });
  await tb.addUser('alice');
  await tb.addUser('helen', 'helpdesk');
  await tb.addUser('ada', 'admin');
  await tb.app.broker.pools.create(tb.pool({ name: 'lab', size: { min: 0, max: 20, spare: 0 }, entitlements: { users: ['alice'], groups: [], locations: ['lab-1'] } }), SYSTEM_ACTOR);
  // Room displays log in as users in this group; a pool names it to be shown on them.
  await tb.app.identity.createGroup(SYSTEM_ACTOR, { name: 'room-displays' });
  await tb.app.broker.pools.create(tb.pool({ name: 'hall', size: { min: 0, max: 20, spare: 0 }, entitlements: { users: [], groups: ['room-displays'] } }), SYSTEM_ACTOR);
  await tb.app.broker.pools.create(tb.pool({ name: 'office', size: { min: 0, max: 20, spare: 0 }, entitlements: { users: ['alice'], groups: [] } }), SYSTEM_ACTOR);
});
after(async () => {
  redis?.disconnect();
  await tb?.close();
});

test('an enrolment code is shown once, stored only hashed, and its device credential is an HttpOnly SameSite=Strict cookie stored only hashed', async () => {
  const { code, id } = await newCode({ name: 'Front desk' });
  assert.match(code, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$/);
  const list = await (await admin()).get('/devices/enrolment-codes');
  const listed = list.body.enrolments.find((e: { id: string }) => e.id === id);
  assert.equal(listed.usesLeft, 1);
  assert.ok(!JSON.stringify(list.body).includes(code), 'the list does not show the code');

  const kiosk = new Browser(tb.url);
  const r = await kiosk.post('/devices/enroll', { code: code.toLowerCase().replace(/-/g, ' ') });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(r.body.device.name, 'Front desk');
  assert.equal(r.body.device.location, 'lab-1');
  const cookie = r.setCookie.find((c) => c.startsWith('vdi.device='))!;
  assert.ok(cookie, 'a device cookie is set');
  assert.match(cookie, /; HttpOnly/i);
  assert.match(cookie, /; SameSite=Strict/i);
  assert.match(cookie, /; Path=\/api\/v1/i);
  assert.doesNotMatch(cookie, /; Secure/i, 'plain HTTP: no Secure flag (Secure only over TLS)');
  const credential = kiosk.device!;
  assert.equal(Buffer.from(credential, 'base64url').length, 32, '256 random bits');
  assert.ok(!JSON.stringify(r.body).includes(credential), 'the credential is only in the cookie');

  const stored = await everythingStored();
  for (const secret of [code, code.replace(/-/g, ''), credential]) assert.ok(!stored.includes(secret), `${secret.slice(0, 6)}… is not stored in clear`);
  assert.ok(stored.includes(secretHash(credential)), 'the credential is stored as its hash');

  const me = await kiosk.get('/devices/me');
  assert.equal(me.status, 200);
  assert.deepEqual({ ...me.body.device, id: undefined }, { id: undefined, name: 'Front desk', location: 'lab-1', mode: 'personal-kiosk', idleSeconds: 0, displayPool: null, defaultPool: 'lab' });
  assert.equal((await audit('device.enroll', r.body.device.id)).length, 1);
});

test('a code is single use by default, N uses when asked, and refused (audited) once used up', async () => {
  const { code } = await newCode();
  assert.equal((await new Browser(tb.url).post('/devices/enroll', { code })).status, 201);
  const again = await new Browser(tb.url).post('/devices/enroll', { code });
  assert.equal(again.status, 400);
  assert.equal(again.body.error.code, 'enrolment_code_invalid');
  assert.equal(again.setCookie.length, 0, 'no credential for a refused code');

  const three = await newCode({ uses: 3, name: 'Lab PC' });
  const names: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await new Browser(tb.url).post('/devices/enroll', { code: three.code });
    assert.equal(r.status, 201);
    names.push(r.body.device.name);
  }
  assert.deepEqual(names, ['Lab PC-1', 'Lab PC-2', 'Lab PC-3']);
  assert.equal((await new Browser(tb.url).post('/devices/enroll', { code: three.code })).body.error.code, 'enrolment_code_invalid');
  const listed = (await (await admin()).get('/devices/enrolment-codes')).body.enrolments.map((e: { id: string }) => e.id);
  assert.ok(!listed.includes(three.id), 'a used-up code leaves the list');
  const denied = (await audit('device.enroll')).filter((e) => e.outcome === 'denied');
  assert.ok(denied.length >= 2);
  assert.ok(denied.every((e) => e.details.code === 'enrolment_code_invalid'));

  // Markup is not even a code: refused by the schema, naming the field.
  const garbage = await new Browser(tb.url).post('/devices/enroll', { code: '<script>' });
  assert.equal(garbage.status, 400);
  assert.equal(garbage.body.error.code, 'validation_failed');
  assert.equal(garbage.body.error.field, 'code');
});

test('two kiosks racing for the last use of a code: exactly one is enrolled', async () => {
  const { code } = await newCode({ uses: 1 });
  const rs = await Promise.all(Array.from({ length: 8 }, () => new Browser(tb.url).post('/devices/enroll', { code })));
  assert.deepEqual(rs.map((r) => r.status).sort(), [201, 400, 400, 400, 400, 400, 400, 400]);
});

test('an enrolment code expires', async () => {
  // The service with a clock the test moves (real Redis, same keys as the broker's).
  let now = Date.now();
  const svc = new DeviceService(tb.app.store.devices, tb.app.store.sessions, tb.app.broker.audit, tb.app.devices.config, () => now);
  const { code } = await svc.createCode(SYSTEM_ACTOR, { location: 'lab-1', mode: 'personal-kiosk', uses: 5, expiresInSeconds: 60 });
  now += 61_000;
  await assert.rejects(svc.enrol(SYSTEM_ACTOR, code), (e: { code?: string }) => e.code === 'enrolment_code_invalid');
  // And Redis drops the record at the expiry itself.
  const { code: short, enrolment } = await tb.app.devices.createCode(SYSTEM_ACTOR, { location: 'lab-1', mode: 'personal-kiosk', uses: 1, expiresInSeconds: 60 });
  const ttl = await redis.pttl(`${tb.prefix}enrol-code:${secretHash(short)}`);
  assert.ok(ttl > 50_000 && ttl <= 60_000, `code key expires with the code (pttl ${ttl})`);
  assert.ok(enrolment.expiresAt > Date.now());
});

test('a forged or garbage device cookie is refused with device_unknown, cleared, and audited', async () => {
  for (const forged of ['garbage', 'A'.repeat(43), Buffer.alloc(32, 7).toString('base64url'), '"><script>']) {
    const b = new Browser(tb.url);
    b.jar.set('vdi.device', forged);
    const r = await b.get('/devices/me');
    assert.equal(r.status, 401, forged);
    assert.equal(r.body.error.code, 'device_unknown');
    assert.ok(r.setCookie.some((c) => /^vdi\.device=;/.test(c)), 'the cookie is cleared');
    assert.equal(b.device, undefined);
    // Without it, the browser is a plain browser again.
    assert.deepEqual((await b.get('/devices/me')).body, { device: null, requireEnrolledKiosk: false });
  }
  const refused = await audit('device.credential.refuse');
  assert.ok(refused.length >= 1);
  assert.equal(refused[0]!.outcome, 'denied');
  assert.equal(refused[0]!.details.code, 'device_unknown');
  // One entry per address and minute: a flood of bad cookies cannot flush the trail.
  assert.equal(refused.length, 1);
});

test('the credential is rotated on use at most every rotateAfterSeconds; the previous one keeps working for the grace only', async () => {
  const { kiosk, id } = await enrolled();
  const first = kiosk.device!;
  // Used again at once: not rotated.
  assert.equal((await kiosk.get('/devices/me')).setCookie.length, 0);
  // The interval passes (its last rotation moved into the past): parallel requests with the old credential all pass, one rotation.
  await redis.hset(`${tb.prefix}device:${id}`, 'rotatedAt', String(Date.now() - 301_000));
  const parallel = await Promise.all(Array.from({ length: 6 }, () => {
    const b = new Browser(tb.url);
    b.jar.set('vdi.device', first);
    return b.get('/devices/me');
  }));
  assert.deepEqual(parallel.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
  const rotated = parallel.flatMap((r) => r.setCookie).filter((c) => c.startsWith('vdi.device='));
  assert.equal(rotated.length, 1, 'exactly one request rotated it');
  const second = rotated[0]!.split(';')[0]!.slice('vdi.device='.length);
  assert.notEqual(second, first);
  assert.match(rotated[0]!, /HttpOnly/i);
  kiosk.jar.set('vdi.device', second);
  assert.equal((await kiosk.get('/devices/me')).body.device.id, id);
  const oldTtl = await redis.pttl(`${tb.prefix}device-cred:${secretHash(first)}`);
  assert.ok(oldTtl > 0 && oldTtl <= GRACE_SECONDS * 1000, `the old credential lives for the grace (pttl ${oldTtl})`);
  const stale = new Browser(tb.url);
  stale.jar.set('vdi.device', first);
  assert.equal((await stale.get('/devices/me')).status, 200, 'still valid within the grace');
  await waitFor(async () => {
    const b = new Browser(tb.url);
    b.jar.set('vdi.device', first);
    return (await b.get('/devices/me')).status === 401;
  }, 30_000, 250);
  assert.equal((await kiosk.get('/devices/me')).status, 200, 'the new credential works after the grace');
});

test('the helpdesk lists, renames and moves devices; a revoked device gets device_revoked on its next request and can be enrolled again', async () => {
  const { kiosk, id } = await enrolled('lab-2', 'Ward 3 bed 1');
  await kiosk.login('alice');
  await kiosk.get('/devices/me');
  const helen = new Browser(tb.url);
  await helen.login('helen');
  const list = await helen.get('/devices?location=lab-2&state=active');
  assert.equal(list.status, 200);
  const row = list.body.devices.find((d: { id: string }) => d.id === id);
  assert.equal(row.name, 'Ward 3 bed 1');
  assert.equal(row.user, 'alice', 'who is logged in on it now');
  assert.equal(row.lastSeenAddress.replace('::ffff:', ''), '127.0.0.1');
  assert.ok(row.lastSeenAt > Date.now() - 60_000);
  assert.ok(list.body.devices.every((d: { location: string; state: string }) => d.location === 'lab-2' && d.state === 'active'));

  const renamed = await helen.req('PATCH', `/devices/${id}`, { name: 'Ward 3 bed 2', location: 'lab-3' });
  assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
  assert.equal(renamed.body.device.location, 'lab-3');
  const upd = await audit('device.update', id);
  assert.deepEqual(upd[0]!.details, { name: { from: 'Ward 3 bed 1', to: 'Ward 3 bed 2' }, location: { from: 'lab-2', to: 'lab-3' } });
  assert.equal(upd[0]!.actor, 'helen');
  assert.equal((await helen.req('PATCH', `/devices/${id}`, { name: '<b>x</b>' })).body.error.code, 'validation_failed');

  const rev = await helen.post(`/devices/${id}/revoke`);
  assert.equal(rev.status, 200);
  assert.equal(rev.body.device.state, 'revoked');
  assert.equal((await audit('device.revoke', id)).length, 1);
  for (const [m, p] of [['GET', '/devices/me'], ['GET', '/me/pools'], ['POST', '/auth/login']] as const) {
    const r = await kiosk.req(m, p, m === 'POST' ? { username: 'alice', password: PASSWORD } : undefined);
    assert.equal(r.status, 403, `${m} ${p}`);
    assert.equal(r.body.error.code, 'device_revoked');
  }
  assert.equal((await helen.post(`/devices/${id}/revoke`)).body.error.code, 'conflict');
  assert.equal((await helen.get(`/devices?state=revoked`)).body.devices.some((d: { id: string }) => d.id === id), true);
  // Enrolment again with a new code replaces the revoked credential.
  const { code } = await newCode({ location: 'lab-3' });
  const again = await kiosk.post('/devices/enroll', { code });
  assert.equal(again.status, 201);
  assert.notEqual(again.body.device.id, id);
  assert.equal((await kiosk.get('/devices/me')).body.device.id, again.body.device.id);
});

test('a location-restricted pool is offered and handed out only to devices at its locations; the session records the device', async () => {
  const inLab = await enrolled('lab-1', 'Lab 1 PC');
  const elsewhere = await enrolled('lab-2');
  const plain = new Browser(tb.url);
  for (const b of [inLab.kiosk, elsewhere.kiosk, plain]) await b.login('alice');

  const pools = async (b: Browser) => (await b.get('/me/pools')).body.pools.map((p: { name: string }) => p.name).sort();
  assert.deepEqual(await pools(inLab.kiosk), ['lab', 'office']);
  assert.deepEqual(await pools(elsewhere.kiosk), ['office']);
  assert.deepEqual(await pools(plain), ['office']);

  for (const b of [elsewhere.kiosk, plain]) {
    const r = await b.post('/me/pools/lab/request');
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'pool_location_restricted');
  }
  const denied = (await audit('desktop.request', 'lab')).filter((e) => e.outcome === 'denied');
  assert.ok(denied.some((e) => e.details.location === 'lab-2'));
  assert.ok(denied.some((e) => e.details.device === null));

  const ok = await inLab.kiosk.post('/me/pools/lab/request');
  assert.ok(ok.status === 200 || ok.status === 202, JSON.stringify(ok.body));
  const helen = new Browser(tb.url);
  await helen.login('helen');
  const s = (await helen.get(`/sessions/${ok.body.session.id}`)).body.session;
  assert.deepEqual(s.device, { id: inLab.id, name: 'Lab 1 PC' });
  // A session from a plain browser has no device.
  const office = await plain.post('/me/pools/office/request');
  assert.equal((await helen.get(`/sessions/${office.body.session.id}`)).body.session.device, undefined);
  const listed = (await helen.get('/sessions?pool=lab')).body.sessions;
  assert.equal(listed[0].device.name, 'Lab 1 PC');
});

test('roles: admins make enrolment codes; the helpdesk manages devices but makes no codes; users do neither', async () => {
  const { id } = await enrolled();
  const user = new Browser(tb.url);
  await user.login('alice');
  const helen = new Browser(tb.url);
  await helen.login('helen');
  const body = { location: 'lab-1', mode: 'personal-kiosk' };
  assert.equal((await user.post('/devices/enrolment-codes', body)).status, 403);
  assert.equal((await helen.post('/devices/enrolment-codes', body)).status, 403);
  assert.equal((await helen.get('/devices/enrolment-codes')).status, 403);
  assert.equal((await user.get('/devices')).status, 403);
  assert.equal((await user.req('PATCH', `/devices/${id}`, { name: 'Mine' })).status, 403);
  assert.equal((await user.post(`/devices/${id}/revoke`)).status, 403);
  assert.equal((await new Browser(tb.url).get('/devices')).status, 401);
  // The refusals of state changes are audited.
  const refusedCodes = (await audit('device.enrolmentcode.create')).filter((e) => e.outcome === 'denied');
  assert.ok(refusedCodes.some((e) => e.actor === 'helen'));
  assert.ok((await audit('device.revoke', id)).some((e) => e.outcome === 'denied' && e.actor === 'alice'));
  // A room display needs its pool.
  const a = await admin();
  const noPool = await a.post('/devices/enrolment-codes', { location: 'hall', mode: 'room-display' });
  assert.equal(noPool.body.error.code, 'validation_failed');
  assert.equal(noPool.body.error.field, 'displayPool');
  assert.equal((await a.post('/devices/enrolment-codes', { location: 'Hall 1', mode: 'personal-kiosk' })).body.error.field, 'location');
  assert.equal((await a.post('/devices/enrolment-codes', { location: 'hall', mode: 'personal-kiosk', uses: 0 })).body.error.field, 'uses');
});

test('with devices.requireEnrolledKiosk, a kiosk login from a browser that is no enrolled device is refused', async () => {
  const strict = await startTestBroker({ name: 'devices-strict', config: { devices: { requireEnrolledKiosk: true } } });
  try {
    await strict.addUser('alice');
    const kiosk = new Browser(strict.url);
    kiosk.jar.set('vdi.kiosk', '1');
    assert.deepEqual((await kiosk.get('/devices/me')).body, { device: null, requireEnrolledKiosk: true });
    const r = await kiosk.post('/auth/login', { username: 'alice', password: PASSWORD });
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'device_required');
    // An ordinary browser (no kiosk mode) still logs in.
    const web = new Browser(strict.url);
    await web.login('alice');
    // An enrolled kiosk does too.
    const { code } = await strict.app.devices.createCode(SYSTEM_ACTOR, { location: 'lab-1', mode: 'shared-lab', uses: 1, expiresInSeconds: 600 });
    assert.equal((await kiosk.post('/devices/enroll', { code })).status, 201);
    await kiosk.login('alice');
    const me = (await kiosk.get('/devices/me')).body.device;
    assert.equal(me.mode, 'shared-lab');
    assert.equal(me.idleSeconds, 300, 'a shared lab terminal logs off after 5 idle minutes unless told otherwise');
  } finally {
    await strict.close();
  }
});

test('a room display starts without a login as its own device principal, entitled only where a pool names it', async () => {
  const { code } = await newCode({ location: 'hall-1', mode: 'room-display', displayPool: 'hall', name: 'Hall screen' });
  const display = new Browser(tb.url);
  const enrolledAs = await display.post('/devices/enroll', { code });
  assert.equal(enrolledAs.status, 201);
  const id = enrolledAs.body.device.id as string;
  const started = await display.post('/devices/me/display');
  assert.equal(started.status, 200, JSON.stringify(started.body));
  assert.equal(started.body.pool, 'hall');
  assert.equal(started.body.user.id, `device.${id}`);
  assert.deepEqual(started.body.user.groups, ['room-displays']);
  display.csrf = started.body.csrfToken;
  const r = await display.post('/me/pools/hall/request');
  assert.ok(r.status === 200 || r.status === 202, JSON.stringify(r.body));
  // Its principal is entitled to nothing else.
  assert.equal((await display.post('/me/pools/office/request')).status, 404);
  const logins = await audit('auth.login', `device.${id}`);
  assert.equal(logins[0]!.details.authenticator, 'device');
  // Nobody logs in as it with a password, not even an empty one.
  for (const password of ['', 'x', PASSWORD]) {
    const p = await new Browser(tb.url).post('/auth/login', { username: `device.${id}`, password });
    assert.ok(p.status === 401 || p.status === 400, `${p.status} ${JSON.stringify(p.body)}`);
  }
  // Only room displays start themselves.
  const { kiosk } = await enrolled('lab-1');
  assert.equal((await kiosk.post('/devices/me/display')).body.error.code, 'conflict');
  assert.equal((await new Browser(tb.url).post('/devices/me/display')).body.error.code, 'device_required');
  // Revoked, it stops at once.
  const helen = new Browser(tb.url);
  await helen.login('helen');
  await helen.post(`/devices/${id}/revoke`);
  assert.equal((await display.get('/me/pools')).body.error.code, 'device_revoked');
});
