// Second factors through the real API and Redis: enrolment during login, TOTP codes good once
// and within one step, recovery codes good once, throttling, the policy, the helpdesk reset by
// role, and the audit trail. (Passkeys need an authenticator: test/client/mfa.test.ts.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSync } from 'otplib';
import { ApiClient, startTestBroker, type TestBroker, type HttpResult } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import { MfaService } from '../../server/auth/mfa/index.ts';
import type { AuditEntry } from '../../server/store/index.ts';

let tb: TestBroker;
const MAX_FAILURES = 4;

before(async () => {
  tb = await startTestBroker({
    name: 'mfa-api',
    config: { auth: { mfa: { requiredFor: { roles: ['helpdesk', 'admin'], groups: ['secure'] }, maxFailures: MAX_FAILURES, failureWindowSeconds: 60 } } } as never,
  });
  await tb.app.identity.createGroup(SYSTEM_ACTOR, { name: 'secure' });
});
after(async () => tb?.close());

const STEP_MS = 30_000;

/** The current TOTP step, waiting out the last 3 s of a step so a code stays in the step it was made for. */
async function stableStep(): Promise<number> {
  for (let i = 0; i < 100 && Date.now() % STEP_MS > STEP_MS - 3000; i++) await new Promise((r) => setTimeout(r, 100));
  return Math.floor(Date.now() / STEP_MS);
}

const codeAt = (secret: string, step: number) => generateSync({ secret, epoch: step * 30 + 1 });

async function audit(action: string, target: string): Promise<AuditEntry[]> {
  return (await tb.app.store.audit.query({ action, target, limit: 50 })).entries.filter((e) => e.action === action);
}

/** Logs in with the password; the answer must ask for the second factor. */
async function firstStep(user: string): Promise<{ c: ApiClient; r: HttpResult }> {
  const c = new ApiClient(tb.url);
  const r = await c.login(user);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.status, 'mfa_required', JSON.stringify(r.body));
  return { c, r };
}

/** A finished second step: the client keeps the new session's CSRF token. */
function finished(c: ApiClient, r: HttpResult): HttpResult {
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.status, 'ok');
  c.csrf = r.body.csrfToken;
  return r;
}

/**
 * A user with TOTP: enrolled during their first login (MFA required), or on their own page
 * (not required); returns the secret, the recovery codes and the step of the code used.
 */
