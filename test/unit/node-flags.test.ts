// The broker's node process runs with the same V8 flags (server/node-flags.ts) wherever it is
// started: npm start, the quick start, the image's entrypoint, the systemd unit, and the broker
// processes of the tests and benches (so what they measure is what runs in production).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BROKER_NODE_FLAGS } from '../../server/node-flags.ts';
import { ROOT, startBrokerProcess } from '../support/process.ts';
import { SHARED_REDIS_URL, uniquePrefix, dropPrefix, freePort } from '../support/redis.ts';

const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');

test('every way the broker is started passes the flags', () => {
  assert.ok(BROKER_NODE_FLAGS.length > 0);
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'))![1]!) as string[];
  const starts: [string, string[]][] = [
    ['npm start', pkg.scripts.start!.split(/\s+/)],
    ['the quick start', /^exec node (.*)$/m.exec(read('scripts/quickstart.sh'))![1]!.split(/\s+/)],
    ['the image', entrypoint],
    ['the systemd unit', /^ExecStart=(.*)$/m.exec(read('deploy/systemd/vdi-broker.service'))![1]!.split(/\s+/)],
  ];
  for (const [where, argv] of starts) {
    const script = argv.findIndex((a) => /server\/(main|quickstart)\.(ts|js)$/.test(a));
    assert.ok(script > 0, `${where}: no broker script in ${argv.join(' ')}`);
    for (const flag of BROKER_NODE_FLAGS) assert.ok(argv.slice(0, script).includes(flag), `${where}: ${flag} before the script in ${argv.join(' ')}`);
  }
});

test("the tests' broker process runs with them", async () => {
  const prefix = uniquePrefix('node-flags');
  const b = await startBrokerProcess('test/support/broker-process.ts', {
    VDI_SERVER_HOST: '127.0.0.1', VDI_SERVER_PORT: String(await freePort()), VDI_REDIS_URL: SHARED_REDIS_URL, VDI_REDIS_KEY_PREFIX: prefix, VDI_JOBS_ENABLED: 'false',
  });
  try {
    const cmdline = readFileSync(`/proc/${b.child.pid}/cmdline`, 'utf8').split('\0');
    for (const flag of BROKER_NODE_FLAGS) assert.ok(cmdline.includes(flag), cmdline.join(' '));
  } finally {
    await b.kill('SIGTERM');
    await dropPrefix(SHARED_REDIS_URL, prefix);
  }
});
