// The admin and helpdesk API end to end: pools, users and groups, desktops and their actions,
// sessions, the audit trail of all of it, and the meta routes (OpenAPI, health, metrics).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

let tb: TestBroker;
let admin: ApiClient;
let helpdesk: ApiClient;
const brokers: TestBroker[] = [];

before(async () => {
  tb = await startTestBroker({ name: 'admin-api' });
  brokers.push(tb);
  await tb.addUser('boss', 'admin');
  await tb.addUser('hd', 'helpdesk');
  admin = new ApiClient(tb.url);
  helpdesk = new ApiClient(tb.url);
  assert.equal((await admin.login('boss')).status, 200);
  assert.equal((await helpdesk.login('hd')).status, 200);
});
after(async () => {
  const closed = await Promise.allSettled(brokers.map((b) => b.close()));
  for (const c of closed) if (c.status === 'rejected') throw c.reason;
});

const readyDesktops = (pool: string, n: number) => tb.readyDesktops(pool, n);

const poolBody = (name: string, over: Record<string, unknown> = {}) => ({
  name, displayName: `Pool ${name}`, assignment: 'floating', persistence: 'refresh', size: { min: 0, max: 10, spare: 0 },
  naming: `${name}-{n:02}`, image: 'demo', provider: 'fake', ...over,
});

test('pools: create, read, change, resize, refuse bad references and duplicates', async () => {
  await tb.addUser('ann');
  const c = await admin.post('/pools', poolBody('lab', { entitlements: { users: ['ann'], groups: [] } }));
  assert.equal(c.status, 201, JSON.stringify(c.body));
  assert.equal(c.body.pool.name, 'lab');
  assert.equal(c.body.pool.resources.vcpu, 1, 'defaults applied');
  assert.equal(c.body.pool.clone, 'linked');
  assert.equal(c.body.pool.counts.total, 0);

  const dup = await admin.post('/pools', poolBody('lab'));
  assert.equal(dup.status, 409);
  assert.equal(dup.body.error.code, 'already_exists');
  assert.equal(dup.body.error.field, 'name');
  const noProvider = await admin.post('/pools', poolBody('lab2', { provider: 'vmware' }));
  assert.equal(noProvider.status, 400);
  assert.equal(noProvider.body.error.field, 'provider');
  const noUser = await admin.post('/pools', poolBody('lab2', { entitlements: { users: ['ghost'], groups: [] } }));
  assert.equal(noUser.status, 400);
  assert.equal(noUser.body.error.field, 'entitlements.users');
  const noGroup = await admin.post('/pools', poolBody('lab2', { entitlements: { users: [], groups: ['ghosts'] } }));
  assert.equal(noGroup.body.error.field, 'entitlements.groups');
  const badSize = await admin.post('/pools', poolBody('lab2', { size: { min: 5, max: 2, spare: 0 } }));
  assert.equal(badSize.status, 400);
  assert.equal(badSize.body.error.field, 'size.min');
  assert.equal((await admin.get('/pools/lab2')).status, 404);

  const list = await helpdesk.get('/pools');
  assert.deepEqual(list.body.pools.map((p: { name: string }) => p.name), ['lab']);
  const one = await helpdesk.get('/pools/lab');
  assert.equal(one.status, 200);
  assert.equal(one.body.pool.displayName, 'Pool lab');
  assert.equal((await helpdesk.get('/pools/nope')).body.error.code, 'not_found');

  const p = await admin.patch('/pools/lab', { displayName: 'Lab desktops', maintenance: true, resources: { vcpu: 2, memoryMiB: 2048 } });
  assert.equal(p.status, 200, JSON.stringify(p.body));
  assert.equal(p.body.pool.displayName, 'Lab desktops');
  assert.equal(p.body.pool.maintenance, true);
  assert.equal(p.body.pool.resources.vcpu, 2);
  assert.deepEqual(p.body.pool.entitlements.users, ['ann'], 'fields not in the patch stay');
  assert.equal((await admin.patch('/pools/lab', { name: 'renamed' })).status, 400, 'the name cannot change');
  assert.equal((await admin.patch('/pools/nope', { displayName: 'X' })).status, 404);
  const tooSmall = await admin.patch('/pools/lab', { size: { min: 0, max: 1, spare: 2 } });
  assert.equal(tooSmall.status, 400);
  assert.equal(tooSmall.body.error.field, 'size.spare');

  const r = await admin.post('/pools/lab/resize', { min: 1, max: 20, spare: 2 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body.pool.size, { min: 1, max: 20, spare: 2 });
  assert.deepEqual((await helpdesk.get('/pools/lab')).body.pool.size, { min: 1, max: 20, spare: 2 });
  const bad = await admin.post('/pools/lab/resize', { min: 3, max: 2, spare: 0 });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.field, 'min');
  assert.equal((await admin.post('/pools/nope/resize', { min: 0, max: 1, spare: 0 })).status, 404);
});

