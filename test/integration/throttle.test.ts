// Login throttling an attacker cannot turn against a user (issue 9): per user name + address,
// progressive per-name waits instead of a lock, address blocks only for password spraying, and
// the optional hard lock with its unlock (API, CLI), all audited. Real HTTP, real Redis; client
// addresses come from X-Forwarded-For with server.trustProxy on.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startTestBroker, ApiClient, PASSWORD, waitFor, type TestBroker, type HttpResult } from '../support/harness.ts';
import { ROOT } from '../support/process.ts';
import type { AuditEntry } from '../../server/store/index.ts';

const brokers: TestBroker[] = [];
after(async () => {
  const closed = await Promise.allSettled(brokers.map((b) => b.close()));
  for (const c of closed) if (c.status === 'rejected') throw c.reason;
});

type Lockout = { mode?: 'progressive' | 'hard'; freeFailures?: number; baseDelaySeconds?: number; maxDelaySeconds?: number; threshold?: number; durationSeconds?: number; knownAddressDays?: number };
type Limits = { windowSeconds?: number; pairFailures?: number; pairBlockSeconds?: number; sprayAccounts?: number; sprayBlockSeconds?: number };

/** A broker behind a (simulated) trusted proxy, with short waits: the cap is 2 s. */
async function broker(name: string, lockout: Lockout = {}, throttle: Limits = {}): Promise<TestBroker> {
  const b = await startTestBroker({
    name,
    config: {
      server: { trustProxy: true },
      auth: {
        lockout: { mode: 'progressive', freeFailures: 3, baseDelaySeconds: 1, maxDelaySeconds: 2, threshold: 3, durationSeconds: 600, knownAddressDays: 30, ...lockout },
        throttle: { windowSeconds: 600, pairFailures: 10, pairBlockSeconds: 600, sprayAccounts: 5, sprayBlockSeconds: 600, ...throttle },
      },
    },
  });
  brokers.push(b);
  return b;
}

const A = '203.0.113.66'; // the attacker's address
const B = '198.51.100.20'; // the owner's usual address
const C = '198.51.100.99'; // an address the owner never used

function login(b: TestBroker, username: string, password: string, ip: string): Promise<HttpResult> {
  return new ApiClient(b.url).request('POST', '/auth/login', { username, password }, { 'x-forwarded-for': ip });
}

async function staff(b: TestBroker, role: 'helpdesk' | 'admin' | 'user' = 'helpdesk', ip = '192.0.2.1'): Promise<ApiClient> {
  const id = `${role}-${Math.random().toString(36).slice(2, 8)}`;
  await b.addUser(id, role);
  const c = new ApiClient(b.url);
  const r = await c.request('POST', '/auth/login', { username: id, password: PASSWORD }, { 'x-forwarded-for': ip });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  c.csrf = r.body.csrfToken;
  return c;
}

/** The Retry-After of a 429 as a whole number of seconds (asserting it is one). */
function retryAfter(r: HttpResult): number {
  const ra = Number(r.headers.get('retry-after'));
  assert.ok(Number.isInteger(ra) && ra > 0, `Retry-After ${r.headers.get('retry-after')}`);
  return ra;
}

async function audit(b: TestBroker, f: { action?: string; target?: string }): Promise<AuditEntry[]> {
  return (await b.app.broker.audit.query({ ...f, limit: 500 })).entries;
}

