// Directory logins against a real OpenLDAP (slapd) started here with StartTLS and a CA made by
// the test (docs/authentication.md). One slapd for the file; stopped by its pid in after().
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ApiClient, PASSWORD, startTestBroker, waitFor, type TestBroker } from '../support/harness.ts';
import { freePort } from '../support/redis.ts';
import { startSlapd, treeLdif, SERVICE_DN, SERVICE_PW, SUFFIX, type Slapd } from './slapd.ts';
import { LdapAuthenticator } from '../../server/auth/authenticators/ldap/index.ts';
import { createLogger } from '../../server/observability/index.ts';
import { configSchema, type LdapAuthenticatorConfig } from '../../server/config/schema.ts';
import { normaliseUsername } from '../../server/auth/index.ts';

const PW = { default: 'directory pass 1', alice: 'alice directory pw', bob: 'bob directory pw', erin: 'erin directory pw' };
const TIMEOUT_MS = 1500;
let slapd: Slapd;
let tb: TestBroker;
let deadPort: number;

const ldapConfig = (name: string, urls: string[], over: Record<string, unknown> = {}) => ({
  kind: 'ldap' as const, name, label: `Directory ${name}`, directory: 'openldap' as const, urls, startTls: true, caFile: slapd.caFile,
  bindDn: SERVICE_DN, bindPassword: SERVICE_PW, baseDn: SUFFIX, timeoutMs: TIMEOUT_MS, ...over,
});

before(async () => {
  slapd = await startSlapd(treeLdif(PW));
  deadPort = await freePort(); // nothing listens here: the "first server is down" of the failover test
  tb = await startTestBroker({
    name: 'ldap',
    config: {
      auth: {
        authenticators: [
          ldapConfig('corp', [slapd.url], { domains: ['example.test'], groupCacheSeconds: 1 }),
          ldapConfig('corp-failover', [`ldap://127.0.0.1:${deadPort}`, slapd.url]),
          ldapConfig('corp-ldaps', [slapd.ldapsUrl], { startTls: false }),
          ldapConfig('corp-wrong-ca', [slapd.url], { caFile: slapd.otherCaFile }),
          ldapConfig('corp-leavers', [slapd.url], { disabledFilter: '(description=left)' }),
        ],
        roleMapping: { 'vdi-admins': 'admin', 'lab-staff': 'user' },
      },
    } as never,
  });
  await tb.addUser('admin', 'admin');
});

after(async () => {
  await tb?.close();
  await slapd?.close();
});

async function login(username: string, password: string, realm?: string): Promise<{ c: ApiClient; status: number; body: any; ms: number }> {
  const c = new ApiClient(tb.url);
  const t0 = Date.now();
  const r = await c.request('POST', '/auth/login', { username, password, ...(realm ? { realm } : {}) });
  if (r.status === 200) c.csrf = r.body.csrfToken;
  return { c, status: r.status, body: r.body, ms: Date.now() - t0 };
}

const admin = async () => {
  const c = new ApiClient(tb.url);
  assert.equal((await c.login('admin', PASSWORD)).status, 200);
  return c;
};

test('GET /auth/methods lists local accounts and both directories, without secrets', async () => {
  const r = await new ApiClient(tb.url).get('/auth/methods');
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.methods.map((m: { name: string; kind: string }) => `${m.name}:${m.kind}`), ['local:local', 'corp:ldap', 'corp-failover:ldap', 'corp-ldaps:ldap', 'corp-wrong-ca:ldap', 'corp-leavers:ldap']);
  assert.deepEqual(r.body.methods[1].domains, ['example.test']);
  assert.doesNotMatch(JSON.stringify(r.body), /secret|bindDn|cn=/i);
});

