// Guests with only the standard qemu-guest-agent (docs/agent.md): a tiny image with Debian's
// qemu-ga (scripts/image/build-qga-image.sh, built here into a temp dir) becomes ready through
// guest-sync-delimited + guest-ping/guest-get-osinfo, the agent status shows the guest's users
// (guest-get-users), and guest-exec runs only where the caller's policy allows it. One real VM
// (QEMU, TCG) through a test broker; stopped by pid (TestEnv.cleanup), also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TestEnv, waitFor } from '../qemu/helpers.ts';
import { startTestBroker, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR, type Desktop } from '../../server/broker/index.ts';
import { imageFilesIn } from '../../server/providers/qemu/config.ts';

const HAVE = fs.existsSync('/usr/sbin/qemu-ga');
const REPO = path.resolve(import.meta.dirname, '../..');
const env = new TestEnv('qga');
let tb: TestBroker;
let imageDir: string;
let desktop: Desktop;

before(async () => {
  if (!HAVE) return;
  imageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vdi-qga-image-'));
  execFileSync('bash', [path.join(REPO, 'scripts/image/build-qga-image.sh'), imageDir], { stdio: 'pipe' });
  const provider = env.provider([env.host('h1')], { images: () => imageFilesIn(imageDir) });
  tb = await startTestBroker({ name: 'qga', providers: [provider], config: { jobs: { enabled: true, inventoryIntervalMs: 2000 } } });
  await tb.app.broker.images.create(SYSTEM_ACTOR, 'qgaonly', 'qemu-guest-agent only');
  await tb.app.broker.images.addVersion(SYSTEM_ACTOR, 'qgaonly', { path: imageDir, publish: true });
  await tb.app.broker.pools.create(tb.pool({
    name: 'qg', provider: 'local', image: 'qgaonly', naming: 'qg-{n:02}', size: { min: 0, max: 1, spare: 1 },
    resources: { vcpu: 1, memoryMiB: 160, diskGiB: 0, network: 'default', graphics: 'vga' },
  }), SYSTEM_ACTOR);
  tb.app.startJobs();
  desktop = await waitFor(async () => {
    const [id] = await tb.app.store.desktops.idsInState('qg', 'ready');
    return id ? ((await tb.app.store.desktops.get(id)) ?? undefined) : undefined;
  }, 300_000, 'a ready desktop');
});

after(async () => {
  await tb?.close();
  await env.cleanup();
  if (imageDir) fs.rmSync(imageDir, { recursive: true, force: true });
});

test('the qga-only image becomes ready through qemu-guest-agent, and status shows its users', async () => {
  assert.ok(HAVE, 'qemu-guest-agent not installed');
  assert.equal(desktop.readyVia, 'qga');
  assert.ok(desktop.readyMs && desktop.readyMs > 0);
  const st = await waitFor(async () => {
    const s = await tb.app.agents.status(desktop.id);
    return s?.user ? s : undefined;
  }, 60_000, 'a logged-on user in the status');
  assert.equal(st.via, 'qga');
  assert.equal(st.connected, true);
  assert.equal(st.user, 'root', 'tty1 runs `login -f root`, which qemu-ga reports');
  assert.equal(st.os?.id, 'vdi-qga');
  assert.ok(st.readyAt && st.readyAt <= desktop.stateSince, 'qga answered before the desktop became ready');
});

test('guest-exec is refused unless the policy allows it', async () => {
  assert.ok(HAVE, 'qemu-guest-agent not installed');
  const d = { id: desktop.id, provider: desktop.provider, image: desktop.image };
  await assert.rejects(tb.app.agents.exec(d, { path: '/bin/uname', args: ['-r'] }, { timeoutMs: 30_000 }), /not allowed/);
  await assert.rejects(tb.app.agents.exec(d, { path: '/bin/uname', args: ['-r'] }, { allow: false, timeoutMs: 30_000 }), /not allowed/);
  const r = await tb.app.agents.exec(d, { path: '/bin/uname', args: ['-r'] }, { allow: true, timeoutMs: 60_000 });
  assert.equal(r.exitcode, 0);
  assert.match(r.stdout, /^\d+\.\d+/);
});
