// A golden image that is only a qcow2 disk (how Ubuntu or Windows images come) boots through
// the BIOS from its disk: the driver runs it, its console answers, and it is destroyed cleanly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TestEnv, makeSpec } from './helpers.ts';
import { imageFilesIn } from '../../server/providers/qemu/config.ts';

test('a disk-only golden image boots from its disk and has a console', async () => {
  const env = new TestEnv('diskboot');
  try {
    const dir = path.join(env.root, 'image');
    fs.mkdirSync(dir);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(dir, 'disk.qcow2'), '64M']);
    const files = imageFilesIn(dir);
    assert.equal(files.kernel, undefined, 'no kernel: BIOS boot');
    const p = env.provider([env.host('h1')], { images: () => files });
    const spec = makeSpec('db', { image: 'plain:1' });
    await p.create(spec);
    await p.start(spec.id);
    assert.equal(await p.power(spec.id), 'running');
    const c = await p.console(spec.id);
    assert.equal(c.protocol, 'vnc');
    assert.ok(c.password && c.password.length >= 8);
    await p.destroy(spec.id);
    assert.equal(await p.power(spec.id), 'missing');
    assert.deepEqual(env.qemuPids(), []);
  } finally {
    await env.cleanup();
  }
});
