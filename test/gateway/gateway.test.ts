// The gateway against a scriptable RFB server written in the test (support/fake-rfb.ts):
// handshake, drawing, flow control, input, clipboard, joining, errors.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import sharp from 'sharp';
import { encode, Status } from '../../server/gateway/protocol.ts';
import { VNC_ARGS } from '../../server/gateway/settings.ts';
import {
  copyRect,
  cursorRect,
  extDesktopSizeRect,
  FakeRfbServer,
  solidRawRect,
  type FakeRfbConnection,
  type FakeRfbOptions,
} from './support/fake-rfb.ts';
import { grantedGateway } from './support/granted.ts';
import { GuacTestClient, type Image } from './support/guac-client.ts';
import { freePort } from './support/xvnc.ts';

async function setup(t: TestContext, opts: Partial<FakeRfbOptions> = {}, timings = {}) {
  const rfb = await FakeRfbServer.start({ width: 200, height: 100, ...opts });
  const granted = await grantedGateway({ timings });
  const gw = granted.gw;
  t.after(async () => {
    await gw.close();
    await rfb.close();
  });
  const clients: GuacTestClient[] = [];
  t.after(() => clients.forEach((c) => c.close()));
  const client = async () => {
    const c = await GuacTestClient.connect(gw.endpoint);
    clients.push(c);
    return c;
  };
  /** Resolves with the RFB-side connection once the gateway has connected. */
  const upstream = async (index = 0): Promise<FakeRfbConnection> => {
    for (let i = 0; i < 200 && !rfb.connections[index]?.messages.some((m) => m.type === 'request'); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const c = rfb.connections[index];
    assert.ok(c, 'gateway did not connect to the VNC server');
    return c;
  };
  /** A fresh grant to the scripted server (each works once). */
  const grant = () => granted.vnc(rfb.port);
  return { rfb, gw, client, upstream, grant, granted, params: { hostname: '127.0.0.1', port: String(rfb.port) } };
}

async function pixel(img: Image, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(img.data).raw().toBuffer({ resolveWithObject: true });
  const o = (y * info.width + x) * info.channels;
  return [data[o]!, data[o + 1]!, data[o + 2]!];
}

const until = async (cond: () => boolean, ms = 3000) => {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail('condition not met in time');
};

describe('gateway with a scripted RFB server', () => {
  it('does guacd\'s handshake and draws the first frame', async (t) => {
    const { client, upstream, params, grant } = await setup(t, { name: 'Büro 😀' });
    const c = await client();
    const { id, args } = await c.handshake(params, grant());
    assert.deepEqual(args, ['VERSION_1_5_0', ...VNC_ARGS]);
    assert.match(id, /^\$[0-9a-f-]{36}$/);
    const up = await upstream();
    // The scripted server is on loopback: no ZRLE (rfb.client.ts preferredEncodings).
    assert.deepEqual(up.messages[1], { type: 'encodings', list: [1, 0, -223, -308, -224, -239] });
    // The first request is non-incremental; answer it with text-like stripes via Raw.
    const colours = [[255, 255, 255], [0, 0, 0], [30, 60, 90], [200, 10, 10]];
    const px = Buffer.alloc(200 * 100 * 4);
    for (let i = 0; i < 200 * 100; i++) px.set([...colours[(i % 200) % 4]!, 0], i * 4);
    up.sendRaw(0, 0, 200, 100, px);
    const f = await c.frame();
    assert.deepEqual(f.instructions[0], { opcode: 'name', args: ['Büro 😀'] });
    assert.deepEqual(f.instructions[1], { opcode: 'size', args: ['0', '200', '100'] });
    assert.equal(f.images.length, 1);
    // Sharp content: lossless (the client offers WebP: WebP lossless for an area that is not changing often).
    assert.ok(f.images[0]!.mime === 'image/png' || f.images[0]!.data.toString('latin1', 12, 16) === 'VP8L', f.images[0]!.mime);
    assert.deepEqual(await pixel(f.images[0]!, 10, 20), colours[2]);
    assert.deepEqual(await pixel(f.images[0]!, 3, 99), colours[3]);
    // A photo-like area changing once stays lossless; changing again it goes out as JPEG, close to the source colours.
    for (let i = 0; i < 200 * 100; i++) px.set([i % 200, (i / 200) | 0, 77, 0], i * 4);
    up.sendRaw(0, 0, 200, 100, px);
    assert.equal((await c.frame()).images[0]!.mime, 'image/png');
    up.sendRaw(0, 0, 200, 100, px);
    const g = await c.frame();
    assert.equal(g.images[0]!.mime, 'image/jpeg');
    const [r, gr, b] = await pixel(g.images[0]!, 100, 50);
    assert.ok(Math.abs(r! - 100) < 12 && Math.abs(gr! - 50) < 12 && Math.abs(b! - 77) < 12, `${r},${gr},${b}`);
  });

  it('sends solid areas as rect+cfill, CopyRect as copy, and the cursor shape', async (t) => {
    const { client, upstream, params, grant } = await setup(t);
    const c = await client();
    await c.handshake(params, grant());
    const up = await upstream();
    up.sendUpdate([solidRawRect(0, 0, 200, 100, [0, 0, 255])]);
    await c.frame();
    up.sendUpdate([copyRect(100, 50, 20, 10, 0, 0), cursorRect(2, 3, 8, 8, [255, 255, 0])]);
    const f = await c.frame();
    const ops = f.instructions.map((i) => i.opcode);
    assert.ok(ops.includes('copy'), ops.join(' '));
    assert.deepEqual(f.instructions.find((i) => i.opcode === 'copy')!.args, ['0', '0', '0', '20', '10', '14', '0', '100', '50']);
    assert.deepEqual(f.instructions.find((i) => i.opcode === 'cursor')!.args, ['2', '3', '-1', '0', '0', '8', '8']);
    up.sendUpdate([solidRawRect(10, 10, 30, 30, [255, 0, 0])]);
    const g = await c.frame();
    assert.deepEqual(g.instructions.find((i) => i.opcode === 'cfill')!.args, ['14', '0', '255', '0', '0', '255']);
    assert.deepEqual(g.instructions.find((i) => i.opcode === 'rect')!.args, ['0', '10', '10', '30', '30']);
  });

  it('waits for sync before the next frame and merges updates meanwhile', async (t) => {
    const { client, upstream, params, grant } = await setup(t);
    const c = await client();
    await c.handshake(params, grant());
    const up = await upstream();
    up.sendUpdate([solidRawRect(0, 0, 200, 100, [0, 0, 0])]);
    const first = await c.frame(false); // do not acknowledge
    const mark = c.received.length;
    // The gateway may ask for one more update while the client renders, not more.
    await until(() => up.pendingRequests === 1);
    up.sendUpdate([solidRawRect(0, 0, 10, 10, [255, 0, 0])]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(up.pendingRequests, 0, 'no request while a frame is unacknowledged and another is pending');
    assert.ok(!c.received.slice(mark).some((i) => i.opcode === 'sync'), 'no frame before sync');
    c.send('sync', first.ts);
    const second = await c.frame();
    assert.ok(Number(second.ts) > Number(first.ts));
    assert.ok(second.instructions.some((i) => i.opcode === 'cfill' && i.args[2] === '255'));
    await until(() => up.pendingRequests === 1);
  });

  it('forwards keys, mouse and clipboard both ways (Latin-1 on the VNC side)', async (t) => {
    const { client, upstream, params, grant } = await setup(t);
    const c = await client();
    await c.handshake(params, grant());
    const up = await upstream();
    c.send('key', 65307, 1);
    c.send('key', 65307, 0);
    c.send('mouse', 15, 25, 5);
    c.send('clipboard', 7, 'text/plain');
    c.send('blob', 7, Buffer.from('héllo 😀', 'utf8').toString('base64'));
    c.send('end', 7);
    await until(() => up.messages.some((m) => m.type === 'cut'));
    const input = up.messages.filter((m) => m.type === 'key' || m.type === 'pointer' || m.type === 'cut');
    assert.deepEqual(input, [
      { type: 'key', down: true, keysym: 65307 },
      { type: 'key', down: false, keysym: 65307 },
      { type: 'pointer', mask: 5, x: 15, y: 25 },
      { type: 'cut', text: 'héllo ?' },
    ]);
    assert.ok(c.received.some((i) => i.opcode === 'ack' && i.args[0] === '7' && i.args[2] === '0'));
    up.sendCutText('café');
    const clip = await c.next((i) => i.opcode === 'clipboard');
    assert.equal(clip.args[1], 'text/plain');
    const blob = await c.next((i) => i.opcode === 'blob' && i.args[0] === clip.args[0]);
    assert.equal(Buffer.from(blob.args[1]!, 'base64').toString('utf8'), 'café');
  });

  it('honours disable-copy and disable-paste', async (t) => {
    const { client, upstream, params, grant } = await setup(t);
    const c = await client();
    await c.handshake({ ...params, 'disable-copy': 'true', 'disable-paste': 'true' }, grant());
    const up = await upstream();
    c.send('clipboard', 3, 'text/plain');
    c.send('blob', 3, Buffer.from('x').toString('base64'));
    c.send('end', 3);
    up.sendCutText('secret');
    c.send('key', 97, 1);
    await until(() => up.messages.some((m) => m.type === 'key'));
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!up.messages.some((m) => m.type === 'cut'));
    assert.ok(!c.received.some((i) => i.opcode === 'clipboard'));
    assert.equal(c.received.find((i) => i.opcode === 'ack')?.args[2], String(Status.UNSUPPORTED));
  });

  it('lets a read-only joiner watch the same frames while ignoring its input', async (t) => {
    const { client, upstream, params, grant, granted } = await setup(t);
    const owner = await client();
    const { id } = await owner.handshake(params, grant());
    const up = await upstream();
    up.sendUpdate([solidRawRect(0, 0, 200, 100, [0, 128, 0])]);
    await owner.frame();
    const viewer = await client();
    // The grant says read-only; the viewer's own `read-only=false` changes nothing.
    const joined = await viewer.handshake({ 'read-only': 'false' }, granted.grant({ join: id }, { readOnly: true }));
    assert.equal(joined.id, id);
    const vf = await viewer.frame();
    assert.ok(vf.instructions.some((i) => i.opcode === 'size'));
    assert.ok(vf.instructions.some((i) => i.opcode === 'cfill' && i.args[3] === '128'));
    await owner.frame(); // the owner gets the refresh frame too
    viewer.send('key', 66, 1);
    viewer.send('mouse', 1, 1, 1);
    viewer.send('clipboard', 4, 'text/plain');
    viewer.send('blob', 4, Buffer.from('no').toString('base64'));
    viewer.send('end', 4);
    viewer.send('size', 800, 600);
    owner.send('key', 67, 1);
    await until(() => up.messages.some((m) => m.type === 'key'));
    await new Promise((r) => setTimeout(r, 100));
    const input = up.messages.filter((m) => ['key', 'pointer', 'cut', 'setsize'].includes(m.type));
    assert.deepEqual(input, [{ type: 'key', down: true, keysym: 67 }]);
    owner.send('mouse', 42, 43, 0);
    const seen = await viewer.next((i) => i.opcode === 'mouse');
    assert.deepEqual(seen.args.slice(0, 3), ['42', '43', '0']);
    up.sendUpdate([solidRawRect(0, 0, 5, 5, [9, 9, 9])]);
    const [a, b] = await Promise.all([owner.frame(), viewer.frame()]);
    assert.equal(a.ts, b.ts);
  });

  it('resizes through SetDesktopSize only when the server supports ExtendedDesktopSize', async (t) => {
    const { client, upstream, params, grant } = await setup(t);
    const c = await client();
    await c.handshake(params, grant());
    const up = await upstream();
    c.send('size', 300, 150);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!up.messages.some((m) => m.type === 'setsize'));
    up.sendUpdate([extDesktopSizeRect(0, 0, 200, 100)]);
    await c.frame();
    c.send('size', 320, 160);
    await until(() => up.messages.some((m) => m.type === 'setsize'));
    assert.deepEqual(up.messages.find((m) => m.type === 'setsize'), { type: 'setsize', width: 320, height: 160 });
    up.sendUpdate([extDesktopSizeRect(1, 0, 320, 160), solidRawRect(0, 0, 320, 160, [1, 2, 3])]);
    const f = await c.frame();
    assert.deepEqual(f.instructions.find((i) => i.opcode === 'size')?.args, ['0', '320', '160']);
    assert.ok(f.instructions.some((i) => i.opcode === 'rect' && i.args.join() === '0,0,0,320,160'));
    // The older DesktopSize pseudo-encoding (-223) also resizes.
    const hdr = Buffer.alloc(12);
    hdr.writeUInt16BE(100, 4);
    hdr.writeUInt16BE(50, 6);
    hdr.writeInt32BE(-223, 8);
    up.sendUpdate([hdr]);
    const g = await c.frame();
    assert.deepEqual(g.instructions.find((i) => i.opcode === 'size')?.args, ['0', '100', '50']);
  });

  it('honours swap-red-blue and cursor=remote', async (t) => {
    const { client, upstream, params, grant } = await setup(t);
    const c = await client();
    await c.handshake({ ...params, 'swap-red-blue': 'true', cursor: 'remote', encodings: 'raw' }, grant());
    const up = await upstream();
    assert.deepEqual(up.messages.find((m) => m.type === 'encodings'), { type: 'encodings', list: [0, -223, -308, -224] });
    up.sendUpdate([solidRawRect(0, 0, 200, 100, [255, 0, 0])]);
    const f = await c.frame();
    assert.deepEqual(f.instructions.find((i) => i.opcode === 'cfill')!.args.slice(2, 5), ['0', '0', '255']);
  });

  /** The first frame: the server's size and a full-screen fill of `rgb`. */
  const assertFirstFrame = (f: { instructions: Array<{ opcode: string; args: string[] }> }, rgb: number[]) => {
    assert.deepEqual(f.instructions.find((i) => i.opcode === 'size')?.args, ['0', '200', '100']);
    assert.deepEqual(f.instructions.find((i) => i.opcode === 'rect')?.args, ['0', '0', '0', '200', '100']);
    assert.deepEqual(f.instructions.find((i) => i.opcode === 'cfill')?.args.slice(2, 5), rgb.map(String));
  };

  it('works with an RFB 3.7 server without authentication: the handshake completes and the first pixels arrive', async (t) => {
    const { client, upstream, params, grant } = await setup(t, { version: '3.7' });
    const c = await client();
    await c.handshake(params, grant());
    const up = await upstream();
    assert.equal(up.clientVersion, 'RFB 003.007', 'the gateway answered with version 3.7');
    assert.equal(up.securityType, 1, 'security type None chosen');
    assert.deepEqual(up.messages.slice(0, 2).map((m) => m.type), ['pixelformat', 'encodings']);
    up.sendUpdate([solidRawRect(0, 0, 200, 100, [11, 22, 33])]);
    assertFirstFrame(await c.frame(), [11, 22, 33]);
  });

  it('works with an RFB 3.3 server using VNC authentication: the right password streams, a wrong one gets 0x0301', async (t) => {
    const { client, upstream, params, grant, rfb } = await setup(t, { version: '3.3', password: 'pässwd' });
    const c = await client();
    await c.handshake({ ...params, password: 'pässwd' }, grant());
    const up = await upstream();
    assert.equal(up.clientVersion, 'RFB 003.003', 'the gateway answered with version 3.3');
    assert.equal(up.authenticated, true, 'the DES challenge response matched');
    up.sendUpdate([solidRawRect(0, 0, 200, 100, [44, 55, 66])]);
    assertFirstFrame(await c.frame(), [44, 55, 66]);
    const bad = await client();
    await bad.handshake({ ...params, password: 'wrong' }, grant());
    const err = await bad.next((i) => i.opcode === 'error');
    assert.equal(Number(err.args[1]), Status.CLIENT_UNAUTHORIZED);
    assert.equal(rfb.connections[1]?.authenticated, false);
    assert.ok(!bad.received.some((i) => i.opcode === 'size'), 'nothing of the desktop reached the refused client');
  });

  it('reports a wrong password as CLIENT_UNAUTHORIZED and an unreachable server as UPSTREAM_NOT_FOUND', async (t) => {
    const { client, params, grant, granted } = await setup(t, { password: 'right' });
    const c = await client();
    await c.handshake({ ...params, password: 'wrong', autoretry: '3' }, grant());
    const err = await c.next((i) => i.opcode === 'error');
    assert.equal(Number(err.args[1]), Status.CLIENT_UNAUTHORIZED);
    await c.next((i) => i.opcode === 'disconnect');
    const d = await client();
    const closed = await freePort();
    await d.handshake({ hostname: '127.0.0.1', port: String(closed), autoretry: '0' }, granted.vnc(closed));
    const e2 = await d.next((i) => i.opcode === 'error');
    assert.equal(Number(e2.args[1]), Status.UPSTREAM_NOT_FOUND);
  });

  it('ends the session with UPSTREAM_ERROR when the VNC server drops', async (t) => {
    const { client, upstream, params, grant } = await setup(t);
    const c = await client();
    await c.handshake(params, grant());
    const up = await upstream();
    up.socket.destroy();
    const err = await c.next((i) => i.opcode === 'error');
    assert.equal(Number(err.args[1]), Status.UPSTREAM_ERROR);
  });

  it('answers bad input with guacd status codes and keeps serving', async (t) => {
    const { client, params, gw, grant, granted } = await setup(t);
    const cases: Array<[string, number]> = [
      ['garbage;', Status.CLIENT_BAD_REQUEST],
      [encode('connect', 'x'), Status.CLIENT_BAD_REQUEST],
      [encode('select', 'rdp'), Status.CLIENT_FORBIDDEN],
      [encode('select', '$nope'), Status.CLIENT_FORBIDDEN],
      [encode('select', granted.grant({ join: '$nope' })), Status.RESOURCE_NOT_FOUND],
      [`9000.${'a'.repeat(10)}`, Status.CLIENT_OVERRUN],
    ];
    for (const [wire, status] of cases) {
      const c = await client();
      c.socket.write(wire);
      const err = await c.next((i) => i.opcode === 'error');
      assert.equal(Number(err.args[1]), status, wire.slice(0, 20));
    }
    // Malformed input after the handshake ends only that connection.
    const c = await client();
    await c.handshake(params, grant());
    c.socket.write('5.mouse,x;');
    const err = await c.next((i) => i.opcode === 'error');
    assert.equal(Number(err.args[1]), Status.CLIENT_BAD_REQUEST);
    const ok = await client();
    await ok.handshake(params, grant());
    await until(() => gw.connections() >= 1);
  });

  it('sends nop keep-alives and drops silent clients with CLIENT_TIMEOUT', async (t) => {
    const { client, params, upstream, grant } = await setup(t, {}, { keepAliveMs: 100, idleTimeoutMs: 600, handshakeTimeoutMs: 400 });
    const c = await client();
    await c.handshake(params, grant());
    await c.next((i) => i.opcode === 'nop', 2000);
    const err = await c.next((i) => i.opcode === 'error', 3000);
    assert.equal(Number(err.args[1]), Status.CLIENT_TIMEOUT);
    // A client that keeps talking but never answers a frame's sync is dropped too.
    const lazy = await client();
    await lazy.handshake(params, grant());
    const up = await upstream(1);
    up.sendUpdate([solidRawRect(0, 0, 200, 100, [5, 5, 5])]);
    await lazy.frame(false);
    const keepAlive = setInterval(() => lazy.send('nop'), 100);
    t.after(() => clearInterval(keepAlive));
    const lazyErr = await lazy.next((i) => i.opcode === 'error', 3000);
    clearInterval(keepAlive);
    assert.equal(Number(lazyErr.args[1]), Status.CLIENT_TIMEOUT);
    const slow = await client();
    slow.send('select', grant());
    const e2 = await slow.next((i) => i.opcode === 'error', 3000);
    assert.equal(Number(e2.args[1]), Status.CLIENT_TIMEOUT);
  });
});
