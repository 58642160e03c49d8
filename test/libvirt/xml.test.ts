// Pure logic of the libvirt driver: domain XML (escaping, identity, metadata), what is parsed
// back from virsh, redaction of console passwords, and the XML a migration sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonObjectSplitter, channelTransport, qemuOwner } from '../../server/providers/libvirt/agent.ts';
import { AGENT_PORT, QGA_PORT, channelSocket, domainXml, graphicsPassword, parseDisplay, parseMetadata } from '../../server/providers/libvirt/domain-xml.ts';
import { retarget } from '../../server/providers/libvirt/migrate.ts';
import { Virsh, redact } from '../../server/providers/libvirt/virsh.ts';
import { makeSpec } from '../qemu/helpers.ts';

const spec = makeSpec('xml', { pool: 'p<&>"' });
const xml = domainXml({
  spec, uuid: '11111111-2222-5333-8444-555555555555', virtType: 'qemu', storagePool: 'vdi', volume: `vdi-${spec.id}.qcow2`,
  boot: { kernel: '/pool/k', initrd: '/pool/i', cmdline: 'quiet' }, consoleAddress: '10.0.0.1', password: "pa'ss<1", network: 'user',
  meta: { id: spec.id, pool: spec.pool, name: spec.name, image: 'demo:1', clone: 'linked', provider: 'kvm' },
  serialSocket: '/run/vdi/x.serial',
});

test('domain XML carries the broker identity and escapes every value', () => {
  assert.match(xml, /<domain type="qemu">/);
  assert.match(xml, new RegExp(`<name>${spec.name}</name>`));
  assert.match(xml, /<uuid>11111111-2222-5333-8444-555555555555<\/uuid>/);
  assert.match(xml, new RegExp(`<mac address="${spec.mac}"/>`));
  assert.match(xml, /pool="p&lt;&amp;&gt;&quot;"/);
  assert.match(xml, /passwd="pa&apos;ss&lt;1"/);
  assert.match(xml, new RegExp(`<cmdline>quiet vdi.name=${spec.name} vdi.id=${spec.id}</cmdline>`));
  assert.deepEqual(parseMetadata(xml.slice(xml.indexOf('<metadata>'))), { id: spec.id, pool: 'p<&>"', name: spec.name, image: 'demo:1', clone: 'linked', provider: 'kvm' });
  assert.equal(graphicsPassword(xml), "pa'ss<1");
});

test('metadata of a foreign domain is not taken for ours', () => {
  assert.equal(parseMetadata(''), undefined);
  assert.equal(parseMetadata('<desktop pool="x"/>'), undefined);
});

test('console passwords are redacted from libvirt error text', () => {
  assert.equal(redact(`bad <graphics passwd='s3cret' listen="x"> and passwd="two"`), `bad <graphics passwd='***' listen="x"> and passwd="***"`);
  assert.equal(redact('vnc://:s3cret@127.0.0.1:0'), 'vnc://:***@127.0.0.1:0');
});

test('domdisplay is read as host and port', () => {
  assert.deepEqual(parseDisplay('vnc://127.0.0.1:3\n'), { host: '127.0.0.1', port: 5903 });
  assert.deepEqual(parseDisplay('vnc://[::1]:0'), { host: '::1', port: 5900 });
  assert.equal(parseDisplay(''), undefined);
});

test('a migration retargets console address, kernel, initrd and serial socket only', () => {
  const src = `<domain><os><kernel>/a/k</kernel><initrd>/a/i</initrd></os><devices><graphics type='vnc' port='5900' autoport='yes' listen='10.0.0.1' passwd='pw'><listen type='address' address='10.0.0.1'/></graphics><serial type='unix'><source mode='bind' path='/a/x.serial'/></serial></devices></domain>`;
  const out = retarget(src, { consoleAddress: '10.0.0.2', kernel: '/b/k', initrd: '/b/i', serialSocket: '/b/x.serial' });
  assert.equal(out, `<domain><os><kernel>/b/k</kernel><initrd>/b/i</initrd></os><devices><graphics type='vnc' port='5900' autoport='yes' listen='10.0.0.2' passwd='pw'><listen type='address' address='10.0.0.2'/></graphics><serial type='unix'><source mode='bind' path='/b/x.serial'/></serial></devices></domain>`);
});