test('pools: DELETE answers 202 and the reconcilers empty and remove the pool', async () => {
  const b = await startTestBroker({ name: 'admin-api-jobs', config: { jobs: { enabled: true } } });
  brokers.push(b);
  b.app.startJobs();
  await b.addUser('boss', 'admin');
  const a = new ApiClient(b.url);
  assert.equal((await a.login('boss')).status, 200);
  assert.equal((await a.post('/pools', poolBody('gone', { size: { min: 0, max: 5, spare: 2 } }))).status, 201);
  const ready = async (n: number) =>
    waitFor(async () => {
      const r = await a.get('/desktops?pool=gone&state=ready');
      return r.body.desktops.length === n ? r.body.desktops : null;
    }, 15_000);
  const first = await ready(2);
  // a user holds one of them when the pool goes
  await b.addUser('tess');
  assert.equal((await a.patch('/pools/gone', { entitlements: { users: ['tess'], groups: [] } })).status, 200);
  const tess = new ApiClient(b.url);
  await tess.login('tess');
  const held = await tess.post('/me/pools/gone/request');
  assert.equal(held.status, 200, JSON.stringify(held.body));
  assert.equal((await a.post('/pools/gone/resize', { min: 0, max: 5, spare: 3 })).status, 200);
  await ready(3);
  assert.equal(b.provider.vms.size, 4);

  const del = await a.del('/pools/gone');
  assert.equal(del.status, 202, JSON.stringify(del.body));
  assert.deepEqual(del.body, { deleting: true });
  assert.equal((await a.post('/pools/gone/resize', { min: 0, max: 5, spare: 3 })).status, 404, 'a pool being deleted cannot be changed');
  await waitFor(async () => {
    const r = await a.get('/pools');
    return !r.body.pools.some((p: { name: string }) => p.name === 'gone');
  }, 20_000);
  assert.equal((await a.get('/pools/gone')).status, 404);
  assert.equal(b.provider.vms.size, 0, 'every desktop was destroyed in its provider');
  const ended = await a.get(`/sessions/${held.body.session.id}`);
  assert.equal(ended.body.session.state, 'ended', 'the session in the deleted pool ended');
  assert.deepEqual((await tess.get('/me/sessions')).body.sessions, []);
  assert.deepEqual((await tess.get('/me/pools')).body.pools, []);
  for (const d of first) assert.equal((await a.get(`/desktops/${d.id}`)).status, 404);
  const actions = (await a.get('/audit?target=gone')).body.entries.map((e: { action: string; outcome: string }) => `${e.action} ${e.outcome}`);
  // (the resize refused while the pool was being deleted is in the trail too)
  assert.deepEqual(actions, ['pool.removed ok', 'pool.resize denied', 'pool.delete ok', 'pool.resize ok', 'pool.update ok', 'pool.create ok']);
  // the name is free again
  assert.equal((await a.post('/pools', poolBody('gone'))).status, 201);
});

test('users and groups: CRUD with membership kept both ways', async () => {
  const g1 = await admin.post('/groups', { name: 'eng', displayName: 'Engineering' });
  assert.equal(g1.status, 201, JSON.stringify(g1.body));
  assert.deepEqual(g1.body.group.members, []);
  assert.equal((await admin.post('/groups', { name: 'eng' })).status, 409);
  assert.equal((await admin.post('/groups', { name: 'ops', members: ['nobody'] })).body.error.field, 'members');
  assert.equal((await admin.post('/groups', { name: 'ops' })).status, 201);

  const u = await admin.post('/users', { id: 'Erin', displayName: 'Erin E.', password: 'a long enough password', groups: ['eng'] });
  assert.equal(u.status, 201, JSON.stringify(u.body));
  assert.equal(u.body.user.id, 'erin', 'ids are lower-case');
  assert.equal(u.body.user.role, 'user');
  assert.deepEqual(u.body.user.groups, ['eng']);
  assert.equal((await admin.post('/users', { id: 'erin', password: 'a long enough password' })).status, 409);
  const short = await admin.post('/users', { id: 'frank', password: 'short' });
  assert.equal(short.status, 400);
  assert.equal(short.body.error.field, 'password');
  const noGroup = await admin.post('/users', { id: 'frank', password: 'a long enough password', groups: ['nope'] });
  assert.equal(noGroup.body.error.field, 'groups');
  assert.equal((await admin.get('/users/frank')).status, 404, 'nothing was created');
  assert.equal((await admin.post('/users', { id: 'frank', password: 'a long enough password', role: 'helpdesk' })).status, 201);

  // user -> group
  assert.deepEqual((await helpdesk.get('/groups/eng')).body.group.members, ['erin']);
  // group -> user
  const pg = await admin.patch('/groups/ops', { displayName: 'Operations', members: ['erin', 'frank'] });
  assert.equal(pg.status, 200, JSON.stringify(pg.body));
  assert.deepEqual(pg.body.group.members, ['erin', 'frank']);
  assert.deepEqual((await helpdesk.get('/users/erin')).body.user.groups, ['eng', 'ops']);
  assert.deepEqual((await helpdesk.get('/users/frank')).body.user.groups, ['ops']);
  // user leaves a group from the user side
  const pu = await admin.patch('/users/erin', { groups: ['ops'], displayName: 'Erin Example' });
  assert.deepEqual(pu.body.user.groups, ['ops']);
  assert.equal(pu.body.user.displayName, 'Erin Example');
  assert.deepEqual((await helpdesk.get('/groups/eng')).body.group.members, []);
  // group drops a member from the group side
  await admin.patch('/groups/ops', { members: ['frank'] });
  assert.deepEqual((await helpdesk.get('/users/erin')).body.user.groups, []);
  // deleting the group removes it from its members; deleting a user removes them from groups
  await admin.patch('/users/erin', { groups: ['ops', 'eng'] });
  assert.equal((await admin.del('/groups/ops')).status, 204);
  assert.deepEqual((await helpdesk.get('/users/erin')).body.user.groups, ['eng']);
  assert.deepEqual((await helpdesk.get('/users/frank')).body.user.groups, []);
  assert.equal((await admin.del('/groups/ops')).status, 404);
  assert.equal((await admin.del('/users/erin')).status, 204);
  assert.deepEqual((await helpdesk.get('/groups/eng')).body.group.members, []);
  assert.equal((await helpdesk.get('/users/erin')).status, 404);
  assert.equal((await admin.del('/users/erin')).status, 404);
  const self = await admin.del('/users/boss');
  assert.equal(self.status, 409);
  assert.equal(self.body.error.code, 'conflict');

  const users = (await helpdesk.get('/users')).body.users.map((x: { id: string }) => x.id);
  assert.ok(users.includes('frank') && !users.includes('erin'));
  const groups = (await helpdesk.get('/groups')).body.groups.map((x: { name: string }) => x.name);
  assert.ok(groups.includes('eng') && !groups.includes('ops'));
  // the new user can log in with the password given
  assert.equal((await new ApiClient(tb.url).login('frank', 'a long enough password')).status, 200);
});

