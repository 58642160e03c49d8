// Pure logic of the libvirt driver: domain XML (escaping, identity, metadata), what is parsed
// back from virsh, redaction of console passwords, and the XML a migration sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { domainXml, graphicsPassword, parseDisplay, parseMetadata } from '../../server/providers/libvirt/domain-xml.ts';
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
