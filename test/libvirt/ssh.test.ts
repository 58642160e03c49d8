// A libvirt host reached over qemu+ssh: a real sshd of the test's own (loopback, free port,
// private config and host key, root by key only) in front of a test libvirtd's socket. The
// right key and a known_hosts file with the host's key reach it; a wrong key or an unknown host
// key fail fast with a clear provider_error (ssh in batch mode: no prompt, no hang), and the
// key's contents appear in no error or log line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import pino from 'pino';
import { BrokerError } from '../../server/errors.ts';
import type { LibvirtHostConfig } from '../../server/providers/libvirt/config.ts';
import { Virsh } from '../../server/providers/libvirt/virsh.ts';
import { stopChild } from '../support/process.ts';
import { waitFor } from '../support/harness.ts';
import { freePort } from '../support/redis.ts';
import { TestLibvirtd } from './daemon.ts';
import { hostOf, libvirtProvider } from './helpers.ts';

const pexec = promisify(execFile);
const D = new TestLibvirtd('ssh');
const dir = fs.mkdtempSync(path.join(D.root, 'sshd-'));
const file = (n: string) => path.join(dir, n);
let sshd: ChildProcess | undefined;
let port = 0;


const keygen = (name: string) => pexec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file(name)]);

before(async () => {
  await D.start();
  await Promise.all(['host_key', 'right_key', 'wrong_key', 'other_host_key'].map(keygen));
  fs.copyFileSync(file('right_key.pub'), file('authorized_keys'));
  port = await freePort();
  fs.writeFileSync(file('known_hosts'), `[127.0.0.1]:${port} ${fs.readFileSync(file('host_key.pub'), 'utf8')}`);
  fs.writeFileSync(file('other_known_hosts'), `[127.0.0.1]:${port} ${fs.readFileSync(file('other_host_key.pub'), 'utf8')}`);
  fs.writeFileSync(file('sshd_config'), [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${file('host_key')}`, `AuthorizedKeysFile ${file('authorized_keys')}`,
    'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'StrictModes no', 'UsePAM no',
    `PidFile ${file('sshd.pid')}`, '',
  ].join('\n'));
  fs.mkdirSync('/run/sshd', { recursive: true }); // sshd's privilege-separation directory
  sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', file('sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  sshd.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  await waitFor(async () => {
    if (sshd!.exitCode !== null) throw new Error(`sshd exited: ${err}`);
    return new Promise<boolean>((r) => net.connect(port, '127.0.0.1').once('connect', function (this: net.Socket) { this.destroy(); r(true); }).once('error', () => r(false)));
  }, 10_000, 50);
});

after(async () => {
  if (sshd) await stopChild(sshd);
  await D.cleanup();
});

function sshHost(over: Partial<LibvirtHostConfig>): LibvirtHostConfig {
  const socket = D.uri.split('socket=')[1]!;
  // proxy=netcat: the remote side relays to this socket (virt-ssh-helper would pick the machine's default daemon).
  return hostOf(D, 'ssh1', { uri: `qemu+ssh://root@127.0.0.1:${port}/system?socket=${encodeURIComponent(socket)}&proxy=netcat`, sshKnownHosts: file('known_hosts'), ...over });
}

/** A provider whose log lines are kept, to check no key material is written. */
function providerWithLog(h: LibvirtHostConfig) {
  const lines: string[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, cb) => { lines.push(c.toString()); cb(); } });
  return { kvm: libvirtProvider([h], { logger: pino({ level: 'trace' }, sink), callTimeoutMs: 15_000 }), lines };
}

const keyBody = (name: string) => fs.readFileSync(file(name), 'utf8').split('\n').filter((l) => l && !l.startsWith('-----'));

async function failsClearly(h: LibvirtHostConfig, message: RegExp): Promise<void> {
  const { kvm, lines } = providerWithLog(h);
  const t0 = Date.now();
  const hosts = await kvm.hosts();
  assert.deepEqual(hosts.map((x) => [x.name, x.reachable, x.capacity.vcpu]), [['ssh1', false, 0]]);
  // Never reached since start: inventory refuses the round with the reason.
  const err = await kvm.inventory().then(() => null, (e: unknown) => e);
  assert.ok(err instanceof BrokerError, String(err));
  assert.equal(err.code, 'provider_error');
  assert.match(err.message, message);
  assert.ok(Date.now() - t0 < 15_000, `failed within the call timeout (${Date.now() - t0} ms): no prompt, no hang`);
  const seen = [err.message, ...lines].join('\n');
  for (const k of ['right_key', 'wrong_key']) for (const l of keyBody(k)) assert.ok(!seen.includes(l), `key material of ${k} not in errors or logs`);
}

test('qemu+ssh URIs get the key file URI-encoded, batch mode (no_tty=1), the known_hosts wrapper, or no_verify=1 only when opted out', () => {
  const h = { uri: 'qemu+ssh://vdi@kvm1/system', sshKey: '/keys/a b&c=d' };
  assert.equal(Virsh.connectUri(h), 'qemu+ssh://vdi@kvm1/system?keyfile=%2Fkeys%2Fa%20b%26c%3Dd&no_tty=1');
  assert.equal(Virsh.connectUri(h, '/tmp/w'), 'qemu+ssh://vdi@kvm1/system?keyfile=%2Fkeys%2Fa%20b%26c%3Dd&no_tty=1&command=%2Ftmp%2Fw');
  assert.equal(Virsh.connectUri({ ...h, sshVerifyHostKey: false }, '/tmp/w'), 'qemu+ssh://vdi@kvm1/system?keyfile=%2Fkeys%2Fa%20b%26c%3Dd&no_tty=1&no_verify=1');
  assert.equal(Virsh.connectUri({ uri: 'qemu+tls://kvm1/system', sshKey: '/k', tlsDir: '/pki' }), 'qemu+tls://kvm1/system?pkipath=%2Fpki');
  assert.equal(new Virsh().uriOf({ uri: 'qemu+unix:///system', sshKnownHosts: '/k' }), 'qemu+unix:///system');
});

test('a libvirt host over qemu+ssh with the right key and its host key in sshKnownHosts is listed with capacity', { timeout: 60_000 }, async () => {
  // A known_hosts path with a quote and spaces: the wrapper passes it to ssh as one argument.
  const odd = path.join(dir, "it's a dir", 'known hosts');
  fs.mkdirSync(path.dirname(odd));
  fs.copyFileSync(file('known_hosts'), odd);
  const { kvm } = providerWithLog(sshHost({ sshKey: file('right_key'), sshKnownHosts: odd }));
  const [h] = await kvm.hosts();
  assert.equal(h?.name, 'ssh1');
  assert.equal(h?.reachable, true);
  assert.ok(h!.capacity.vcpu > 0 && h!.capacity.memoryMiB > 0, JSON.stringify(h));
  assert.deepEqual(await kvm.inventory(), []);
});

test('a wrong SSH key gives a provider_error naming SSH authentication within the call timeout, never a prompt, and no key material in errors or logs', { timeout: 60_000 }, async () => {
  await failsClearly(sshHost({ sshKey: file('wrong_key') }), /host ssh1 is unreachable: SSH authentication failed.*Permission denied \(publickey\)/);
});

test('a host key that is not the one in sshKnownHosts is refused; sshVerifyHostKey: false is the explicit opt-out', { timeout: 60_000 }, async () => {
  await failsClearly(sshHost({ sshKey: file('right_key'), sshKnownHosts: file('other_known_hosts') }), /host ssh1 is unreachable: SSH host key not verified/);
  const { kvm } = providerWithLog(sshHost({ sshKey: file('right_key'), sshKnownHosts: file('other_known_hosts'), sshVerifyHostKey: false }));
  assert.equal((await kvm.hosts())[0]?.reachable, true);
});
