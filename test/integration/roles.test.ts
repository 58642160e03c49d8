import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// The role matrix: every route in the RouteTable, called by every kind of caller (anonymous,
// cookie logins of each role, API keys of each role). Anonymous gets 401 on everything that
// needs a login, a role below the route's gets 403, an allowed role never gets 401/403 and,
// with a fixture made for it, a 2xx. A route added without an entry in CALLS fails the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, ApiClient, PASSWORD, type TestBroker, type HttpResult } from '../support/harness.ts';
import { SYSTEM_ACTOR, ROLE_RANK, type Role, type Principal } from '../../server/broker/index.ts';
import { desktopSpec } from '../../server/jobs/desktop-lifecycle.ts';
import { ShadowRepository } from '../../server/store/shadow.repository.ts';

let tb: TestBroker;
let n = 0;
const fresh = (prefix: string) => `${prefix}-${++n}`;

interface Caller {
  name: string;
  kind: 'anonymous' | 'cookie' | 'bearer';
  role: Role | null;
  /** The user principal behind a cookie caller. */
  principal: Principal | null;
  client: ApiClient;
  relogin(): Promise<void>;
}

const callers: Caller[] = [];

/** Makes a ready desktop in `pool` that also exists in the FakeProvider (so reset works). */
async function readyDesktop(pool: string): Promise<string> {
  const r = await tb.app.store.desktops.provisionSpare(pool, Date.now());
  assert.ok('id' in r, JSON.stringify(r));
  const t = await tb.app.store.desktops.transition(r.id, 'settled', { expect: ['provisioning'] });
  assert.ok(t.ok && t.to === 'ready', JSON.stringify(t));
  const d = (await tb.app.store.desktops.get(r.id))!;
  await tb.provider.create(desktopSpec(d, (await tb.app.store.pools.get(pool))!));
  await tb.provider.start(r.id);
  return r.id;
}

async function freshUser(role: Role = 'user'): Promise<Principal> {
  const id = fresh(`u${role}`);
  await tb.addUser(id, role, ['staff']);
  return { kind: 'user', id, role, groups: ['staff'] };
}

/** A live session of `principal` in `pool` (a ready desktop is made for it). */
async function liveSession(principal: Principal, pool = 'p1'): Promise<string> {
  await readyDesktop(pool);
  const r = await tb.app.broker.assignment.request({ principal, address: '127.0.0.1' }, pool);
  assert.equal(r.desktop.state, 'in_use');
  return r.session.id;
}

async function assignedDesktop(): Promise<string> {
  const id = await readyDesktop('ded');
  const u = await freshUser();
  assert.equal(await tb.app.store.desktops.assignOwner(id, u.id, Date.now()), 'ok');
  return id;
}

/** A live session whose user is streaming (as the tunnel records it). */
async function connectedSession(owner?: Principal, pool = 'p1'): Promise<string> {
  const sid = await liveSession(owner ?? (await freshUser()), pool);
  assert.ok(await tb.app.store.tickets.claim(sid, 'probe', '$probe', '127.0.0.1:4822'));
  await tb.app.broker.sessions.connected(sid);
  return sid;
}

/** A connected session the caller started shadowing (a caller below helpdesk cannot: the route refuses it anyway). */
async function shadowedBy(c: Caller): Promise<string> {
  const sid = await connectedSession();
  await send(c, 'POST', { path: `/sessions/${sid}/shadow/start` });
  return sid;
}

/** The caller's own connected session with a shadow asking them for consent or control. */
async function askedShadow(c: Caller, what: 'consent' | 'control'): Promise<string> {
  const sid = await connectedSession(c.principal ?? (await freshUser()), 'mine');
  const now = Date.now();
  // A person has one session per pool: an earlier call's shadow may be there; this one replaces it.
  const repo = new ShadowRepository(tb.app.store.redis, tb.app.store.keys.sessionShadow);
  await repo.cas((await repo.get(sid))?.v ?? 0, {
    session: sid, by: 'probe-helpdesk', byName: 'probe-helpdesk', policy: what === 'consent' ? 'consent' : 'notify', consent: what === 'consent' ? 'pending' : 'allowed',
    control: what === 'control' ? 'requested' : 'none', startedAt: now, consentAt: now, controlAt: now,
  }, 60);
  return sid;
}