test('credential files become URI parameters of the matching transport only', () => {
  assert.equal(Virsh.connectUri({ uri: 'qemu+ssh://vdi@h/system', sshKey: '/k/id ed' }), 'qemu+ssh://vdi@h/system?keyfile=%2Fk%2Fid%20ed&no_tty=1');
  assert.equal(Virsh.connectUri({ uri: 'qemu+tls://h/system', tlsDir: '/pki' }), 'qemu+tls://h/system?pkipath=%2Fpki');
  assert.equal(Virsh.connectUri({ uri: 'qemu+tls://h/system?x=1', sshKey: '/k' }), 'qemu+tls://h/system?x=1');
});

const agentXml = domainXml({
  spec, uuid: '11111111-2222-5333-8444-555555555555', virtType: 'qemu', storagePool: 'vdi', volume: `vdi-${spec.id}.qcow2`,
  boot: {}, consoleAddress: '10.0.0.1', password: 'pw', network: 'user',
  meta: { id: spec.id, pool: 'p', name: spec.name, image: 'demo:1', clone: 'linked', provider: 'kvm' },
  agent: { socket: "/run/vdi/a'x.agent", secretFile: '/pool/vdi-x.agent-secret' },
});

test('the agent devices: two virtio-serial ports (ours at the configured socket, qga at libvirt\'s path) and the secret as an fw_cfg file reference', () => {
  assert.match(agentXml, /<controller type='virtio-serial' index='0'\/>/);
  assert.match(agentXml, /<channel type='unix'><source mode='bind' path="\/run\/vdi\/a&apos;x.agent"\/><target type='virtio' name="org.vdibroker.agent.0"\/><\/channel>/);
  assert.match(agentXml, /<channel type='unix'><source mode='bind'\/><target type='virtio' name="org.qemu.guest_agent.0"\/><\/channel>/);
  assert.match(agentXml, /<sysinfo type='fwcfg'><entry name="opt\/vdi\/agent-secret" file="\/pool\/vdi-x.agent-secret"\/><\/sysinfo>/);
  assert.equal(channelSocket(agentXml, AGENT_PORT), "/run/vdi/a'x.agent");
  assert.equal(channelSocket(agentXml, QGA_PORT), undefined);
  // Without a configured folder libvirt picks the path; without a secret no fw_cfg entry.
  const plain = domainXml({ ...{ spec, uuid: 'u', virtType: 'qemu' as const, storagePool: 'vdi', volume: 'v', boot: {}, consoleAddress: 'a', password: 'pw', network: 'user' }, meta: { id: spec.id, pool: 'p', name: spec.name, image: 'i', clone: 'linked', provider: 'kvm' }, agent: {} });
  assert.match(plain, /<channel type='unix'><source mode='bind'\/><target type='virtio' name="org.vdibroker.agent.0"\/>/);
  assert.doesNotMatch(plain, /sysinfo/);
});

test('the agent socket is read from live domain XML as libvirt formats it', () => {
  const live = `<devices><channel type='unix'>\n  <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-3-x/org.qemu.guest_agent.0'/>\n  <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>\n</channel>\n<channel type='unix'>\n  <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-3-x/org.vdibroker.agent.0'/>\n  <target type='virtio' name='org.vdibroker.agent.0' state='disconnected'/>\n</channel></devices>`;
  assert.equal(channelSocket(live, AGENT_PORT), '/var/lib/libvirt/qemu/channel/target/domain-3-x/org.vdibroker.agent.0');
  assert.equal(channelSocket('<devices/>', AGENT_PORT), undefined);
});