test('(a) 20 wrong passwords for alice from one address: alice still logs in from another (a known one at once, a new one within the capped wait)', async () => {
  // Every wait is the cap (2 s), so the attack below surely leaves alice's name waiting.
  const b = await broker('thr-a', { baseDelaySeconds: 2, maxDelaySeconds: 2 });
  await b.addUser('alice');
  const hd = await staff(b);
  assert.equal((await login(b, 'alice', PASSWORD, B)).status, 200, 'alice has logged in from B before');

  const attack = async (from: (i: number) => string) => {
    for (let i = 0; i < 20; i++) {
      const r = await login(b, 'alice', `guess ${i}`, from(i));
      if (r.status === 401) assert.equal(r.body.error.code, 'invalid_credentials');
      else {
        assert.equal(r.status, 429, JSON.stringify(r.body));
        assert.equal(r.body.error.code, 'login_throttled', 'waits, never a lock');
        assert.ok(retryAfter(r) <= 2, 'no wait beyond the cap');
      }
    }
  };
  await attack(() => A);
  assert.equal((await hd.get('/users/alice/lockout')).body.lockout.state, 'throttled', "alice's name is made to wait");
  // From B (an address alice logged in from before) the per-name wait does not apply.
  const known = await login(b, 'alice', PASSWORD, B);
  assert.equal(known.status, 200, JSON.stringify(known.body));

  // From an address alice never used, she waits at most the cap, even when the guesses come
  // from many addresses (A's own pair is still waiting: from A alone they would not count).
  await attack((i) => `203.0.113.${100 + i}`);
  const started = Date.now();
  let waited = 0;
  const fresh = await waitFor(async () => {
    const r = await login(b, 'alice', PASSWORD, C);
    if (r.status === 429) {
      assert.equal(r.body.error.code, 'login_throttled');
      assert.ok(retryAfter(r) <= 2);
      waited++;
      return null;
    }
    return r;
  }, 4000, 100);
  assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
  assert.ok(waited > 0, 'from a new address alice had to wait');
  assert.ok(Date.now() - started <= 3000, `alice waited ${Date.now() - started} ms; the cap is 2 s`);

  // alice's success elsewhere does not wipe the attacker's count at A (it grows towards a block).
  const after = (await hd.get('/users/alice/lockout')).body.lockout;
  assert.ok(after.addresses.some((a: { address: string; failures: number }) => a.address === A && a.failures >= 3), JSON.stringify(after));
  // The slowdown and the refused attempts are in the audit trail (refusals once per wait, not each).
  const entries = await audit(b, { target: 'alice' });
  assert.ok(entries.some((e) => e.action === 'auth.slowdown' && e.address === A), 'the slowdown is audited');
  const refused = entries.filter((e) => e.action === 'auth.login' && e.outcome === 'denied' && /throttled/.test(String(e.details.reason)));
  assert.ok(refused.length >= 1, 'throttled attempts are audited');
  assert.ok(refused.length < 20, `refusals are audited once per wait, not each (${refused.length})`);
});

test('(b) 40 failures for one user name from an address do not block others there; many users logging in there change nothing', async () => {
  // Generous per-name limits, so all 40 are real password checks.
  const b = await broker('thr-b', { freeFailures: 100 }, { pairFailures: 100, sprayAccounts: 5 });
  await b.addUser('bob');
  await b.addUser('clumsy');
  for (let i = 0; i < 40; i++) {
    const r = await login(b, 'clumsy', `typo ${i}`, A);
    assert.equal(r.status, 401, `failure ${i + 1}: ${JSON.stringify(r.body)}`);
  }
  assert.equal((await login(b, 'bob', PASSWORD, A)).status, 200, 'bob behind the same address logs in');
  assert.equal((await login(b, 'clumsy', PASSWORD, A)).status, 200, 'and so does the one who mistyped');

  // A class behind one NAT address: each mistypes once, then gets in. More distinct names than
  // sprayAccounts failed, but the ones who logged in do not count as spraying.
  for (let i = 0; i < 8; i++) {
    const id = `pupil-${i}`;
    await b.addUser(id);
    assert.equal((await login(b, id, 'oops', A)).status, 401);
    assert.equal((await login(b, id, PASSWORD, A)).status, 200);
  }
  assert.equal((await login(b, 'bob', PASSWORD, A)).status, 200);
  assert.deepEqual((await (await staff(b)).get('/auth/lockouts')).body.addresses, [], 'no address is blocked');
});

