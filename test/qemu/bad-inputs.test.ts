import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { placeDesktop } from '../../server/providers/qemu/hosts.ts';
import { directoryImageResolver } from '../../server/providers/qemu/config.ts';
import { IMAGE_ROOT, TestEnv, ensureDemoImage, makeSpec } from './helpers.ts';

describe('qemu driver: bad inputs give clear errors and leave nothing behind', () => {
  let env: TestEnv;

  before(() => {
    ensureDemoImage();
    env = new TestEnv('bad');
  });
  after(async () => {
    await env.cleanup();
  });

  const listing = (dir: string): string[] => (fs.existsSync(dir) ? fs.readdirSync(dir) : []);

  test('missing image, or an image missing one of its files', async () => {
    const h = env.host('h1');
    const p = env.provider([h]);
    await assert.rejects(p.create(makeSpec('img', { image: 'no-such-image:1' })), /Image no-such-image:1 is missing its disk file/);
    // An image directory without its disk.
    const broken = path.join(env.root, 'images', 'broken', '1');
    fs.mkdirSync(broken, { recursive: true });
    for (const f of ['vmlinuz', 'initrd.img']) fs.copyFileSync(path.join(IMAGE_ROOT, 'demo/1', f), path.join(broken, f));
    const p2 = env.provider([h], { images: directoryImageResolver(path.join(env.root, 'images')) });
    await assert.rejects(p2.create(makeSpec('img', { image: 'broken' })), /Image broken is missing its disk file .*disk\.qcow2 \(ENOENT\)/);
    await assert.rejects(p2.create(makeSpec('img', { image: '../etc' })), /not valid/);
    assert.deepEqual(listing(path.join(h.dataDir, 'desktops')), []);
  });

  test('unwritable data directory', async () => {
    const file = path.join(env.root, 'a-file');
    fs.writeFileSync(file, 'not a directory');
    const p = env.provider([env.host('h1', { dataDir: path.join(file, 'data') })]);
    await assert.rejects(p.create(makeSpec('rw')), /Data directory .*a-file\/data of host h1 is not writable \(ENOTDIR\)/);
    assert.equal(fs.readFileSync(file, 'utf8'), 'not a directory');
    const deep = env.provider([env.host('h1', { dataDir: path.join(env.root, 'd'.repeat(90)) })]);
    await assert.rejects(deep.create(makeSpec('deep')), /is too deep: socket path .* is longer than 107 bytes/);
    assert.equal(fs.existsSync(path.join(env.root, 'd'.repeat(90))), false);
  });

  test('host without capacity, host in maintenance, unknown host', async () => {
    const small = env.host('small', { capacity: { vcpu: 1, memoryMiB: 256 } });
    const p = env.provider([small]);
    await assert.rejects(p.create(makeSpec('cap', {}, { memoryMiB: 512 })),
      /Not enough capacity on any host for a desktop needing 1 vCPU, 512 MiB \(small: 0\/1 vCPU, 0\/256 MiB used\)/);
    const ok = makeSpec('cap', {}, { memoryMiB: 200 });
    await p.create(ok);
    await assert.rejects(p.create(makeSpec('cap', {}, { memoryMiB: 100 })), /Not enough capacity .*small: 1\/1 vCPU, 200\/256 MiB used/);
    assert.deepEqual(listing(path.join(small.dataDir, 'desktops')), [ok.id]);
    await assert.rejects(p.create(makeSpec('cap', { host: 'elsewhere' })), /Host elsewhere is not configured/);
    p.setMaintenance('small', true);
    await p.destroy(ok.id);
    await assert.rejects(p.create(makeSpec('cap', {}, { memoryMiB: 100 })), /small: in maintenance/);
    await assert.rejects(p.create(makeSpec('cap', { host: 'small' })), /Host small is in maintenance/);
    assert.deepEqual(listing(path.join(small.dataDir, 'desktops')), []);
  });

  test('overcommit and placement policies', () => {
    const a = { name: 'a', dataDir: '/x/a', capacity: { vcpu: 2, memoryMiB: 1000 }, overcommit: { cpu: 4, memory: 1.5 } };
    const b = { name: 'b', dataDir: '/x/b', capacity: { vcpu: 2, memoryMiB: 1000 } };
    const usage = new Map([['a', { vcpu: 7, memoryMiB: 1400, desktops: 3 }], ['b', { vcpu: 1, memoryMiB: 100, desktops: 1 }]]);
    const need = { vcpu: 1, memoryMiB: 100 };
    assert.equal(placeDesktop([a, b], usage, need, 'depth').name, 'a', 'depth fills the first host (8 vCPU, 1500 MiB with overcommit)');
    assert.equal(placeDesktop([a, b], usage, need, 'breadth').name, 'b', 'breadth picks the least loaded');
    assert.throws(() => placeDesktop([a, b], usage, { vcpu: 2, memoryMiB: 950 }, 'breadth'), /Not enough capacity on any host/);
  });

  test('invalid specs, duplicate names and MACs, bad snapshot names', async () => {
    const p = env.provider([env.host('h3')]);
    await assert.rejects(p.create(makeSpec('bad', { mac: '03:00:00:00:00:01' })), /multicast/);
    await assert.rejects(p.create(makeSpec('bad', { mac: 'nope' })), /MAC address "nope" is not valid/);
    await assert.rejects(p.create(makeSpec('bad', { name: 'has space' })), /Desktop name "has space" is not valid/);
    await assert.rejects(p.create(makeSpec('bad', {}, { vcpu: 0 })), /vCPU count 0/);
    const one = makeSpec('dup');
    await p.create(one);
    await assert.rejects(p.create(makeSpec('dup', { name: one.name })), new RegExp(`name ${one.name} is already used`));
    await assert.rejects(p.create(makeSpec('dup', { mac: one.mac })), /MAC address .* is already used/);
    await assert.rejects(p.snapshotCreate(one.id, '12'), /not valid/);
    await assert.rejects(p.snapshotCreate(one.id, 'a b'), /not valid/);
    await assert.rejects(p.start('no-such-desktop'), /does not exist/);
    await assert.rejects(p.console(one.id), /is not running/);
    // A refresh to a missing image leaves the desktop and its disk as they were.
    const disk = (await p.describe(one.id))!.disk;
    const inode = fs.statSync(disk).ino;
    await assert.rejects(p.refresh({ ...one, image: 'gone:9' }), /Image gone:9 is missing/);
    assert.equal(fs.statSync(disk).ino, inode);
    assert.deepEqual(fs.readdirSync(path.dirname(disk)).sort(), ['disk.qcow2', 'state.json']);
    // Disk-only snapshots of a stopped desktop work through qemu-img.
    await p.snapshotCreate(one.id, 'offline');
    assert.deepEqual((await p.snapshotList(one.id)).map((s) => s.name), ['offline']);
    await p.snapshotRevert(one.id, 'offline');
    await p.snapshotDelete(one.id, 'offline');
    // A stopped desktop moves between hosts as files.
    const p2 = env.provider([env.host('h3'), env.host('h4')]);
    const r = await p2.migrate(one.id, 'h4');
    assert.equal(r.toHost, 'h4');
    assert.equal((await p2.describe(one.id))?.host, 'h4');
    assert.deepEqual(listing(path.join(env.root, 'h3', 'desktops')), []);
    await p2.destroy(one.id);
  });
});