test('a directory user logs in over StartTLS; nested groups (groupOfNames in groupOfNames) become broker groups that entitle', async (t) => {
  const a = await login('alice', PW.alice, 'corp');
  t.diagnostic(`first directory login (StartTLS, binds, nested groups, JIT user) took ${a.ms} ms`);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.equal(a.body.status, 'ok');
  assert.equal(a.body.user.id, 'alice');
  assert.equal(a.body.user.source, 'corp');
  assert.equal(a.body.user.role, 'user');
  assert.equal(a.body.user.displayName, 'Alice Lab');
  assert.deepEqual(a.body.user.groups, ['lab-staff', 'vdi-users'], '"VDI Users" reached through lab-staff, lower-cased to a broker id');
  // user@domain routes to the directory too
  assert.equal((await login('alice@example.test', PW.alice)).status, 200);
  // The group exists in the broker now and entitles alice to a pool.
  const adm = await admin();
  const pool = await adm.post('/pools', { name: 'ldaplab', displayName: 'LDAP lab', assignment: 'floating', persistence: 'refresh', size: { min: 0, max: 2, spare: 0 }, naming: 'ldaplab-{n:02}', image: 'demo', provider: 'fake', entitlements: { users: [], groups: ['vdi-users'] } });
  assert.equal(pool.status, 201, JSON.stringify(pool.body));
  const mine = await a.c.get('/me/pools');
  assert.deepEqual(mine.body.pools.map((p: { name: string }) => p.name), ['ldaplab']);
  const audit = await adm.get('/audit?action=auth.login&actor=alice&limit=5');
  assert.equal(audit.body.entries[0].details.authenticator, 'corp');
});

test('a group maps to a role (vdi-admins → admin); cyclic group nesting ends; posixGroup memberUid counts', async () => {
  const b = await login('bob', PW.bob, 'corp');
  assert.equal(b.status, 200, JSON.stringify(b.body));
  assert.equal(b.body.user.role, 'admin');
  assert.deepEqual(b.body.user.groups, ['cycle-a', 'cycle-b', 'vdi-admins']);
  const e = await login('erin', PW.erin, 'corp');
  assert.equal(e.status, 200, JSON.stringify(e.body));
  assert.deepEqual(e.body.user.groups, ['nurses']);
  assert.equal(e.body.user.role, 'user');
});

test('wrong password and unknown user both answer 401 invalid_credentials', async () => {
  const wrong = await login('alice', 'not her password', 'corp');
  const unknown = await login('zed', 'whatever pw', 'corp');
  for (const r of [wrong, unknown]) {
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'invalid_credentials');
  }
  assert.deepEqual(wrong.body, unknown.body);
});

test('a locked account (ppolicy pwdAccountLockedTime) is refused with account_disabled and gets no session', async () => {
  const right = await login('carol', PW.default, 'corp');
  assert.equal(right.status, 403, JSON.stringify(right.body));
  assert.equal(right.body.error.code, 'account_disabled');
  assert.equal((await right.c.get('/me')).status, 401);
  // slapd refuses a locked account before checking the password (as AD does with 775): no login either way.
  const wrong = await login('carol', 'not the password', 'corp');
  assert.notEqual(wrong.status, 200);
});

test('a user matching the authenticator\'s disabledFilter is refused with account_disabled, only once the password is right', async () => {
  const right = await login('ivy', PW.default, 'corp-leavers');
  assert.equal(right.status, 403, JSON.stringify(right.body));
  assert.equal(right.body.error.code, 'account_disabled');
  const wrong = await login('ivy', 'not the password', 'corp-leavers');
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.error.code, 'invalid_credentials');
  // Without the filter, the same entry logs in.
  assert.equal((await login('ivy', PW.default, 'corp')).status, 200);
});

test('a password reset by the administrator (ppolicy pwdReset) answers password_change_required', async () => {
  const r = await login('dave', PW.default, 'corp');
  assert.equal(r.status, 403, JSON.stringify(r.body));
  assert.equal(r.body.error.code, 'password_change_required');
});

test('an expired password (ppolicy pwdMaxAge passed, told by the password policy control) answers password_expired', async () => {
  const r = await login('hank', PW.default, 'corp');
  assert.equal(r.status, 403, JSON.stringify(r.body));
  assert.equal(r.body.error.code, 'password_expired');
  const wrong = await login('hank', 'not the password', 'corp');
  assert.equal(wrong.body.error.code, 'invalid_credentials', 'a wrong password says nothing about expiry');
});

