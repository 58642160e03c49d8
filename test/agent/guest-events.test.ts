// Guest events from real VMs (QEMU, TCG) through the guest agent channel: the agent's
// logon_complete fills the session's guest_logon phase (and click-to-usable once the first
// frame is reported); the user typing `exit` in their shell on the desktop's console (keys
// through QMP send-key, as from the VNC viewer) ends the broker session with reason
// "guest logoff" and the non-persistent desktop is refreshed; a guest that powers itself off ends its session ("guest powered off").
// One pool of real desktops for the file; every QEMU process is stopped by pid (TestEnv.cleanup).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ensureDemoImage, TestEnv, SerialShell, waitFor, IMAGE_ROOT, vgaTextScreen } from '../qemu/helpers.ts';
import { withQmp } from '../../server/providers/qemu/qmp.ts';
import { imageFilesIn } from '../../server/providers/qemu/config.ts';
import { startTestBroker, ApiClient, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import type { QemuProvider } from '../../server/providers/qemu/qemu.provider.ts';

const env = new TestEnv('guest-events');
const IMAGE_DIR = path.join(IMAGE_ROOT, 'demo/1');
let tb: TestBroker;
let provider: QemuProvider;
let alice: ApiClient;
let helen: ApiClient;
const shells: SerialShell[] = [];

before(async () => {
  ensureDemoImage();
  provider = env.provider([env.host('h1', { capacity: { vcpu: 8, memoryMiB: 2048 } })], { images: () => imageFilesIn(IMAGE_DIR) });
  tb = await startTestBroker({ name: 'guest-events', providers: [provider], config: { jobs: { enabled: true, inventoryIntervalMs: 1000 } } });
  await tb.addUser('alice');
  await tb.addUser('helen', 'helpdesk');
  // The demo image registered from its build directory: its manifest says agent "vdi".
  await tb.app.broker.images.create(SYSTEM_ACTOR, 'agentdemo', 'Demo image with the agent');
  await tb.app.broker.images.addVersion(SYSTEM_ACTOR, 'agentdemo', { path: IMAGE_DIR, publish: true });
  await tb.app.broker.pools.create(tb.pool({
    name: 'ge', provider: 'local', image: 'agentdemo', naming: 'ge-{n:02}', assignment: 'floating', persistence: 'refresh',
    size: { min: 0, max: 2, spare: 1 }, entitlements: { users: ['alice'], groups: [] },
    resources: { vcpu: 1, memoryMiB: 192, diskGiB: 1, network: 'default', graphics: 'vga' },
  }), SYSTEM_ACTOR);
  tb.app.startJobs();
  alice = new ApiClient(tb.url);
  assert.equal((await alice.login('alice')).status, 200);
  helen = new ApiClient(tb.url);
  assert.equal((await helen.login('helen')).status, 200);
});

after(async () => {
  for (const s of shells) s.close();
  await tb?.close();
  await env.cleanup();
});

/** Alice launches a ready desktop of the pool (readiness: the agent's hello). */
async function launch(): Promise<{ session: string; desktop: string }> {
  await waitFor(async () => ((await tb.app.store.desktops.idsInState('ge', 'ready')).length ? true : undefined), 240_000, 'a ready desktop');
  const r = await alice.post('/me/pools/ge/request');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { session: r.body.session.id, desktop: r.body.desktop.id };
}

async function sessionOf(id: string) {
  return (await helen.get(`/sessions/${id}`)).body.session as { state: string; endReason: string; logon: Record<string, number> };
}

/** Alice types `exit` at her prompt on the desktop's console (VGA keyboard through QMP send-key,
 * as from the VNC viewer); resolves with her session once it ended. */
async function typeExitAndWaitEnded(session: string, desktop: string) {
  // The user types `exit` at their prompt on the console (VGA keyboard, as through VNC).
  const info = (await provider.describe(desktop))!;
  const qmp = path.join(info.dir, 'qmp.sock');
  let rows: string[] = [];
  await waitFor(async () => {
    rows = (await vgaTextScreen(qmp, path.join(env.root, 'exit.ppm'))).rows;
    return rows.some((r) => r.includes('alice@') && r.trimEnd().endsWith('$')) ? true : undefined;
  }, 60_000, 'alice\'s prompt on the console').catch((e: Error) => {
    throw new Error(`${e.message}; the console shows:\n${rows.join('\n')}`);
  });
  await withQmp(qmp, async (q) => {
    for (const k of ['e', 'x', 'i', 't', 'ret']) await q.execute('send-key', { keys: [{ type: 'qcode', data: k }] });
  });
  return waitFor(async () => {
    const s = await sessionOf(session);
    return s.state === 'ended' ? s : undefined;
  }, 60_000, 'session ended by the guest').catch(async (e: Error) => {
    // What the guest shows: its console, whose session runs, and its processes.
    const screen = (await vgaTextScreen(qmp, path.join(env.root, 'exit.ppm')).catch(() => undefined))?.rows.join('\n');
    const sh = await SerialShell.open((await provider.serial(desktop)).socket, 30_000);
    shells.push(sh);
    throw new Error(`${e.message}; console:\n${screen}\nguest: ${await sh.run('cat /run/vdi/user; ls /run/vdi; ps | grep -v "\\[" | tail -15', 10_000).catch((x: Error) => x.message)}`);
  });
}

test('the agent\'s logon fills home_mapped and guest_logon; the user typing exit in their console shell ends the session ("guest logoff") and the desktop is refreshed', { timeout: 600_000 }, async () => {
  const { session, desktop } = await launch();
  // The request logged alice on through the agent (server/shares HomeShares.attach → agents.logon);
  // its logon_complete event is the timeline's guest_logon.
  const logon = await waitFor(async () => {
    const s = await sessionOf(session);
    return s.logon.guest_logon !== undefined ? s.logon : undefined;
  }, 60_000, 'guest_logon recorded').catch(async (e: Error) => {
    // Say what the broker knows, so a failure here tells which side did not do its part.
    const hash = await tb.app.store.redis.hgetall(tb.app.store.keys.session(session));
    throw new Error(`${e.message}; agent status ${JSON.stringify(await tb.app.agents.status(desktop))}; session ${JSON.stringify(hash)}`);
  });
  assert.ok(logon.guest_logon! >= 0 && logon.guest_logon! < 60_000, JSON.stringify(logon));
  assert.ok(logon.home_mapped !== undefined && logon.home_mapped < 60_000, `the agent's logon answer is home_mapped: ${JSON.stringify(logon)}`);
  assert.equal(logon.desktop_ready, 0, 'a ready spare');
  assert.equal((await alice.post(`/me/sessions/${session}/first-frame`, { ms: 900 })).status, 200);
  const usable = (await sessionOf(session)).logon.click_to_usable;
  assert.equal(usable, Math.max(900, logon.guest_logon!), 'usable: the later of the first frame and the guest logon');
  console.log(`# logon timeline on a warm spare (ms): ${JSON.stringify(logon)}`);

  const ended = await typeExitAndWaitEnded(session, desktop);
  assert.equal(ended.endReason, 'guest logoff');
  const audit = (await helen.get(`/audit?action=session.logoff&target=${session}`)).body.entries[0];
  assert.equal(audit.details.reason, 'guest logoff');
  assert.equal(audit.details.source, 'session_end');
  assert.equal(audit.details.desktopState, 'refreshing');
  await waitFor(async () => ((await tb.app.store.desktops.get(desktop))?.state === 'ready' ? true : undefined), 240_000, 'refreshed desktop ready again');
});

test('a guest that powers itself off ends its session ("guest powered off")', { timeout: 600_000 }, async () => {
  const { session, desktop } = await launch();
  const sh = await SerialShell.open((await provider.serial(desktop)).socket, 90_000);
  shells.push(sh);
  // busybox poweroff: init runs its shutdown (the agent says poweroff), then the VM stops.
  await sh.run('poweroff', 3000).catch(() => undefined); // it does not come back
  const ended = await waitFor(async () => {
    const s = await sessionOf(session);
    return s.state === 'ended' ? s : undefined;
  }, 90_000, 'session ended by the power-off');
  assert.equal(ended.endReason, 'guest powered off');
  const audit = (await helen.get(`/audit?action=session.logoff&target=${session}`)).body.entries[0];
  assert.equal(audit.details.reason, 'guest powered off');
  // Told by the agent (poweroff event) or, if the guest died before it could say so, found by the inventory.
  assert.ok(['poweroff', 'inventory'].includes(audit.details.source), String(audit.details.source));
});