/** Folders on the default share outlive a run: names made here are unique per run. */
const RUN = `${process.pid}-${Date.now().toString(36)}`;

/** A file in the caller's folder on the first share (made on disk), by name. */
async function homeFile(c: Caller): Promise<string> {
  const name = `${fresh('f')}-${RUN}.txt`;
  if (!c.principal) return name;
  const dir = tb.app.shares.shares.shares[0]!.homePath(c.principal.id);
  (await import('node:fs')).mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, name), 'x');
  return name;
}

const enrolmentCode = () => tb.app.devices.createCode(SYSTEM_ACTOR, { location: 'lab-1', mode: 'personal-kiosk', uses: 1, expiresInSeconds: 600 });
const freshDevice = async () => (await tb.app.devices.enrol(SYSTEM_ACTOR, (await enrolmentCode()).code)).device.id;

interface Call {
  path: string;
  body?: unknown;
  /** Whether an allowed caller must get a 2xx (default true). */
  ok?: boolean;
  /** An 'anyone' route that finishes a step this caller never began may refuse with this code. */
  refusedWith?: string;
}

const isPerson = (c: Caller) => c.kind === 'cookie';

/**
 * One entry per route: the concrete path (params filled with values that exist) and a valid
 * body. Each call gets its own fixture where the route consumes it (deletes, logoffs, ...).
 */