test('deleting a user or group a pool is entitled to leaves the pool manageable, and grants nothing to a namesake', async () => {
  await tb.addUser('olga');
  assert.equal((await admin.post('/groups', { name: 'night', members: ['olga'] })).status, 201);
  assert.equal((await admin.post('/pools', poolBody('ent', { entitlements: { users: ['olga'], groups: ['night'] } }))).status, 201);
  // Either the delete is refused while the pool refers to them (409), or it goes and the pool forgets them.
  const dg = await admin.del('/groups/night');
  const du = await admin.del('/users/olga');
  for (const r of [dg, du]) assert.ok(r.status === 204 || (r.status === 409 && r.body.error.code === 'conflict'), JSON.stringify(r.body));
  const pool = (await admin.get('/pools/ent')).body.pool;
  if (dg.status === 204) assert.deepEqual(pool.entitlements.groups, [], 'a deleted group is no longer entitled');
  if (du.status === 204) assert.deepEqual(pool.entitlements.users, [], 'a deleted user is no longer entitled');
  const resize = await admin.post('/pools/ent/resize', { min: 0, max: 4, spare: 0 });
  assert.equal(resize.status, 200, `the pool can still be resized: ${JSON.stringify(resize.body)}`);
  assert.equal((await admin.patch('/pools/ent', { displayName: 'Still mine' })).status, 200);
  if (dg.status === 204 && du.status === 204) {
    // a new account and group that happen to reuse the names get nothing
    await tb.addUser('olga');
    assert.equal((await admin.post('/groups', { name: 'night', members: ['olga'] })).status, 201);
    const o = new ApiClient(tb.url);
    await o.login('olga');
    assert.deepEqual((await o.get('/me/pools')).body.pools, []);
  }
});

test('deleting a user ends their sessions and takes back their desktops (or is refused); a namesake inherits nothing', async () => {
  await tb.addUser('pat');
  await tb.addUser('quin');
  await tb.app.broker.pools.create(tb.pool({ name: 'dpx', naming: 'dpx-{n:02}', assignment: 'dedicated', persistence: 'persistent', entitlements: { users: ['pat', 'quin'], groups: [] } }), SYSTEM_ACTOR);
  await readyDesktops('dpx', 3);
  const pat = new ApiClient(tb.url);
  await pat.login('pat');
  const live = await pat.post('/me/pools/dpx/request');
  assert.equal(live.status, 200);
  const quin = new ApiClient(tb.url);
  await quin.login('quin');
  const owned = await quin.post('/me/pools/dpx/request');
  assert.equal((await quin.post(`/me/sessions/${owned.body.session.id}/logoff`)).status, 200);
  assert.equal((await helpdesk.get(`/desktops/${owned.body.desktop.id}`)).body.desktop.state, 'assigned');

  for (const [who, r] of [['pat', await admin.del('/users/pat')], ['quin', await admin.del('/users/quin')]] as const) {
    assert.ok(r.status === 204 || (r.status === 409 && r.body.error.code === 'conflict'), `${who}: ${r.status} ${JSON.stringify(r.body)}`);
    if (r.status === 409) continue;
    const sessions = (await helpdesk.get(`/sessions?user=${who}`)).body.sessions;
    assert.deepEqual(sessions, [], `${who} was deleted but still has live sessions`);
    const desktops = (await helpdesk.get(`/desktops?user=${who}`)).body.desktops.filter((d: { state: string }) => d.state !== 'deleted');
    assert.deepEqual(desktops.map((d: { name: string; state: string }) => `${d.name}:${d.state}`), [], `${who} was deleted but still holds desktops`);
  }
  // A new account that reuses the id must not get the old one's persistent desktop (and disk).
  if ((await admin.get('/users/quin')).status === 404) {
    await tb.addUser('quin');
    const q2 = new ApiClient(tb.url);
    await q2.login('quin');
    const r = await q2.post('/me/pools/dpx/request');
    assert.ok(!(r.status === 200 && r.body.desktop.id === owned.body.desktop.id), `the namesake got the old desktop: ${JSON.stringify(r.body)}`);
  }
});

