// Hostile input: every write route with a body schema gets garbage bodies, wrong types in each
// field, unknown fields, SQL- and HTML-looking strings, very long strings and an oversized
// payload, all as an admin. Every answer must be a 4xx with {error: {code, message, field?}}
// naming the offending field, never a 5xx, and nothing may change.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { z } from 'zod';
import { startTestBroker, ApiClient, PASSWORD, type TestBroker, type HttpResult } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { ERROR_CODES } from '../../server/errors.ts';
import type { RouteDef } from '../../server/api/index.ts';

let tb: TestBroker;
let admin: ApiClient;
let desktopId: string;

const keyOf = (r: { method: string; path: string }) => `${r.method.toUpperCase()} ${r.path}`;
const isWrite = (r: RouteDef<any, any, any>) => r.method !== 'get';

/**
 * A valid body (every optional field present) and a concrete path for each write route with a
 * body schema. The test checks each body against the route's schema, so every mutation below
 * is the only fault in its request.
 */
const NO_SUCH_ID = '00000000-0000-4000-8000-000000000000';
const PASSKEY_RESPONSE = {
  id: 'cred-id', rawId: 'cred-id', type: 'public-key', authenticatorAttachment: 'platform',
  response: { clientDataJSON: 'e30', attestationObject: 'o2Nm', transports: ['internal'], publicKeyAlgorithm: -7, publicKey: 'MFkw', authenticatorData: 'SZYN', signature: 'MEUC', userHandle: 'dXNlcg' },
  clientExtensionResults: { credProps: { rk: true }, appid: false, hmacCreateSecret: false },
};

