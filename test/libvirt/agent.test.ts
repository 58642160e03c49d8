// The guest agent on libvirt desktops (docs/agent.md, docs/libvirt.md): two hosts, each a
// libvirtd in its own network and mount namespace. One desktop of the demo image (our agent)
// on h1: the broker's agent hub (server/agent) calls it ready only once the agent's hello
// through the libvirt channel proves the secret handed in through fw_cfg (which no domain XML
// shows); the port is reached over ssh + nc as for a remote host; then the desktop moves live
// to h2 with the hub connected: the hub reconnects on h2 (same boot, secret copied along). A
// desktop of the qga-only image answers qemu-guest-agent's commands through libvirt.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import { connectOverSsh } from '../../server/providers/libvirt/agent.ts';
import type { LibvirtHostConfig } from '../../server/providers/libvirt/config.ts';
import type { LibvirtProvider } from '../../server/providers/libvirt/index.ts';
import { Redis } from 'ioredis';
import pino from 'pino';
import { AgentHub } from '../../server/agent/index.ts';
import { Metrics } from '../../server/observability/metrics.ts';
import { ProviderRegistry } from '../../server/providers/registry.ts';
import { imageFilesIn } from '../../server/providers/qemu/config.ts';
import { AgentBus } from '../../server/store/agent-bus.ts';
import { keyspace } from '../../server/store/keys.ts';
import { ensureDemoImage, makeSpec } from '../qemu/helpers.ts';
import { waitFor } from '../support/harness.ts';
import { buildQgaImage, handshake, proofOf, qgaCommand } from './agent-guest.ts';
import { DEMO_DIR } from './helpers.ts';
import { TestLibvirtd, linkHosts } from './daemon.ts';
import { hostOf, libvirtProvider } from './helpers.ts';
import { startSshd, type TestSshd } from './sshd.ts';

const pexec = promisify(execFile);
const A = new TestLibvirtd('agent-a', { listen: '10.231.78.1' });
const B = new TestLibvirtd('agent-b', { listen: '10.231.78.2' });
let h1: LibvirtHostConfig;
let h2: LibvirtHostConfig;
let kvm: LibvirtProvider;
let sshd: TestSshd | undefined;
let qgaImage = '';
let consoleAt = 0;
const spec = { ...makeSpec('agent'), agentSecret: 'c3'.repeat(32) };
const qgaSpec = { ...makeSpec('qga', { image: 'qga:1' }, { memoryMiB: 256 }), agentSecret: 'd4'.repeat(32) };
const images = async (ref: string) => imageFilesIn(ref.startsWith('qga:') ? qgaImage : DEMO_DIR);
const open: Duplex[] = [];
const hubs: AgentHub[] = [];
const hubMetrics = new Map<AgentHub, Metrics>();

/** How many of a hub's guest messages were dropped as bad_proof. */
async function forgedMetrics(h: AgentHub): Promise<number> {
  const m = (await hubMetrics.get(h)!.agentMessagesDropped.get()).values.find((v) => v.labels.reason === 'bad_proof');
  return m?.value ?? 0;
}
const redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true });
const desktop = () => ({ id: spec.id, provider: 'kvm', image: 'demo:1' });

/** The broker's agent hub over this test's provider, for an image that runs our agent or only qga. */
function hub(agent: 'vdi' | 'qga', secret = spec.agentSecret): AgentHub {
  const metrics = new Metrics();
  const h = new AgentHub({
    providers: new ProviderRegistry([kvm]), bus: new AgentBus(redis, keyspace(`test:lvagent:${process.pid}:`)),
    logger: pino({ level: process.env.VDI_TEST_LOG ?? 'silent' }), metrics,
    secretOf: async (id) => (id === spec.id ? secret : qgaSpec.agentSecret), imageAgent: async () => ({ agent, bootGraceMs: 0 }),
    desktopOf: async (id) => (id === spec.id ? desktop() : id === qgaSpec.id ? { id, provider: 'kvm', image: qgaSpec.image } : undefined), readyTimeoutMs: 60_000,
  });
  hubs.push(h);
  hubMetrics.set(h, metrics);
  return h;
}

