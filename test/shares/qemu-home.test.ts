// End to end with real VMs (QEMU, TCG where KVM fails): a user's folder follows them across
// non-persistent desktops. alice gets a ready desktop (restarted with her folder as 9p "home"),
// writes a file into /home/user over the serial console, logs off; the desktop is refreshed
// without any home; she logs in again, gets the pool's other desktop, and her file is there,
// and in GET /me/files. Every QEMU process is stopped by pid (TestEnv.cleanup), also on failure.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ensureDemoImage, TestEnv, SerialShell } from '../qemu/helpers.ts';
import { startTestBroker, ApiClient, waitFor, type TestBroker } from '../support/harness.ts';
import { SYSTEM_ACTOR } from '../../server/broker/index.ts';

const env = new TestEnv('home');
let tb: TestBroker | undefined;
const shells: SerialShell[] = [];

after(async () => {
  for (const s of shells) s.close();
  await tb?.close();
  await env.cleanup();
});

test('a user\'s files follow them across refreshed floating desktops (9p home in real VMs)', { timeout: 480_000 }, async () => {
  ensureDemoImage();
  const shareRoot = path.join(env.root, 'share');
  fs.mkdirSync(shareRoot);
  // The driver as the configured broker builds it: the holder's folder from DesktopSpec.home.
  const provider = env.provider([env.host('h1', { capacity: { vcpu: 8, memoryMiB: 2048 } })], { homeShare: (spec) => spec.home?.path });
  tb = await startTestBroker({
    name: 'qemu-home',
    providers: [provider],
    config: {
      jobs: { enabled: true, inventoryIntervalMs: 1000 },
      shares: { list: [{ name: 'home', root: shareRoot, unc: '', guacdPath: '', createRoot: false }] },
    } as never,
  });
  await tb.addUser('alice');
  await tb.app.broker.pools.create(tb.pool({
    name: 'hp', provider: 'local', naming: 'hp-{n:02}', assignment: 'floating', persistence: 'refresh',
    size: { min: 0, max: 2, spare: 2 }, entitlements: { users: ['alice'], groups: [] },
    resources: { vcpu: 1, memoryMiB: 160, diskGiB: 1, network: 'default', graphics: 'vga' },
  }), SYSTEM_ACTOR);
  tb.app.startJobs();
  const readyIds = async () => (await tb!.app.store.desktops.getMany(await tb!.app.store.desktops.idsInState('hp', 'ready'))).map((d) => d.id);
  await waitFor(async () => (await readyIds()).length === 2, 180_000, 500);

  const alice = new ApiClient(tb.url);
  assert.equal((await alice.login('alice')).status, 200);
  const first = await alice.post('/me/pools/hp/request');
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const d1 = first.body.desktop.id as string;
  assert.equal((await provider.describe(d1))?.spec.home?.path, path.join(shareRoot, 'alice'));

  let sh = await SerialShell.open((await provider.serial(d1)).socket, 90_000);
  shells.push(sh);
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
  sh = await SerialShell.open((await provider.serial(d2)).socket, 90_000);
  shells.push(sh);
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
  sh = await SerialShell.open((await provider.serial(d1)).socket, 90_000);
  shells.push(sh);
  assert.equal(await sh.run('grep -c " /home/user " /proc/mounts; true'), '0');
  assert.equal(await sh.run('ls /home/user | wc -l'), '0');
  sh.close();
});