const BASES: Record<string, () => { path: string; body: Record<string, unknown> }> = {
  'POST /auth/login': () => ({ path: '/auth/login', body: { username: 'admin', password: PASSWORD } }),
  'POST /pools': () => ({
    path: '/pools',
    body: {
      name: 'newpool', displayName: 'New pool', description: 'A pool', assignment: 'floating', persistence: 'refresh',
      size: { min: 0, max: 5, spare: 0 }, naming: 'new-{n:03}',
      resources: { vcpu: 1, memoryMiB: 512, diskGiB: 8, network: 'default', graphics: 'vga' },
      image: 'demo', provider: 'fake', clone: 'linked', entitlements: { users: ['target'], groups: ['staff'] },
      sessionPolicy: { idleTimeoutSeconds: 0, logoffAfterDisconnectSeconds: 900, maxSessionSeconds: 0 }, enabled: true, maintenance: false,
    },
  }),
  'PATCH /pools/:name': () => ({
    path: '/pools/p1',
    body: {
      displayName: 'Pool one', description: 'Patched', persistence: 'delete', size: { min: 0, max: 5, spare: 0 }, naming: 'pone-{n:02}',
      resources: { vcpu: 2, memoryMiB: 1024, diskGiB: 10, network: 'lan', graphics: 'virtio' },
      image: 'demo2', clone: 'full', entitlements: { users: ['target'], groups: ['staff'] },
      sessionPolicy: { idleTimeoutSeconds: 60, logoffAfterDisconnectSeconds: 60, maxSessionSeconds: 3600 }, enabled: false, maintenance: true,
    },
  }),
  'POST /pools/:name/resize': () => ({ path: '/pools/p1/resize', body: { min: 1, max: 7, spare: 1 } }),
  'POST /desktops/:id/assign': () => ({ path: `/desktops/${desktopId}/assign`, body: { user: 'target' } }),
  'POST /users': () => ({ path: '/users', body: { id: 'newuser', displayName: 'New User', role: 'helpdesk', password: 'a long enough password', groups: ['staff'] } }),
  'PATCH /users/:id': () => ({ path: '/users/target', body: { displayName: 'Target', role: 'admin', password: 'another long password', disabled: true, groups: ['staff'] } }),
  'POST /groups': () => ({ path: '/groups', body: { name: 'newgroup', displayName: 'New group', members: ['target'] } }),
  'PATCH /groups/:name': () => ({ path: '/groups/staff', body: { displayName: 'Staff people', members: [] } }),
  'POST /api-keys': () => ({ path: '/api-keys', body: { name: 'newkey', role: 'admin' } }),
  'POST /desktops/:id/snapshots': () => ({ path: `/desktops/${desktopId}/snapshots`, body: { name: 'snap-1' } }),
  'POST /desktops/:id/migrate': () => ({ path: `/desktops/${desktopId}/migrate`, body: { host: 'host-b' } }),
  'POST /images': () => ({ path: '/images', body: { name: 'newimage', displayName: 'New image' } }),
  'POST /images/:name/versions': () => ({ path: '/images/demo/versions', body: { path: '/nonexistent/image/dir', publish: true } }),
  'POST /images/:name/publish': () => ({ path: '/images/demo/publish', body: { version: 1 } }),
  'POST /hosts/:provider/:host/maintenance': () => ({ path: '/hosts/fake/host-a/maintenance', body: { on: true } }),
  'POST /machines': () => ({
    path: '/machines',
    body: { name: 'pc-01', pool: 'p1', protocol: 'vnc', address: '10.0.0.5', port: 5900, username: 'student', password: 'pw', domain: 'LAB', security: 'nla', ignoreCert: true, mac: '02:00:00:00:00:01', agent: false },
  }),
  'POST /machines/import': () => ({ path: '/machines/import', body: { csv: 'name,pool,protocol,address\npc-02,p1,vnc,10.0.0.6\n' } }),
  // Second factor (server/auth/mfa): an admin with no pending login still gets the body checked first.
  'POST /auth/mfa/totp': () => ({ path: '/auth/mfa/totp', body: { code: '123456' } }),
  'POST /auth/mfa/recovery': () => ({ path: '/auth/mfa/recovery', body: { code: 'abcd-efgh-ijkl' } }),
  'POST /auth/mfa/webauthn/verify': () => ({ path: '/auth/mfa/webauthn/verify', body: { response: PASSKEY_RESPONSE, name: 'My key' } }),
  'POST /me/mfa/totp/confirm': () => ({ path: '/me/mfa/totp/confirm', body: { code: '123456' } }),
  'POST /me/mfa/webauthn': () => ({ path: '/me/mfa/webauthn', body: { response: PASSKEY_RESPONSE, name: 'My key' } }),
  // Thin-client devices (server/devices).
  'POST /devices/enrolment-codes': () => ({ path: '/devices/enrolment-codes', body: { location: 'lab-1', mode: 'shared-lab', name: 'Lab PC', displayPool: 'p1', idleSeconds: 300, uses: 2, expiresInSeconds: 3600 } }),
  'POST /devices/enroll': () => ({ path: '/devices/enroll', body: { code: 'not-a-real-code', name: 'Lab PC' } }),
  'PATCH /devices/:id': () => ({ path: `/devices/${NO_SUCH_ID}`, body: { name: 'Lab PC 2', location: 'lab-2', mode: 'personal-kiosk', displayPool: 'p1', idleSeconds: 60 } }),
  // Sessions: the viewer's first-frame report and a helpdesk message (no such session: the body is checked first).
  'POST /me/sessions/:id/first-frame': () => ({ path: `/me/sessions/${NO_SUCH_ID}/first-frame`, body: { ms: 420 } }),
  'POST /sessions/:id/message': () => ({ path: `/sessions/${NO_SUCH_ID}/message`, body: { title: 'Maintenance', text: 'Saving your work now\nis a good idea.' } }),
  // Bulk actions (ids of nothing: a valid body acts on no real desktop or session).
  'POST /desktops/bulk': () => ({ path: '/desktops/bulk', body: { action: 'refresh', ids: [NO_SUCH_ID] } }),
  'POST /sessions/bulk': () => ({ path: '/sessions/bulk', body: { action: 'logoff', ids: [NO_SUCH_ID] } }),
  // The user's answers to a shadowing helpdesk (no such session: the body is checked first).
  'POST /me/sessions/:id/shadow/consent': () => ({ path: `/me/sessions/${NO_SUCH_ID}/shadow/consent`, body: { allow: true } }),
  'POST /me/sessions/:id/shadow/control': () => ({ path: `/me/sessions/${NO_SUCH_ID}/shadow/control`, body: { allow: false } }),
  'PATCH /machines/:name': () => ({
    path: '/machines/pc-01',
    body: { protocol: 'vnc', address: '10.0.0.7', port: 5901, username: 'u', password: 'p', domain: 'D', security: 'tls', ignoreCert: false, mac: '', agent: true },
  }),
};