test('desktops: list filters by pool, state and user', async () => {
  await tb.addUser('fay');
  await tb.addUser('gus');
  await tb.app.broker.pools.create(tb.pool({ name: 'fa', naming: 'fa-{n:02}' }), SYSTEM_ACTOR);
  await tb.app.broker.pools.create(tb.pool({ name: 'fb', naming: 'fb-{n:02}', assignment: 'dedicated', persistence: 'persistent' }), SYSTEM_ACTOR);
  const a = await readyDesktops('fa', 3);
  const b = await readyDesktops('fb', 2);
  assert.equal(await tb.app.store.desktops.assignOwner(b[0]!, 'fay', Date.now()), 'ok');
  assert.equal(await tb.app.store.desktops.assignOwner(b[1]!, 'gus', Date.now()), 'ok');
  await tb.app.store.desktops.transition(a[0]!, 'refreshing');

  const ids = async (q: string) => {
    const r = await helpdesk.get(`/desktops${q}`);
    assert.equal(r.status, 200, `${q}: ${JSON.stringify(r.body)}`);
    return (r.body.desktops as { id: string }[]).map((d) => d.id).sort();
  };
  assert.deepEqual(await ids('?pool=fa'), [...a].sort());
  assert.deepEqual(await ids('?pool=fb'), [...b].sort());
  assert.deepEqual(await ids('?pool=fa&state=ready'), [a[1]!, a[2]!].sort());
  assert.deepEqual(await ids('?pool=fa&state=refreshing'), [a[0]!]);
  assert.deepEqual(await ids('?state=assigned&pool=fb'), [...b].sort());
  const assigned = (await helpdesk.get('/desktops?state=assigned')).body.desktops as { id: string; state: string }[];
  assert.ok(assigned.every((d) => d.state === 'assigned') && b.every((id) => assigned.some((d) => d.id === id)), 'state filter across pools');
  assert.deepEqual(await ids('?user=fay'), [b[0]!]);
  assert.deepEqual(await ids('?user=FAY'), [b[0]!], 'user names are case-insensitive');
  assert.deepEqual(await ids('?user=gus&pool=fb&state=assigned'), [b[1]!]);
  assert.deepEqual(await ids('?user=gus&pool=fa'), []);
  assert.deepEqual(await ids('?pool=nosuch'), []);
  assert.deepEqual(await ids('?name=fb-0'), [...b].sort());
  const all = await helpdesk.get('/desktops');
  const names = all.body.desktops.map((d: { name: string }) => d.name);
  assert.deepEqual(names, [...names].sort(), 'sorted by name');
  const one = await helpdesk.get(`/desktops/${b[0]}`);
  assert.equal(one.body.desktop.user, 'fay');
  assert.equal(one.body.desktop.pool, 'fb');
  assert.match(one.body.desktop.mac, /^02:56:44:/);
  assert.equal((await helpdesk.get(`/desktops/${crypto.randomUUID()}`)).status, 404);
});