async function enrolled(user: string, role: 'user' | 'helpdesk' | 'admin' = 'helpdesk'): Promise<{ secret: string; recoveryCodes: string[]; step: number }> {
  await tb.addUser(user, role);
  if (role === 'user') {
    const u = new ApiClient(tb.url);
    assert.equal((await u.login(user)).body.status, 'ok');
    const e = await u.post('/me/mfa/totp');
    const step = await stableStep();
    const r = await u.post('/me/mfa/totp/confirm', { code: codeAt(e.body.secret, step) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return { secret: e.body.secret, recoveryCodes: r.body.recoveryCodes, step };
  }
  const { c } = await firstStep(user);
  const e = await c.post('/auth/mfa/totp/enrol');
  assert.equal(e.status, 200, JSON.stringify(e.body));
  const step = await stableStep();
  const r = finished(c, await c.post('/auth/mfa/totp', { code: codeAt(e.body.secret, step) }));
  return { secret: e.body.secret, recoveryCodes: r.body.recoveryCodes, step };
}

test('a helpdesk user without a factor enrols TOTP during login: QR code, first code, 10 recovery codes once; the secret is sealed in Redis', async () => {
  await tb.addUser('hd-enrol', 'helpdesk');
  const { c, r } = await firstStep('hd-enrol');
  assert.equal(r.body.enrol, true);
  assert.deepEqual(r.body.methods, ['totp', 'webauthn']);
  assert.equal(r.body.user, undefined, 'no user before the second factor');
  assert.equal((await c.get('/me')).status, 401, 'not logged in while the second factor is pending');

  const e = await c.post('/auth/mfa/totp/enrol');
  assert.equal(e.status, 200, JSON.stringify(e.body));
  assert.match(e.body.secret, /^[A-Z2-7]{32}$/);
  assert.match(e.body.qrCode, /^data:image\/png;base64,[A-Za-z0-9+/=]{200,}$/);
  assert.ok(e.body.otpauthUrl.startsWith('otpauth://totp/') && e.body.otpauthUrl.includes(`secret=${e.body.secret}`));

  const wrong = await c.post('/auth/mfa/totp', { code: String((Number(codeAt(e.body.secret, await stableStep())) + 1) % 1_000_000).padStart(6, '0') });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.error.code, 'mfa_invalid');
  assert.equal((await c.get('/me')).status, 401);

  const ok = finished(c, await c.post('/auth/mfa/totp', { code: codeAt(e.body.secret, await stableStep()) }));
  assert.equal(ok.body.user.id, 'hd-enrol');
  assert.equal(ok.body.recoveryCodes.length, 10);
  assert.equal(new Set(ok.body.recoveryCodes).size, 10);
  for (const code of ok.body.recoveryCodes) assert.match(code, /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
  assert.equal((await c.get('/me')).status, 200);

  // Shown once: the factor list has a count, never the codes or the secret.
  const mine = await c.get('/me/mfa');
  assert.equal(mine.status, 200);
  assert.deepEqual({ ...mine.body.mfa, totp: { enabled: mine.body.mfa.totp.enabled } }, { required: true, totp: { enabled: true }, passkeys: [], recoveryCodesLeft: 10 });
  const redis = tb.app.store.redis;
  const raw = JSON.stringify([await redis.hgetall(tb.app.store.keys.mfa('hd-enrol')), await redis.hgetall(tb.app.store.keys.mfaRecovery('hd-enrol'))]);
  assert.ok(!raw.includes(e.body.secret), 'the TOTP secret is not in Redis in clear');
  for (const code of ok.body.recoveryCodes) assert.ok(!raw.includes(code) && !raw.includes(code.replace(/-/g, '')), 'recovery codes are stored hashed');

  const [login] = await audit('auth.login', 'hd-enrol');
  assert.equal(login?.details.mfa, 'totp');
  assert.equal(login?.details.authenticator, 'local');
  assert.equal((await audit('user.mfa_enrol', 'hd-enrol'))[0]?.details.factor, 'totp');
  assert.equal((await audit('auth.mfa_invalid', 'hd-enrol'))[0]?.outcome, 'denied');
});

test('a TOTP code is accepted once: the same code again is refused, and so is any earlier step', async () => {
  const { secret } = await enrolled('hd-replay');
  const step = await stableStep();
  const { c } = await firstStep('hd-replay');
  finished(c, await c.post('/auth/mfa/totp', { code: codeAt(secret, step + 1) }));

  const again = await firstStep('hd-replay');
  const replay = await again.c.post('/auth/mfa/totp', { code: codeAt(secret, step + 1) });
  assert.equal(replay.status, 401);
  assert.equal(replay.body.error.code, 'mfa_invalid');
  assert.match(replay.body.error.message, /used already/);
  const earlier = await again.c.post('/auth/mfa/totp', { code: codeAt(secret, step) });
  assert.equal(earlier.status, 401);
  assert.match(earlier.body.error.message, /used already/);
  assert.equal((await again.c.get('/me')).status, 401);
  assert.equal((await audit('auth.mfa_invalid', 'hd-replay'))[0]?.details.reason, 'code used before');
});

test('the window is one step either way: one step before and after are accepted, two steps away refused', async () => {
  await tb.addUser('hd-window', 'helpdesk');
  const enrol = await firstStep('hd-window');
  const { secret } = (await enrol.c.post('/auth/mfa/totp/enrol')).body;
  const step = await stableStep();
  // One step before: the app's clock is 30 s behind.
  finished(enrol.c, await enrol.c.post('/auth/mfa/totp', { code: codeAt(secret, step - 1) }));

  const { c } = await firstStep('hd-window');
  for (const s of [step - 2, step + 2]) {
    const r = await c.post('/auth/mfa/totp', { code: codeAt(secret, s) });
    assert.equal(r.status, 401, `step ${s - step}`);
    assert.equal(r.body.error.code, 'mfa_invalid');
    assert.doesNotMatch(r.body.error.message, /used already/, 'refused for the window, not as a replay');
  }
  // One step after: the app's clock is 30 s ahead.
  finished(c, await c.post('/auth/mfa/totp', { code: codeAt(secret, step + 1) }));
});

test('a recovery code finishes a login once; the same code is refused afterwards', async () => {
  const { recoveryCodes } = await enrolled('hd-recovery');
  const { c, r } = await firstStep('hd-recovery');
  assert.deepEqual(r.body.methods, ['totp', 'recovery']);
  assert.equal(r.body.enrol, false);
  const used = finished(c, await c.post('/auth/mfa/recovery', { code: recoveryCodes[3]!.toLowerCase() }));
  assert.equal(used.body.recoveryCodesLeft, 9);
  const [login] = await audit('auth.login', 'hd-recovery');
  assert.equal(login?.details.mfa, 'recovery');

  const again = await firstStep('hd-recovery');
  const refused = await again.c.post('/auth/mfa/recovery', { code: recoveryCodes[3]! });
  assert.equal(refused.status, 401);
  assert.equal(refused.body.error.code, 'mfa_invalid');
  assert.equal((await again.c.get('/me')).status, 401);
  finished(again.c, await again.c.post('/auth/mfa/recovery', { code: recoveryCodes[4]! }));
  assert.equal((await again.c.get('/me/mfa')).body.mfa.recoveryCodesLeft, 8);
});

test('wrong second factors are throttled per user: after maxFailures even the right code waits', async () => {
  const { secret } = await enrolled('hd-throttle');
  const { c } = await firstStep('hd-throttle');
  for (let i = 0; i < MAX_FAILURES; i++) {
    const r = await c.post('/auth/mfa/recovery', { code: 'AAAA-BBBB-CCCC' });
    assert.equal(r.status, 401, `attempt ${i + 1}`);
  }
  const step = await stableStep();
  const blocked = await c.post('/auth/mfa/totp', { code: codeAt(secret, step + 1) });
  assert.equal(blocked.status, 429, JSON.stringify(blocked.body));
  assert.equal(blocked.body.error.code, 'login_throttled');
  assert.ok(Number(blocked.headers.get('retry-after')) > 0);
  assert.equal((await c.get('/me')).status, 401);
});

test('policy: a plain user logs in without a second factor; a member of a required group, or anyone who set one up, is asked', async () => {
  await tb.addUser('plain');
  const c = new ApiClient(tb.url);
  const r = await c.login('plain');
  assert.equal(r.body.status, 'ok');
  assert.equal((await c.get('/me')).status, 200);

  await tb.addUser('grouped', 'user', ['secure']);
  const g = await firstStep('grouped');
  assert.equal(g.r.body.enrol, true);

  // A plain user who adds an app on their own page is asked for it from then on.
  const e = await c.post('/me/mfa/totp');
  assert.equal(e.status, 200);
  const conf = await c.post('/me/mfa/totp/confirm', { code: codeAt(e.body.secret, await stableStep()) });
  assert.equal(conf.status, 200, JSON.stringify(conf.body));
  assert.equal(conf.body.recoveryCodes.length, 10);
  const again = await firstStep('plain');
  assert.equal(again.r.body.enrol, false);

  // The identity provider's MFA counts only through its amr (passed on with trustIdpMfa).
  const gate = new MfaService(tb.app.store.mfa, tb.app.broker.audit, { ...tb.config.auth.mfa }, async () => Buffer.alloc(32));
  const admin = { kind: 'user' as const, id: 'sso-admin', role: 'admin' as const, groups: [] };
  assert.deepEqual(await gate.check(admin, { method: 'corp-sso', amr: ['pwd', 'mfa'] }), { required: false });
  assert.deepEqual(await gate.check(admin, { method: 'corp-sso', amr: ['pwd'] }), { required: true, methods: ['totp', 'webauthn'], enrol: true });
  assert.deepEqual(await gate.check(admin, { method: 'corp-sso' }), { required: true, methods: ['totp', 'webauthn'], enrol: true });
});

test('enrolment during login is only for users with no factor: a second app cannot be slipped in with the password alone', async () => {
  await enrolled('hd-noslip');
  const { c } = await firstStep('hd-noslip');
  const e = await c.post('/auth/mfa/totp/enrol');
  assert.equal(e.status, 409);
  assert.equal(e.body.error.code, 'conflict');
  const o = await c.post('/auth/mfa/webauthn/options');
  assert.equal(o.status, 401, 'no passkey to authenticate with, and no registration offered');
  // Without a pending login there is nothing to finish.
  const none = await new ApiClient(tb.url).post('/auth/mfa/totp', { code: '123456' });
  assert.equal(none.status, 401);
  assert.equal(none.body.error.code, 'mfa_required');
});

test('helpdesk reset: helpdesk may reset users, only admin may reset helpdesk and admin accounts; audited user.mfa_reset', async () => {
  await enrolled('u-lost', 'user');
  await enrolled('hd-lost', 'helpdesk');
  const desk = await enrolled('hd-desk', 'helpdesk');
  const boss = await enrolled('ad-boss', 'admin');
  await tb.addUser('u-other');
  const hd = await loginWithTotp('hd-desk', desk.secret, desk.step);
  const ad = await loginWithTotp('ad-boss', boss.secret, boss.step);
  const other = new ApiClient(tb.url);
  assert.equal((await other.login('u-other')).body.status, 'ok');

  assert.equal((await other.del('/users/u-lost/mfa')).status, 403, 'a user cannot reset anyone');
  assert.equal((await hd.get('/users/u-lost/mfa')).body.mfa.totp.enabled, true);
  assert.equal((await hd.del('/users/u-lost/mfa')).status, 204);
  assert.deepEqual(await tb.app.store.mfa.summary('u-lost'), { totp: null, passkeys: [], recoveryCodesLeft: 0 });
  const [reset] = await audit('user.mfa_reset', 'u-lost');
  assert.equal(reset?.actor, 'hd-desk');
  assert.equal(reset?.outcome, 'ok');
  assert.deepEqual(reset?.details, { totp: true, passkeys: 0, recoveryCodes: 10 });

  const refused = await hd.del('/users/hd-lost/mfa');
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error.code, 'forbidden');
  assert.ok((await tb.app.store.mfa.summary('hd-lost')).totp, 'nothing reset');
  const denied = await audit('user.mfa_reset', 'hd-lost');
  assert.equal(denied.length, 1, 'the refusal is audited once');
  assert.equal(denied[0]?.outcome, 'denied');

  assert.equal((await ad.del('/users/hd-lost/mfa')).status, 204);
  assert.equal((await audit('user.mfa_reset', 'hd-lost'))[0]?.actor, 'ad-boss');
  assert.equal((await hd.del('/users/nobody-here/mfa')).status, 404);

  // After the reset: the helpdesk account enrols again at its next login; the user needs nothing.
  assert.equal((await firstStep('hd-lost')).r.body.enrol, true);
  const u = new ApiClient(tb.url);
  assert.equal((await u.login('u-lost')).body.status, 'ok');
});

/** Logs in with the password and a TOTP code of a step later than `lastStep`. */
async function loginWithTotp(user: string, secret: string, lastStep: number): Promise<ApiClient> {
  const step = Math.max(await stableStep(), lastStep + 1);
  const { c } = await firstStep(user);
  finished(c, await c.post('/auth/mfa/totp', { code: codeAt(secret, step) }));
  return c;
}

test('deleting a user forgets their second factors: a new account of the same name starts without them', async () => {
  await enrolled('hd-gone');
  assert.ok((await tb.app.store.mfa.summary('hd-gone')).totp);
  await tb.app.identity.deleteUser(SYSTEM_ACTOR, 'hd-gone');
  assert.deepEqual(await tb.app.store.mfa.summary('hd-gone'), { totp: null, passkeys: [], recoveryCodesLeft: 0 });
  await tb.addUser('hd-gone', 'helpdesk');
  assert.equal((await firstStep('hd-gone')).r.body.enrol, true);
});
