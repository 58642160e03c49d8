import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { QemuProvider } from '../../server/providers/qemu/qemu.provider.ts';
import { desktopUuid, vncHello } from '../../server/providers/qemu/machine.ts';
import { SerialShell, TestEnv, ensureDemoImage, makeSpec, processAlive, vgaTextScreen, waitFor } from './helpers.ts';

describe('qemu driver: desktops boot with their own identity and a password-protected console', () => {
  let env: TestEnv;
  let p: QemuProvider;
  const specs = [makeSpec('desk'), makeSpec('desk')];
  const shells: SerialShell[] = [];

  before(() => {
    ensureDemoImage();
    env = new TestEnv('desktops');
    p = env.provider([env.host('h1'), env.host('h2')], { placement: 'depth' });
  });
  after(async () => {
    for (const s of shells) s.close();
    await env.cleanup();
  });

  test('two desktops boot; each console answers RFB 003.008 and requires the VNC password', async () => {
    for (const s of specs) assert.deepEqual(await p.create(s), { host: 'h1' });
    assert.deepEqual(await p.create(specs[0]!), { host: 'h1' }, 'create is idempotent');
    await Promise.all(specs.map((s) => p.start(s.id)));
    const consoles = await Promise.all(specs.map((s) => p.console(s.id)));
    assert.notEqual(consoles[0]!.port, consoles[1]!.port);
    assert.notEqual(consoles[0]!.password, consoles[1]!.password);
    for (const c of consoles) {
      assert.equal(c.protocol, 'vnc');
      assert.equal(c.host, '127.0.0.1');
      assert.ok(c.password && c.password.length >= 8);
      const hello = await vncHello(c.host, c.port);
      assert.equal(hello.version, 'RFB 003.008');
      assert.ok(hello.securityTypes.includes(2), 'VNC authentication offered');
      assert.ok(!hello.securityTypes.includes(1), 'security type None not offered');
    }
  });

  test('each guest knows its own name, MAC and UUID', async () => {
    for (const s of specs) {
      const sh = await SerialShell.open((await p.serial(s.id)).socket);
      shells.push(sh);
      assert.equal(await sh.run('cat /run/vdi-name'), s.name);
      assert.equal(await sh.run('hostname'), s.name);
      assert.equal(await sh.run('cat /sys/class/net/eth0/address'), s.mac);
      assert.equal(await sh.run('cat /sys/class/dmi/id/product_uuid'), desktopUuid(s.id));
      assert.equal(await sh.run('cat /sys/firmware/qemu_fw_cfg/by_name/opt/vdi/name/raw'), s.name);
    }
    assert.equal(await p.power(specs[0]!.id), 'running');
  });

  test('the VGA console shows the text-mode desktop with its own name, in its pixels', async () => {
    const file = path.join(env.root, 'screen.png');
    await p.screenshot(specs[0]!.id, file);
    assert.equal(fs.readFileSync(file).subarray(1, 4).toString(), 'PNG');
    for (const [i, s] of specs.entries()) {
      const qmp = path.join((await p.describe(s.id))!.dir, 'qmp.sock');
      const nameRow = `  Desktop : ${s.name}`;
      // The banner is drawn by the guest's tty1 desktop once it is up.
      const screen = await waitFor(async () => {
        const v = await vgaTextScreen(qmp, path.join(env.root, `screen-${i}.ppm`));
        return v.rows.some((r) => r.trimEnd() === nameRow) ? v : undefined;
      }, 30_000, `"${nameRow}" on the VGA console`);
      assert.deepEqual([screen.width, screen.height], [720, 400], '80x25 text mode, 9x16 cells');
      assert.ok(screen.rows.some((r) => r.trimEnd() === '|  vdi-broker demo desktop                                 |'), screen.rows.join('\n'));
      // The pixels are that text: at most the (blinking) cursor cell differs.
      assert.ok(screen.mismatches <= 1, `${screen.mismatches} cells drawn unlike their text`);
      assert.ok(screen.conflicts <= 1, `${screen.conflicts} cells drawn unlike their character elsewhere`);
      assert.ok(!screen.rows.some((r) => r.includes(specs[1 - i]!.name)), 'not the other desktop\'s name');
    }
  });

  for (const hard of [false, true]) {
    test(`${hard ? 'hard' : 'soft'} reboot restarts the guest`, async () => {
      const s = specs[1]!;
      const sh = shells[1]!;
      const pid = await p.pid(s.id);
      const bootId = await sh.run('cat /proc/sys/kernel/random/boot_id');
      await p.reboot(s.id, { hard });
      const next = await waitFor(async () => {
        const v = await sh.run('cat /run/ready >/dev/null && cat /proc/sys/kernel/random/boot_id', 3000);
        return /^[0-9a-f-]{36}$/.test(v) && v !== bootId ? v : undefined;
      }, 60_000, 'guest back after reboot');
      assert.notEqual(next, bootId);
      assert.equal(await p.pid(s.id), pid, 'same QEMU process');
      const skew = Math.abs(Number(await sh.run('date -u +%s')) - Date.now() / 1000);
      assert.ok(skew < 5, `guest clock within 5 s of the host (${skew.toFixed(1)} s)`);
    });
  }

  test('stop powers the guest off through ACPI, before the kill timeout', async () => {
    const s = specs[0]!;
    const pid = await p.pid(s.id);
    assert.ok(pid);
    const t0 = Date.now();
    await p.stop(s.id, { timeoutMs: 30_000 });
    assert.ok(Date.now() - t0 < 25_000, 'guest powered itself off');
    assert.equal(processAlive(pid!), false);
    assert.match(fs.readFileSync((await p.serial(s.id)).log, 'utf8'), /VDI-POWEROFF/);
    assert.equal(await p.power(s.id), 'stopped');
    await p.stop(s.id); // idempotent
  });

  test('stop kills a guest that ignores the power button once the timeout is over', async () => {
    const s = specs[1]!;
    const pid = await p.pid(s.id);
    await shells[1]!.run('kill $(cat /run/acpid.pid)');
    const t0 = Date.now();
    await p.stop(s.id, { timeoutMs: 1500 });
    assert.ok(Date.now() - t0 < 10_000);
    assert.equal(processAlive(pid!), false);
    assert.equal(await p.power(s.id), 'stopped');
  });

  test('destroy removes process and files; destroying again succeeds', async () => {
    const s = specs[1]!;
    await p.start(s.id);
    const info = await p.describe(s.id);
    const pid = await p.pid(s.id);
    assert.ok(pid && processAlive(pid));
    await p.destroy(s.id);
    assert.equal(processAlive(pid!), false);
    assert.equal(fs.existsSync(info!.dir), false);
    assert.equal(await p.power(s.id), 'missing');
    await p.destroy(s.id);
  });
});
