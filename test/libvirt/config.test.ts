// A libvirt provider in the configuration: the schema's defaults, what it refuses, and the driver
// createProviders builds from it next to the embedded QEMU one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../server/config/index.ts';
import { createProviders } from '../../server/providers/configured.ts';
import { LibvirtProvider } from '../../server/providers/libvirt/index.ts';

function configWith(providerYaml: string[]): ReturnType<typeof loadConfig> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vdi-lvcfg-'));
  try {
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(file, ['providers:', '  - { name: local, kind: qemu, hosts: [{ name: local, dataDir: data/q, capacity: { vcpu: 2, memoryMiB: 1024 } }] }', ...providerYaml].join('\n'));
    return loadConfig({ env: {}, file });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('a libvirt provider is configured with defaults and built next to the QEMU one', async () => {
  const config = configWith([
    '  - name: kvm',
    '    kind: libvirt',
    '    hosts:',
    '      - { name: kvm1, uri: "qemu+ssh://vdi@kvm1/system", sshKey: /etc/vdi/id, consoleAddress: 10.0.0.11, storagePool: vdi }',
  ]);
  const p = config.providers.find((x) => x.name === 'kvm');
  assert.ok(p && p.kind === 'libvirt');
  assert.equal(p.callTimeoutMs, 30000);
  assert.deepEqual(p.hosts[0], {
    name: 'kvm1', uri: 'qemu+ssh://vdi@kvm1/system', sshKey: '/etc/vdi/id', sshVerifyHostKey: true, consoleAddress: '10.0.0.11', storagePool: 'vdi',
    overcommit: { cpu: 1, memory: 1 }, maintenance: false, accel: 'auto', network: 'default', sharedStorage: false,
  });
  const providers = createProviders(config, pino({ level: 'silent' }), async () => '');
  const kvm = providers.find((x) => x.name === 'kvm');
  assert.ok(kvm instanceof LibvirtProvider);
  assert.equal(kvm.kind, 'libvirt');
  assert.deepEqual(providers.map((x) => x.kind), ['qemu', 'libvirt']);
});

test('a libvirt host without a URI or pool, or with an unknown key, is refused', () => {
  assert.throws(() => configWith(['  - { name: kvm, kind: libvirt, hosts: [{ name: k, consoleAddress: a, storagePool: vdi }] }']), /uri/);
  assert.throws(() => configWith(['  - { name: kvm, kind: libvirt, hosts: [{ name: k, uri: "qemu:///system", consoleAddress: a }] }']), /storagePool/);
  assert.throws(() => configWith(['  - { name: kvm, kind: libvirt, hosts: [{ name: k, uri: "not a uri", consoleAddress: a, storagePool: vdi }] }']), /libvirt URI/);
  assert.throws(() => configWith(['  - { name: kvm, kind: libvirt, hosts: [{ name: k, uri: "qemu:///system", consoleAddress: a, storagePool: vdi, dataDir: x }] }']), /dataDir/);
});
