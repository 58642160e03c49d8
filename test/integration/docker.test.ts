// test-lane: vm (no VM boots, but building the base image and the image is as CPU- and disk-heavy as one: on a fresh machine it must not starve the VM files, which time out under it) · test-start: early (the longest file)
// The production image as an operator builds and runs it: `docker build .` on a base image made
// locally from Debian packages (no registry is reachable here; test/support/docker-base-image.sh),
// then the container against the real Redis with a 0600 secret file owned by the image's user and
// a data volume, as uid 10001: /readyz, Docker's own health check, a login and the files API
// through it. Also what the image must not ship (tsx, client source maps) and the compose file's
// promises (guacd wired, loopback-only port, no hop-count proxy trust).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ApiClient, waitFor } from '../support/harness.ts';
import { ROOT, stopChild } from '../support/process.ts';
import { SHARED_REDIS_URL, dropPrefix, freePort, uniquePrefix } from '../support/redis.ts';

const run = promisify(execFile);
const IMAGE = 'vdi-broker:test';
const APP_UID = 10001;
const name = `vdi-test-${process.pid}`;
const volume = `vdi-test-data-${process.pid}`;
const prefix = uniquePrefix('docker');
const secrets = mkdtempSync(join(tmpdir(), 'vdi-docker-secrets-'));
let dockerd: ChildProcess | undefined;
let port = 0;
const timings: Record<string, number> = {};

async function docker(...args: string[]): Promise<string> {
  return (await run('docker', args, { maxBuffer: 64 * 1024 * 1024 })).stdout.trim();
}
async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try {
    return await fn();
  } finally {
    timings[label] = Math.round((Date.now() - t0) / 100) / 10;
  }
}

before(async () => {
  // dockerd is started by hand on our machines (no systemd); stopped again if we started it.
  if (!(await run('docker', ['info']).then(() => true, () => false))) {
    dockerd = spawn('dockerd', [], { stdio: 'ignore' });
    await waitFor(() => run('docker', ['info']).then(() => true, () => false), 60_000, 250);
  }
  await timed('base image', () => run('bash', [join(ROOT, 'test/support/docker-base-image.sh')], { maxBuffer: 16 * 1024 * 1024 }));
  await timed('docker build', () => docker('build', '--network', 'host', '-q', '-t', IMAGE, ROOT));
  chmodSync(secrets, 0o755); // mkdtemp makes it 0700: the container user must reach the files
  writeFileSync(join(secrets, 'session_secret'), 'a-session-secret-for-the-docker-test\n', { mode: 0o600 });
  chownSync(join(secrets, 'session_secret'), APP_UID, APP_UID);
  port = await freePort();
  await docker('volume', 'create', volume);
  await docker('run', '-d', '--name', name, '--network', 'host', '-v', `${volume}:/data`, '-v', `${secrets}:/run/secrets:ro`,
    '-e', 'VDI_SERVER_HOST=127.0.0.1', '-e', `VDI_SERVER_PORT=${port}`, '-e', `VDI_REDIS_URL=${SHARED_REDIS_URL}`, '-e', `VDI_REDIS_KEY_PREFIX=${prefix}`,
    '-e', 'VDI_REDIS_AUTO_START=false', '-e', 'VDI_SESSION_SECRET_FILE=/run/secrets/session_secret', IMAGE);
  await timed('ready', () => waitFor(() => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false), 90_000, 250));
});

after(async () => {
  await run('docker', ['rm', '-f', name]).catch(() => undefined);
  await run('docker', ['rm', '-f', `${name}-badsecret`]).catch(() => undefined);
  await run('docker', ['volume', 'rm', '-f', volume]).catch(() => undefined);
  rmSync(secrets, { recursive: true, force: true });
  await dropPrefix(SHARED_REDIS_URL, prefix);
  if (dockerd) await stopChild(dockerd, 20_000);
  console.log(`docker timings (s): ${JSON.stringify(timings)}`);
});