const CALLS: Record<string, (c: Caller) => Promise<Call>> = {
  'POST /auth/login': async () => ({ path: '/auth/login', body: { username: 'probe', password: PASSWORD } }),
  'POST /auth/logout': async () => ({ path: '/auth/logout' }),
  'GET /me': async () => ({ path: '/me' }),
  'GET /me/pools': async () => ({ path: '/me/pools' }),
  'GET /me/desktops': async () => ({ path: '/me/desktops' }),
  'GET /me/sessions': async () => ({ path: '/me/sessions' }),
  'POST /me/pools/:pool/request': async (c) => {
    await readyDesktop('p1');
    // An API key is no person and has no desktops: not entitled (404), but never 401/403.
    return { path: '/me/pools/p1/request', ok: isPerson(c) };
  },
  'POST /me/sessions/:id/logoff': async (c) => {
    // A person logs off their own session; an API key has none of its own (404 is right).
    const owner = c.principal ?? (await freshUser());
    return { path: `/me/sessions/${await liveSession(owner, 'mine')}/logoff`, ok: isPerson(c) };
  },
  'POST /me/sessions/:id/connect': async (c) => {
    const owner = c.principal ?? (await freshUser());
    return { path: `/me/sessions/${await liveSession(owner, 'mine')}/connect`, ok: isPerson(c) };
  },
  'POST /me/sessions/:id/first-frame': async (c) => {
    const owner = c.principal ?? (await freshUser());
    return { path: `/me/sessions/${await liveSession(owner, 'mine')}/first-frame`, body: { ms: 800 }, ok: isPerson(c) };
  },
  'GET /me/sessions/:id/messages': async (c) => {
    // An ended session: the stream says so and closes at once.
    const owner = c.principal ?? (await freshUser());
    const sid = await liveSession(owner, 'mine');
    await tb.app.store.sessions.release(sid, 'probe', Date.now());
    return { path: `/me/sessions/${sid}/messages`, ok: isPerson(c) };
  },
  'POST /sessions/:id/message': async () => ({ path: `/sessions/${await liveSession(await freshUser())}/message`, body: { title: 'Probe', text: 'A message.' } }),
  'POST /sessions/:id/shadow': async () => {
    // A session whose user is streaming (as the tunnel records it).
    const sid = await liveSession(await freshUser());
    assert.ok(await tb.app.store.tickets.claim(sid, 'probe', '$probe', '127.0.0.1:4822'));
    await tb.app.broker.sessions.connected(sid);
    return { path: `/sessions/${sid}/shadow` };
  },
  'POST /sessions/:id/disconnect': async () => ({ path: `/sessions/${await connectedSession()}/disconnect` }),
  'POST /sessions/:id/shadow/start': async () => ({ path: `/sessions/${await connectedSession()}/shadow/start` }),
  'GET /sessions/:id/shadow': async (c) => ({ path: `/sessions/${await shadowedBy(c)}/shadow` }),
  'POST /sessions/:id/shadow/control': async (c) => ({ path: `/sessions/${await shadowedBy(c)}/shadow/control` }),
  'DELETE /sessions/:id/shadow': async (c) => ({ path: `/sessions/${await shadowedBy(c)}/shadow` }),
  'GET /me/sessions/:id/shadow': async (c) => ({ path: `/me/sessions/${await liveSession(c.principal ?? (await freshUser()), 'mine')}/shadow`, ok: isPerson(c) }),
  'GET /me/sessions/:id/shadow/events': async (c) => ({ path: `/me/sessions/${await liveSession(c.principal ?? (await freshUser()), 'mine')}/shadow/events?limit=1`, ok: isPerson(c) }),
  'POST /me/sessions/:id/shadow/consent': async (c) => ({ path: `/me/sessions/${await askedShadow(c, 'consent')}/shadow/consent`, body: { allow: true }, ok: isPerson(c) }),
  'POST /me/sessions/:id/shadow/control': async (c) => ({ path: `/me/sessions/${await askedShadow(c, 'control')}/shadow/control`, body: { allow: true }, ok: isPerson(c) }),
  'GET /stats/history': async () => ({ path: '/stats/history?hours=1' }),
  'GET /alerts': async () => ({ path: '/alerts' }),
  'GET /pools': async () => ({ path: '/pools' }),
  'GET /pools/:name': async () => ({ path: '/pools/p1' }),
  'POST /pools': async () => ({ path: '/pools', body: { ...tb.pool({ name: fresh('np') }) } }),
  'PATCH /pools/:name': async () => ({ path: '/pools/p1', body: { displayName: 'Pool one', description: 'patched' } }),
  'POST /pools/:name/resize': async () => ({ path: '/pools/p1/resize', body: { min: 0, max: 1000, spare: 0 } }),
  'DELETE /pools/:name': async () => {
    const name = fresh('dp');
    await tb.app.broker.pools.create(tb.pool({ name }), SYSTEM_ACTOR);
    return { path: `/pools/${name}` };
  },
  'GET /desktops': async () => ({ path: '/desktops?pool=p1&state=ready' }),
  'GET /desktops/:id': async () => ({ path: `/desktops/${await readyDesktop('p1')}` }),
  'POST /desktops/:id/refresh': async () => ({ path: `/desktops/${await readyDesktop('p1')}/refresh` }),
  'POST /desktops/:id/reset': async () => ({ path: `/desktops/${await readyDesktop('p1')}/reset` }),
  'POST /desktops/:id/unassign': async () => ({ path: `/desktops/${await assignedDesktop()}/unassign` }),
  'POST /desktops/:id/assign': async () => {
    const id = await readyDesktop('ded');
    const u = await freshUser();
    return { path: `/desktops/${id}/assign`, body: { user: u.id } };
  },
  'DELETE /desktops/:id': async () => ({ path: `/desktops/${await readyDesktop('p1')}` }),
  'POST /desktops/bulk': async () => ({ path: '/desktops/bulk', body: { action: 'refresh', ids: [await readyDesktop('p1')] } }),
  'GET /sessions': async () => ({ path: '/sessions?pool=p1' }),
  'GET /sessions/:id': async () => ({ path: `/sessions/${await liveSession(await freshUser())}` }),
  'POST /sessions/:id/logoff': async () => ({ path: `/sessions/${await liveSession(await freshUser())}/logoff` }),
  'POST /sessions/bulk': async () => ({ path: '/sessions/bulk', body: { action: 'logoff', ids: [await liveSession(await freshUser())] } }),
  'GET /users': async () => ({ path: '/users' }),
  'GET /users/:id': async () => ({ path: '/users/target' }),
  'POST /users': async () => ({ path: '/users', body: { id: fresh('new'), password: 'a long enough password', role: 'user', groups: ['staff'] } }),
  'PATCH /users/:id': async () => ({ path: '/users/target', body: { displayName: 'Target User' } }),
  'DELETE /users/:id': async () => ({ path: `/users/${(await freshUser()).id}` }),
  'GET /users/:id/lockout': async () => ({ path: '/users/target/lockout' }),
  // Unlocking is the helpdesk's (a locked-out user calls them); it lets the owner try a password, grants nothing.
  'POST /users/:id/unlock': async () => ({ path: '/users/target/unlock' }),
  'GET /auth/lockouts': async () => ({ path: '/auth/lockouts' }),
  'GET /auth/methods': async () => ({ path: '/auth/methods' }),
  // Single sign-on (test/auth/oidc.test.ts runs it against a real IdP); this broker has no OIDC authenticator.
  'GET /auth/oidc/:name/start': async () => ({ path: '/auth/oidc/none/start', ok: false }),
  'GET /auth/oidc/:name/callback': async () => ({ path: '/auth/oidc/none/callback?code=c&state=s', ok: false }),
  'GET /auth/authenticators': async () => ({ path: '/auth/authenticators' }),
  'POST /auth/authenticators/:name/test': async () => ({ path: '/auth/authenticators/local/test' }),
  'GET /groups': async () => ({ path: '/groups' }),
  'GET /groups/:name': async () => ({ path: '/groups/staff' }),
  'POST /groups': async () => ({ path: '/groups', body: { name: fresh('ng'), displayName: 'New group', members: ['target'] } }),
  'PATCH /groups/:name': async () => {
    const name = fresh('pg');
    await tb.app.identity.createGroup(SYSTEM_ACTOR, { name });
    return { path: `/groups/${name}`, body: { displayName: 'Patched', members: ['target'] } };
  },
  'DELETE /groups/:name': async () => {
    const name = fresh('dg');
    await tb.app.identity.createGroup(SYSTEM_ACTOR, { name });
    return { path: `/groups/${name}` };
  },
  'GET /api-keys': async () => ({ path: '/api-keys' }),
  'POST /api-keys': async () => ({ path: '/api-keys', body: { name: fresh('key'), role: 'user' } }),
  'DELETE /api-keys/:id': async () => {
    const k = await tb.app.identity.createApiKey(SYSTEM_ACTOR, { name: fresh('rk'), role: 'user' });
    return { path: `/api-keys/${k.key.id}` };
  },
  'GET /audit': async () => ({ path: '/audit?limit=5' }),
  // Session recordings (test/tunnel/recording.test.ts records a real one): an indexed file each.
  'GET /recordings': async () => ({ path: '/recordings?limit=5' }),
  'GET /recordings/:id': async () => ({ path: `/recordings/${await recordingFixture()}` }),
  'GET /recordings/:id/file': async () => ({ path: `/recordings/${await recordingFixture()}/file` }),
  'DELETE /recordings/:id': async () => ({ path: `/recordings/${await recordingFixture()}` }),
  'GET /images': async () => ({ path: '/images' }),
  'GET /images/:name': async () => ({ path: '/images/demo' }),
  'POST /images': async () => ({ path: '/images', body: { name: fresh('img'), displayName: 'An image' } }),
  'POST /images/:name/versions': async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vdi-roles-img-'));
    writeFileSync(join(dir, 'disk.qcow2'), '');
    return { path: '/images/demo/versions', body: { path: dir, publish: false } };
  },
  'POST /images/:name/publish': async () => ({ path: '/images/demo/publish', body: { version: 1 } }),
  'GET /hosts': async () => ({ path: '/hosts' }),
  'GET /events': async () => ({ path: '/events?limit=1' }),
  'POST /hosts/:provider/:host/maintenance': async () => ({ path: '/hosts/fake/host-a/maintenance', body: { on: false } }),
  'POST /hosts/:provider/:host/drain': async () => ({ path: '/hosts/fake/host-a/drain' }),
  'GET /hosts/:provider/:host/drain': async () => {
    await tb.app.broker.hosts.drain(SYSTEM_ACTOR, 'fake', 'host-a');
    return { path: '/hosts/fake/host-a/drain' };
  },
  'DELETE /hosts/:provider/:host/drain': async () => {
    await tb.app.broker.hosts.drain(SYSTEM_ACTOR, 'fake', 'host-a');
    return { path: '/hosts/fake/host-a/drain' };
  },
  'GET /desktops/:id/snapshots': async () => ({ path: `/desktops/${await readyDesktop('p1')}/snapshots` }),
  'POST /desktops/:id/snapshots': async () => ({ path: `/desktops/${await readyDesktop('p1')}/snapshots`, body: { name: 'before-update' } }),
  'POST /desktops/:id/snapshots/:snapshot/revert': async () => {
    const id = await readyDesktop('p1');
    await tb.provider.snapshotCreate(id, 'snap1');
    return { path: `/desktops/${id}/snapshots/snap1/revert` };
  },
  'DELETE /desktops/:id/snapshots/:snapshot': async () => {
    const id = await readyDesktop('p1');
    await tb.provider.snapshotCreate(id, 'snap2');
    return { path: `/desktops/${id}/snapshots/snap2` };
  },
  'POST /desktops/:id/migrate': async () => ({ path: `/desktops/${await readyDesktop('p1')}/migrate`, body: { host: 'host-b' } }),
  'GET /metrics': async () => ({ path: '/metrics' }),
  'GET /doctor': async () => ({ path: '/doctor?only=identity' }),
  // Files: a person's own folder; an API key is nobody and has none (404 is right).
  'GET /me/files': async (c) => ({ path: '/me/files', ok: isPerson(c) }),
  'GET /me/files/content': async (c) => ({ path: `/me/files/content?path=${await homeFile(c)}`, ok: isPerson(c) }),
  'PUT /me/files/content': async (c) => ({ path: `/me/files/content?path=${fresh('up')}-${RUN}.txt`, ok: isPerson(c) }),
  'POST /me/files/folder': async (c) => ({ path: `/me/files/folder?path=${fresh('dir')}-${RUN}`, ok: isPerson(c) }),
  'POST /me/files/rename': async (c) => ({ path: `/me/files/rename?path=${await homeFile(c)}&to=${fresh('renamed')}-${RUN}.txt`, ok: isPerson(c) }),
  'DELETE /me/files': async (c) => ({ path: `/me/files?path=${await homeFile(c)}`, ok: isPerson(c) }),
  'GET /me/files/usage': async (c) => ({ path: '/me/files/usage', ok: isPerson(c) }),
  'GET /users/:id/files/usage': async () => ({ path: '/users/target/files/usage' }),
  'GET /shares': async () => ({ path: '/shares' }),
  'GET /openapi.json': async () => ({ path: '/openapi.json' }),
  // Machines of manual pools: this broker has no manual provider (test/manual/ covers the
  // allowed paths), so allowed callers get 404 / 400 where a machine or manual pool is needed.
  'GET /machines': async () => ({ path: '/machines' }),
  'GET /machines/:name': async () => ({ path: '/machines/pc-01', ok: false }),
  'POST /machines': async () => ({ path: '/machines', body: { name: fresh('pc'), pool: 'p1', protocol: 'vnc', address: '10.0.0.5' }, ok: false }),
  'POST /machines/import': async () => ({ path: '/machines/import', body: { csv: `name,pool,protocol,address\n${fresh('pc')},p1,vnc,10.0.0.6\n` } }),
  'PATCH /machines/:name': async () => ({ path: '/machines/pc-01', body: { agent: true }, ok: false }),
  'DELETE /machines/:name': async () => ({ path: '/machines/pc-01', ok: false }),
  // Second factors (test/auth/mfa-api.test.ts covers the allowed paths). Finishing a login that
  // waits for one: nobody here has such a login, so everyone gets mfa_required.
  'POST /auth/mfa/totp': async () => ({ path: '/auth/mfa/totp', body: { code: '000000' }, ok: false, refusedWith: 'mfa_required' }),
  'POST /auth/mfa/totp/enrol': async () => ({ path: '/auth/mfa/totp/enrol', ok: false, refusedWith: 'mfa_required' }),
  'POST /auth/mfa/webauthn/options': async () => ({ path: '/auth/mfa/webauthn/options', ok: false, refusedWith: 'mfa_required' }),
  'POST /auth/mfa/webauthn/verify': async () => ({ path: '/auth/mfa/webauthn/verify', body: { response: { id: 'x', rawId: 'x', type: 'public-key', response: { clientDataJSON: 'x' } } }, ok: false, refusedWith: 'mfa_required' }),
  'POST /auth/mfa/recovery': async () => ({ path: '/auth/mfa/recovery', body: { code: 'AAAA-BBBB-CCCC' }, ok: false, refusedWith: 'mfa_required' }),
  // The caller's own factors: a person's; an API key has none (404 is right).
  'GET /me/mfa': async (c) => ({ path: '/me/mfa', ok: isPerson(c) }),
  'POST /me/mfa/totp': async (c) => ({ path: '/me/mfa/totp', ok: isPerson(c) }),
  'POST /me/mfa/totp/confirm': async (c) => {
    // No enrolment under way: 409 (a wrong code would be 401 mfa_invalid, which is no role refusal).
    if (c.principal) await tb.app.store.mfa.dropPendingTotp(c.principal.id);
    return { path: '/me/mfa/totp/confirm', body: { code: '000000' }, ok: false };
  },
  'DELETE /me/mfa/totp': async () => ({ path: '/me/mfa/totp', ok: false }),
  'POST /me/mfa/webauthn/options': async (c) => ({ path: '/me/mfa/webauthn/options', ok: isPerson(c) }),
  'POST /me/mfa/webauthn': async () => ({ path: '/me/mfa/webauthn', body: { response: { id: 'x', rawId: 'x', type: 'public-key', response: { clientDataJSON: 'x' } } }, ok: false }),
  'DELETE /me/mfa/passkeys/:id': async () => ({ path: '/me/mfa/passkeys/none', ok: false }),
  'POST /me/mfa/recovery-codes': async () => ({ path: '/me/mfa/recovery-codes', ok: false }),
  // Enrolled devices (test/devices/devices-api.test.ts covers them): admins make codes, the helpdesk manages devices.
  'POST /devices/enrolment-codes': async () => ({ path: '/devices/enrolment-codes', body: { location: 'lab-1', mode: 'personal-kiosk' } }),
  'GET /devices/enrolment-codes': async () => ({ path: '/devices/enrolment-codes' }),
  'DELETE /devices/enrolment-codes/:id': async () => ({ path: `/devices/enrolment-codes/${(await enrolmentCode()).enrolment.id}` }),
  'POST /devices/enroll': async () => ({ path: '/devices/enroll', body: { code: (await enrolmentCode()).code } }),
  'GET /devices/me': async () => ({ path: '/devices/me' }),
  // Only an enrolled room display starts itself; these callers are no device.
  'POST /devices/me/display': async () => ({ path: '/devices/me/display', ok: false, refusedWith: 'device_required' }),
  'GET /devices': async () => ({ path: '/devices?location=lab-1' }),
  'GET /devices/:id': async () => ({ path: `/devices/${await freshDevice()}` }),
  'PATCH /devices/:id': async () => ({ path: `/devices/${await freshDevice()}`, body: { name: 'Front desk' } }),
  'POST /devices/:id/revoke': async () => ({ path: `/devices/${await freshDevice()}/revoke` }),
  'GET /users/:id/mfa': async () => ({ path: '/users/target/mfa' }),
  'DELETE /users/:id/mfa': async () => ({ path: '/users/target/mfa' }),
};

