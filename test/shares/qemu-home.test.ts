// End to end with real VMs (QEMU, TCG where KVM fails): a user's folder follows them across
// non-persistent desktops, and never reaches the next holder of a persistent one.
// 1. alice gets a ready desktop (restarted with her folder as 9p "home"), writes a file into
//    /home/user over the serial console, logs off; the desktop is refreshed without any home;
//    she logs in again, gets the pool's other desktop, and her file is there, and in GET /me/files.
// 2. A floating persistent pool of one desktop: alice writes in her folder and on the desktop's
//    disk, logs off; the desktop comes back ready with nobody's folder; bob gets the same
//    desktop, with its disk, and sees his own folder at /home/user, not alice's.
// Every QEMU process is stopped by pid (TestEnv.cleanup), also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ensureDemoImage, TestEnv, SerialShell } from '../qemu/helpers.ts';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';
import type { QemuProvider } from '../../server/providers/qemu/qemu.provider.ts';

const env = new TestEnv('home');
let tb: TestBroker;
let provider: QemuProvider;
let shareRoot: string;
const shells: SerialShell[] = [];

async function shell(id: string): Promise<SerialShell> {
  const sh = await SerialShell.open((await provider.serial(id)).socket, 90_000);
  shells.push(sh);
  return sh;
}

before(async () => {
  ensureDemoImage();
  shareRoot = path.join(env.root, 'share');
  fs.mkdirSync(shareRoot);
  // The driver as the configured broker builds it: the holder's folder from DesktopSpec.home.
  provider = env.provider([env.host('h1', { capacity: { vcpu: 8, memoryMiB: 2048 } })], { homeShare: (spec) => spec.home?.path });
  tb = await startTestBroker({
    name: 'qemu-home',
    providers: [provider],
    config: {
      jobs: { enabled: true, inventoryIntervalMs: 1000 },
      shares: { list: [{ name: 'home', root: shareRoot, unc: '', guacdPath: '', createRoot: false }] },
    } as never,
  });
  await tb.addUser('alice');
  await tb.addUser('bob');
  tb.app.startJobs();
});

after(async () => {
  for (const s of shells) s.close();
  await tb?.close();
  await env.cleanup();
});

test('a user\'s files follow them across refreshed floating desktops (9p home in real VMs)', { timeout: 480_000 }, async () => {
  await tb.app.broker.pools.create(tb.pool({
    name: 'hp', provider: 'local', naming: 'hp-{n:02}', assignment: 'floating', persistence: 'refresh',
    size: { min: 0, max: 2, spare: 2 }, entitlements: { users: ['alice'], groups: [] },
    resources: { vcpu: 1, memoryMiB: 160, diskGiB: 1, network: 'default', graphics: 'vga' },
  }), SYSTEM_ACTOR);
  const readyIds = async () => (await tb.app.store.desktops.getMany(await tb.app.store.desktops.idsInState('hp', 'ready'))).map((d) => d.id);
  await waitFor(async () => (await readyIds()).length === 2, 180_000, 500);

  const alice = new ApiClient(tb.url);
  assert.equal((await alice.login('alice')).status, 200);
  const first = await alice.post('/me/pools/hp/request');
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const d1 = first.body.desktop.id as string;
  assert.equal((await provider.describe(d1))?.spec.home?.path, path.join(shareRoot, 'alice'));

  let sh = await shell(d1);
  assert.match(await sh.run('grep " /home/user " /proc/mounts'), /^home \/home\/user 9p /m);
  await sh.run('echo "written in the desktop" > /home/user/from-guest.txt && sync');
  assert.equal(await sh.run('cat /home/user/from-guest.txt'), 'written in the desktop');
  sh.close();
  assert.equal(fs.readFileSync(path.join(shareRoot, 'alice', 'from-guest.txt'), 'utf8'), 'written in the desktop\n');

  // log off: the desktop is refreshed (clean disk, no home); meanwhile the other one is ready
  assert.equal((await alice.post(`/me/sessions/${first.body.session.id}/logoff`)).status, 200);
  const second = await alice.post('/me/pools/hp/request');
  assert.equal(second.status, 200, JSON.stringify(second.body));
  const d2 = second.body.desktop.id as string;
  assert.notEqual(d2, d1, 'another desktop of the pool');
  sh = await shell(d2);
  assert.equal(await sh.run('cat /home/user/from-guest.txt'), 'written in the desktop');
  sh.close();

  // the files API sees it, with no desktop needed
  const list = await alice.get('/me/files');
  assert.deepEqual(list.body.entries.map((e: { name: string }) => e.name), ['from-guest.txt']);
  const down = await fetch(`${tb.url}/api/v1/me/files/content?path=from-guest.txt`, { headers: { cookie: alice.cookie } });
  assert.equal(await down.text(), 'written in the desktop\n');

  // the refreshed desktop came back without anyone's folder
  await waitFor(async () => (await readyIds()).includes(d1), 120_000, 500);
  assert.equal((await provider.describe(d1))?.spec.home, undefined);
  sh = await shell(d1);
  assert.equal(await sh.run('grep -c " /home/user " /proc/mounts; true'), '0');
  assert.equal(await sh.run('ls /home/user | wc -l'), '0');
  sh.close();
});