test('the image runs healthy as uid 10001 with a 0600 secret and a writable data volume, and a user logs in and uses the files API', async () => {
  assert.equal(await docker('exec', name, 'id', '-u'), String(APP_UID));
  await assert.rejects(docker('exec', name, 'touch', '/app/x'), 'the application directory is read-only for the broker');
  // Docker's HEALTHCHECK runs our health script against the configured (non-default) port.
  await timed('healthy', () => waitFor(async () => (await docker('inspect', '--format', '{{.State.Health.Status}}', name)) === 'healthy', 90_000, 500));

  await docker('exec', name, 'sh', '-c', 'printf "%s" "correct horse battery" | node dist/server/cli.js user add alice --role user --password-stdin');
  const alice = new ApiClient(`http://127.0.0.1:${port}`);
  assert.equal((await alice.login('alice', 'correct horse battery')).status, 200);
  const up = await alice.request('PUT', '/me/files/content?path=notes.txt', 'kept on the data volume', { 'content-type': 'text/plain' });
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const list = await alice.get('/me/files');
  assert.equal(list.status, 200, JSON.stringify(list.body));
  assert.ok(JSON.stringify(list.body).includes('notes.txt'));
  assert.equal(await docker('exec', name, 'cat', '/data/shares/home/alice/notes.txt'), 'kept on the data volume');
});

test('the image ships QEMU for the default provider, and neither tsx nor client source maps', async () => {
  assert.match(await docker('exec', name, 'qemu-system-x86_64', '--version'), /QEMU emulator version/);
  await assert.rejects(docker('exec', name, 'ls', 'node_modules/tsx'), 'tsx is a development dependency');
  assert.equal(await docker('exec', name, 'sh', '-c', 'find dist/client -name "*.map" | wc -l'), '0');
  const html = await (await fetch(`http://127.0.0.1:${port}/`)).text();
  const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  assert.ok(script, 'the page names its script');
  assert.equal((await fetch(`http://127.0.0.1:${port}${script}.map`)).status, 404);
});

test('a secret file the container user cannot read stops startup with one line naming the key and the fix', async () => {
  const bad = join(secrets, 'root_only');
  writeFileSync(bad, 'x\n', { mode: 0o600 });
  chmodSync(bad, 0o600);
  await docker('run', '--name', `${name}-badsecret`, '--network', 'host', '-v', `${secrets}:/run/secrets:ro`, '-e', `VDI_REDIS_URL=${SHARED_REDIS_URL}`,
    '-e', 'VDI_SESSION_SECRET_FILE=/run/secrets/root_only', IMAGE, '--check-config').then(
    () => assert.fail('startup must refuse'),
    (err: { stderr?: string }) => {
      const lines = (err.stderr ?? '').trim().split('\n');
      assert.equal(lines.length, 1, err.stderr);
      assert.match(lines[0]!, /session\.secret/);
      assert.match(lines[0]!, /EACCES.*uid 10001.*chown/);
    },
  );
});

test('the compose files wire guacd, publish on loopback only, trust no forwarded hop count, and validate', async () => {
  for (const file of ['docker-compose.yml', 'deploy/compose/docker-compose.yml']) {
    const { stdout } = await run('docker-compose', ['-f', join(ROOT, file), 'config'], { cwd: ROOT });
    const c = parseYaml(stdout) as { services: Record<string, { environment?: Record<string, string>; ports?: unknown[] }> };
    const brokers = Object.entries(c.services).filter(([, s]) => s.environment?.VDI_SESSION_SECRET_FILE);
    assert.ok(brokers.length >= 1, file);
    for (const [svc, s] of brokers) {
      assert.ok(s.environment!.VDI_GUACD_HOST, `${file} ${svc}: guacd host`);
      assert.doesNotMatch(String(s.environment!.VDI_SERVER_TRUST_PROXY ?? 'false'), /^\d+$|^true$/, `${file} ${svc}: a hop count or true trusts forged X-Forwarded-For`);
      for (const p of s.ports ?? []) assert.match(JSON.stringify(p), /127\.0\.0\.1/, `${file} ${svc}: published on loopback only`);
    }
  }
});