const SESSION_CHANGING = new Set(['POST /auth/login', 'POST /auth/logout']);

before(async () => {
  tb = await startTestBroker({ name: 'roles' });
  await tb.app.identity.createGroup(SYSTEM_ACTOR, { name: 'staff' });
  for (const u of ['target', 'probe']) await tb.addUser(u, 'user', ['staff']);
  const ent = { users: [], groups: ['staff'] };
  await tb.app.broker.pools.create(tb.pool({ name: 'p1', size: { min: 0, max: 1000, spare: 0 }, entitlements: ent }), SYSTEM_ACTOR);
  await tb.app.broker.pools.create(tb.pool({ name: 'mine', size: { min: 0, max: 1000, spare: 0 }, entitlements: ent }), SYSTEM_ACTOR);
  await tb.app.broker.pools.create(tb.pool({ name: 'ded', assignment: 'dedicated', persistence: 'persistent', size: { min: 0, max: 1000, spare: 0 }, entitlements: ent }), SYSTEM_ACTOR);

  const anon = new ApiClient(tb.url);
  callers.push({ name: 'anonymous', kind: 'anonymous', role: null, principal: null, client: anon, relogin: async () => undefined });
  for (const role of ['user', 'helpdesk', 'admin'] as const) {
    const id = `cookie-${role}`;
    await tb.addUser(id, role, ['staff']);
    const client = new ApiClient(tb.url);
    const relogin = async () => {
      client.cookie = '';
      client.csrf = '';
      const r = await client.login(id);
      assert.equal(r.status, 200, JSON.stringify(r.body));
    };
    await relogin();
    callers.push({ name: `${role} (cookie)`, kind: 'cookie', role, principal: { kind: 'user', id, role, groups: ['staff'] }, client, relogin });
  }
  for (const role of ['user', 'helpdesk', 'admin'] as const) {
    const { token } = await tb.app.identity.createApiKey(SYSTEM_ACTOR, { name: `key-${role}`, role });
    const client = new ApiClient(tb.url);
    client.bearer = token;
    callers.push({ name: `${role} (api key)`, kind: 'bearer', role, principal: null, client, relogin: async () => undefined });
  }
});
after(async () => tb?.close());