test('(c) failures for many user names from one address (spraying) block that address, not others', async () => {
  const b = await broker('thr-c', {}, { sprayAccounts: 5, sprayBlockSeconds: 600 });
  await b.addUser('victim');
  for (let i = 0; i < 5; i++) {
    const r = await login(b, `user-${i}`, 'Spring2026!', A);
    assert.equal(r.status, 401, `spray ${i + 1}: ${JSON.stringify(r.body)}`);
  }
  const blocked = await login(b, 'victim', PASSWORD, A);
  assert.equal(blocked.status, 429, JSON.stringify(blocked.body));
  assert.equal(blocked.body.error.code, 'too_many_attempts');
  assert.ok(retryAfter(blocked) <= 600);
  assert.equal(blocked.headers.get('set-cookie'), null);
  assert.equal((await login(b, 'victim', PASSWORD, B)).status, 200, 'another address is not affected');

  const hd = await staff(b);
  const list = await hd.get('/auth/lockouts');
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.addresses.map((a: { address: string }) => a.address), [A]);
  assert.equal(list.body.addresses[0].accounts, 5);
  const blocks = (await audit(b, { action: 'auth.block' })).filter((e) => e.target === A);
  assert.equal(blocks.length, 1, 'the address block is audited once');
  assert.equal(blocks[0]!.details.reason, 'password spraying');
});

test('(d) hard mode: locked after N failures even for the right password; helpdesk unlock (API) and CLI unlock let the owner in, each audited', async () => {
  const b = await broker('thr-d', { mode: 'hard', threshold: 3, durationSeconds: 600 });
  await b.addUser('carol');
  const lock = async () => {
    for (let i = 0; i < 3; i++) assert.equal((await login(b, 'carol', `wrong ${i}`, A)).status, 401);
    for (const [name, ip] of [['carol', B], ['Carol', C]] as const) {
      const r = await login(b, name, PASSWORD, ip);
      assert.equal(r.status, 429, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'account_locked');
      assert.ok(retryAfter(r) <= 600);
    }
  };
  await lock();
  assert.equal((await audit(b, { action: 'auth.lock' })).filter((e) => e.target === 'carol').length, 1, 'the lock is audited');

  const hd = await staff(b);
  const status = await hd.get('/users/carol/lockout');
  assert.equal(status.status, 200);
  assert.equal(status.body.lockout.state, 'locked');
  assert.equal(status.body.lockout.failures, 3);
  const listed = (await hd.get('/auth/lockouts')).body;
  assert.equal(listed.mode, 'hard');
  assert.deepEqual(listed.accounts.map((a: { user: string; state: string }) => [a.user, a.state]), [['carol', 'locked']]);
  const user = await staff(b, 'user');
  assert.equal((await user.post('/users/carol/unlock')).status, 403, 'a plain user cannot unlock');

  const unlocked = await hd.post('/users/carol/unlock');
  assert.equal(unlocked.status, 200, JSON.stringify(unlocked.body));
  assert.equal(unlocked.body.lockout.state, 'clear');
  assert.equal((await login(b, 'carol', PASSWORD, B)).status, 200, 'carol gets in after the unlock');
  const byApi = (await audit(b, { action: 'user.unlock' })).filter((e) => e.target === 'carol' && e.outcome === 'ok');
  assert.equal(byApi.length, 1);
  assert.match(byApi[0]!.actor, /^helpdesk-/, 'the audit names who unlocked');
  assert.equal(byApi[0]!.details.was, 'locked');
  assert.equal((await hd.post('/users/nobody-at-all/unlock')).status, 404);

  await lock();
  const cli = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'server/cli.ts', 'user', 'unlock', 'carol'], {
    cwd: ROOT,
    timeout: 60_000,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', VDI_REDIS_URL: b.config.redis.url, VDI_REDIS_KEY_PREFIX: b.prefix, VDI_REDIS_AUTO_START: 'false' },
  });
  assert.equal(JSON.parse(cli.stdout).state, 'clear', cli.stdout);
  assert.equal((await login(b, 'carol', PASSWORD, B)).status, 200, 'carol gets in after the CLI unlock');
  const byCli = (await audit(b, { action: 'user.unlock' })).filter((e) => e.target === 'carol' && e.outcome === 'ok' && e.actor.startsWith('cli:'));
  assert.equal(byCli.length, 1, 'the CLI unlock is audited with the shell user');
});

