// test-lane: light
// The two-host libvirt fixture (test/libvirt/daemon.ts): the veth pair between two namespaced
// daemons is set up inside THEIR network namespaces, right after they are spawned. CI once ran
// `ip link add` before unshare(2) had created the first namespace: the link landed on the
// machine itself and the host set-up failed with "Cannot find device vdia".
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { TestLibvirtd, linkHosts } from './daemon.ts';

const pexec = promisify(execFile);
const daemons: TestLibvirtd[] = [];
after(async () => {
  for (const d of daemons) await d.cleanup();
});

const rootHas = async (dev: string) => pexec('ip', ['link', 'show', 'dev', dev]).then(() => true, () => false);

test('hosts linked right after they are spawned get the veth pair in their own namespaces, none on the machine', { timeout: 120_000 }, async () => {
  assert.ok(fs.existsSync('/usr/sbin/libvirtd'), 'needs libvirtd');
  for (let round = 0; round < 3; round++) {
    const a = new TestLibvirtd(`ns-a${round}`, { listen: '10.231.79.1' });
    const b = new TestLibvirtd(`ns-b${round}`, { listen: '10.231.79.2' });
    daemons.push(a, b);
    a.spawn();
    // Held before it can unshare (exec of `unshare` has not got that far yet): the link set-up
    // must wait for the namespace, not act on the machine's.
    // It goes on once the set-up waits for the namespaces (a set-up that never waits acts while it is held).
    process.kill(a.pid!, 'SIGSTOP');
    b.spawn();
    const namespaced = a.namespaced.bind(a);
    a.namespaced = () => {
      process.kill(a.pid!, 'SIGCONT');
      return namespaced();
    };
    try {
      await linkHosts(a, b, '10.231.79.1', '10.231.79.2');
    } finally {
      process.kill(a.pid!, 'SIGCONT');
    }
    assert.notEqual(fs.readlinkSync(`/proc/${a.pid}/ns/net`), fs.readlinkSync('/proc/self/ns/net'));
    assert.equal(await rootHas('vdia'), false, 'vdia is on the machine');
    assert.equal(await rootHas('vdib'), false, 'vdib is on the machine');
    for (const [d, dev, addr] of [[a, 'vdia', '10.231.79.1'], [b, 'vdib', '10.231.79.2']] as const) {
      const { stdout } = await pexec('nsenter', [`--net=${d.netns}`, 'ip', '-o', 'addr', 'show', 'dev', dev]);
      assert.match(stdout, new RegExp(`inet ${addr.replace(/\./g, '\\.')}/24`));
    }
    // One host reaches the other's libvirtd over the link.
    const { stdout } = await pexec('nsenter', [`--net=${a.netns}`, 'virsh', '-c', 'qemu+tcp://10.231.79.2/system', 'uri'], { timeout: 30_000 });
    assert.match(stdout, /qemu\+tcp:\/\/10\.231\.79\.2\/system/);
    await a.cleanup();
    await b.cleanup();
    daemons.length = 0;
  }
});