const SQL = ["' OR 1=1 --", "x'; DROP TABLE users;--"];
const HTML = ['<script>alert(1)</script>', '<img src=x onerror=alert(1)>'];
const LONG = 'A'.repeat(20_000);

before(async () => {
  tb = await startTestBroker({ name: 'garbage' });
  await tb.app.identity.createGroup(SYSTEM_ACTOR, { name: 'staff' });
  await tb.addUser('admin', 'admin');
  await tb.addUser('target', 'user', ['staff']);
  await tb.app.broker.pools.create(tb.pool({ name: 'p1', entitlements: { users: [], groups: ['staff'] } }), SYSTEM_ACTOR);
  await tb.app.broker.pools.create(tb.pool({ name: 'ded', assignment: 'dedicated', persistence: 'persistent' }), SYSTEM_ACTOR);
  const r = await tb.app.store.desktops.provisionSpare('ded', Date.now());
  assert.ok('id' in r);
  await tb.app.store.desktops.transition(r.id, 'settled', { expect: ['provisioning'] });
  desktopId = r.id;
  await tb.app.identity.createApiKey(SYSTEM_ACTOR, { name: 'existing', role: 'helpdesk' });
  admin = new ApiClient(tb.url);
  assert.equal((await admin.login('admin')).status, 200);
});
after(async () => tb?.close());

/** Everything a client can see of the state, to compare before and after the barrage. */
async function snapshot(): Promise<unknown> {
  const out: Record<string, unknown> = {};
  for (const p of ['/pools', '/users', '/groups', '/api-keys', '/desktops', '/sessions']) {
    const r = await admin.get(p);
    assert.equal(r.status, 200, p);
    out[p] = r.body;
  }
  // auth.login entries are written by logins, none of which may succeed or fail in a handler here;
  // refused admin calls are audited (outcome denied): only entries of actions that happened count
  out.audit = (await admin.get('/audit?outcome=ok&limit=500')).body.entries.length;
  return out;
}

/** Sends raw bytes with the admin's cookie and CSRF token. */
async function raw(method: string, path: string, body: BodyInit | undefined, headers: Record<string, string> = {}): Promise<HttpResult> {
  const init: RequestInit & { duplex?: 'half' } = {
    method,
    headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrf, ...headers },
    ...(body !== undefined ? { body } : {}),
  };
  if (body instanceof ReadableStream) init.duplex = 'half';
  const res = await fetch(`${tb.url}/api/v1${path}`, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // left as text: the assertion will show it
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** The one error shape: {error: {code, message, field?}} and nothing else, as JSON. */
function assertErrorShape(r: HttpResult, what: string): void {
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, what);
  assert.ok(r.body && typeof r.body === 'object', `${what}: not JSON: ${String(r.body).slice(0, 200)}`);
  assert.deepEqual(Object.keys(r.body), ['error'], what);
  const e = r.body.error;
  assert.ok(Object.hasOwn(ERROR_CODES, e.code), `${what}: unknown code ${e.code}`);
  assert.equal(r.status, ERROR_CODES[e.code as keyof typeof ERROR_CODES].status, what);
  assert.equal(typeof e.message, 'string', what);
  assert.ok(e.message.length > 0 && e.message.length < 1000, `${what}: message length ${e.message.length}`);
  for (const k of Object.keys(e)) assert.ok(['code', 'message', 'field'].includes(k), `${what}: extra key ${k}`);
  if ('field' in e) assert.equal(typeof e.field, 'string', what);
  // the answer must not echo markup back
  assert.ok(!/<script|<img/i.test(JSON.stringify(r.body)), `${what}: echoes markup: ${JSON.stringify(r.body).slice(0, 300)}`);
}

type Path = (string | number)[];
interface Leaf {
  path: Path;
  schema: { type?: string; properties?: Record<string, any>; items?: any };
}

/** The fields of a body: every property of every object in the schema, and the first item of arrays present. */
function leaves(schema: any, value: unknown, path: Path = []): Leaf[] {
  const out: Leaf[] = [];
  if (schema?.type === 'object') {
    for (const [k, s] of Object.entries<any>(schema.properties ?? {})) {
      out.push({ path: [...path, k], schema: s });
      const v = (value as Record<string, unknown> | undefined)?.[k];
      if (v !== undefined) out.push(...leaves(s, v, [...path, k]).filter((l) => l.path.length > path.length + 1));
    }
  } else if (schema?.type === 'array' && Array.isArray(value) && value.length) {
    out.push({ path: [...path, 0], schema: schema.items });
    out.push(...leaves(schema.items, value[0], [...path, 0]).filter((l) => l.path.length > path.length + 1));
  }
  return out;
}