test('a migration moves the agent socket into the target\'s folder (or libvirt\'s default) and points fw_cfg at the target\'s secret file', () => {
  const src = `<domain><sysinfo type='fwcfg'>\n<entry name='opt/vdi/agent-secret' file='/a/vdi-x.agent-secret'/>\n</sysinfo><devices><channel type='unix'><source mode='bind' path='/a/x.agent'/><target type='virtio' name='org.vdibroker.agent.0'/></channel><channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices></domain>`;
  const out = retarget(src, { consoleAddress: 'x', agentSocket: '/b/x.agent', agentSecretFile: '/b/vdi-x.agent-secret' });
  assert.equal(out, `<domain><sysinfo type='fwcfg'>\n<entry name='opt/vdi/agent-secret' file='/b/vdi-x.agent-secret'/>\n</sysinfo><devices><channel type='unix'><source mode='bind' path='/b/x.agent'/><target type='virtio' name='org.vdibroker.agent.0'/></channel><channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices></domain>`);
  assert.match(retarget(src, { consoleAddress: 'x', agentSocket: null }), /<channel type='unix'><source mode='bind'\/><target type='virtio' name='org.vdibroker.agent.0'\/>/);
  // libvirt leaves a default path out of migratable XML: the target's folder is put in.
  const dflt = `<devices><channel type='unix'><target type='virtio' name='org.vdibroker.agent.0'/></channel></devices>`;
  assert.equal(retarget(dflt, { consoleAddress: 'x', agentSocket: '/b/x.agent' }), `<devices><channel type='unix'><source mode='bind' path='/b/x.agent'/><target type='virtio' name='org.vdibroker.agent.0'/></channel></devices>`);
});

test('the secret file is owned by the user QEMU runs as, from the host\'s DAC base label', () => {
  const caps = `<capabilities><host><secmodel><model>apparmor</model><doi>0</doi></secmodel><secmodel><model>dac</model><doi>0</doi><baselabel type='kvm'>+64055:+994</baselabel><baselabel type='qemu'>+64055:+995</baselabel></secmodel></host></capabilities>`;
  assert.deepEqual(qemuOwner(caps, 'kvm'), { uid: 64055, gid: 994 });
  assert.deepEqual(qemuOwner(caps, 'qemu'), { uid: 64055, gid: 995 });
  assert.equal(qemuOwner('<capabilities><host/></capabilities>', 'kvm'), undefined);
});

test('the agent port is reached locally for local and unix URIs, over ssh for ssh URIs, and over tcp/tls only with a shared agentSocketDir', () => {
  const h = (uri: string, agentSocketDir?: string) => ({ name: 'h', uri, consoleAddress: 'a', storagePool: 'p', ...(agentSocketDir ? { agentSocketDir } : {}) });
  assert.equal(channelTransport(h('qemu:///system')), 'local');
  assert.equal(channelTransport(h('qemu+unix:///system?socket=/x')), 'local');
  assert.equal(channelTransport(h('qemu+ssh://root@kvm1/system')), 'ssh');
  assert.equal(channelTransport(h('qemu+tcp://kvm1/system')), 'none');
  assert.equal(channelTransport(h('qemu+tls://kvm1/system', '/srv/agent')), 'local');
  assert.equal(channelTransport(h('qemu://kvm1/system')), 'none');
});

test('the ssh leg uses the URI\'s user and port, the host\'s key and host-key policy, in batch mode', () => {
  const v = new Virsh();
  const cmd = v.sshCommand({ uri: 'qemu+ssh://vdi@[fd00::1]:2222/system?socket=/s', sshKey: '/k/id' }, 'nc -U /x');
  assert.deepEqual(cmd, ['ssh', '-T', '-e', 'none', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15', '-p', '2222', '-l', 'vdi', '-i', '/k/id', '--', 'fd00::1', 'nc -U /x']);
  const off = v.sshCommand({ uri: 'qemu+ssh://kvm1/system', sshVerifyHostKey: false }, 'true');
  assert.ok(off.includes('StrictHostKeyChecking=no'));
  const known = v.sshCommand({ uri: 'qemu+ssh://kvm1/system', sshKnownHosts: '/etc/kh' }, 'true');
  assert.match(known[0]!, /vdi-virsh-ssh-.*\/ssh-\d+$/, 'the known_hosts wrapper libvirt\'s connection uses too');
});

test('qga commands are split from a byte stream whatever the framing; 0xFF resets and oversized objects are dropped', () => {
  const s = new JsonObjectSplitter(64);
  assert.deepEqual(s.push('\xff{"execute":"guest-sync-delimited","arguments":{"id":1}}{"execute":"gu'), ['{"execute":"guest-sync-delimited","arguments":{"id":1}}']);
  assert.deepEqual(s.push('est-ping"}\n{"a":"}{\\""}'), ['{"execute":"guest-ping"}', '{"a":"}{\\""}']);
  assert.deepEqual(s.push(`{"x":"${'y'.repeat(100)}"}{"ok":1}`), ['{"ok":1}']);
});