let recordingDir: string | undefined;
async function recordingFixture(): Promise<string> {
  recordingDir ??= mkdtempSync(join(tmpdir(), 'vdi-roles-rec-'));
  const id = crypto.randomUUID();
  const file = join(recordingDir, `${id}.guac`);
  writeFileSync(file, '4.sync,1.0;', { mode: 0o600 });
  await tb.app.store.recordings.add({ id, session: crypto.randomUUID(), user: 'target', desktop: crypto.randomUUID(), pool: 'p1', policy: 'on', startedAt: Date.now(), endedAt: Date.now(), bytes: 11, file });
  return id;
}
after(() => recordingDir && rmSync(recordingDir, { recursive: true, force: true }));

const keyOf = (r: { method: string; path: string }) => `${r.method.toUpperCase()} ${r.path}`;

async function send(c: Caller, method: string, call: Call): Promise<HttpResult> {
  // A copy, so a Set-Cookie in the answer (login) does not change the caller.
  const client = new ApiClient(tb.url);
  Object.assign(client, { cookie: c.client.cookie, csrf: c.client.csrf, bearer: c.client.bearer });
  return client.request(method, call.path, call.body);
}

test('every route has an entry in the role-matrix table, and every entry a route', () => {
  const routes = tb.app.routes.routes.map(keyOf).sort();
  const missing = routes.filter((k) => !(k in CALLS));
  const stale = Object.keys(CALLS).filter((k) => !routes.includes(k));
  assert.deepEqual(missing, [], `routes without a role-matrix entry: ${missing.join(', ')}`);
  assert.deepEqual(stale, [], `role-matrix entries without a route: ${stale.join(', ')}`);
  assert.ok(routes.length >= 40);
});