function objectsIn(schema: any, value: unknown, path: Path = []): Path[] {
  if (schema?.type !== 'object' || !value || typeof value !== 'object') return [];
  const out = [path];
  for (const [k, s] of Object.entries<any>(schema.properties ?? {})) out.push(...objectsIn(s, (value as Record<string, unknown>)[k], [...path, k]));
  return out;
}

function setAt(body: Record<string, unknown>, path: Path, v: unknown): Record<string, unknown> {
  const copy = structuredClone(body);
  let node: any = copy;
  for (const p of path.slice(0, -1)) node = node[p];
  node[path[path.length - 1]!] = v;
  return copy;
}

function wrongTypes(schema: Leaf['schema']): unknown[] {
  switch (schema.type) {
    case 'string': return [12345, true, ['x'], { x: 1 }, null];
    case 'integer': return ['12', 1.5, true, [], null, 1e309 /* Infinity -> null in JSON */];
    case 'number': return ['12', true, null];
    case 'boolean': return ['true', 1, 0, 'false', null];
    case 'array': return ['x', { 0: 'x' }, 1, null];
    case 'object': return ['x', [], 1, null];
    default: return [null];
  }
}

const bodyRoutes = () => tb.app.routes.routes.filter((r) => isWrite(r) && r.body);

test('every write route with a body has a base body, and each base body is valid', () => {
  const keys = bodyRoutes().map(keyOf).sort();
  assert.deepEqual(keys, Object.keys(BASES).sort(), 'BASES must list exactly the write routes with a body schema');
  for (const r of bodyRoutes()) {
    const { body } = BASES[keyOf(r)]!();
    const p = r.body!.safeParse(body);
    assert.ok(p.success, `${keyOf(r)}: base body invalid: ${p.success ? '' : JSON.stringify(p.error.issues)}`);
  }
});

