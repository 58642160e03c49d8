// Honest readiness with real VMs (QEMU, TCG) through a test broker: a pool of 2 spares reaches
// `ready` only after each guest's agent said hello over its virtio-serial port (docs/agent.md),
// not when QEMU runs and its console answers. One pool for the file; every QEMU process is
// stopped by pid (TestEnv.cleanup), also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ensureDemoImage, TestEnv, waitFor, IMAGE_ROOT, SerialShell, vgaTextScreen } from '../qemu/helpers.ts';
import { withQmp } from '../../server/providers/qemu/qmp.ts';
import { startTestBroker, ApiClient, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR, type Desktop } from '../../server/broker/index.ts';
import { imageFilesIn } from '../../server/providers/qemu/config.ts';
import { vncHello } from '../../server/providers/qemu/machine.ts';
import { agentSecret } from '../../server/agent/index.ts';
import type { QemuProvider } from '../../server/providers/qemu/qemu.provider.ts';

const env = new TestEnv('readiness');
let tb: TestBroker;
let provider: QemuProvider;
const IMAGE_DIR = path.join(IMAGE_ROOT, 'demo/1');

/** What was seen of each desktop while the pool filled: console answering while provisioning, and when. */
const seen = new Map<string, { consoleWhileProvisioningAt?: number }>();
let desktops: Desktop[] = [];

before(async () => {
  ensureDemoImage();
  provider = env.provider([env.host('h1', { capacity: { vcpu: 8, memoryMiB: 2048 } })], { images: () => imageFilesIn(IMAGE_DIR) });
  tb = await startTestBroker({ name: 'readiness', providers: [provider], config: { jobs: { enabled: true, inventoryIntervalMs: 2000 } } });
  await tb.addUser('helen', 'helpdesk');
  // The demo image registered from its build directory: its manifest says agent "vdi".
  await tb.app.broker.images.create(SYSTEM_ACTOR, 'agentdemo', 'Demo image with the agent');
  await tb.app.broker.images.addVersion(SYSTEM_ACTOR, 'agentdemo', { path: IMAGE_DIR, publish: true });
  await tb.app.broker.pools.create(tb.pool({
    name: 'rd', provider: 'local', image: 'agentdemo', naming: 'rd-{n:02}', size: { min: 0, max: 2, spare: 2 },
    resources: { vcpu: 1, memoryMiB: 192, diskGiB: 1, network: 'default', graphics: 'vga' },
  }), SYSTEM_ACTOR);
  tb.app.startJobs();
  // Watch the pool fill: whenever a desktop is still provisioning while its QEMU runs and its
  // VNC console already answers RFB, note it (the old meaning of "ready").
  desktops = await waitFor(async () => {
    const ids = await tb.app.store.desktops.idsInState('rd', 'provisioning');
    for (const id of ids) {
      const s = seen.get(id) ?? {};
      seen.set(id, s);
      if (s.consoleWhileProvisioningAt) continue;
      const d = await provider.describe(id).catch(() => undefined);
      if (!d?.vncPort) continue;
      const hello = await vncHello('127.0.0.1', d.vncPort, 1000).catch(() => undefined);
      if (hello?.version !== 'RFB 003.008') continue;
      if ((await tb.app.store.desktops.get(id))?.state === 'provisioning') s.consoleWhileProvisioningAt = Date.now();
    }
    const ready = await tb.app.store.desktops.idsInState('rd', 'ready');
    if (ready.length < 2) return undefined;
    return (await tb.app.store.desktops.getMany(ready)).filter((d): d is Desktop => !!d);
  }, 400_000, 'two ready desktops');
});

after(async () => {
  await tb?.close();
  await env.cleanup();
});

test('a pool of 2 spares becomes ready only after each agent said hello (console answered earlier)', async () => {
  assert.equal(desktops.length, 2);
  for (const d of desktops) {
    const s = seen.get(d.id);
    assert.ok(s?.consoleWhileProvisioningAt, `${d.name}: its console answered while it was still provisioning`);
    const st = await tb.app.agents.status(d.id);
    assert.ok(st?.connected, `${d.name}: agent connected`);
    assert.equal(st.via, 'vdi');
    assert.equal(st.agent, 'vdi-agent-sh/1');
    assert.ok(st.readyAt, 'the hello time is known');
    // The order: console answering < hello <= ready transition.
    assert.ok(s.consoleWhileProvisioningAt! <= st.readyAt, `${d.name}: console answered (${s.consoleWhileProvisioningAt}) before the hello (${st.readyAt})`);
    assert.ok(st.readyAt <= d.stateSince, `${d.name}: hello (${st.readyAt}) not after the ready transition (${d.stateSince})`);
    assert.equal(d.readyVia, 'vdi');
    assert.ok(d.readyMs && d.readyMs > 0 && d.readyMs < 400_000, `${d.name}: readyMs ${d.readyMs}`);
  }
});

