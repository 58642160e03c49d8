import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadConfig, envName, ConfigError } from '../../server/config/index.ts';
import { ROOT } from '../support/process.ts';

test('defaults load and validate', () => {
  const c = loadConfig({ env: {} });
  assert.equal(c.server.port, 8080);
  assert.equal(c.redis.keyPrefix, 'vdi:');
  assert.equal(c.jobs.enabled, true);
});

test('environment variables override, typed; *_FILE reads secrets from files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vdi-cfg-'));
  try {
    writeFileSync(join(dir, 'secret'), 'x'.repeat(40) + '\n');
    const c = loadConfig({ env: { VDI_SERVER_PORT: '9090', VDI_JOBS_ENABLED: 'false', VDI_REDIS_PASSWORD: '12345', VDI_SESSION_SECRET_FILE: join(dir, 'secret') } });
    assert.equal(c.server.port, 9090);
    assert.equal(c.jobs.enabled, false);
    assert.equal(c.redis.password, '12345', 'strings stay strings');
    assert.equal(c.session.secret, 'x'.repeat(40));
  } finally {
    rmSync(dir, { recursive: true });
  }
  assert.equal(envName(['redis', 'keyPrefix']), 'VDI_REDIS_KEY_PREFIX');
  assert.equal(envName(['auth', 'argon2MemoryKib']), 'VDI_AUTH_ARGON2_MEMORY_KIB');
});

test('bad values stop with one line naming the key', () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ VDI_SERVER_PORT: 'abc' }, /^config error: server\.port: .*expected number/],
    [{ VDI_SERVER_PORT: '70000' }, /^config error: server\.port: /],
    [{ VDI_REDIS_URL: 'http://x' }, /^config error: redis\.url: expected a redis/],
    [{ VDI_DESKTOPS_MAC_PREFIX: '01:00:00' }, /^config error: desktops\.macPrefix: .*locally administered/],
    [{ VDI_LOGGING_LEVEL: 'loud' }, /^config error: logging\.level: /],
    [{ VDI_SESSION_SECRET: 'short' }, /^config error: session\.secret: at least 32/],
    [{ VDI_NO_SUCH_THING: '1' }, /^config error: VDI_NO_SUCH_THING: unknown environment variable/],
    [{ VDI_SESSION_SECRET_FILE: '/nonexistent/secret' }, /^config error: session\.secret: cannot read/],
  ];
  for (const [env, re] of bad) {
    assert.throws(() => loadConfig({ env }), (e: unknown) => e instanceof ConfigError && re.test(e.message) && !e.message.includes('\n'), JSON.stringify(env));
  }
  const secretErr = (() => {
    try {
      loadConfig({ env: { VDI_SESSION_SECRET: 'tooshort-secret-value' } });
    } catch (e) {
      return (e as Error).message;
    }
    return '';
  })();
  assert.ok(!secretErr.includes('tooshort-secret-value'), 'a secret is never echoed');
});

test('unknown keys in a config file are refused by name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vdi-cfg-'));
  try {
    writeFileSync(join(dir, 'c.yaml'), 'server:\n  prot: 80\n');
    assert.throws(() => loadConfig({ env: {}, file: join(dir, 'c.yaml') }), /config error: server\.prot: unknown key/);
    writeFileSync(join(dir, 'd.yaml'), 'server: [1, 2\n');
    assert.throws(() => loadConfig({ env: {}, file: join(dir, 'd.yaml') }), /config error: VDI_CONFIG: .* is not valid YAML/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('--check-config validates and exits (0 good, 2 with one line when bad)', () => {
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'server/main.ts', '--check-config'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 30_000 });
  const ok = run({});
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), 'config ok');
  const bad = run({ VDI_SERVER_PORT: 'nope' });
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  assert.match(bad.stderr, /server\.port/);
});