test('garbage, wrong types, unknown fields, SQL, HTML, long strings: 400 naming the field, nothing changes', async (t) => {
  const before = await snapshot();
  let sent = 0;
  for (const route of bodyRoutes()) {
    const key = keyOf(route);
    await t.test(key, async () => {
      const { path, body } = BASES[key]!();
      const method = route.method.toUpperCase();
      const problems: string[] = [];
      const check = (r: HttpResult, what: string, want: { status?: number; code?: string; field?: string }) => {
        sent++;
        try {
          assert.ok(r.status >= 400 && r.status < 500, `${what}: status ${r.status}`);
          assertErrorShape(r, what);
          if (want.status !== undefined) assert.equal(r.status, want.status, what);
          if (want.code !== undefined) assert.equal(r.body.error.code, want.code, what);
          if (want.field !== undefined) assert.equal(r.body.error.field, want.field, what);
        } catch (e) {
          problems.push(`${what} -> ${r.status} ${JSON.stringify(r.body).slice(0, 300)} (${(e as Error).message.split('\n')[0]})`);
        }
      };

      // Bodies that are not a JSON object at all.
      const garbage: [string, string | Uint8Array | undefined, Record<string, string>][] = [
        ['not JSON', '{not json', {}],
        ['truncated JSON', JSON.stringify(body).slice(0, Math.min(15, JSON.stringify(body).length - 1)), {}],
        ['JSON array', '[]', {}],
        ['JSON array of the body', JSON.stringify([body]), {}],
        ['JSON string', '"str"', {}],
        ['JSON number', '42', {}],
        ['JSON null', 'null', {}],
        ['JSON true', 'true', {}],
        ['trailing garbage', JSON.stringify(body) + '}x', {}],
        ['invalid UTF-8', new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), {}],
        ['text/plain JSON', JSON.stringify(body), { 'content-type': 'text/plain' }],
        ['form body', 'username=admin&password=x', { 'content-type': 'application/x-www-form-urlencoded' }],
        ['utf-16 charset', JSON.stringify(body), { 'content-type': 'application/json; charset=utf-16' }],
        ['bogus gzip', 'definitely not gzip', { 'content-encoding': 'gzip' }],
        ['unknown encoding', JSON.stringify(body), { 'content-encoding': 'x-unknown' }],
        ['deep nesting', '['.repeat(20_000) + ']'.repeat(20_000), {}],
        ['duplicate __proto__', `{"__proto__": {"role": "admin"}, ${JSON.stringify(body).slice(1)}`, {}],
        ['constructor key', JSON.stringify({ ...body, constructor: { prototype: { admin: true } } }), {}],
      ];
      for (const [what, payload, headers] of garbage) {
        const h = { 'content-type': 'application/json', ...headers };
        const r = await raw(method, path, payload as BodyInit | undefined, h);
        // Invalid UTF-8 decodes to U+FFFD, which makes some object or other: any field may be named.
        const field = what === 'invalid UTF-8' ? undefined : what === 'duplicate __proto__' ? '__proto__' : what === 'constructor key' ? 'constructor' : 'body';
        check(r, `${key} ${what}`, { status: 400, ...(field ? { field } : {}) });
      }
      // gzip of valid JSON that is not an object still gets the same answers.
      check(await raw(method, path, gzipSync('"str"'), { 'content-type': 'application/json', 'content-encoding': 'gzip' }), `${key} gzip string`, { status: 400, field: 'body' });

      const schema = z.toJSONSchema(route.body!, { io: 'input', unrepresentable: 'any' });
      for (const leaf of leaves(schema, body)) {
        const field = leaf.path.join('.');
        for (const v of wrongTypes(leaf.schema)) {
          check(await admin.request(method, path, setAt(body, leaf.path, v)), `${key} ${field}=${JSON.stringify(v)}`, { status: 400, code: 'validation_failed', field });
        }
        if (leaf.schema.type !== 'string') continue;
        const password = leaf.path[leaf.path.length - 1] === 'password';
        for (const s of password ? [LONG] : [...SQL, ...HTML, LONG, 'a\u0000b', 'a\u202eb', '']) {
          // '' is only invalid where a minimum length applies; other strings are invalid everywhere here.
          if (s === '' && !('minLength' in (leaf.schema as object))) continue;
          check(await admin.request(method, path, setAt(body, leaf.path, s)), `${key} ${field}=${JSON.stringify(s.slice(0, 40))}`, {
            status: 400, code: 'validation_failed', field,
          });
        }
      }
      for (const at of objectsIn(schema, body)) {
        const field = [...at, 'bogus'].join('.');
        check(await admin.request(method, path, setAt(body, [...at, 'bogus'], 1)), `${key} unknown ${field}`, { status: 400, code: 'validation_failed', field });
      }
      // Oversized: declared length, and chunked with no length.
      const big = JSON.stringify({ ...body, pad: 'x'.repeat(70_000) });
      check(await admin.request(method, path, big), `${key} oversized`, { status: 413, code: 'payload_too_large' });
      check(await raw(method, path, 'y'.repeat(70_000), { 'content-type': 'application/json' }), `${key} oversized garbage`, { status: 413, code: 'payload_too_large' });
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          for (let i = 0; i < 20; i++) c.enqueue(new TextEncoder().encode('z'.repeat(5000)));
          c.close();
        },
      });
      check(await raw(method, path, stream, { 'content-type': 'application/json' }), `${key} oversized chunked`, { status: 413, code: 'payload_too_large' });
      assert.deepEqual(problems, []);
    });
  }
  assert.ok(sent > 500, `only ${sent} requests sent`);
  const ready = await fetch(`${tb.url}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await snapshot(), before, 'the barrage changed the state');
});

test('write routes without a body schema refuse a body', async () => {
  const targets: Record<string, string> = {};
  for (const r of tb.app.routes.routes.filter((x) => isWrite(x) && !x.body)) {
    // a path that fails nowhere else: an id that does not exist
    const path = r.path
      .replace(':id', r.path.startsWith('/api-keys') ? 'AAAAAAAAAAAA' : r.path.startsWith('/users') ? 'nobody' : '00000000-0000-4000-8000-000000000000')
      .replace(':name', 'nosuch')
      .replace(':pool', 'nosuch');
    targets[keyOf(r)] = path;
    for (const [what, payload] of [['object', '{"x":1}'], ['not JSON', '{nope'], ['array', '[1]']] as const) {
      const res = await admin.request(r.method.toUpperCase(), path, payload);
      assert.equal(res.status, 400, `${keyOf(r)} ${what}: ${res.status} ${JSON.stringify(res.body)}`);
      assertErrorShape(res, `${keyOf(r)} ${what}`);
      assert.equal(res.body.error.field, 'body', `${keyOf(r)} ${what}`);
    }
  }
  assert.ok(Object.keys(targets).length >= 10);
  assert.equal((await admin.get('/me')).status, 200, 'still logged in');
});

test('garbage path parameters: 400 or 404, never 5xx', async () => {
  const before = await snapshot();
  const values = [
    '..%2f..', '..%2F..%2Fetc%2Fpasswd', '%2e%2e', 'not-a-uuid', '%00', '%27%20OR%201%3D1%20--', "x';DROP%20TABLE%20users;--",
    '%3Cscript%3Ealert(1)%3C%2Fscript%3E', 'a'.repeat(3000), '%E0%A4%A', '%', '%ZZ', '%20', 'A%0d%0aSet-Cookie:%20x=1', '%C3%A9t%C3%A9', '%F0%9F%92%A9',
    '00000000-0000-0000-0000-000000000000', 'null', 'undefined', '__proto__', 'constructor', '-1', '1e999',
  ];
  const problems: string[] = [];
  let sent = 0;
  for (const r of tb.app.routes.routes.filter((x) => /:[a-z]+/i.test(x.path))) {
    const base = r.body ? BASES[keyOf(r)]?.().body : undefined;
    for (const v of values) {
      const path = r.path.replace(/:[A-Za-z]+/, v);
      const res = await admin.request(r.method.toUpperCase(), path, base);
      sent++;
      const what = `${r.method.toUpperCase()} ${path.slice(0, 80)} -> ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`;
      try {
        assert.ok(res.status === 400 || res.status === 404, what);
        assertErrorShape(res, what);
        if (res.status === 400) assert.equal(res.body.error.code, 'validation_failed', what);
      } catch (e) {
        problems.push((e as Error).message.split('\n')[0]!);
      }
    }
  }
  assert.deepEqual(problems, []);
  assert.ok(sent > 300);
  assert.equal((await fetch(`${tb.url}/readyz`)).status, 200);
  assert.deepEqual(await snapshot(), before);
});

test('garbage query strings: 400 naming the parameter', async () => {
  const cases: [string, string][] = [
    ['/desktops?state=bogus', 'state'],
    ['/desktops?pool=%3Cscript%3E', 'pool'],
    ['/desktops?pool=a&pool=b', 'pool'],
    ['/desktops?bogus=1', 'bogus'],
    ['/desktops?__proto__=x', '__proto__'],
    ['/desktops?constructor=x', 'constructor'],
    ['/desktops?user=%27%20OR%201%3D1%20--', 'user'],
    ['/sessions?state=ended%27', 'state'],
    ['/sessions?user=x%00', 'user'],
    ['/audit?since=yesterday', 'since'],
    ['/audit?limit=-1', 'limit'],
    ['/audit?limit=abc', 'limit'],
    ['/audit?limit=100000', 'limit'],
    ['/audit?before=%27', 'before'],
    ['/audit?action=POOL.CREATE', 'action'],
    [`/audit?actor=${'a'.repeat(200)}`, 'actor'],
  ];
  for (const [path, field] of cases) {
    const r = await admin.get(path);
    assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
    assertErrorShape(r, path);
    assert.equal(r.body.error.field, field, path);
  }
});

test('an empty or missing body: a POST names a missing required field, nothing answers 5xx', async () => {
  for (const route of bodyRoutes()) {
    const key = keyOf(route);
    const { path } = BASES[key]!();
    const schema = z.toJSONSchema(route.body!, { io: 'input', unrepresentable: 'any' }) as { required?: string[] };
    for (const [what, payload, headers] of [['empty JSON body', '', { 'content-type': 'application/json' }], ['no body', undefined, {}]] as const) {
      const r = await raw(route.method.toUpperCase(), path, payload, headers);
      const msg = `${key} ${what} -> ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`;
      assert.ok(r.status < 500, msg);
      if (schema.required?.length) {
        assert.equal(r.status, 400, msg);
        assertErrorShape(r, msg);
        assert.ok([...schema.required, 'body'].includes(r.body.error.field), msg);
      }
    }
  }
  assert.equal((await fetch(`${tb.url}/readyz`)).status, 200);
});
