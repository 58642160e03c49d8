// The admin CLI (server/cli.ts, run as its own process against the real Redis) validates with
// the API's schemas: what the API would refuse (markup in a display name, a bad group name) is
// refused with one line on stderr and exit code 1, and nothing is stored.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../support/process.ts';
import { SHARED_REDIS_URL, uniquePrefix, dropPrefix } from '../support/redis.ts';

const prefix = uniquePrefix('cli');
after(() => dropPrefix(SHARED_REDIS_URL, prefix));

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'server/cli.ts'), ...args], {
      cwd: ROOT,
      timeout: 30_000,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: prefix, VDI_AUTH_ARGON2_MEMORY_KIB: '1024', VDI_AUTH_ARGON2_TIME_COST: '1' },
    }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }));
  });
}

const PW = 'a long enough password';

test('user add refuses a display name with markup (one-line validation_failed, exit 1, nothing stored); a plain one is stored', async () => {
  const bad = await cli('user', 'add', 'mallory', '--display-name', '<b>Mallory</b>', '--password', PW);
  assert.equal(bad.code, 1, bad.stderr);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /^error: validation_failed: displayName: [^\n]+\n$/);

  const ok = await cli('user', 'add', 'Ann', '--display-name', 'Ann Example', '--password', PW);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).id, 'ann');

  const list = await cli('user', 'list');
  assert.equal(list.code, 0, list.stderr);
  const users = JSON.parse(list.stdout) as { id: string; displayName: string }[];
  assert.deepEqual(users.map((u) => [u.id, u.displayName]), [['ann', 'Ann Example']]);
});

test('group add and apikey create refuse what the API refuses', async () => {
  const badName = await cli('group', 'add', 'Lab<script>');
  assert.equal(badName.code, 1, badName.stderr);
  assert.match(badName.stderr, /^error: validation_failed: name: [^\n]+\n$/);
  const badMember = await cli('group', 'add', 'lab', '--member', '<img>');
  assert.equal(badMember.code, 1, badMember.stderr);
  assert.match(badMember.stderr, /^error: validation_failed: members\.0: [^\n]+\n$/);
  const groups = await cli('group', 'list');
  assert.deepEqual(JSON.parse(groups.stdout), []);
  const badKey = await cli('apikey', 'create', '<b>ops</b>');
  assert.equal(badKey.code, 1, badKey.stderr);
  assert.match(badKey.stderr, /^error: validation_failed: name: [^\n]+\n$/);
  assert.deepEqual(JSON.parse((await cli('apikey', 'list')).stdout), []);
});