test('the desktop API shows readyVia and readyMs, and never the agent secret', async () => {
  const helen = new ApiClient(tb.url);
  assert.equal((await helen.login('helen')).status, 200);
  const tunnelSecret = await tb.app.store.tickets.secret(tb.config.tunnel.secret);
  for (const d of desktops) {
    const r = await helen.get(`/desktops/${d.id}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.desktop.readyVia, 'vdi');
    assert.equal(typeof r.body.desktop.readyMs, 'number');
    const secret = agentSecret(tunnelSecret, d.id);
    assert.ok(!JSON.stringify(r.body).includes(secret), 'the API does not show the agent secret');
    // The secret reaches QEMU from a 0600 file, not its command line, and not state.json.
    const info = (await provider.describe(d.id))!;
    const file = path.join(info.dir, 'agent.secret');
    assert.equal(fs.readFileSync(file, 'utf8'), secret);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.ok(!fs.readFileSync(`/proc/${info.pid}/cmdline`, 'utf8').includes(secret), 'not on QEMU\'s command line');
    assert.ok(!fs.readFileSync(path.join(info.dir, 'state.json'), 'utf8').includes(secret), 'not in state.json');
  }
});

test('time to ready is recorded in the histogram, by how the guest said it', async () => {
  const metrics = await tb.app.metrics.registry.getSingleMetricAsString('vdi_desktop_time_to_ready_seconds');
  const count = /vdi_desktop_time_to_ready_seconds_count\{via="vdi"\} (\d+)/.exec(metrics);
  assert.ok(count && Number(count[1]) >= 2, metrics);
});

test('a logon through the agents restarts the console as the user, named in banner and prompt, in their home; after the logoff root\'s console shell answers typed keys', async () => {
  // Held by a live session of carol's, as after a Launch: the home-logoff reconciler logs off any
  // user an agent reports on a desktop nobody holds (ready), which would race this test.
  const held = await tb.app.store.sessions.assign('rd', 'carol', '127.0.0.1', Date.now());
  assert.equal(held.outcome, 'assigned', JSON.stringify(held));
  const d = desktops.find((x) => 'desktopId' in held && x.id === held.desktopId)!;
  const t0 = Date.now();
  const r = await tb.app.agents.logon({ id: d.id, provider: d.provider, image: d.image }, { user: 'carol', display: 'Carol Smith' }, { timeoutMs: 60_000 });
  const answeredMs = Date.now() - t0;
  assert.deepEqual({ home: r.home, mounted: r.mounted }, { home: '/home/carol', mounted: false });
  const info = (await provider.describe(d.id))!;
  let last: string[] = [];
  const screen = await waitFor(async () => {
    const v = await vgaTextScreen(path.join(info.dir, 'qmp.sock'), path.join(env.root, 'logon.ppm'));
    last = v.rows;
    return v.rows.some((row) => row.includes('carol@rd-')) ? v : undefined;
  }, 60_000, 'the user\'s prompt on the console').catch((e: Error) => {
    throw new Error(`${e.message}; the console shows:\n${last.join('\n')}`);
  });
  const consoleMs = Date.now() - t0;
  assert.ok(screen.rows.some((row) => row.includes('User    : Carol Smith (carol)')), screen.rows.join('\n'));
  assert.ok(screen.rows.some((row) => row.includes('carol@rd-') && row.includes(':~$') || row.includes(':/home/carol$')), screen.rows.join('\n'));
  const sh = await SerialShell.open((await provider.serial(d.id)).socket, 60_000);
  try {
    // The user's shell: uid 1000, working directory their home.
    const out = await sh.run('for p in /proc/[0-9]*; do [ "$(stat -c %u $p 2>/dev/null)" = 1000 ] && readlink $p/cwd; done 2>/dev/null | sort -u');
    assert.equal(out, '/home/carol');
  } finally {
    sh.close();
  }
  const st = await tb.app.agents.status(d.id);
  assert.equal(st?.connected, true);
  await tb.app.agents.logoff({ id: d.id, provider: d.provider, image: d.image }, 'carol', { timeoutMs: 60_000 });
  // After the logoff the console is root's again, and its shell is the terminal's foreground job:
  // typed keys reach it.
  await waitFor(async () => ((await vgaTextScreen(path.join(info.dir, 'qmp.sock'), path.join(env.root, 'logoff.ppm'))).rows.some((row) => row.includes('nobody logged on')) ? true : undefined), 60_000, 'the console after the logoff');
  await withQmp(path.join(info.dir, 'qmp.sock'), async (q) => {
    for (const k of ['i', 'd', 'ret']) await q.execute('send-key', { keys: [{ type: 'qcode', data: k }] });
  });
  await waitFor(async () => {
    last = (await vgaTextScreen(path.join(info.dir, 'qmp.sock'), path.join(env.root, 'logoff.ppm'))).rows;
    return last.some((row) => row.includes('uid=0(root)')) ? true : undefined;
  }, 60_000, 'root\'s shell answering typed keys after the logoff').catch((e: Error) => {
    throw new Error(`${e.message}; the console shows:\n${last.join('\n')}`);
  });
  // Measured figures for the report (TCG, machine load varies).
  console.log(`# logon answered in ${answeredMs} ms; user's prompt on the console after ${consoleMs} ms`);
});