test('hostile user names: LDAP injection, over-long, fullwidth "ａdmin", a directory name that is a local account', async () => {
  // Filter syntax and fullwidth letters are refused at the door (400, naming the field), never searched.
  for (const [name, password] of [['*)(uid=*', PW.alice], ['*', PW.alice], ['alice)(|(uid=*', PW.alice], ['ａdmin', PASSWORD], ['ａlice', PW.alice], ['x'.repeat(300), PW.alice]] as const) {
    const r = await login(name, password, name === 'ａdmin' ? undefined : 'corp');
    assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, 'validation_failed');
    assert.equal(r.body.error.field, 'username');
    assert.equal((await r.c.get('/me')).status, 401);
  }
  // Long but well-formed: no user id can be that long, so it is an unknown user.
  const long = await login('x'.repeat(200), PW.alice, 'corp');
  assert.equal(long.status, 401);
  assert.equal(long.body.error.code, 'invalid_credentials');
  // Behind the door the pipeline refuses what NFKC would change (for callers other than this route).
  assert.equal(normaliseUsername('ａdmin'), null);
  assert.equal(normaliseUsername('Alice'), 'alice');
  // "admin" exists in the directory and as a local account: the directory cannot take it over.
  const takeover = await login('admin', PW.default, 'corp');
  assert.equal(takeover.status, 401);
  assert.equal(takeover.body.error.code, 'invalid_credentials');
  const me = await (await admin()).get('/users/admin');
  assert.equal(me.body.user.source ?? 'local', 'local');
  // The authenticator itself searches the injection literally: the right password of alice does not help.
  const a = new LdapAuthenticator(configSchema.shape.auth.shape.authenticators.parse([ldapConfig('direct', [slapd.url])])[0] as LdapAuthenticatorConfig, createLogger('silent'));
  await assert.rejects(a.authenticate('*)(uid=*', PW.alice), (e: { code?: string }) => e.code === 'invalid_credentials');
  await assert.rejects(a.authenticate('alice', ''), (e: { code?: string }) => e.code === 'invalid_credentials', 'an empty password is no unauthenticated bind');
});

test('removing a user from a directory group removes the entitlement at the next request (group cache TTL) and at the next login', async () => {
  const a = await login('alice', PW.alice, 'corp');
  assert.equal(a.status, 200);
  assert.deepEqual((await a.c.get('/me/pools')).body.pools.map((p: { name: string }) => p.name), ['ldaplab']);
  slapd.modify(`dn: cn=lab-staff,ou=groups,${SUFFIX}\nchangetype: modify\ndelete: member\nmember: uid=alice,ou=people,${SUFFIX}\n`);
  try {
    // groupCacheSeconds is 1: a request after that re-reads the groups.
    await waitFor(async () => (await a.c.get('/me/pools')).body.pools?.length === 0, 10_000, 200);
    const me = await a.c.get('/me');
    assert.deepEqual(me.body.user.groups, []);
    const again = await login('alice', PW.alice, 'corp');
    assert.deepEqual(again.body.user.groups, []);
    assert.deepEqual((await again.c.get('/me/pools')).body.pools, []);
  } finally {
    slapd.modify(`dn: cn=lab-staff,ou=groups,${SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=alice,ou=people,${SUFFIX}\n`);
  }
});

test('a second server is used when the first does not answer', async () => {
  const r = await login('frank', PW.default, 'corp-failover');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.user.source, 'corp-failover');
});

test('LDAPS with the configured CA logs in; a server certificate not signed by the configured CA is refused (503, never plain text)', async () => {
  const good = await login('gina', PW.default, 'corp-ldaps');
  assert.equal(good.status, 200, JSON.stringify(good.body));
  assert.equal(good.body.user.source, 'corp-ldaps');
  const bad = await login('gina', PW.default, 'corp-wrong-ca');
  assert.equal(bad.status, 503, JSON.stringify(bad.body));
  assert.equal(bad.body.error.code, 'directory_unavailable');
  const adm = await admin();
  const t = await adm.post('/auth/authenticators/corp-wrong-ca/test');
  assert.equal(t.body.ok, false);
  assert.match(t.body.message, /StartTLS failed: .*(certificate|issuer)/i);
  const ok = await adm.post('/auth/authenticators/corp-ldaps/test');
  assert.equal(ok.body.ok, true, JSON.stringify(ok.body));
});