test('the next holder of a floating persistent desktop gets its disk but never the last holder\'s folder', { timeout: 480_000 }, async () => {
  await tb.app.broker.pools.create(tb.pool({
    name: 'pp', provider: 'local', naming: 'pp-{n:02}', assignment: 'floating', persistence: 'persistent',
    size: { min: 0, max: 1, spare: 0 }, entitlements: { users: ['alice', 'bob'], groups: [] },
    resources: { vcpu: 1, memoryMiB: 160, diskGiB: 1, network: 'default', graphics: 'vga' },
  }), SYSTEM_ACTOR);
  const store = tb.app.store;
  const lifecycle = tb.app.reconcilers!.lifecycle;

  // alice: a desktop built for her, with her folder
  const alice = new ApiClient(tb.url);
  assert.equal((await alice.login('alice')).status, 200);
  const first = await alice.post('/me/pools/pp/request');
  assert.equal(first.status, 202, JSON.stringify(first.body));
  const id = first.body.desktop.id as string;
  await waitFor(async () => (await store.desktops.get(id))?.state === 'in_use' && !lifecycle.isBusy(id), 180_000, 500);
  assert.equal((await provider.describe(id))?.spec.home?.path, path.join(shareRoot, 'alice'));
  let sh = await shell(id);
  assert.match(await sh.run('grep " /home/user " /proc/mounts'), /^home \/home\/user 9p /m);
  await sh.run('echo "alice private" > /home/user/alice-secret.txt && echo "on the desktop disk" > /data/kept.txt && sync');
  sh.close();
  assert.equal(fs.readFileSync(path.join(shareRoot, 'alice', 'alice-secret.txt'), 'utf8'), 'alice private\n');

  // logoff: persistent, so the desktop goes back to the pool with its disk, and without her folder
  assert.equal((await alice.post(`/me/sessions/${first.body.session.id}/logoff`)).status, 200);
  assert.equal((await store.desktops.get(id))?.state, 'ready');
  await waitFor(async () => {
    const d = await provider.describe(id);
    return d && !d.spec.home && (await provider.power(id)) === 'running' && !lifecycle.isBusy(id);
  }, 90_000, 500);
  const cleared = await tb.app.broker.audit.query({ action: 'desktop.home_cleared', target: id, limit: 10 });
  assert.equal(cleared.entries.length, 1);
  sh = await shell(id);
  assert.equal(await sh.run('grep -c " /home/user " /proc/mounts; true'), '0');
  assert.equal(await sh.run('ls -A /home/user | wc -l'), '0');
  assert.equal(await sh.run('cat /data/kept.txt'), 'on the desktop disk');
  sh.close();

  // bob: the pool's only desktop, the same one, with his folder
  const bob = new ApiClient(tb.url);
  assert.equal((await bob.login('bob')).status, 200);
  const second = await bob.post('/me/pools/pp/request');
  assert.equal(second.status, 200, JSON.stringify(second.body));
  assert.equal(second.body.desktop.id, id, 'the same desktop');
  assert.equal((await provider.describe(id))?.spec.home?.path, path.join(shareRoot, 'bob'));
  fs.writeFileSync(path.join(shareRoot, 'bob', 'bob-own.txt'), 'bob\'s file\n');
  sh = await shell(id);
  assert.match(await sh.run('grep " /home/user " /proc/mounts'), /^home \/home\/user 9p /m);
  assert.equal(await sh.run('ls -A /home/user'), 'bob-own.txt');
  assert.equal(await sh.run('cat /home/user/bob-own.txt'), 'bob\'s file');
  assert.match(await sh.run('cat /home/user/alice-secret.txt'), /No such file/);
  assert.equal(await sh.run('cat /data/kept.txt'), 'on the desktop disk', 'the persistent disk is kept');
  sh.close();
});