/** The consoles listen inside the hosts' network namespaces: start() reads the RFB banner from there. */
async function bannerInNs(h: LibvirtHostConfig, address: string, port: number): Promise<string> {
  const d = h.name === 'h1' ? A : B;
  const { stdout } = await pexec('nsenter', [`--net=${d.netns}`, 'timeout', '2', 'bash', '-c', 'exec 3<>/dev/tcp/"$0"/"$1" && head -c 12 <&3', address, String(port)]);
  return stdout.trim();
}

/** nc processes connected to a socket path (the remote end of the ssh leg, on this machine). */
function ncPids(socket: string): number[] {
  return fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      return argv[0] === 'nc' && argv.includes(socket);
    } catch {
      return false;
    }
  }).map(Number);
}

function track<T extends Duplex>(s: T): T {
  open.push(s);
  return s;
}

before(async () => {
  ensureDemoImage();
  qgaImage = buildQgaImage(fs.mkdtempSync(path.join(A.root, 'qga-image-')));
  A.spawn();
  B.spawn();
  await linkHosts(A, B, '10.231.78.1', '10.231.78.2');
  for (const d of [A, B]) await d.definePool('vdi');
  h1 = hostOf(A, 'h1', { consoleAddress: '10.231.78.1', migrationUri: 'qemu+tcp://10.231.78.1/system', migrationAddress: '10.231.78.1' });
  h2 = hostOf(B, 'h2', { consoleAddress: '10.231.78.2', migrationUri: 'qemu+tcp://10.231.78.2/system', migrationAddress: '10.231.78.2' });
  kvm = libvirtProvider([h1, h2], { placement: 'depth', consoleBanner: bannerInNs, images });
  for (const d of [spec, qgaSpec]) await kvm.create(d);
  // start() resolves once the console answers (RFB), before the guest is up.
  await kvm.start(spec.id);
  consoleAt = Date.now();
  await kvm.start(qgaSpec.id);
});

after(async () => {
  for (const h of hubs) await h.close().catch(() => undefined);
  redis.disconnect();
  for (const s of open) s.destroy();
  await sshd?.stop();
  await A.cleanup();
  await B.cleanup();
});

test('a libvirt desktop is ready for the broker\'s agent hub only once its agent\'s hello through the libvirt channel proves the desktop\'s secret: after the console answered, never with another secret', { timeout: 180_000 }, async () => {
  // A hub that knows another secret: the guest's hellos reach it and are refused (bad proof).
  const forged = hub('vdi', 'c4'.repeat(32));
  const refused = forged.waitReady(desktop(), { timeoutMs: 150_000 }).then(() => 'ready', (e: Error) => e.message);
  const dropped = await waitFor(async () => ((await forgedMetrics(forged)) >= 3 ? forgedMetrics(forged) : null), 120_000, 250);
  assert.ok(dropped >= 3, `the guest's hellos arrive and are dropped as bad_proof (${dropped})`);
  assert.equal((await forged.status(spec.id))?.connected, false, 'never connected with another secret');
  await forged.close();
  assert.match(await refused, /closed|did not say hello/);
  const agents = hub('vdi');
  const r = await agents.waitReady(desktop(), { timeoutMs: 120_000 });
  assert.equal(r.via, 'vdi');
  const st = await agents.status(spec.id);
  assert.equal(st?.connected, true);
  assert.equal(st?.agent, 'vdi-agent-sh/1', 'the demo image\'s agent');
  assert.ok((st?.readyAt ?? 0) > consoleAt, 'ready after the console answered');
  await agents.close();
});

