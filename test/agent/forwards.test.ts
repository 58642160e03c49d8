// Guest forwards of the QEMU driver (guestForwards, docs/qemu.md): the guest reaches a host TCP
// service at a fixed address of its user network (e.g. the broker-run smbd), every guest
// connection gets a new host connection (an SMB client reconnecting after a live migration gets
// a fresh one), and the NIC stays restricted: nothing else on the host answers. After a live
// migration the target's agent port and forwards work (the broker's channel reconnects). One real VM
// (QEMU, TCG), stopped by pid (TestEnv.cleanup), and the test's TCP servers closed, on failure too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { ensureDemoImage, makeSpec, SerialShell, TestEnv, waitFor } from '../qemu/helpers.ts';
import type { QemuProvider } from '../../server/providers/qemu/qemu.provider.ts';
import { VdiChannel } from '../../server/agent/index.ts';
import pino from 'pino';

const env = new TestEnv('forwards');
let p: QemuProvider;
let sh: SerialShell;
let service: net.Server;
let other: net.Server;
const connections: number[] = [];
let otherHits = 0;
const spec = { ...makeSpec('fwd'), agentSecret: 'd5'.repeat(32) };
let ch: VdiChannel;

async function listen(s: net.Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return (s.address() as net.AddressInfo).port;
}

before(async () => {
  ensureDemoImage();
  let n = 0;
  // A line service: answers each connection with its own number.
  service = net.createServer((c) => {
    n += 1;
    const me = n;
    connections.push(me);
    c.on('error', () => undefined);
    c.once('data', (d: Buffer) => c.end(`conn=${me} got=${d.toString().trim()}\n`));
  });
  other = net.createServer((c) => {
    otherHits += 1;
    c.end('should not be reachable\n');
  });
  const port = await listen(service);
  await listen(other);
  p = env.provider([env.host('h1'), env.host('h2')], { guestForwards: [{ guestAddress: '10.0.2.100', guestPort: 445, host: '127.0.0.1', port }] });
  await p.create(spec);
  await p.start(spec.id);
  ch = new VdiChannel({
    desktop: spec.id, secret: spec.agentSecret, log: pino({ level: 'silent' }), drop: () => undefined,
    connect: async () => (await p.agentChannels(spec.id)).vdi!(),
  });
  ch.start();
  sh = await SerialShell.open((await p.serial(spec.id)).socket, 240_000);
  await waitFor(async () => ((await sh.run('cat /run/ready 2>/dev/null', 10_000)).startsWith('VDI-READY') ? true : undefined), 120_000, 'guest up');
});

after(async () => {
  ch?.close();
  sh?.close();
  await env.cleanup();
  service?.close();
  other?.close();
});

test('the guest reaches the forwarded service, with a new host connection per guest connection', async () => {
  const first = await sh.run('echo one | nc 10.0.2.100 445', 60_000);
  const second = await sh.run('echo two | nc 10.0.2.100 445', 60_000);
  assert.match(first, /^conn=(\d+) got=one$/);
  assert.match(second, /^conn=(\d+) got=two$/);
  assert.notEqual(first.split(' ')[0], second.split(' ')[0], 'two host connections');
  assert.equal(connections.length, 2);
});

test('nothing else on the host is reachable from the guest (restricted user network)', async () => {
  const port = (other.address() as net.AddressInfo).port;
  const out = await sh.run(`echo x | timeout 5 nc 10.0.2.2 ${port}; echo rc=$?`, 60_000);
  assert.doesNotMatch(out, /should not be reachable/);
  assert.equal(otherHits, 0);
});

test('after a live migration the agent port and the forward work on the target host', async () => {
  const hello = await ch.waitHello(120_000);
  const r = await p.migrate(spec.id, 'h2');
  assert.equal(r.toHost, 'h2');
  // The channel saw the source's socket close and reconnects to the target's; the guest did not
  // reboot, so the agent proves itself again with the same boot id.
  const again = await waitFor(() => (ch.hello && ch.hello !== hello ? ch.hello : undefined), 60_000, 'hello on the target');
  assert.equal(again.boot, hello.boot);
  const ping = await ch.request('ping', {}, 30_000);
  assert.equal(ping.ok, true);
  sh.close();
  sh = await SerialShell.open((await p.serial(spec.id)).socket, 60_000);
  const before = connections.length;
  assert.match(await sh.run('echo three | nc 10.0.2.100 445', 60_000), /^conn=\d+ got=three$/);
  assert.equal(connections.length, before + 1);
});
