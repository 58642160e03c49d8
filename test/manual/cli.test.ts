// `machine add/list/del/import` of the admin CLI (server/cli.ts, its own process, real Redis,
// a config file declaring a manual provider): a lab of 30 PCs from CSV, a machine whose
// password comes on standard input (never echoed), and removal. Machines go into a manual pool
// made straight in the store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ROOT } from '../support/process.ts';
import { SHARED_REDIS_URL, uniquePrefix, dropPrefix } from '../support/redis.ts';
import { PoolsRepository } from '../../server/store/pools.repository.ts';
import { keyspace } from '../../server/store/keys.ts';
import { defineScripts } from '../../server/store/scripts.ts';

const prefix = uniquePrefix('manual-cli');
const dir = mkdtempSync(join(tmpdir(), 'manual-cli-'));
const configFile = join(dir, 'broker.yaml');
const SECRET = 'cli-console-pw-91';
let redis: Redis;

function cli(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'server/cli.ts'), '--config', configFile, ...args], {
      cwd: ROOT,
      timeout: 30_000,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: prefix },
    }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }));
    child.stdin?.end(input ?? '');
  });
}

before(async () => {
  writeFileSync(configFile, 'providers:\n  - name: lab\n    kind: manual\n');
  redis = new Redis(SHARED_REDIS_URL);
  defineScripts(redis);
  const now = new Date().toISOString();
  await new PoolsRepository(redis, keyspace(prefix)).save({
    name: 'room', displayName: 'Room', description: '', assignment: 'floating', persistence: 'persistent', size: { min: 0, max: 0, spare: 0 }, naming: 'room-{n:02}',
    resources: { vcpu: 1, memoryMiB: 256, diskGiB: 4, network: 'default', graphics: 'vga' }, image: 'none', provider: 'lab', clone: 'linked',
    entitlements: { users: [], groups: [] }, sessionPolicy: { idleTimeoutSeconds: 0, logoffAfterDisconnectSeconds: 900, maxSessionSeconds: 0 }, enabled: true, maintenance: false, createdAt: now, updatedAt: now,
  }, 'create');
});

after(async () => {
  redis?.disconnect();
  await dropPrefix(SHARED_REDIS_URL, prefix);
  rmSync(dir, { recursive: true, force: true });
});

test('machine import adds a lab of 30 PCs from CSV; list shows them without credentials', async () => {
  const csv = ['name,pool,protocol,address,port,username,password'];
  for (let i = 1; i <= 30; i++) csv.push(`pc-${String(i).padStart(2, '0')},room,vnc,10.0.5.${i},5900,student,${SECRET}`);
  const file = join(dir, 'lab.csv');
  writeFileSync(file, csv.join('\n'));
  const r = await cli(['machine', 'import', file]);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { added: string[]; failed: unknown[] };
  assert.equal(res.added.length, 30);
  assert.deepEqual(res.failed, []);
  const list = await cli(['machine', 'list', '--pool', 'room']);
  assert.equal(list.code, 0, list.stderr);
  const machines = JSON.parse(list.stdout) as { name: string; address: string; hasPassword: boolean; desktop: { state: string } }[];
  assert.equal(machines.length, 30);
  assert.deepEqual([machines[0]!.name, machines[0]!.address, machines[0]!.hasPassword, machines[0]!.desktop.state], ['pc-01', '10.0.5.1', true, 'provisioning']);
  assert.ok(!list.stdout.includes(SECRET));
});

test('machine add takes the password on standard input; a bad protocol is one validation line; del removes it', async () => {
  const bad = await cli(['machine', 'add', 'rds-9', '--pool', 'room', '--address', '10.0.6.9', '--protocol', 'telnet']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: validation_failed: protocol: [^\n]+\n$/);
  const rdp = await cli(['machine', 'add', 'rds-9', '--pool', 'room', '--address', '10.0.6.9', '--protocol', 'rdp']);
  assert.equal(rdp.code, 1);
  assert.match(rdp.stderr, /^error: guacd_required: /);
  const ok = await cli(['machine', 'add', 'pc-31', '--pool', 'room', '--address', '10.0.5.31', '--password-stdin', '--mac', '02:00:00:00:05:1f'], `${SECRET}\n`);
  assert.equal(ok.code, 0, ok.stderr);
  const m = JSON.parse(ok.stdout) as { name: string; hasPassword: boolean; mac: string; port: number };
  assert.deepEqual([m.name, m.hasPassword, m.mac, m.port], ['pc-31', true, '02:00:00:00:05:1f', 5900]);
  assert.ok(!ok.stdout.includes(SECRET));
  const del = await cli(['machine', 'del', 'pc-31']);
  assert.equal(del.code, 0, del.stderr);
  const list = JSON.parse((await cli(['machine', 'list'])).stdout) as { name: string }[];
  assert.ok(!list.some((x) => x.name === 'pc-31'));
});
