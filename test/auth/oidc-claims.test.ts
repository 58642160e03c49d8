// Pure parts of the OpenID Connect authenticator: claim paths, group mapping, config rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { claimAt, groupsFrom } from '../../server/auth/authenticators/oidc.authenticator.ts';
import { configSchema } from '../../server/config/schema.ts';

const authenticators = configSchema.shape.auth.shape.authenticators;
const base = { kind: 'oidc', name: 'sso', label: 'SSO', issuer: 'https://idp.example.org/realms/corp', clientId: 'vdi' };

test('claimAt reads a claim by name, by dotted path, and prefers a literal name containing dots', () => {
  const claims = { groups: ['a'], realm_access: { roles: ['r1', 'r2'] }, 'https://example.org/groups': ['x'], nested: { list: [{ deep: 1 }] } };
  assert.deepEqual(claimAt(claims, 'groups'), ['a']);
  assert.deepEqual(claimAt(claims, 'realm_access.roles'), ['r1', 'r2']);
  assert.deepEqual(claimAt(claims, 'https://example.org/groups'), ['x']);
  assert.equal(claimAt(claims, 'realm_access.missing'), undefined);
  assert.equal(claimAt(claims, 'nested.list.0'), undefined, 'no walking into arrays');
  assert.equal(claimAt(claims, 'groups.length'), undefined, 'no properties of arrays or prototypes');
  assert.equal(claimAt(claims, 'realm_access.constructor'), undefined);
});

test('groupsFrom maps names, lower-cases the rest, drops what cannot be a group id, and bounds the count', () => {
  assert.deepEqual(groupsFrom(['VDI-Admins', 'Staff'], {}), ['vdi-admins', 'staff']);
  assert.deepEqual(groupsFrom('single'), ['single']);
  assert.deepEqual(groupsFrom({ not: 'a list' }), []);
  assert.deepEqual(groupsFrom(['Domain Users', '/corp/admins', 'ok', 42, null, 'ok']), ['ok'], 'spaces and slashes are no group ids; duplicates once');
  assert.deepEqual(groupsFrom(['Domain Users', 'other'], { 'Domain Users': 'domain-users' }), ['domain-users', 'other']);
  assert.deepEqual(groupsFrom(['Domain Users', 'other'], { 'Domain Users': 'domain-users' }, true), ['domain-users'], 'onlyMapped');
  assert.equal(groupsFrom(Array.from({ length: 2000 }, (_, i) => `g${i}`)).length, 500);
  assert.deepEqual(groupsFrom(['x'.repeat(300)]), []);
});

test('config: https issuers, http only on loopback, openid scope required, one client secret source', () => {
  assert.equal(authenticators.safeParse([base]).success, true);
  assert.equal(authenticators.safeParse([{ ...base, issuer: 'http://127.0.0.1:8080' }]).success, true);
  assert.equal(authenticators.safeParse([{ ...base, issuer: 'http://idp.example.org' }]).success, false);
  assert.equal(authenticators.safeParse([{ ...base, redirectUri: 'http://broker.example.org/cb' }]).success, false);
  assert.equal(authenticators.safeParse([{ ...base, scopes: ['profile'] }]).success, false);
  assert.equal(authenticators.safeParse([{ ...base, clientSecret: 's', clientSecretEnv: 'X' }]).success, false);
  assert.equal(authenticators.safeParse([{ ...base, name: 'local' }]).success, false);
  const parsed = authenticators.parse([base])[0]!;
  assert.equal(parsed.kind, 'oidc');
  if (parsed.kind === 'oidc') {
    assert.equal(parsed.groupsClaim, 'groups');
    assert.equal(parsed.clockToleranceSeconds, 30);
    assert.equal(parsed.trustIdpMfa, false);
  }
});

test('the client secret comes from an env variable or a file, a missing one stops startup naming the key, and describe() never shows it', async () => {
  const { OidcAuthenticator } = await import('../../server/auth/authenticators/oidc.authenticator.ts');
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const parse = (o: object) => {
    const c = authenticators.parse([{ ...base, ...o }])[0]!;
    assert.equal(c.kind, 'oidc');
    return c as Extract<typeof c, { kind: 'oidc' }>;
  };
  const secret = 'S3cr3t-value-that-must-not-leak';
  const fromEnv = new OidcAuthenticator(parse({ clientSecretEnv: 'OIDC_SECRET_FOR_TEST' }), { publicUrl: 'https://vdi.example.org', env: { OIDC_SECRET_FOR_TEST: secret } });
  assert.doesNotMatch(JSON.stringify(fromEnv.describe()), new RegExp(secret));
  assert.equal(fromEnv.describe().clientSecret, 'env OIDC_SECRET_FOR_TEST');
  assert.equal(fromEnv.describe().redirectUri, 'https://vdi.example.org/api/v1/auth/oidc/sso/callback');
  assert.throws(() => new OidcAuthenticator(parse({ clientSecretEnv: 'OIDC_SECRET_MISSING' }), { publicUrl: 'https://vdi.example.org', env: {} }), /clientSecretEnv: the environment variable OIDC_SECRET_MISSING is not set/);
  const dir = mkdtempSync(join(tmpdir(), 'oidc-secret-'));
  try {
    writeFileSync(join(dir, 'secret'), `${secret}\n`);
    const fromFile = new OidcAuthenticator(parse({ clientSecretFile: join(dir, 'secret'), clientSecret: '' }), { publicUrl: 'https://vdi.example.org' });
    assert.doesNotMatch(JSON.stringify(fromFile.describe()), new RegExp(secret));
    assert.throws(() => new OidcAuthenticator(parse({ clientSecretFile: join(dir, 'nope') }), { publicUrl: 'https://vdi.example.org' }), /clientSecretFile: cannot read/);
    const inline = new OidcAuthenticator(parse({ clientSecret: secret }), { publicUrl: 'https://vdi.example.org' });
    assert.doesNotMatch(JSON.stringify(inline.describe()), new RegExp(secret));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => new OidcAuthenticator(parse({}), { publicUrl: '' }), /redirectUri: required when server.publicUrl is not set/);
});
