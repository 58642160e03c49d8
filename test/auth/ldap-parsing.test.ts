// Pure logic of directory logins: filter escaping (RFC 4515), AD bind error sub-codes and
// account flags, the ppolicy response control, user-name normalisation, group and role mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeFilterValue, fillFilter } from '../../server/auth/authenticators/ldap/filter.ts';
import { parseAdBindError, adAccountExpired, adAccountRefusal } from '../../server/auth/authenticators/ldap/ad.ts';
import { parsePasswordPolicyValue } from '../../server/auth/authenticators/ldap/ppolicy.ts';
import { brokerGroupOf } from '../../server/auth/authenticators/ldap/groups.ts';
import { normaliseUsername, splitRealm, roleOf, Authenticators, LocalAuthenticator } from '../../server/auth/index.ts';

test('filter values are escaped per RFC 4515: * ( ) \\ NUL, control and non-ASCII bytes', () => {
  assert.equal(escapeFilterValue('*)(uid=*'), '\\2a\\29\\28uid=\\2a');
  assert.equal(escapeFilterValue('a\\b'), 'a\\5cb');
  assert.equal(escapeFilterValue('a\u0000b\nc'), 'a\\00b\\0ac');
  assert.equal(escapeFilterValue('Lučić'), 'Lu\\c4\\8di\\c4\\87'); // RFC 4515 section 4 example
  assert.equal(escapeFilterValue('alice.smith-2'), 'alice.smith-2');
});

test('a filter template is filled with escaped values only; an unknown placeholder is an error', () => {
  assert.equal(fillFilter('(&(objectClass=person)(uid={username}))', { username: '*)(uid=*' }), '(&(objectClass=person)(uid=\\2a\\29\\28uid=\\2a))');
  assert.equal(fillFilter('(member={dn})', { dn: 'cn=a\\,b (x),dc=t' }), '(member=cn=a\\5c,b \\28x\\29,dc=t)');
  assert.throws(() => fillFilter('(uid={user})', { username: 'x' }), /unknown placeholder \{user\}/);
});

test('AD bind errors: data 532 expired, 773 must change, 533/701/775 disabled, 52e/525 wrong, unknown codes refused', () => {
  const msg = (d: string) => `80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data ${d}, v4563 Code: 0x31`;
  assert.equal(parseAdBindError(msg('532'))!.code, 'password_expired');
  assert.equal(parseAdBindError(msg('773'))!.code, 'password_change_required');
  for (const d of ['533', '701', '775', '530', '531']) assert.equal(parseAdBindError(msg(d))!.code, 'account_disabled', d);
  for (const d of ['52e', '525', '52f']) assert.equal(parseAdBindError(msg(d))!.code, 'invalid_credentials', d);
  assert.equal(parseAdBindError(msg('52E'))!.data, '52e');
  assert.equal(parseAdBindError('Invalid credentials Code: 0x31'), null, 'OpenLDAP says no sub-code');
});

test('AD account flags: ACCOUNTDISABLE bit, accountExpires in the past (FILETIME), pwdLastSet 0', () => {
  const now = Date.parse('2026-12-01T00:00:00Z');
  const filetime = (ms: number) => String(BigInt(ms + 11_644_473_600_000) * 10_000n);
  assert.equal(adAccountRefusal({ userAccountControl: '514' }, now)!.code, 'account_disabled'); // 512 | 2
  assert.equal(adAccountRefusal({ userAccountControl: '512' }, now), null);
  assert.equal(adAccountExpired(filetime(now - 1000), now), true);
  assert.equal(adAccountExpired(filetime(now + 86_400_000), now), false);
  assert.equal(adAccountExpired('0', now), false, '0 = never');
  assert.equal(adAccountExpired('9223372036854775807', now), false, '2^63-1 = never');
  assert.equal(adAccountRefusal({ userAccountControl: '512', accountExpires: filetime(now - 1000) }, now)!.code, 'account_disabled');
  assert.equal(adAccountRefusal({ userAccountControl: '512', pwdLastSet: '0' }, now)!.code, 'password_change_required');
});

test('ppolicy response control: error and warning are read; short or odd bytes change nothing', () => {
  const got: { error?: number; warning?: { timeBeforeExpiration?: number; graceAuthNsRemaining?: number } } = {};
  parsePasswordPolicyValue(Buffer.from([0x30, 0x03, 0x81, 0x01, 0x02]), got);
  assert.equal(got.error, 2);
  const w: typeof got = {};
  parsePasswordPolicyValue(Buffer.from([0x30, 0x06, 0xa0, 0x04, 0x80, 0x02, 0x01, 0x00]), w);
  assert.deepEqual(w, { warning: { timeBeforeExpiration: 256 } });
  const bad: typeof got = {};
  parsePasswordPolicyValue(Buffer.from([0x30, 0x09, 0x81]), bad);
  parsePasswordPolicyValue(Buffer.alloc(0), bad);
  assert.deepEqual(bad, {});
});

test('user names: lower-cased; NFKC changes (fullwidth), non-ASCII, filter characters and over-long names are refused', () => {
  assert.equal(normaliseUsername('Alice'), 'alice');
  assert.equal(normaliseUsername('ａdmin'), null);
  assert.equal(normaliseUsername('ﬁona'), null, 'ligature fi');
  assert.equal(normaliseUsername('müller'), null);
  assert.equal(normaliseUsername('*)(uid=*'), null);
  assert.equal(normaliseUsername('a'.repeat(64)), 'a'.repeat(64));
  assert.equal(normaliseUsername('a'.repeat(65)), null);
  assert.equal(normaliseUsername(''), null);
  assert.deepEqual(splitRealm('bob@Corp.Example'), { name: 'bob', domain: 'corp.example' });
  assert.deepEqual(splitRealm('@x'), { name: '@x' });
});

test('directory groups map to broker ids; the highest mapped role wins', () => {
  const o = { map: { 'Domain Admins': 'vdi-admins' }, onlyMapped: false };
  assert.equal(brokerGroupOf('Domain Admins', o), 'vdi-admins');
  assert.equal(brokerGroupOf('VDI Users', o), 'vdi-users');
  assert.equal(brokerGroupOf('--', o), null);
  assert.equal(brokerGroupOf('VDI Users', { ...o, onlyMapped: true }), null);
  assert.equal(roleOf(['a', 'b', 'c'], { b: 'helpdesk', c: 'admin' }), 'admin');
  assert.equal(roleOf(['a'], { b: 'helpdesk' }), 'user');
  assert.equal(roleOf(['__proto__', 'constructor'], {}), 'user');
});

test('the registry routes an explicit realm, then user@domain, then the default realm', () => {
  const local = new LocalAuthenticator({ get: async () => null }, {} as never, 'Local', []);
  const corp = { kind: 'ldap' as const, name: 'corp', label: 'Corp', domains: ['corp.example'], groupCacheSeconds: 0, authenticate: async () => { throw new Error('unused'); } };
  const r = new Authenticators([local, corp], 'local');
  assert.equal(r.route('bob@corp.example').authenticator.name, 'corp');
  assert.equal(r.route('bob@corp.example').name, 'bob');
  assert.equal(r.route('bob').authenticator.name, 'local');
  assert.equal(r.route('bob@elsewhere.example').name, 'bob@elsewhere.example');
  assert.equal(r.route('bob', 'corp').authenticator.name, 'corp');
  assert.throws(() => r.route('bob', 'nope'), (e: { code?: string }) => e.code === 'validation_failed');
  assert.throws(() => new Authenticators([local], 'corp'), /defaultRealm/);
});
