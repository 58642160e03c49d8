import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { QemuProvider } from '../../server/providers/qemu/qemu.provider.ts';
import { SerialShell, TestEnv, ensureDemoImage, makeSpec, waitFor } from './helpers.ts';

describe('qemu driver: snapshots and refresh', () => {
  let env: TestEnv;
  let p: QemuProvider;
  let sh: SerialShell | undefined;
  const spec = makeSpec('snap');

  before(async () => {
    ensureDemoImage();
    env = new TestEnv('snap');
    p = env.provider([env.host('h1')]);
    await p.create(spec);
    await p.start(spec.id);
    sh = await SerialShell.open((await p.serial(spec.id)).socket);
  });
  after(async () => {
    sh?.close();
    await env.cleanup();
  });

  test('revert restores disk and memory state and the guest runs again', async () => {
    await sh!.run('echo one > /data/marker; echo before > /run/mem; sync');
    const snap = await p.snapshotCreate(spec.id, 'clean');
    assert.equal(snap.name, 'clean');
    assert.ok((snap.sizeBytes ?? 0) > 0, 'memory state saved');
    await assert.rejects(p.snapshotCreate(spec.id, 'clean'), /already exists/);
    assert.deepEqual((await p.snapshotList(spec.id)).map((s) => s.name), ['clean']);

    await sh!.run('echo two > /data/marker; echo after > /run/mem; touch /data/new-file; sync');
    assert.equal(await sh!.run('cat /data/marker'), 'two');
    await p.snapshotRevert(spec.id, 'clean');
    assert.equal(await p.power(spec.id), 'running');
    assert.equal(await sh!.run('cat /data/marker'), 'one');
    assert.equal(await sh!.run('cat /run/mem'), 'before');
    assert.equal(await sh!.run('test -e /data/new-file && echo yes || echo no'), 'no');
    const c1 = Number(await sh!.run('cat /run/counter'));
    const c2 = await waitFor(async () => {
      const v = Number(await sh!.run('cat /run/counter'));
      return v > c1 ? v : undefined;
    }, 10_000, 'counter to move after revert');
    assert.ok(c2 > c1);

    await assert.rejects(p.snapshotRevert(spec.id, 'nope'), /no snapshot nope/);
    await p.snapshotDelete(spec.id, 'clean');
    assert.deepEqual(await p.snapshotList(spec.id), []);
    await p.snapshotDelete(spec.id, 'clean'); // idempotent
  });

  test('refresh gives a new overlay from the base and the changes are gone', async () => {
    const before = await p.describe(spec.id);
    const inode = fs.statSync(before!.disk).ino;
    const oldPid = await p.pid(spec.id);
    await sh!.run('echo dirty > /data/dirty; sync');
    sh!.close();
    sh = undefined;
    await p.refresh(spec);
    assert.equal(await p.power(spec.id), 'running');
    const newPid = await p.pid(spec.id);
    assert.notEqual(newPid, oldPid);
    assert.notEqual(fs.statSync(before!.disk).ino, inode, 'a new overlay file');
    sh = await SerialShell.open((await p.serial(spec.id)).socket);
    assert.equal(await sh.run('test -e /data/dirty && echo yes || echo no'), 'no');
    assert.equal(await sh.run('test -e /data/marker && echo yes || echo no'), 'no');
    assert.equal(await sh.run('test -e /data/README && echo yes || echo no'), 'yes');
    assert.equal(await sh.run('cat /run/vdi-name'), spec.name);
  });
});