test('admin "test connection": ok with the directory up, admin only, audited', async () => {
  const adm = await admin();
  const r = await adm.post('/auth/authenticators/corp/test');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.ok, true);
  const list = await adm.get('/auth/authenticators');
  assert.equal(list.status, 200);
  const corp = list.body.authenticators.find((x: { name: string }) => x.name === 'corp');
  assert.equal(corp.settings.bindPassword, '(set)');
  assert.doesNotMatch(JSON.stringify(list.body), new RegExp(SERVICE_PW));
  const user = (await login('erin', PW.erin, 'corp')).c;
  assert.equal((await user.post('/auth/authenticators/corp/test')).status, 403);
  const audit = await adm.get('/audit?action=authenticator.test&limit=5');
  assert.ok(audit.body.entries.some((e: { actor: string; outcome: string }) => e.actor === 'admin' && e.outcome === 'ok'));
});

test('slapd hung (SIGSTOP: connections accepted, nothing answered): 503 directory_unavailable within the timeout, not a hang', async (t) => {
  process.kill(slapd.pid!, 'SIGSTOP');
  try {
    const r = await login('alice', PW.alice, 'corp');
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'directory_unavailable');
    // One operation's timeout (StartTLS is the first to go unanswered), plus scheduling slack.
    assert.ok(r.ms >= TIMEOUT_MS - 100 && r.ms < TIMEOUT_MS * 2 + 1000, `answered in ${r.ms} ms`);
    t.diagnostic(`hung directory answered 503 in ${r.ms} ms (timeoutMs ${TIMEOUT_MS})`);
  } finally {
    process.kill(slapd.pid!, 'SIGCONT');
  }
  assert.equal((await login('alice', PW.alice, 'corp')).status, 200);
});

test('slapd stopped mid-test: logins answer 503 directory_unavailable within the timeout, retries are not throttled, and work again once it is back', async (t) => {
  const adm = await admin();
  await slapd.stop();
  try {
    const r = await login('alice', PW.alice, 'corp');
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'directory_unavailable');
    assert.ok(r.ms < TIMEOUT_MS * 2, `answered in ${r.ms} ms`);
    t.diagnostic(`stopped directory answered 503 in ${r.ms} ms`);
    // Retrying through the outage is not guessing: more tries than the free failures (5), each
    // 503, never throttled (the attempts reached no verdict on the password).
    for (let i = 0; i < 6; i++) {
      const again = await login('alice', PW.alice, 'corp');
      assert.equal(again.body.error?.code, 'directory_unavailable', `try ${i + 2}: ${JSON.stringify(again.body)}`);
    }
    const check = await adm.post('/auth/authenticators/corp/test');
    assert.equal(check.body.ok, false);
    // Local accounts do not depend on the directory.
    assert.equal((await new ApiClient(tb.url).login('admin', PASSWORD)).status, 200);
  } finally {
    await slapd.start();
  }
  const back = await waitFor(async () => {
    const r = await login('alice', PW.alice, 'corp');
    return r.status === 200 ? r : null;
  }, 15_000, 200);
  assert.equal(back.body.user.id, 'alice');
});

test('the second-factor gate applies to directory logins: an admin by directory group is asked for one, not logged in yet', async () => {
  const mfaBroker = await startTestBroker({
    name: 'ldap-mfa',
    config: { auth: { authenticators: [ldapConfig('corp', [slapd.url])], roleMapping: { 'vdi-admins': 'admin' }, mfa: { requiredFor: { roles: ['admin'], groups: [] } } } } as never,
  });
  try {
    const c = new ApiClient(mfaBroker.url);
    const r = await c.request('POST', '/auth/login', { username: 'bob', password: PW.bob, realm: 'corp' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.status, 'mfa_required');
    assert.equal(r.body.enrol, true, 'bob has no factor yet');
    assert.equal(r.body.user, undefined);
    assert.equal((await c.get('/me')).status, 401, 'no login before the second factor');
    // alice (no admin group) is not asked
    const a = await new ApiClient(mfaBroker.url).request('POST', '/auth/login', { username: 'alice', password: PW.alice, realm: 'corp' });
    assert.equal(a.body.status, 'ok');
  } finally {
    await mfaBroker.close();
  }
});
