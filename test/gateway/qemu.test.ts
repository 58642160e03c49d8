// The gateway against QEMU's own VNC server (the console of our desktops), with a VNC
// password set over QMP. QEMU runs without a disk: SeaBIOS's text screen is enough.
// The QEMU process is stopped by pid in an after hook.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import sharp from 'sharp';
import { Status } from '../../server/gateway/protocol.ts';
import { grantedGateway } from './support/granted.ts';
import { GuacTestClient } from './support/guac-client.ts';
import { freePort } from './support/xvnc.ts';
import { stopChild } from '../support/process.ts';

const QEMU = '/usr/bin/qemu-system-x86_64';

async function qmp(socketPath: string, commands: object[]): Promise<void> {
  const s = net.connect(socketPath);
  let buf = '';
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  s.on('data', (d) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    wake?.();
  });
  const next = async () => {
    for (let k = 0; k < 50 && lines.length === 0; k++) await new Promise<void>((r) => ((wake = r), setTimeout(r, 100)));
    const l = lines.shift();
    assert.ok(l, 'QMP did not answer');
    return JSON.parse(l) as Record<string, unknown>;
  };
  try {
    await next(); // greeting
    for (const c of [{ execute: 'qmp_capabilities' }, ...commands]) {
      s.write(JSON.stringify(c) + '\n');
      let reply = await next();
      while ('event' in reply) reply = await next();
      assert.ok('return' in reply, JSON.stringify(reply));
    }
  } finally {
    s.destroy();
  }
}

it('streams a QEMU VNC console protected by a password', async (t) => {
  assert.ok(existsSync(QEMU), 'qemu-system-x86 is required (apt-get install qemu-system-x86)');
  const dir = mkdtempSync(path.join(tmpdir(), 'gw-qemu-'));
  const port = await freePort();
  const qmpPath = path.join(dir, 'qmp.sock');
  const child: ChildProcess = spawn(
    QEMU,
    ['-nodefaults', '-vga', 'std', '-display', 'none', '-m', '64', '-accel', 'tcg', '-vnc', `127.0.0.1:${port - 5900},password=on`, '-qmp', `unix:${qmpPath},server=on,wait=off`],
    { stdio: 'ignore' },
  );
  const g = await grantedGateway();
  const gw = g.gw;
  const clients: GuacTestClient[] = [];
  t.after(async () => {
    clients.forEach((c) => c.close());
    await gw.close();
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  });
  for (let i = 0; i < 100 && !existsSync(qmpPath); i++) await new Promise((r) => setTimeout(r, 50));
  await qmp(qmpPath, [{ execute: 'set_password', arguments: { protocol: 'vnc', password: 'q3mu-pw' } }]);

  const c = await GuacTestClient.connect(gw.endpoint);
  clients.push(c);
  await c.handshake({ password: 'q3mu-pw' }, g.vnc(port));
  const first = await c.frame();
  const size = first.instructions.find((i) => i.opcode === 'size' && i.args[0] === '0');
  assert.ok(size && Number(size.args[1]) > 0 && Number(size.args[2]) > 0, JSON.stringify(size));
  // SeaBIOS writes text: within a few frames some image shows up and decodes.
  let images = first.images;
  for (let i = 0; i < 10 && images.length === 0; i++) images = (await c.frame(true, 5000)).images;
  assert.ok(images.length > 0, 'no image from the QEMU console');
  const meta = await sharp(images[0]!.data).metadata();
  assert.ok((meta.width ?? 0) > 0);

  const bad = await GuacTestClient.connect(gw.endpoint);
  clients.push(bad);
  await bad.handshake({ password: 'wrong' }, g.vnc(port));
  const err = await bad.next((i) => i.opcode === 'error');
  assert.equal(Number(err.args[1]), Status.CLIENT_UNAUTHORIZED);
});
