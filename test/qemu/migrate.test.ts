import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { QemuProvider } from '../../server/providers/qemu/qemu.provider.ts';
import { vncHello } from '../../server/providers/qemu/machine.ts';
import { SerialShell, TestEnv, ensureDemoImage, makeSpec, processAlive, waitFor } from './helpers.ts';

describe('qemu driver: live migration between two hosts', () => {
  let env: TestEnv;
  let p: QemuProvider;
  const spec = makeSpec('mig', { host: 'h1' }, { memoryMiB: 256 });

  before(() => {
    ensureDemoImage();
    env = new TestEnv('mig');
    p = env.provider([env.host('h1'), env.host('h2', { capacity: { vcpu: 2, memoryMiB: 512 } }), env.host('tiny', { capacity: { vcpu: 1, memoryMiB: 128 } })]);
  });
  after(async () => {
    await env.cleanup();
  });

  test('the guest keeps running on the new host; console moves; the source process is gone', async () => {
    assert.deepEqual(await p.create(spec), { host: 'h1' });
    await p.start(spec.id);
    const src = await p.describe(spec.id);
    const srcPid = await p.pid(spec.id);
    let sh = await SerialShell.open((await p.serial(spec.id)).socket);
    await sh.run('echo moved-with-me > /data/before-migration; sync');
    const bootId = await sh.run('cat /proc/sys/kernel/random/boot_id');
    const c1 = Number(await sh.run('cat /run/counter'));
    sh.close();

    await assert.rejects(p.migrate(spec.id, 'tiny'), /Not enough capacity/);
    const r = await p.migrate(spec.id, 'h2');
    assert.equal(r.fromHost, 'h1');
    assert.equal(r.toHost, 'h2');
    assert.ok(r.durationMs > 0);

    assert.equal(processAlive(srcPid!), false, 'source QEMU is gone');
    assert.equal(fs.existsSync(src!.dir), false, 'source files are gone');
    const dst = await p.describe(spec.id);
    assert.equal(dst!.host, 'h2');
    assert.ok(dst!.dir.includes(`${env.root}/h2/`));
    assert.equal(await p.power(spec.id), 'running');
    const c = await p.console(spec.id);
    assert.equal((await vncHello(c.host, c.port)).version, 'RFB 003.008');
    assert.deepEqual((await p.inventory()).map((i) => [i.desktopId, i.host, i.power]), [[spec.id, 'h2', 'running']]);

    sh = await SerialShell.open((await p.serial(spec.id)).socket);
    assert.equal(await sh.run('cat /proc/sys/kernel/random/boot_id'), bootId, 'no reboot');
    assert.equal(await sh.run('cat /data/before-migration'), 'moved-with-me');
    await waitFor(async () => (Number(await sh.run('cat /run/counter')) > c1 ? true : undefined), 10_000, 'counter to keep increasing');
    await sh.run('echo after > /data/after-migration; sync');
    sh.close();
    console.log(`# migration of a 256 MiB desktop: ${r.durationMs} ms, ${r.transferredBytes ?? 0} bytes`);
  });

  test('a full clone migrates with its whole disk; migrating a stopped desktop moves its files', async () => {
    const full = makeSpec('migfull', { host: 'h1', clone: 'full' });
    await p.create(full);
    await p.start(full.id);
    let sh = await SerialShell.open((await p.serial(full.id)).socket);
    await sh.run('echo full-clone > /data/mine; sync');
    sh.close();
    const r = await p.migrate(full.id, 'h2');
    assert.equal(r.toHost, 'h2');
    sh = await SerialShell.open((await p.serial(full.id)).socket);
    assert.equal(await sh.run('cat /data/mine'), 'full-clone');
    assert.equal(await sh.run('cat /data/README | head -1'), 'This is the demo golden image\'s data disk (/data). Changes written here live in the');
    sh.close();
    await p.stop(full.id, { timeoutMs: 20_000 });
    const back = await p.migrate(full.id, 'h1');
    assert.equal(back.toHost, 'h1');
    await p.start(full.id);
    sh = await SerialShell.open((await p.serial(full.id)).socket);
    assert.equal(await sh.run('cat /data/mine'), 'full-clone');
    sh.close();
    await p.destroy(full.id);
  });
});
