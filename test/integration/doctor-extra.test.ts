// The doctor's host clocks, declared GPUs and guest IP conflicts (docs/doctor.md).
// - clock.host: two libvirt hosts reached over qemu+ssh (sshds of the test's own on loopback);
//   one of them runs commands with a PATH whose `date` is 10 minutes ahead (sshd SetEnv), the
//   real clock offset such a host would have. A qemu:///system host is this machine (not measured),
//   a qemu+tls host cannot be measured (skipped).
// - resources.gpu: a private libvirtd (test/libvirt/daemon.ts) with domains that declare a PCI
//   passthrough device this machine lacks, one it has (from /sys/bus/pci/devices) and a vGPU
//   (mdev) that does not exist; the same devices through libvirt's node devices (remote path).
// - identity.ip: two libvirt guests (the qga-only image, plus the e1000 driver appended to its
//   initramfs) on tap NICs in their libvirtd's own network namespace, each given addresses inside
//   the guest (guest-exec); qemu-guest-agent reports them through libvirt: one IP on both guests,
//   one on the host's console address. Also the parsing and conflict rules on `virsh domifaddr`
//   output, and a running domain whose guest reports nothing.
// Every process started here (sshd, libvirtd, QEMU) is stopped by pid, also on failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Store, createRedis, connectRedis } from '../../server/store/index.ts';
import { ProviderRegistry } from '../../server/providers/index.ts';
import { createLogger } from '../../server/observability/index.ts';
import { runDoctor, doctorContext, type DoctorReport, type CheckResult } from '../../server/doctor/index.ts';
import { HOST_CLOCK_COMMAND, parseHostDate, roundTripOffset, CLOCK } from '../../server/doctor/clock.ts';
import { hostRoute } from '../../server/doctor/host-shell.ts';
import { declaredDevices, localPci, remotePci, remoteMdev, pciAddress } from '../../server/doctor/gpu.ts';
import { parseDomifaddr, privateNatMacs, ipConflicts, ownOnly, type GuestAddress } from '../../server/doctor/addresses.ts';
import { Virsh } from '../../server/providers/libvirt/virsh.ts';
import type { Config } from '../../server/config/index.ts';
import { testConfig, waitFor } from '../support/harness.ts';
import { uniquePrefix, dropPrefix, freePort, SHARED_REDIS_URL } from '../support/redis.ts';
import { TestLibvirtd } from '../libvirt/daemon.ts';
import { buildQgaImage } from '../libvirt/agent-guest.ts';
import { startSshd, type TestSshd } from '../libvirt/sshd.ts';

const pexec = promisify(execFile);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vdi-doctor-extra-'));
const prefix = uniquePrefix('doctor-extra');
const HAVE_SSHD = fs.existsSync('/usr/sbin/sshd') && process.getuid?.() === 0;
const HAVE_LIBVIRT = fs.existsSync('/usr/sbin/libvirtd') && fs.existsSync('/usr/bin/qemu-system-x86_64') && process.getuid?.() === 0;
const AHEAD_MS = 600_000;

const redis = createRedis({ url: SHARED_REDIS_URL, commandTimeoutMs: 10_000, logger: createLogger('silent') });
let store: Store;
const sshds: TestSshd[] = [];
let libvirtd: TestLibvirtd | undefined;
let guestsd: TestLibvirtd | undefined;

before(async () => {
  assert.ok(await connectRedis(redis, 5000), 'Redis at 127.0.0.1:6379');
  store = new Store(redis, { keyPrefix: prefix, macs: { prefix: '0e:44:01', size: 1000 }, deletedRetentionSeconds: 60, auditMaxEntries: 100 });
});

