import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { DirtyRegion, Framebuffer } from '../../server/gateway/framebuffer.ts';
import {
  BLOB_BASE64_MAX,
  codePointLength,
  encode,
  encodeBlobs,
  GuacError,
  InstructionParser,
  InstructionWriter,
  Status,
} from '../../server/gateway/protocol.ts';
import { parseConnectArgs, textToClipboard, VNC_ARGS } from '../../server/gateway/settings.ts';
import { desEncrypt, vncAuthResponse, vncKey } from '../../server/gateway/vnc-auth.ts';
import { decodeZrle, encodeZrleSimple } from '../../server/gateway/zrle.ts';

function parseAll(text: string | Buffer, max?: number) {
  return new InstructionParser(max).push(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
}

function errorOf(fn: () => unknown): GuacError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof GuacError, `expected GuacError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an error');
}

describe('Guacamole instruction encoding', () => {
  it('counts Unicode code points, not UTF-16 units or bytes', () => {
    assert.equal(codePointLength('abc'), 3);
    assert.equal(codePointLength('héllo'), 5);
    assert.equal(codePointLength('😀'), 1);
    assert.equal(codePointLength('a😀b👍🏽'), 5);
    assert.equal(encode('name', 'Café 😀'), '4.name,6.Café 😀;');
    assert.equal(encode('size', 0, 1024, 768), '4.size,1.0,4.1024,3.768;');
    assert.equal(encode('nop'), '3.nop;');
  });

  it('round-trips emoji, non-ASCII and empty elements', () => {
    const text = encode('clipboard', '', 'дом 😀 ✓', '漢字', '');
    const [ins] = parseAll(text);
    assert.deepEqual(ins, { opcode: 'clipboard', args: ['', 'дом 😀 ✓', '漢字', ''] });
  });

  it('parses input fragmented at every byte, including inside UTF-8 sequences', () => {
    const wire = Buffer.from(encode('key', '65', '1') + encode('name', '😀é,;.') + encode('sync', '123'), 'utf8');
    const p = new InstructionParser();
    const out = [];
    for (const b of wire) out.push(...p.push(Buffer.from([b])));
    assert.deepEqual(out, [
      { opcode: 'key', args: ['65', '1'] },
      { opcode: 'name', args: ['😀é,;.'] },
      { opcode: 'sync', args: ['123'] },
    ]);
  });

  it('rejects malformed instructions with CLIENT_BAD_REQUEST', () => {
    for (const bad of ['x.abc;', '3.ab;x', '3.abcd;', '.abc;', '3,abc;', '-1.a;', '3.abc:']) {
      assert.equal(errorOf(() => parseAll(bad)).status, Status.CLIENT_BAD_REQUEST, bad);
    }
  });

  it('rejects oversized instructions with CLIENT_OVERRUN before buffering them', () => {
    assert.equal(errorOf(() => parseAll('9000.')).status, Status.CLIENT_OVERRUN);
    assert.equal(errorOf(() => parseAll('99999999999.')).status, Status.CLIENT_OVERRUN);
    const many = '1.a,'.repeat(200) + '1.a;';
    assert.equal(errorOf(() => parseAll(many, 1 << 20)).status, Status.CLIENT_OVERRUN);
    // Elements just under the cap are fine; the sum over one instruction is capped too.
    const el = 'a'.repeat(4000);
    assert.equal(parseAll(encode('x', el, el), 8192).length, 1);
    assert.equal(errorOf(() => parseAll(encode('x', el, el, el), 8192)).status, Status.CLIENT_OVERRUN);
  });

  it('chunks blobs to at most 6048 base64 characters', () => {
    const data = Buffer.alloc(20_000, 7);
    const ins = parseAll(encodeBlobs(3, data), 1 << 20);
    assert.ok(ins.length >= 4);
    for (const i of ins) {
      assert.equal(i.opcode, 'blob');
      assert.equal(i.args[0], '3');
      assert.ok(i.args[1]!.length <= BLOB_BASE64_MAX);
    }
    assert.deepEqual(Buffer.concat(ins.map((i) => Buffer.from(i.args[1]!, 'base64'))), data);
  });
});

describe('instructions written as bytes', () => {
  it('writes exactly what encode() and encodeBlobs() write, at every blob boundary and for non-ASCII text', () => {
    for (const n of [0, 1, 2, 3, 4535, 4536, 4537, 9072, 100_000]) {
      const data = Buffer.alloc(n);
      for (let i = 0; i < n; i++) data[i] = (i * 31) & 255;
      for (const id of [1, 12, 255]) {
        const w = new InstructionWriter(1); // grows as it goes
        w.instruction('img', id, 14, 0, 'image/png', 5, 6).blobs(id, data).instruction('end', id);
        w.text(encode('name', 'Büro 😀')).instruction('name', 'Büro 😀', '').instruction('nop');
        const want = encode('img', id, 14, 0, 'image/png', 5, 6) + encodeBlobs(id, data) + encode('end', id) + encode('name', 'Büro 😀') + encode('name', 'Büro 😀', '') + encode('nop');
        assert.equal(w.take().toString('utf8'), want, `${n} bytes on stream ${id}`);
        assert.equal(w.length, 0, 'take() starts afresh');
      }
    }
  });
});

describe('VNC authentication (DES)', () => {
  it('matches the classic DES test vector', () => {
    const out = desEncrypt(Buffer.from('133457799BBCDFF1', 'hex'), Buffer.from('0123456789ABCDEF', 'hex'));
    assert.equal(out.toString('hex'), '85e813540f0ab405');
  });

  it('bit-reverses the key and truncates passwords to 8 bytes', () => {
    assert.equal(vncKey('a').toString('hex'), '8600000000000000');
    assert.deepEqual(vncKey('12345678'), vncKey('123456789'));
    assert.equal(vncAuthResponse('pw', Buffer.alloc(16)).length, 16);
  });

  it('agrees with vncpasswd -f (which DES-encrypts under a fixed VNC key)', () => {
    assert.ok(existsSync('/usr/bin/vncpasswd'), 'vncpasswd is required (apt-get install tigervnc-tools)');
    // vncpasswd stores DES(password) under the fixed key 23 82 107 6 35 78 88 7 (d3des form).
    const stored = execFileSync('vncpasswd', ['-f'], { input: 'secret\n' });
    const fixed = Buffer.from([23, 82, 107, 6, 35, 78, 88, 7]);
    const key = Buffer.from([...fixed].map((b) => parseInt(b.toString(2).padStart(8, '0').split('').reverse().join(''), 2)));
    const mine = desEncrypt(vncKey('secret'), Buffer.alloc(8));
    assert.equal(mine.length, 8);
    const plain = Buffer.alloc(8);
    Buffer.from('secret', 'latin1').copy(plain);
    assert.deepEqual(desEncrypt(key, plain), stored.subarray(0, 8));
  });
});

describe('connection settings', () => {
  const values = (o: Record<string, string>) => ['VERSION_1_1_0', ...VNC_ARGS.map((n) => o[n] ?? '')];

  it('honours false and 0 as values, never as "missing"', () => {
    const s = parseConnectArgs(values({ hostname: 'h', 'read-only': 'false', autoretry: '0', 'disable-copy': 'false', 'swap-red-blue': 'true' }));
    assert.equal(s.readOnly, false);
    assert.equal(s.autoretry, 0);
    assert.equal(s.disableCopy, false);
    assert.equal(s.swapRedBlue, true);
    assert.equal(s.port, 5900);
    assert.equal(parseConnectArgs(values({ hostname: 'h', 'color-depth': '0' })).colorDepth, 24);
    assert.equal(parseConnectArgs(values({ hostname: 'h', autoretry: '3', 'read-only': 'true' })).readOnly, true);
  });

  it('rejects a bad port or missing hostname with CLIENT_BAD_REQUEST', () => {
    assert.equal(errorOf(() => parseConnectArgs(values({ hostname: 'h', port: '0' }))).status, Status.CLIENT_BAD_REQUEST);
    assert.equal(errorOf(() => parseConnectArgs(values({ hostname: 'h', port: 'x' }))).status, Status.CLIENT_BAD_REQUEST);
    assert.equal(errorOf(() => parseConnectArgs(values({}))).status, Status.CLIENT_BAD_REQUEST);
  });

  it("takes the endpoint and read-only from the grant, not from the client's values", () => {
    const s = parseConnectArgs(values({ hostname: 'evil', port: '22', 'read-only': 'false', password: 'pw' }), { host: '127.0.0.1', port: 5901, readOnly: true });
    assert.deepEqual([s.hostname, s.port, s.readOnly, s.password], ['127.0.0.1', 5901, true, 'pw']);
    assert.equal(parseConnectArgs(values({}), { host: 'h', port: 5900, readOnly: false }).hostname, 'h');
  });

  it('maps encodings and cursor to RFB encodings', () => {
    const s = parseConnectArgs(values({ hostname: 'h', encodings: 'copyrect bogus', cursor: 'remote' }));
    assert.deepEqual(s.encodings, [1, 0, -223, -308, -224]);
    assert.ok(s.warnings.some((w) => w.includes('bogus')));
    assert.ok(parseConnectArgs(values({ hostname: 'h' })).encodings.includes(-239));
    const warned = parseConnectArgs(values({ hostname: 'h', password: 'topsecret', 'color-depth': 'x1' })).warnings;
    assert.ok(warned.length > 0 && !JSON.stringify(warned).includes('topsecret'));
  });

  it('converts clipboard text to Latin-1 with ? for the rest', () => {
    assert.equal(textToClipboard('é😀a', 'ISO8859-1').toString('latin1'), 'é?a');
    assert.equal(textToClipboard('é😀', 'UTF-8').toString('utf8'), 'é😀');
  });
});

describe('framebuffer and ZRLE', () => {
  it('merges overlapping dirty rectangles and keeps distant ones apart', () => {
    const d = new DirtyRegion();
    d.add({ x: 0, y: 0, w: 10, h: 10 });
    d.add({ x: 5, y: 5, w: 10, h: 10 });
    d.add({ x: 500, y: 500, w: 10, h: 10 });
    assert.deepEqual(d.rects, [
      { x: 0, y: 0, w: 15, h: 15 },
      { x: 500, y: 500, w: 10, h: 10 },
    ]);
    assert.equal(d.take().length, 2);
    assert.ok(d.empty);
  });

  it('hibernates an idle framebuffer and restores it on first access', async () => {
    const fb = new Framebuffer(64, 32);
    fb.fill({ x: 3, y: 4, w: 5, h: 6 }, 10, 20, 30);
    const copy = Buffer.from(fb.data);
    await fb.hibernate();
    assert.ok(fb.hibernating);
    assert.deepEqual(fb.data, copy);
    assert.ok(!fb.hibernating);
    // A write racing the deflate wins: the stale packed copy is dropped.
    const pending = fb.hibernate();
    fb.fill({ x: 0, y: 0, w: 1, h: 1 }, 1, 1, 1);
    await pending;
    assert.ok(!fb.hibernating);
    assert.equal(fb.data[0], 1);
  });

  it('decodes raw/solid tiles, packed palettes and RLE, and rejects truncated data', () => {
    const w = 130;
    const h = 70;
    const src = Buffer.alloc(w * h * 4);
    for (let i = 0; i < w * h; i++) {
      src[i * 4] = i % 251;
      src[i * 4 + 1] = (i * 7) % 256;
      src[i * 4 + 2] = 9;
    }
    for (let i = 0; i < 64 * 4; i += 4) src.fill(1, i, i + 3); // partly solid
    const fb = new Framebuffer(w, h);
    decodeZrle(fb, { x: 0, y: 0, w, h }, encodeZrleSimple(src, w, { x: 0, y: 0, w, h }));
    for (let i = 0; i < w * h; i++) {
      assert.equal(fb.data[i * 4], src[i * 4]);
      assert.equal(fb.data[i * 4 + 3], 255);
    }
    // 2-colour packed palette on a 3x1 tile, then plain RLE, then palette RLE.
    const small = new Framebuffer(3, 3);
    decodeZrle(small, { x: 0, y: 0, w: 3, h: 1 }, Buffer.from([2, 255, 0, 0, 0, 0, 255, 0b10100000]));
    assert.deepEqual([...small.data.subarray(0, 12)], [0, 0, 255, 255, 255, 0, 0, 255, 0, 0, 255, 255]);
    decodeZrle(small, { x: 0, y: 1, w: 3, h: 1 }, Buffer.from([128, 1, 2, 3, 2]));
    assert.deepEqual([...small.data.subarray(12, 24)], [1, 2, 3, 255, 1, 2, 3, 255, 1, 2, 3, 255]);
    decodeZrle(small, { x: 0, y: 2, w: 3, h: 1 }, Buffer.from([130, 9, 9, 9, 8, 8, 8, 0x81, 1, 0]));
    assert.deepEqual([...small.data.subarray(24, 36)], [8, 8, 8, 255, 8, 8, 8, 255, 9, 9, 9, 255]);
    assert.throws(() => decodeZrle(small, { x: 0, y: 0, w: 3, h: 3 }, Buffer.from([0, 1, 2])));
    assert.throws(() => decodeZrle(small, { x: 0, y: 0, w: 3, h: 3 }, Buffer.from([128, 1, 2, 3, 255, 255])));
    assert.throws(() => decodeZrle(small, { x: 0, y: 0, w: 3, h: 3 }, Buffer.from([50])));
  });
});