test('the agent port of a libvirt desktop answers a challenge with a hello proving the fw_cfg secret; the secret file is 0600 and in no domain XML', { timeout: 120_000 }, async () => {
  const stream = track(await (await kvm.agentChannels(spec.id)).vdi!());
  const { hello, issued, ms } = await handshake(stream, 60_000);
  assert.equal(hello.v, 1);
  assert.equal(hello.desktop, spec.id);
  assert.ok(issued.has(hello.nonce));
  assert.equal(hello.proof, proofOf(hello.nonce, spec.id, spec.agentSecret), 'the proof is made with the secret the broker handed in');
  assert.notEqual(hello.proof, proofOf(hello.nonce, spec.id, 'c4'.repeat(32)));
  assert.ok(ms < 30_000, `hello after ${ms} ms`);
  stream.destroy();

  const socket = path.join(h1.agentSocketDir!, `${spec.id}.agent`);
  assert.ok(fs.statSync(socket).isSocket(), 'the port is a unix socket in the host\'s agentSocketDir');
  assert.equal(fs.statSync(h1.agentSocketDir!).mode & 0o777, 0o700, 'only root reaches the agent sockets');
  const secretFile = path.join(A.poolDir, `vdi-${spec.id}.agent-secret`);
  assert.equal(fs.statSync(secretFile).mode & 0o777, 0o600);
  assert.equal(fs.readFileSync(secretFile, 'utf8'), spec.agentSecret);
  for (const args of [['dumpxml', '--security-info', spec.name], ['dumpxml', '--security-info', '--inactive', spec.name], ['dumpxml', '--migratable', spec.name]]) {
    const xml = await A.virsh(...args);
    assert.match(xml, /<entry name='opt\/vdi\/agent-secret' file='[^']+\.agent-secret'\/>/, `${args.join(' ')}: the secret goes in as a file`);
    assert.ok(!xml.includes(spec.agentSecret), `${args.join(' ')} does not show the secret`);
  }
  const qemuCmdline = A.qemuPids().map((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).join('\n');
  assert.ok(!qemuCmdline.includes(spec.agentSecret), 'the secret is not on QEMU\'s command line');
});

test('the qga-only image on libvirt: qemu-guest-agent answers guest-sync-delimited, guest-ping and guest-get-osinfo through libvirt, errors come back as qga errors, and the hub calls it ready via qga', { timeout: 150_000 }, async () => {
  const qga = track(await (await kvm.agentChannels(qgaSpec.id)).qga!());
  const sync = await qgaCommand(qga, { execute: 'guest-sync-delimited', arguments: { id: 4711 } });
  assert.equal(sync.raw[0], 0xff, 'delimited sync answers after 0xFF');
  assert.deepEqual(sync.reply, { return: 4711 });
  // The guest may still be booting, libvirt not yet connected to its agent: ping until it answers.
  const ping = await waitFor(async () => {
    const r = await qgaCommand(qga, { execute: 'guest-ping' });
    return r.reply.error ? null : r.reply;
  }, 90_000, 500);
  assert.deepEqual(ping, { return: {} });
  const os = (await qgaCommand(qga, { execute: 'guest-get-osinfo' })).reply as { return: { 'kernel-release': string } };
  assert.match(os.return['kernel-release'], /^\d+\.\d+/);
  const bad = (await qgaCommand(qga, { execute: 'guest-no-such-command' })).reply as { error: { class: string; desc: string } };
  assert.match(bad.error.desc, /guest-no-such-command/);
  qga.destroy();
  const agents = hub('qga');
  const r = await agents.waitReady({ id: qgaSpec.id, provider: 'kvm', image: qgaSpec.image }, { timeoutMs: 60_000 });
  assert.equal(r.via, 'qga');
  const st = await agents.status(qgaSpec.id);
  assert.equal(st?.connected, true);
  assert.match(st?.os?.kernel ?? '', /^\d+\.\d+/);
  await agents.close();
  await kvm.destroy(qgaSpec.id);
});

test('over a qemu+ssh host the agent port is reached with ssh + nc -U, with the host\'s key and known_hosts', { timeout: 120_000 }, async () => {
  sshd = await startSshd(path.join(A.root, 'sshd'));
  const socket = A.uri.split('socket=')[1]!;
  const viaSsh: LibvirtHostConfig = {
    ...h1, uri: `qemu+ssh://root@127.0.0.1:${sshd.port}/system?socket=${encodeURIComponent(socket)}&proxy=netcat`, sshKey: sshd.key, sshKnownHosts: sshd.knownHosts,
  };
  const remote = libvirtProvider([viaSsh, h2], { consoleBanner: bannerInNs, images });
  const stream = track(await (await remote.agentChannels(spec.id)).vdi!());
  const { hello } = await handshake(stream, 60_000);
  assert.equal(hello.desktop, spec.id);
  assert.equal(hello.proof, proofOf(hello.nonce, spec.id, spec.agentSecret));
  stream.destroy();
  // The remote nc goes with the stream (one left connected would hold the port).
  const socketPath = path.join(h1.agentSocketDir!, `${spec.id}.agent`);
  await waitFor(async () => (ncPids(socketPath).length === 0 ? true : null), 10_000, 100);
  // The ssh leg checks the host key against the host's known_hosts only: another key is refused, at once.
  const wrongKnown = path.join(A.root, 'sshd', 'other_known_hosts');
  fs.writeFileSync(wrongKnown, `[127.0.0.1]:${sshd.port} ${fs.readFileSync(`${sshd.key}.pub`, 'utf8')}`);
  const path_ = path.join(h1.agentSocketDir!, `${spec.id}.agent`);
  const t0 = Date.now();
  await assert.rejects(connectOverSsh(remote.virsh, { ...viaSsh, sshKnownHosts: wrongKnown }, path_), /Host key verification failed/);
  assert.ok(Date.now() - t0 < 15_000, 'no prompt, no hang');
  await assert.rejects(connectOverSsh(remote.virsh, viaSsh, `${path_}.missing`), /no agent socket/);
});

test('a desktop migrated live with the agent hub connected: the hub reconnects on h2, the same boot answers, the secret moved with the disk', { timeout: 240_000 }, async () => {
  const channels = await kvm.agentChannels(spec.id);
  const raw = track(await channels.vdi!());
  const boot = (await handshake(raw, 60_000)).hello.boot;
  raw.destroy();
  const agents = hub('vdi');
  await agents.waitReady(desktop(), { timeoutMs: 60_000 });
  assert.equal((await agents.status(spec.id))?.connected, true);

  const t0 = Date.now();
  const result = await kvm.migrate(spec.id, 'h2');
  assert.equal(result.toHost, 'h2');
  // Connected again, to the guest on h2 (a new hello after the move).
  const after = await waitFor(async () => {
    const st = await agents.status(spec.id);
    return st?.connected && (st.readyAt ?? 0) > t0 ? st : null;
  }, 60_000, 250);
  assert.equal(after.agent, 'vdi-agent-sh/1');
  assert.ok(fs.statSync(path.join(h2.agentSocketDir!, `${spec.id}.agent`)).isSocket(), 'the port is in h2\'s agentSocketDir');
  assert.ok(fs.existsSync(path.join(B.poolDir, `vdi-${spec.id}.agent-secret`)), 'the secret moved with the disk');
  assert.ok(!fs.existsSync(path.join(A.poolDir, `vdi-${spec.id}.agent-secret`)), 'and is gone from h1');
  await agents.close();
  // The guest that answers on h2 is the same boot: moved live, not restarted.
  const again = track(await waitFor(() => channels.vdi!().catch(() => null), 30_000, 250));
  assert.equal((await handshake(again, 60_000)).hello.boot, boot);
  again.destroy();
  await kvm.destroy(spec.id);
  assert.ok(!fs.existsSync(path.join(B.poolDir, `vdi-${spec.id}.agent-secret`)), 'destroy removes the secret');
});