after(async () => {
  for (const d of sshds) await d.stop();
  await libvirtd?.cleanup();
  await guestsd?.cleanup();
  await dropPrefix(SHARED_REDIS_URL, prefix);
  redis.disconnect();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** An sshd of the test's own (loopback, key only); `pathFirst` is put first in its sessions' PATH. */
async function sshd(name: string, pathFirst?: string): Promise<{ port: number; key: string; knownHosts: string }> {
  const d = await startSshd(path.join(tmp, name), { pathFirst });
  sshds.push(d);
  return d;
}

function doctor(config: Config, timeoutMs = 8000) {
  return doctorContext({ config, store, providers: new ProviderRegistry(), mode: 'cli', timeoutMs });
}

const find = (r: DoctorReport, id: string, target?: string): CheckResult[] => r.checks.filter((c) => c.id === id && (target === undefined || c.target === target));

test('clock.host: the offset arithmetic, the date formats hosts print, and how each libvirt URI is reached', () => {
  // Sent at 1000, answered at 1040 with the host's 61020: the host is 60000 ms ahead, ±20 ms.
  assert.deepEqual(roundTripOffset(1000, 1040, 61_020), { offsetMs: 60_000, rttMs: 40 });
  assert.deepEqual(roundTripOffset(5000, 5010, 4005), { offsetMs: -1000, rttMs: 10 });
  assert.deepEqual(parseHostDate('1796139485396079170'), { ms: 1796139485396, resolutionMs: 1 });
  assert.deepEqual(parseHostDate('1796139485N'), { ms: 1796139485500, resolutionMs: 500 }, 'a date without %N: whole seconds');
  assert.equal(parseHostDate('Tue Dec  1 15:37:11 UTC 2026'), undefined);
  assert.equal(hostRoute('qemu:///system'), 'local');
  assert.equal(hostRoute('qemu+unix:///system?socket=/run/x/libvirt-sock'), 'local');
  assert.equal(hostRoute('qemu+ssh://root@kvm1.example/system'), 'ssh');
  assert.equal(hostRoute('qemu+libssh2://kvm1:2222/system'), 'ssh');
  assert.equal(hostRoute('qemu+tls://kvm2.example/system'), 'none');
  assert.equal(hostRoute('qemu+tcp://10.0.0.5/system'), 'none');
  assert.match(HOST_CLOCK_COMMAND, /date \+%s%N/);
});

test('clock.host: a libvirt host over ssh whose clock is 10 min ahead fails with the measured offset; an honest one is ok; one refusing ssh warns; qemu:///system is this machine; qemu+tls is skipped', { timeout: 60_000 }, async () => {
  assert.ok(HAVE_SSHD, 'needs sshd and root');
  const fake = path.join(tmp, 'ahead-bin');
  fs.mkdirSync(fake);
  fs.writeFileSync(path.join(fake, 'date'), `#!/bin/sh\nexec /bin/date -d '+${AHEAD_MS / 1000} seconds' "$@"\n`, { mode: 0o755 });
  const ahead = await sshd('sshd-ahead', fake);
  const honest = await sshd('sshd-honest');
  const host = (name: string, s: { port: number; key: string; knownHosts: string }) => ({ name, uri: `qemu+ssh://root@127.0.0.1:${s.port}/system`, consoleAddress: '127.0.0.1', storagePool: 'vdi', sshKey: s.key, sshKnownHosts: s.knownHosts });
  const config = testConfig(prefix, {
    providers: [{ name: 'kvm', kind: 'libvirt', hosts: [
      host('ahead', ahead), host('honest', honest),
      // Nothing listens on this port: ssh is refused.
      { name: 'down', uri: `qemu+ssh://root@127.0.0.1:${await freePort()}/system`, consoleAddress: '127.0.0.1', storagePool: 'vdi', sshKey: honest.key, sshKnownHosts: honest.knownHosts },
      { name: 'here', uri: 'qemu:///system', consoleAddress: '127.0.0.1', storagePool: 'vdi' },
      { name: 'tls', uri: 'qemu+tls://127.0.0.2/system', consoleAddress: '127.0.0.2', storagePool: 'vdi' },
    ] }] as never,
  });
  const t0 = Date.now();
  const r = await runDoctor(doctor(config), { only: ['clock'] });
  assert.ok(Date.now() - t0 < 10_000, `the clock checks run in seconds (${Date.now() - t0} ms)`);

  const a = find(r, 'clock.host', 'kvm/ahead')[0];
  assert.equal(a?.status, 'fail', JSON.stringify(a));
  const ad = a!.details as { offsetMs: number; offsetFromBrokerMs: number; rttMs: number; measured: boolean; via: string };
  assert.equal(ad.via, 'ssh');
  assert.equal(ad.measured, true);
  // The fake date keeps the real nanoseconds: the measurement is exact up to half the round trip.
  assert.ok(Math.abs(ad.offsetFromBrokerMs - AHEAD_MS) <= ad.rttMs / 2 + 5, `measured ${ad.offsetFromBrokerMs} ms (rtt ${ad.rttMs} ms), injected ${AHEAD_MS} ms`);
  assert.ok(ad.offsetMs > CLOCK.hostFailMs);
  assert.match(a!.message, /10 s|600 s/);
  assert.match(a!.message, /ahead of Redis/);
  assert.match(a!.message, /Kerberos/);
  assert.match(a!.fix!, /NTP/);

  const h = find(r, 'clock.host', 'kvm/honest')[0];
  assert.equal(h?.status, 'ok', JSON.stringify(h));
  assert.ok(Math.abs((h!.details as { offsetFromBrokerMs: number }).offsetFromBrokerMs) < CLOCK.hostWarnMs, JSON.stringify(h!.details));

  const down = find(r, 'clock.host', 'kvm/down')[0];
  assert.equal(down?.status, 'warn', JSON.stringify(down));
  assert.match(down!.message, /could not read the host's clock over ssh: ssh to the host failed .*Connection refused/);
  assert.match(down!.fix!, /ssh with the same key libvirt uses/);

  const here = find(r, 'clock.host', 'kvm/here')[0];
  assert.equal(here?.status, 'ok');
  assert.deepEqual({ sameMachine: here!.details!.sameMachine, measured: here!.details!.measured }, { sameMachine: true, measured: false });
  assert.match(here!.message, /this machine.*not measured separately/);

  const tls = find(r, 'clock.host', 'kvm/tls')[0];
  assert.equal(tls?.status, 'skipped');
  assert.match(tls!.message, /cannot be measured/);
});

test('resources.gpu: which devices a domain declares (the host side of <hostdev>, not the guest address)', () => {
  const xml = `<domain><devices>
    <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x7f' slot='0x1f' function='0x7'/></source><address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/></hostdev>
    <hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'><source><address uuid='C2177883-F1BB-47F0-914D-32A22E3A8804'/></source></hostdev>
    <interface type='user'><mac address='52:54:00:00:00:01'/></interface>
  </devices></domain>`;
  assert.deepEqual(declaredDevices(xml), [
    { type: 'pci', address: '0000:7f:1f.7', managed: true },
    { type: 'mdev', uuid: 'c2177883-f1bb-47f0-914d-32a22e3a8804', model: 'vfio-pci' },
  ]);
  assert.equal(pciAddress('0x0001', '0x0a', '0x1b', '0x3'), '0001:0a:1b.3');
});

/** A PCI address this machine does not have. */
function missingPci(): string {
  for (let bus = 0xfe; bus > 0x10; bus--) {
    const a = `0000:${bus.toString(16)}:1f.7`;
    if (!fs.existsSync(`/sys/bus/pci/devices/${a}`)) return a;
  }
  throw new Error('no free PCI address');
}

/** A PCI device this machine has: a display controller (a GPU) when there is one. */
function presentPci(): string {
  const all = fs.readdirSync('/sys/bus/pci/devices').sort();
  return all.find((a) => /^0x03/.test(fs.readFileSync(`/sys/bus/pci/devices/${a}/class`, 'utf8'))) ?? all[0]!;
}

const hostdevXml = (name: string, dev: string) => `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>${dev}</devices></domain>`;
const pciHostdev = (addr: string) => {
  const [dom, bus, slotFn] = addr.split(':');
  const [slot, fn] = slotFn!.split('.');
  return `<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x${dom}' bus='0x${bus}' slot='0x${slot}' function='0x${fn}'/></source></hostdev>`;
};
const MISSING_MDEV = 'c2177883-f1bb-47f0-914d-32a22e3a8804';

test('resources.gpu: a declared GPU this host lacks fails with a plain fix, one it has is present, a missing vGPU fails; the same answers through libvirt node devices; identity.ip on a running domain that reports nothing', { timeout: 180_000 }, async () => {
  assert.ok(HAVE_LIBVIRT, 'needs libvirtd, qemu and root');
  libvirtd = new TestLibvirtd('doctor-gpu');
  await libvirtd.start();
  const missing = missingPci();
  const present = presentPci();
  assert.equal(localPci(missing).present, false);
  assert.equal(localPci(present).present, true);
  const define = async (name: string, dev: string) => {
    const f = path.join(tmp, `${name}.xml`);
    fs.writeFileSync(f, hostdevXml(name, dev));
    await libvirtd!.virsh('define', f);
  };
  await define('gpu-missing', pciHostdev(missing));
  await define('gpu-present', pciHostdev(present));
  await define('vgpu-missing', `<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='${MISSING_MDEV}'/></source></hostdev>`);
  // A plain VM without any device of the host, running (QEMU without an OS idles in its BIOS).
  await define('plain', "<interface type='user'><mac address='52:54:00:aa:bb:01'/></interface>");
  await libvirtd.virsh('start', 'plain');

  const hostCfg = { name: 'h1', uri: libvirtd.uri, consoleAddress: '127.0.0.1', storagePool: 'vdi' };
  const config = testConfig(prefix, { providers: [{ name: 'kvm', kind: 'libvirt', hosts: [hostCfg] }] as never });
  const t0 = Date.now();
  const r = await runDoctor(doctor(config), { only: ['resources', 'identity'] });
  assert.ok(Date.now() - t0 < 15_000, `resources and identity run in seconds (${Date.now() - t0} ms)`);

  const gone = find(r, 'resources.gpu', 'gpu-missing (kvm/h1)')[0];
  assert.equal(gone?.status, 'fail', JSON.stringify(find(r, 'resources.gpu')));
  assert.match(gone!.message, new RegExp(`declares PCI device ${missing.replace('.', '\\.')}, which host h1 does not have`));
  assert.match(gone!.message, /fails to start/);
  assert.match(gone!.fix!, /lspci -D/);
  assert.match(gone!.fix!, /correct the address/);
  assert.equal(gone!.details!.present, false);
  assert.equal(gone!.details!.via, 'sysfs');

  const here = find(r, 'resources.gpu', 'gpu-present (kvm/h1)')[0];
  assert.equal(here?.status, 'ok', JSON.stringify(here));
  assert.equal(here!.details!.present, true);
  assert.equal(here!.details!.pciClass, fs.readFileSync(`/sys/bus/pci/devices/${present}/class`, 'utf8').trim());
  assert.match(here!.message, new RegExp(`PCI device ${present.replace('.', '\\.')}: present on host h1`));

  const vgpu = find(r, 'resources.gpu', 'vgpu-missing (kvm/h1)')[0];
  assert.equal(vgpu?.status, 'fail', JSON.stringify(vgpu));
  assert.match(vgpu!.message, /mediated device \(vGPU\)/);
  assert.match(vgpu!.fix!, /mdevctl/);
  assert.ok(Array.isArray(vgpu!.details!.mdevTypes), 'the vGPU types this host could create are listed');
  assert.equal(find(r, 'resources.gpu', 'broker').length, 0, 'no "nothing declared" line when domains declare devices');
  assert.equal(find(r, 'resources.gpu', 'plain (kvm/h1)').length, 0);

  // The remote path (a host that is not this machine): libvirt's node devices give the same answers.
  const virsh = new Virsh('virsh', 10_000);
  const hostFull = { ...hostCfg, sshVerifyHostKey: true } as never;
  assert.equal((await remotePci(virsh, hostFull, missing, 10_000)).present, false);
  const remote = await remotePci(virsh, hostFull, present, 10_000);
  assert.equal(remote.present, true);
  assert.equal(remote.pciClass, localPci(present).pciClass);
  assert.equal((await remoteMdev(virsh, hostFull, MISSING_MDEV, 10_000)).present, false);

  // identity.ip: the running domain has no guest agent and no libvirt network: nothing reported, said so.
  const ip = find(r, 'identity.ip');
  assert.equal(ip.length, 1, JSON.stringify(ip));
  assert.equal(ip[0]!.status, 'skipped');
  assert.match(ip[0]!.message, /none of the 1 running libvirt domain\(s\) reports its addresses/);
  // Its QEMU idles in the BIOS at full speed under TCG: stopped now, not after the guests' test.
  await libvirtd.cleanup();
  libvirtd = undefined;
});

test('identity.ip: virsh domifaddr rows, NAT and loopback left out, two guests on one IP and a guest on a host\'s address are conflicts', () => {
  // `virsh domifaddr DOM --source agent` as libvirt 9 prints it.
  const out = [
    ' Name       MAC address          Protocol     Address',
    '-------------------------------------------------------------------------------',
    ' lo         00:00:00:00:00:00    ipv4         127.0.0.1/8',
    ' -          -                    ipv6         ::1/128',
    ' eth0       52:54:00:AA:BB:01    ipv4         192.168.122.50/24',
    ' -          -                    ipv6         fe80::5054:ff:feaa:bb01/64',
    ' eth1       52:54:00:aa:bb:02    ipv4         10.0.2.15/24',
    '',
  ].join('\n');
  assert.deepEqual(parseDomifaddr(out), [
    { iface: 'lo', mac: '00:00:00:00:00:00', address: '127.0.0.1' },
    { iface: 'lo', mac: '00:00:00:00:00:00', address: '::1' },
    { iface: 'eth0', mac: '52:54:00:aa:bb:01', address: '192.168.122.50' },
    { iface: 'eth0', mac: '52:54:00:aa:bb:01', address: 'fe80::5054:ff:feaa:bb01' },
    { iface: 'eth1', mac: '52:54:00:aa:bb:02', address: '10.0.2.15' },
  ]);
  assert.deepEqual([...privateNatMacs("<interface type='network'><mac address='52:54:00:aa:bb:01'/></interface><interface type='user'><mac address='52:54:00:AA:BB:02'/></interface>")], ['52:54:00:aa:bb:02']);
  assert.ok(ownOnly('127.0.0.1') && ownOnly('::1') && ownOnly('fe80::1') && ownOnly('169.254.3.4'));
  assert.ok(!ownOnly('192.168.122.50') && !ownOnly('2001:db8::5'));

  const g = (entity: string, address: string): GuestAddress => ({ entity, source: entity, address, iface: 'eth0', via: 'agent' });
  const c = ipConflicts(
    [g('desktop:a', '192.168.122.50'), g('desktop:b', '192.168.122.50'), g('desktop:a', '192.168.122.50'), g('desktop:c', '192.168.122.51'), g('desktop:d', '10.1.1.1'), g('desktop:e', '127.0.0.1'), g('desktop:f', '127.0.0.1')],
    [{ address: '10.1.1.1', what: 'libvirt host kvm/h1' }, { address: '10.9.9.9', what: 'manual machine m1' }],
  );
  assert.deepEqual(c.map((x) => ({ address: x.address, guests: x.guests.map((y) => y.entity), known: x.known.map((k) => k.what) })), [
    { address: '10.1.1.1', guests: ['desktop:d'], known: ['libvirt host kvm/h1'] },
    { address: '192.168.122.50', guests: ['desktop:a', 'desktop:b'], known: [] },
  ]);
});

const HAVE_QGA = HAVE_LIBVIRT && fs.existsSync('/usr/sbin/qemu-ga') && fs.readdirSync('/lib/modules').some((k) => fs.existsSync(`/lib/modules/${k}/kernel/drivers/net/ethernet/intel/e1000`));

test('identity.ip: two libvirt guests whose qemu-guest-agent reports the same IP fail, as does a guest on the host\'s console address; the check runs in seconds', { timeout: 400_000 }, async () => {
  assert.ok(HAVE_QGA, 'needs libvirtd, qemu-guest-agent, the e1000 module and root');
  const dir = path.join(tmp, 'qga-image');
  buildQgaImage(dir);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { kernelVersion: string; cmdline: string };
  // The image has no NIC driver: a second (concatenated) initramfs archive adds e1000.ko.
  const extra = path.join(tmp, 'nic-root');
  fs.mkdirSync(path.join(extra, 'lib/modules'), { recursive: true });
  const ko = execFileSyncText('modinfo', ['-k', manifest.kernelVersion, '-F', 'filename', 'e1000']).trim();
  fs.writeFileSync(path.join(extra, 'lib/modules/e1000.ko'), ko.endsWith('.xz') ? execFileSyncBuf('xz', ['-dc', ko]) : fs.readFileSync(ko));
  const cpio = execFileSyncBuf('sh', ['-c', `cd ${extra} && find lib -print | cpio -o -H newc --quiet | gzip -1`]);
  const initrd = path.join(tmp, 'initrd-nic.img');
  fs.writeFileSync(initrd, Buffer.concat([fs.readFileSync(path.join(dir, 'initrd.img')), cpio]));

  // A libvirtd in its own network namespace: the guests' tap devices live there, not on this machine.
  guestsd = new TestLibvirtd('doctor-ip', { listen: '127.0.0.1' });
  guestsd.spawn();
  await guestsd.namespaced();
  await pexec('nsenter', [`--net=${guestsd.netns}`, 'ip', 'link', 'set', 'lo', 'up']);
  fs.writeFileSync(path.join(guestsd.root, 'net-ready'), '');
  await guestsd.waitReady();
  const guestXml = (name: string, mac: string) => `<domain type='qemu'><name>${name}</name><memory unit='MiB'>192</memory><vcpu>1</vcpu>
    <os><type arch='x86_64' machine='pc'>hvm</type><kernel>${path.join(dir, 'vmlinuz')}</kernel><initrd>${initrd}</initrd><cmdline>${manifest.cmdline}</cmdline></os>
    <devices><interface type='ethernet'><mac address='${mac}'/><model type='e1000'/></interface>
    <channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <serial type='pty'><target port='0'/></serial></devices></domain>`;
  const guests = [{ name: 'ip-a', mac: '52:54:00:d0:00:0a', addrs: ['192.0.2.50/24'] }, { name: 'ip-b', mac: '52:54:00:d0:00:0b', addrs: ['192.0.2.50/24', '198.51.100.7/24'] }];
  for (const g of guests) {
    const f = path.join(tmp, `${g.name}.xml`);
    fs.writeFileSync(f, guestXml(g.name, g.mac));
    await guestsd.virsh('define', f);
    await guestsd.virsh('start', g.name);
  }
  const qga = async (dom: string, cmd: unknown) => JSON.parse(await guestsd!.virsh('qemu-agent-command', dom, JSON.stringify(cmd))) as { return: Record<string, unknown> };
  for (const g of guests) {
    let lastError = '';
    await waitFor(async () => (await qga(g.name, { execute: 'guest-ping' }).then(() => true).catch((e: Error) => {
      lastError = e.message;
      return false;
    })), 300_000, 500).catch((e: Error) => {
      throw new Error(`${g.name}: qemu-guest-agent did not answer (${e.message}): ${lastError}`);
    });
    // Inside the guest: load the NIC driver, bring eth0 up with the test's addresses (a static address baked into an image, for real).
    const script = ['insmod /lib/modules/e1000.ko', 'ip link set eth0 up', ...g.addrs.map((a) => `ip addr add ${a} dev eth0`)].join(' && ');
    const { return: { pid } } = await qga(g.name, { execute: 'guest-exec', arguments: { path: '/bin/sh', arg: ['-c', script], 'capture-output': true } });
    const st = await waitFor(async () => {
      const r = (await qga(g.name, { execute: 'guest-exec-status', arguments: { pid } })).return as { exited: boolean; exitcode?: number; 'err-data'?: string };
      return r.exited ? r : null;
    }, 30_000, 200);
    assert.equal(st.exitcode, 0, `guest ${g.name}: ${Buffer.from(st['err-data'] ?? '', 'base64').toString()}`);
  }

  const hostCfg = { name: 'h1', uri: guestsd.uri, consoleAddress: '198.51.100.7', storagePool: 'vdi' };
  const config = testConfig(prefix, { providers: [{ name: 'kvm', kind: 'libvirt', hosts: [hostCfg] }] as never });
  const t0 = Date.now();
  const r = await runDoctor(doctor(config, 5000), { only: ['identity'] });
  assert.ok(Date.now() - t0 < 15_000, `identity runs in seconds (${Date.now() - t0} ms)`);
  const ip = find(r, 'identity.ip');
  const both = find(r, 'identity.ip', '192.0.2.50')[0];
  assert.equal(both?.status, 'fail', JSON.stringify(ip));
  assert.match(both!.message, /IP address 192\.0\.2\.50 is used by 2 machines: VM \(not managed by this broker\) ip-a on kvm\/h1 \(eth0, reported by its guest agent\); VM \(not managed by this broker\) ip-b on kvm\/h1 \(eth0, reported by its guest agent\)/);
  assert.match(both!.fix!, /DHCP/);
  assert.deepEqual((both!.details!.guests as { mac: string }[]).map((g) => g.mac).sort(), ['52:54:00:d0:00:0a', '52:54:00:d0:00:0b']);
  const onHost = find(r, 'identity.ip', '198.51.100.7')[0];
  assert.equal(onHost?.status, 'fail', JSON.stringify(ip));
  assert.match(onHost!.message, /ip-b on kvm\/h1 .*; libvirt host kvm\/h1\. A guest on the address of libvirt host kvm\/h1 cuts it off the network/);
  assert.deepEqual(onHost!.details!.known, ['libvirt host kvm/h1']);
  assert.equal(ip.length, 2, 'loopback addresses the guests also report are not conflicts');
});

function execFileSyncText(cmd: string, args: string[]): string {
  return execFileSyncBuf(cmd, args).toString('utf8');
}

function execFileSyncBuf(cmd: string, args: string[]): Buffer {
  return execFileSync(cmd, args, { maxBuffer: 64 * 1024 * 1024 });
}