test('desktops: refresh, unassign, assign, delete and reset with the fake provider', async () => {
  await tb.addUser('hal');
  await tb.addUser('ivy');
  await tb.app.broker.pools.create(tb.pool({ name: 'act', naming: 'act-{n:02}', entitlements: { users: ['hal'], groups: [] } }), SYSTEM_ACTOR);
  await tb.app.broker.pools.create(tb.pool({ name: 'dd', naming: 'dd-{n:02}', assignment: 'dedicated', persistence: 'persistent', entitlements: { users: ['hal', 'ivy'], groups: [] } }), SYSTEM_ACTOR);
  const [r1, r2, r3] = await readyDesktops('act', 3);
  const [d1, d2] = await readyDesktops('dd', 2);

  const ref = await helpdesk.post(`/desktops/${r1}/refresh`);
  assert.equal(ref.status, 200, JSON.stringify(ref.body));
  assert.equal(ref.body.desktop.state, 'refreshing');
  const again = await helpdesk.post(`/desktops/${r1}/refresh`);
  assert.equal(again.status, 409);
  assert.equal(again.body.error.code, 'illegal_transition');

  const as = await helpdesk.post(`/desktops/${d1}/assign`, { user: 'ivy' });
  assert.equal(as.status, 200, JSON.stringify(as.body));
  assert.equal(as.body.desktop.state, 'assigned');
  assert.equal(as.body.desktop.user, 'ivy');
  assert.equal((await helpdesk.post(`/desktops/${d2}/assign`, { user: 'ivy' })).body.error.code, 'already_exists', 'one desktop per user per dedicated pool');
  assert.equal((await helpdesk.post(`/desktops/${d2}/assign`, { user: 'ghost' })).body.error.field, 'user');
  const floating = await helpdesk.post(`/desktops/${r2}/assign`, { user: 'ivy' });
  assert.equal(floating.status, 409);
  assert.equal(floating.body.error.code, 'conflict');
  // ivy's dedicated desktop is what she gets
  const ivy = new ApiClient(tb.url);
  await ivy.login('ivy');
  const got = await ivy.post('/me/pools/dd/request');
  assert.equal(got.body.desktop.id, d1);

  const inUse = await helpdesk.post(`/desktops/${d1}/unassign`);
  assert.equal(inUse.status, 409);
  assert.equal(inUse.body.error.code, 'desktop_in_use');
  await ivy.post(`/me/sessions/${got.body.session.id}/logoff`);
  const un = await helpdesk.post(`/desktops/${d1}/unassign`);
  assert.equal(un.status, 200, JSON.stringify(un.body));
  assert.equal(un.body.desktop.state, 'ready');
  assert.equal(un.body.desktop.user, '');
  assert.equal((await helpdesk.post(`/desktops/${d2}/unassign`)).body.error.code, 'illegal_transition', 'a ready desktop has no owner');

  const calls = tb.provider.calls.length;
  const rs = await helpdesk.post(`/desktops/${r2}/reset`);
  assert.equal(rs.status, 200, JSON.stringify(rs.body));
  assert.equal(rs.body.desktop.state, 'ready');
  assert.deepEqual(tb.provider.calls.slice(calls), [`reboot:${r2}`]);
  tb.provider.failNext('reboot');
  const failed = await helpdesk.post(`/desktops/${r2}/reset`);
  assert.equal(failed.status, 502);
  assert.equal(failed.body.error.code, 'provider_error');
  assert.equal((await helpdesk.post(`/desktops/${r1}/reset`)).body.error.code, 'illegal_transition', 'a refreshing desktop is not reset');

  const del = await helpdesk.del(`/desktops/${r3}`);
  assert.equal(del.status, 202, JSON.stringify(del.body));
  assert.equal(del.body.desktop.state, 'deleting');
  assert.equal((await helpdesk.del(`/desktops/${r3}`)).status, 409);
  for (const action of ['refresh', 'reset', 'unassign']) {
    const r = await helpdesk.post(`/desktops/${crypto.randomUUID()}/${action}`);
    assert.equal(r.status, 404, `${action}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, 'not_found');
  }
  assert.equal((await helpdesk.post(`/desktops/${crypto.randomUUID()}/assign`, { user: 'ivy' })).status, 404);
  assert.equal((await helpdesk.del(`/desktops/${crypto.randomUUID()}`)).status, 404);
});

test('sessions: helpdesk lists and logs a user off', async () => {
  await tb.addUser('jon');
  await tb.app.broker.pools.create(tb.pool({ name: 'ses', naming: 'ses-{n:02}', entitlements: { users: ['jon'], groups: [] } }), SYSTEM_ACTOR);
  await readyDesktops('ses', 1);
  const jon = new ApiClient(tb.url);
  await jon.login('jon');
  const got = await jon.post('/me/pools/ses/request');
  assert.equal(got.status, 200);
  const sid = got.body.session.id;
  const live = await helpdesk.get('/sessions?pool=ses');
  assert.deepEqual(live.body.sessions.map((s: { id: string }) => s.id), [sid]);
  assert.deepEqual((await helpdesk.get('/sessions?user=jon')).body.sessions.map((s: { id: string }) => s.id), [sid]);
  assert.deepEqual((await helpdesk.get('/sessions?user=jon&state=connected')).body.sessions, []);
  const one = await helpdesk.get(`/sessions/${sid}`);
  assert.equal(one.body.session.user, 'jon');
  const off = await helpdesk.post(`/sessions/${sid}/logoff`);
  assert.equal(off.status, 200, JSON.stringify(off.body));
  assert.equal(off.body.session.state, 'ended');
  assert.equal(off.body.session.endReason, 'helpdesk logoff');
  assert.deepEqual((await jon.get('/me/sessions')).body.sessions, []);
  assert.deepEqual((await helpdesk.get('/sessions?pool=ses')).body.sessions, []);
  assert.equal((await helpdesk.get(`/sessions/${sid}`)).body.session.state, 'ended', 'an ended session can still be read');
  assert.equal((await helpdesk.post(`/sessions/${sid}/logoff`)).status, 200, 'logging off twice is harmless');
  assert.equal((await helpdesk.post(`/sessions/${crypto.randomUUID()}/logoff`)).status, 404);
});

test('audit: every action is recorded with actor, action, target and address; filters work', async () => {
  await new Promise((r) => setTimeout(r, 5));
  const since = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 5));
  await tb.addUser('kim');
  const hd2 = new ApiClient(tb.url);
  await tb.addUser('hd2', 'helpdesk');
  await hd2.login('hd2');
  // one of each action
  assert.equal((await admin.post('/pools', poolBody('aud', { assignment: 'dedicated', persistence: 'persistent', entitlements: { users: ['kim'], groups: [] } }))).status, 201);
  assert.equal((await admin.patch('/pools/aud', { displayName: 'Audited' })).status, 200);
  assert.equal((await admin.post('/pools/aud/resize', { min: 0, max: 9, spare: 0 })).status, 200);
  assert.equal((await admin.post('/groups', { name: 'audg' })).status, 201);
  assert.equal((await admin.patch('/groups/audg', { members: ['kim'] })).status, 200);
  assert.equal((await admin.post('/users', { id: 'lou', password: 'a long enough password' })).status, 201);
  assert.equal((await admin.patch('/users/lou', { role: 'helpdesk' })).status, 200);
  const key = await admin.post('/api-keys', { name: 'audkey', role: 'user' });
  assert.equal((await admin.del(`/api-keys/${key.body.key.id}`)).status, 204);
  const [a1, a2, a3, a4] = await readyDesktops('aud', 4);
  assert.equal((await hd2.post(`/desktops/${a1}/assign`, { user: 'kim' })).status, 200);
  assert.equal((await hd2.post(`/desktops/${a1}/unassign`)).status, 200);
  assert.equal((await hd2.post(`/desktops/${a2}/refresh`)).status, 200);
  assert.equal((await hd2.post(`/desktops/${a3}/reset`)).status, 200);
  assert.equal((await hd2.del(`/desktops/${a4}`)).status, 202);
  const kim = new ApiClient(tb.url);
  await kim.login('kim');
  const s = await kim.post('/me/pools/aud/request');
  assert.equal(s.status, 200, JSON.stringify(s.body));
  assert.equal((await hd2.post(`/sessions/${s.body.session.id}/logoff`)).status, 200);
  assert.equal((await admin.del('/users/lou')).status, 204);
  assert.equal((await admin.del('/groups/audg')).status, 204);
  assert.equal((await admin.del('/pools/aud')).status, 202);

  const q = async (query: string) => {
    const r = await helpdesk.get(`/audit?${query}`);
    assert.equal(r.status, 200, `${query}: ${JSON.stringify(r.body)}`);
    return r.body.entries as { id: string; at: string; actor: string; role: string; action: string; targetType: string; target: string; address: string; outcome: string; details: Record<string, unknown> }[];
  };
  const all = await q(`since=${encodeURIComponent(since)}&limit=500`);
  const find = (action: string, target: string) => all.find((e) => e.action === action && e.target === target);
  const want: [string, string, string, string][] = [
    ['pool.create', 'aud', 'boss', 'pool'],
    ['pool.update', 'aud', 'boss', 'pool'],
    ['pool.resize', 'aud', 'boss', 'pool'],
    ['group.create', 'audg', 'boss', 'group'],
    ['group.update', 'audg', 'boss', 'group'],
    ['user.create', 'lou', 'boss', 'user'],
    ['user.update', 'lou', 'boss', 'user'],
    ['apikey.create', key.body.key.id, 'boss', 'apikey'],
    ['apikey.revoke', key.body.key.id, 'boss', 'apikey'],
    ['desktop.assign', a1!, 'hd2', 'desktop'],
    ['desktop.unassign', a1!, 'hd2', 'desktop'],
    ['desktop.refresh', a2!, 'hd2', 'desktop'],
    ['desktop.reset', a3!, 'hd2', 'desktop'],
    ['desktop.delete', a4!, 'hd2', 'desktop'],
    ['session.start', s.body.session.id, 'kim', 'session'],
    ['session.logoff', s.body.session.id, 'hd2', 'session'],
    ['user.delete', 'lou', 'boss', 'user'],
    ['group.delete', 'audg', 'boss', 'group'],
    ['pool.delete', 'aud', 'boss', 'pool'],
    ['auth.login', 'hd2', 'hd2', 'user'],
  ];
  for (const [action, target, actor, targetType] of want) {
    const e = find(action, target);
    assert.ok(e, `no audit entry ${action} ${target}`);
    assert.equal(e.actor, actor, `${action} actor`);
    assert.equal(e.targetType, targetType, `${action} targetType`);
    assert.equal(e.outcome, 'ok', `${action} outcome`);
    assert.match(e.address, /^(::ffff:)?127\.0\.0\.1$|^::1$/, `${action} address ${e.address}`);
    assert.ok(e.role, `${action} role`);
    assert.ok(Date.parse(e.at) >= Date.parse(since), `${action} at`);
  }
  assert.deepEqual(all.map((e) => e.id), [...all.map((e) => e.id)].sort((x, y) => (x < y ? 1 : -1)), 'newest first');

  // filters
  const byHd2 = await q('actor=hd2&limit=500');
  assert.ok(byHd2.length >= 7 && byHd2.every((e) => e.actor === 'hd2'));
  const desk = await q(`action=desktop.&since=${encodeURIComponent(since)}`);
  assert.deepEqual(new Set(desk.map((e) => e.action)), new Set(['desktop.assign', 'desktop.unassign', 'desktop.refresh', 'desktop.reset', 'desktop.delete']));
  const pool = await q('target=aud');
  assert.deepEqual(pool.map((e) => e.action), ['pool.delete', 'pool.resize', 'pool.update', 'pool.create']);
  assert.deepEqual((await q(`target=${a1}`)).map((e) => e.action), ['desktop.unassign', 'desktop.assign']);
  assert.ok((await q('targetType=apikey')).every((e) => e.targetType === 'apikey'));
  const future = await q(`since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`);
  assert.deepEqual(future, []);
  const old = await q(`until=${encodeURIComponent(since)}&limit=500`);
  assert.ok(old.length > 0 && old.every((e) => Date.parse(e.at) <= Date.parse(since)), 'until bounds the other end');
  assert.ok(!old.some((e) => e.target === 'aud'));
  // paging
  const p1 = await helpdesk.get(`/audit?since=${encodeURIComponent(since)}&limit=3`);
  assert.equal(p1.body.entries.length, 3);
  assert.equal(p1.body.next, p1.body.entries[2].id);
  const p2 = await q(`since=${encodeURIComponent(since)}&limit=3&before=${p1.body.next}`);
  assert.deepEqual(p2.map((e) => e.id), all.slice(3, 6).map((e) => e.id));
  // denied actions are recorded as such
  const bad = await hd2.post(`/desktops/${a4}/refresh`);
  assert.equal(bad.status, 409);
  const denied = await q(`target=${a4}&outcome=denied`);
  assert.equal(denied.length, 1);
  assert.equal(denied[0]!.action, 'desktop.refresh');
  const failedLogin = await new ApiClient(tb.url).login('kim', 'wrong password here');
  assert.equal(failedLogin.status, 401);
  const fl = await q('action=auth.login&target=kim&outcome=denied');
  assert.equal(fl.length, 1);
  assert.equal(fl[0]!.actor, 'anonymous');
  assert.ok(!JSON.stringify(fl).includes('wrong password here'));
});

test('GET /openapi.json is an OpenAPI 3.1 document covering every route', async () => {
  const r = await new ApiClient(tb.url).get('/openapi.json');
  assert.equal(r.status, 200);
  const doc = r.body;
  assert.equal(doc.openapi, '3.1.0');
  assert.equal(typeof doc.info.title, 'string');
  assert.equal(typeof doc.info.version, 'string');
  assert.deepEqual(doc.servers, [{ url: '/api/v1' }]);
  assert.ok(doc.components.schemas.Error);
  const problems: string[] = [];
  const expect = (ok: unknown, what: string) => void (ok || problems.push(what));
  for (const route of tb.app.routes.routes) {
    const path = route.path.replace(/:([A-Za-z]+)/g, '{$1}');
    const op = doc.paths[path]?.[route.method];
    const name = `${route.method} ${path}`;
    if (!op) {
      problems.push(`no ${name} in the document`);
      continue;
    }
    expect(op['x-required-role'] === route.role, `${name}: x-required-role ${op['x-required-role']}, route says ${route.role}`);
    expect(op.summary && op.tags?.length, `${name}: summary/tags`);
    expect(op.responses[String(route.status ?? 200)], `${name}: no ${route.status ?? 200} response`);
    for (const [, param] of route.path.matchAll(/:([A-Za-z]+)/g)) {
      expect(op.parameters?.some((p: { name: string; in: string; required: boolean }) => p.name === param && p.in === 'path' && p.required), `${name}: parameter ${param}`);
    }
    if (route.body) expect(op.requestBody?.content?.['application/json']?.schema?.type === 'object', `${name}: body schema`);
    else expect(op.requestBody === undefined, `${name}: a body it does not take`);
    expect(JSON.stringify(op.security) === JSON.stringify(route.role === 'anyone' ? [] : [{ session: [] }, { apiKey: [] }]), `${name}: security`);
    for (const [status, res] of Object.entries<any>(op.responses)) {
      expect(/^[1-5]\d\d$/.test(status), `${name}: status ${status}`);
      if (Number(status) >= 400) expect(res.content?.['application/json']?.schema?.$ref === '#/components/schemas/Error', `${name}: ${status} is not an Error`);
    }
  }
  assert.deepEqual(problems, []);
  const ops = Object.values<Record<string, unknown>>(doc.paths).reduce((n, p) => n + Object.keys(p).length, 0);
  assert.equal(ops, tb.app.routes.routes.length, 'no operation without a route');
  // $refs resolve
  for (const m of JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)) assert.ok(doc.components.schemas[m[1]!], m[1]);
});

test('health, readiness and metrics', async () => {
  const h = await fetch(`${tb.url}/healthz`);
  assert.equal(h.status, 200);
  assert.equal((await h.json()).status, 'ok');
  const ready = await fetch(`${tb.url}/readyz`);
  assert.equal(ready.status, 200);
  const rb = await ready.json();
  assert.equal(rb.status, 'ready');
  assert.equal(rb.redis, true);

  await tb.app.broker.pools.create(tb.pool({ name: 'met', naming: 'met-{n:02}' }), SYSTEM_ACTOR);
  await readyDesktops('met', 2);
  const m = await helpdesk.get('/metrics');
  assert.equal(m.status, 200);
  assert.match(m.headers.get('content-type') ?? '', /^text\/plain/);
  assert.equal(typeof m.body, 'string');
  assert.match(m.body, /^# HELP vdi_desktops /m);
  assert.match(m.body, /^# TYPE vdi_desktops gauge/m);
  assert.match(m.body, /^vdi_desktops\{pool="met",state="ready"\} 2$/m);
  assert.match(m.body, /^vdi_desktops\{pool="met",state="in_use"\} 0$/m);
  assert.match(m.body, /^vdi_http_request_duration_seconds_bucket\{/m);
  const user = new ApiClient(tb.url);
  await tb.addUser('metuser');
  await user.login('metuser');
  assert.equal((await user.get('/metrics')).status, 403);
  assert.equal((await new ApiClient(tb.url).get('/metrics')).status, 401);
});

test('audit: refused admin and helpdesk changes (invalid, duplicate, forbidden, not found, provider error) are recorded once with the refusal and its code; a success still once', async () => {
  type Entry = { action: string; target: string; targetType: string; actor: string; outcome: string; details: Record<string, unknown> };
  const entries = async (target: string): Promise<Entry[]> => {
    const r = await helpdesk.get(`/audit?target=${target}&limit=500`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.entries;
  };

  // a refused pool create, three ways, then the one that works
  assert.equal((await admin.post('/pools', poolBody('refp', { provider: 'vmware' }))).status, 400);
  assert.equal((await helpdesk.post('/pools', poolBody('refp'))).status, 403);
  assert.equal((await admin.post('/pools', poolBody('refp'))).status, 201);
  assert.equal((await admin.post('/pools', poolBody('refp'))).status, 409);
  const pool = (await entries('refp')).filter((e) => e.action === 'pool.create').reverse();
  assert.deepEqual(
    pool.map((e) => [e.actor, e.targetType, e.outcome, e.details.code, e.details.field]),
    [
      ['boss', 'pool', 'denied', 'validation_failed', 'provider'],
      ['hd', 'pool', 'denied', 'forbidden', undefined],
      ['boss', 'pool', 'ok', undefined, undefined],
      ['boss', 'pool', 'denied', 'already_exists', 'name'],
    ],
    JSON.stringify(pool),
  );
  assert.match(String(pool[0]!.details.message), /provider/);

  // a refused migrate: no such desktop, invalid body, the hypervisor fails; then one that works
  await tb.app.broker.pools.create(tb.pool({ name: 'mig', naming: 'mig-{n:02}' }), SYSTEM_ACTOR);
  const [ok] = await readyDesktops('mig', 1);
  const ghost = '00000000-0000-4000-8000-000000000001';
  assert.equal((await helpdesk.post(`/desktops/${ghost}/migrate`, { host: 'host-b' })).status, 404);
  assert.equal((await helpdesk.post(`/desktops/${ok}/migrate`, {})).status, 400);
  // a desktop the hypervisor does not have: the provider refuses
  const lost = await tb.app.store.desktops.provisionSpare('mig', Date.now());
  assert.ok('id' in lost);
  await tb.app.store.desktops.transition(lost.id, 'settled', { expect: ['provisioning'] });
  assert.equal((await helpdesk.post(`/desktops/${lost.id}/migrate`, { host: 'host-b' })).status, 502);
  assert.equal((await helpdesk.post(`/desktops/${ok}/migrate`, { host: 'host-b' })).status, 200);

  const [notFound] = (await entries(ghost)).filter((e) => e.action === 'desktop.migrate');
  assert.deepEqual([notFound?.actor, notFound?.targetType, notFound?.outcome, notFound?.details.code], ['hd', 'desktop', 'denied', 'not_found']);
  const mine = (await entries(ok!)).filter((e) => e.action === 'desktop.migrate').reverse();
  assert.deepEqual(mine.map((e) => [e.outcome, e.details.code]), [['denied', 'validation_failed'], ['ok', undefined]], JSON.stringify(mine));
  // the service audits a provider failure itself: one entry, not two
  const failed = (await entries(lost.id)).filter((e) => e.action === 'desktop.migrate');
  assert.equal(failed.length, 1, JSON.stringify(failed));
  assert.equal(failed[0]!.outcome, 'failed');

  // reads and unknown callers are not audited
  assert.equal((await helpdesk.get(`/desktops/${ghost}`)).status, 404);
  assert.equal((await new ApiClient(tb.url).post('/pools', poolBody('anon'))).status, 401);
  assert.deepEqual(await entries('anon'), []);
  assert.equal((await entries(ghost)).length, 1);
});