test('(e) unknown user names are throttled exactly like known ones (progressive and hard)', async () => {
  for (const mode of ['progressive', 'hard'] as const) {
    const b = await broker(`thr-e-${mode}`, { mode, threshold: 4 }, { sprayAccounts: 1000 });
    await b.addUser('kate');
    const run = async (name: string, ip: string) => {
      const out: string[] = [];
      for (let i = 0; i < 8; i++) {
        const r = await login(b, name, i === 7 ? PASSWORD : `wrong ${i}`, ip);
        out.push(`${r.status} ${r.body?.error?.code ?? 'ok'} ${r.headers.get('retry-after') ? 'retry' : '-'} ${r.headers.get('set-cookie') ? 'cookie' : '-'}`);
        if (r.status === 429) assert.deepEqual(Object.keys(r.body.error).sort(), ['code', 'message']);
      }
      return out;
    };
    const known = await run('kate', A);
    const unknown = await run('ghost', B);
    assert.deepEqual(unknown, known, `${mode}: the same answers for a known and an unknown name`);
    assert.ok(known.some((l) => l.startsWith('429')), `${mode}: the sequence reaches the throttle: ${known.join(', ')}`);
    const hd = await staff(b);
    assert.deepEqual((await hd.get('/auth/lockouts')).body.accounts.map((a: { user: string }) => a.user), ['kate'], 'the helpdesk list shows real users only');
  }
});

test('parallel guesses at one name from one address: at most freeFailures passwords are tried', async () => {
  const b = await broker('thr-race', { freeFailures: 4 });
  await b.addUser('racer');
  const rs = await Promise.all(Array.from({ length: 25 }, (_, i) => login(b, 'racer', `guess ${i}`, A)));
  const tried = rs.filter((r) => r.status === 401).length;
  const refused = rs.filter((r) => r.status === 429 && r.body.error.code === 'login_throttled').length;
  assert.equal(tried + refused, rs.length, JSON.stringify(rs.map((r) => r.status)));
  assert.ok(tried <= 4, `${tried} passwords were tried in parallel; the limit is 4 before a wait`);
});

test('repeated failures for one name from one address block that pair after pairFailures, while the owner elsewhere is unaffected', async () => {
  const b = await broker('thr-pair', { freeFailures: 50 }, { pairFailures: 6, pairBlockSeconds: 600 });
  await b.addUser('dan');
  for (let i = 0; i < 6; i++) assert.equal((await login(b, 'dan', `x${i}`, A)).status, 401);
  const r = await login(b, 'dan', PASSWORD, A);
  assert.equal(r.status, 429);
  assert.equal(r.body.error.code, 'login_throttled');
  assert.ok(retryAfter(r) > 2 && retryAfter(r) <= 600, 'a block, longer than the waits');
  assert.equal((await login(b, 'dan', PASSWORD, B)).status, 200);
  const st = (await (await staff(b)).get('/users/dan/lockout')).body.lockout;
  assert.deepEqual(st.addresses.map((a: { address: string; blocked: boolean }) => [a.address, a.blocked]), [[A, true]]);
  assert.equal((await audit(b, { action: 'auth.block' })).filter((e) => e.target === 'dan').length, 1, 'the pair block is audited');
});

test('without server.trustProxy, X-Forwarded-For is the client\'s word: spraying under made-up addresses still blocks the real one', async () => {
  const b = await startTestBroker({ name: 'thr-noproxy', config: { auth: { throttle: { sprayAccounts: 3 } } } });
  brokers.push(b);
  await b.addUser('victim');
  for (let i = 0; i < 3; i++) assert.equal((await login(b, `g${i}`, 'nope', `198.51.100.${i}`)).status, 401);
  const spoofed = await login(b, 'victim', PASSWORD, '198.51.100.77');
  assert.equal(spoofed.status, 429);
  assert.equal(spoofed.body.error.code, 'too_many_attempts');
});

test('a removed throttling key stops startup, naming the key and where its successor lives', async () => {
  const { testConfig } = await import('../support/harness.ts');
  assert.throws(() => testConfig('x:', { auth: { maxFailuresPerAccount: 5 } } as never), /config error: auth\.maxFailuresPerAccount: removed: .*auth\.lockout/);
  assert.throws(() => testConfig('x:', { auth: { lockout: { mode: 'lock' } } } as never), /config error: auth\.lockout\.mode:/);
  assert.throws(() => testConfig('x:', { auth: { lockout: { baseDelaySeconds: 10, maxDelaySeconds: 5 } } } as never), /config error: auth\.lockout\.maxDelaySeconds: must be at least/);
});