test('role matrix: every route x every caller', async (t) => {
  for (const route of tb.app.routes.routes) {
    const key = keyOf(route);
    await t.test(key, async () => {
      const entry = CALLS[key];
      assert.ok(entry, `no role-matrix entry for ${key}`);
      // Every caller is tried; the problems are reported together.
      const problems: string[] = [];
      for (const c of callers) {
        const call = await entry(c);
        const r = await send(c, route.method.toUpperCase(), call);
        const what = `${key} as ${c.name} -> ${r.status} ${JSON.stringify(r.body)?.slice(0, 300)}`;
        const code = r.body?.error?.code;
        if (r.status >= 500) problems.push(`server error: ${what}`);
        else if (route.role !== 'anyone' && c.role === null) {
          if (r.status !== 401 || code !== 'unauthenticated') problems.push(`want 401 unauthenticated: ${what}`);
        } else if (route.role !== 'anyone' && ROLE_RANK[c.role!] < ROLE_RANK[route.role]) {
          if (r.status !== 403 || code !== 'forbidden') problems.push(`want 403 forbidden: ${what}`);
        } else if ((r.status === 401 || r.status === 403) && !(call.refusedWith && code === call.refusedWith)) {
          problems.push(`allowed caller refused: ${what}`);
        } else if (call.ok !== false && (r.status < 200 || r.status >= 300)) {
          problems.push(`want 2xx: ${what}`);
        }
        if (SESSION_CHANGING.has(key)) await c.relogin();
      }
      assert.deepEqual(problems, []);
    });
  }
});

