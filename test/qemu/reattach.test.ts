import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { QemuProvider } from '../../server/providers/qemu/qemu.provider.ts';
import { vncHello } from '../../server/providers/qemu/machine.ts';
import { IMAGE_ROOT, SerialShell, TestEnv, ensureDemoImage, makeSpec, processAlive, waitFor } from './helpers.ts';

describe('qemu driver: a new provider instance re-attaches to running desktops', () => {
  let env: TestEnv;
  let first: QemuProvider;
  const running = makeSpec('ra');
  const defined = makeSpec('rd');

  before(() => {
    ensureDemoImage();
    env = new TestEnv('reattach');
    first = env.provider([env.host('h1'), env.host('h2')], { placement: 'depth' });
  });
  after(async () => {
    await env.cleanup();
  });

  test('a desktop started by a broker process that exited keeps running and is found', async () => {
    const spec = makeSpec('rx');
    const fixture = fileURLToPath(new URL('./fixtures/start-desktop.ts', import.meta.url));
    const out = execFileSync(process.execPath, ['--import', 'tsx', fixture, JSON.stringify({ hosts: [env.host('h2')], imageRoot: IMAGE_ROOT, spec })],
      { encoding: 'utf8', timeout: 120_000 });
    const { pid } = JSON.parse(out) as { pid: number };
    assert.ok(processAlive(pid), 'QEMU outlives the broker process that started it');
    const p = env.provider([env.host('h1'), env.host('h2')]);
    assert.deepEqual((await p.inventory()).map((i) => [i.desktopId, i.host, i.power, i.pid]), [[spec.id, 'h2', 'running', pid]]);
    const c = await p.console(spec.id);
    assert.equal((await vncHello(c.host, c.port)).version, 'RFB 003.008');
    await p.destroy(spec.id);
    assert.equal(processAlive(pid), false);
  });

  test('inventory of a new instance lists running and stopped desktops; nothing is killed', async () => {
    await first.create(running);
    await first.create(defined);
    await first.start(running.id);
    const pid = await first.pid(running.id);
    const c1 = await first.console(running.id);
    await first.close();

    const second = env.provider([env.host('h1'), env.host('h2')], { placement: 'depth' });
    const inv = await second.inventory();
    const byId = new Map(inv.map((i) => [i.desktopId, i]));
    assert.equal(inv.length, 2);
    assert.equal(byId.get(running.id)?.power, 'running');
    assert.equal(byId.get(running.id)?.pid, pid);
    assert.equal(byId.get(running.id)?.host, 'h1');
    assert.equal(byId.get(defined.id)?.power, 'stopped');
    assert.equal(byId.get(defined.id)?.host, 'h1', 'depth-first placement fills h1 first');
    assert.equal(await second.power(running.id), 'running');
    assert.equal(await second.pid(running.id), pid);

    // The new instance sets a fresh console password (none is kept on disk) on the same display.
    const c2 = await second.console(running.id);
    assert.equal(c2.port, c1.port);
    assert.notEqual(c2.password, c1.password);
    assert.equal((await vncHello(c2.host, c2.port)).version, 'RFB 003.008');
    assert.ok(processAlive(pid!));
    const state = fs.readFileSync(path.join((await second.describe(running.id))!.dir, 'state.json'), 'utf8');
    assert.ok(!state.includes(c2.password!), 'console password not written to disk');

    // start() on the running desktop is a no-op that keeps the process.
    await second.start(running.id);
    assert.equal(await second.pid(running.id), pid);
    const sh = await SerialShell.open((await second.serial(running.id)).socket);
    assert.equal(await sh.run('cat /run/vdi-name'), running.name);
    // Booted without an agent secret (a driver test), the guest's agent says so in its own log
    // and idles: nothing on the console (the shell's output) and no respawn every 30 s.
    await waitFor(async () => (await sh.run('cat /run/vdi/agent.log 2>/dev/null')).includes('no agent secret or desktop id: idle until the next boot') || undefined, 30_000, 'the agent idles');
    assert.equal(await sh.run('grep -c "no agent secret" /run/vdi/agent.log'), '1');
    assert.equal(await sh.run('dmesg | grep -c "vdi-agent" || true'), '0');
    sh.close();
  });

  test('orphan overlays and processes are reported, and destroy cleans them up', async () => {
    const second = env.provider([env.host('h1'), env.host('h2')]);
    // An overlay without a state file (a crash in the middle of a create by some older broker).
    const orphanDir = path.join(env.root, 'h2', 'desktops', 'lost-overlay');
    fs.mkdirSync(orphanDir, { recursive: true });
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', path.join(IMAGE_ROOT, 'demo/1/disk.qcow2'), '-F', 'qcow2', path.join(orphanDir, 'disk.qcow2')]);
    // A running QEMU whose state file is gone.
    const pid = await second.pid(running.id);
    fs.rmSync(path.join((await second.describe(running.id))!.dir, 'state.json'));

    const inv = await second.inventory();
    const byId = new Map(inv.map((i) => [i.desktopId, i]));
    assert.equal(byId.get('lost-overlay')?.orphan, 'overlay');
    assert.equal(byId.get('lost-overlay')?.host, 'h2');
    assert.equal(byId.get(running.id)?.orphan, 'process');
    assert.equal(byId.get(running.id)?.pid, pid);
    assert.equal(byId.get(defined.id)?.orphan, undefined);

    await second.destroy(running.id);
    await second.destroy('lost-overlay');
    assert.equal(processAlive(pid!), false);
    assert.deepEqual((await second.inventory()).map((i) => i.desktopId), [defined.id]);
    await second.destroy(defined.id);
    assert.deepEqual(await second.inventory(), []);
  });
});