test('a denied call changes nothing', async () => {
  const user = callers.find((c) => c.name === 'user (cookie)')!;
  const helpdeskKey = callers.find((c) => c.name === 'helpdesk (api key)')!;
  const name = fresh('keep');
  await tb.app.broker.pools.create(tb.pool({ name }), SYSTEM_ACTOR);
  assert.equal((await send(user, 'DELETE', { path: `/pools/${name}` })).status, 403);
  assert.equal((await send(helpdeskKey, 'DELETE', { path: `/pools/${name}` })).status, 403);
  assert.equal((await send(helpdeskKey, 'PATCH', { path: `/users/${user.principal!.id}`, body: { role: 'admin' } })).status, 403);
  assert.equal((await send(user, 'POST', { path: '/api-keys', body: { name: 'mine', role: 'admin' } })).status, 403);
  const p = await tb.app.store.pools.get(name);
  assert.ok(p && !p.deleting);
  assert.equal((await tb.app.store.users.get(user.principal!.id))?.role, 'user');
  assert.ok(!(await tb.app.identity.listApiKeys()).some((k) => k.name === 'mine'));
});

test('a user sees only their own desktops and sessions', async () => {
  const a = await freshUser();
  const b = await freshUser();
  await tb.app.broker.pools.create(tb.pool({ name: 'iso', size: { min: 0, max: 10, spare: 0 }, entitlements: { users: [], groups: ['staff'] } }), SYSTEM_ACTOR);
  await readyDesktop('iso');
  await readyDesktop('iso');
  const ca = new ApiClient(tb.url);
  const cb = new ApiClient(tb.url);
  assert.equal((await ca.login(a.id)).status, 200);
  assert.equal((await cb.login(b.id)).status, 200);
  const ra = await ca.post('/me/pools/iso/request');
  const rb = await cb.post('/me/pools/iso/request');
  assert.equal(ra.status, 200, JSON.stringify(ra.body));
  assert.equal(rb.status, 200, JSON.stringify(rb.body));
  const sb = rb.body.session.id as string;

  const mine = await ca.get('/me/sessions');
  assert.deepEqual(mine.body.sessions.map((s: { id: string }) => s.id), [ra.body.session.id]);
  const desks = await ca.get('/me/desktops');
  assert.deepEqual(desks.body.desktops.map((d: { id: string }) => d.id), [ra.body.desktop.id]);
  assert.ok(!JSON.stringify(desks.body).includes(rb.body.desktop.id));
  assert.ok(!JSON.stringify(mine.body).includes(sb));

  // B's session: not A's to see or end, and it looks the same as one that does not exist.
  const off = await ca.post(`/me/sessions/${sb}/logoff`);
  assert.equal(off.status, 404, JSON.stringify(off.body));
  assert.equal(off.body.error.code, 'not_found');
  const none = await ca.post(`/me/sessions/${crypto.randomUUID()}/logoff`);
  assert.deepEqual(none.body, off.body);
  assert.equal((await ca.get(`/sessions/${sb}`)).status, 403);
  assert.equal((await tb.app.store.sessions.get(sb))?.state !== 'ended', true, 'B is still logged on');
  assert.deepEqual((await cb.get('/me/sessions')).body.sessions.map((s: { id: string }) => s.id), [sb]);

  for (const path of ['/desktops', '/sessions', '/users', '/audit', `/desktops/${rb.body.desktop.id}`, `/users/${b.id}`, '/pools', '/groups', '/api-keys', '/metrics']) {
    const r = await ca.get(path);
    assert.equal(r.status, 403, `${path}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, 'forbidden');
  }
  for (const [m, path] of [['POST', `/sessions/${sb}/logoff`], ['POST', `/desktops/${rb.body.desktop.id}/refresh`], ['DELETE', `/desktops/${rb.body.desktop.id}`]] as const) {
    const r = await ca.request(m, path, m === 'POST' ? {} : undefined);
    assert.equal(r.status, 403, `${m} ${path}: ${JSON.stringify(r.body)}`);
  }
  assert.equal((await tb.app.store.sessions.get(sb))?.state !== 'ended', true, 'B is still logged on');
  // A can end their own.
  const own = await ca.post(`/me/sessions/${ra.body.session.id}/logoff`);
  assert.equal(own.status, 200);
  assert.equal(own.body.session.state, 'ended');
});
