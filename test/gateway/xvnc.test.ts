// End to end against a real VNC server: Xvnc from tigervnc-standalone-server, drawn on with
// xsetroot (x11-xserver-utils). Every Xvnc is stopped by pid in an after hook.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { Status } from '../../server/gateway/protocol.ts';
import { preferredEncodings, RfbClient } from '../../server/gateway/rfb.client.ts';
import { hasPainterDeps, startPainter, type Painter } from '../../bench/support/painter.ts';
import { grantedGateway, type GrantedGateway } from './support/granted.ts';
import { GuacTestClient, type Frame } from './support/guac-client.ts';
import { freePort, hasXvnc, startXvnc, type Xvnc } from './support/xvnc.ts';

const missing = hasXvnc() ? null : 'Xvnc/xsetroot/vncpasswd not installed (apt-get install tigervnc-standalone-server tigervnc-tools x11-xserver-utils)';

/** Colour at (x, y) after applying a frame's fills and images (layer 0 only). */
async function colourAt(frames: Frame[], x: number, y: number): Promise<number[] | undefined> {
  let found: number[] | undefined;
  for (const f of frames) {
    let rect: number[] | undefined;
    for (const ins of f.instructions) {
      const n = ins.args.map(Number);
      if (ins.opcode === 'rect' && n[0] === 0) rect = n.slice(1);
      if (ins.opcode === 'cfill' && n[1] === 0 && rect) {
        const [rx, ry, rw, rh] = rect as [number, number, number, number];
        if (x >= rx && y >= ry && x < rx + rw && y < ry + rh) found = n.slice(2, 5);
      }
    }
    for (const img of f.images) {
      if (img.layer !== '0') continue;
      const { data, info } = await sharp(img.data).raw().toBuffer({ resolveWithObject: true });
      if (x >= img.x && y >= img.y && x < img.x + info.width && y < img.y + info.height) {
        const o = ((y - img.y) * info.width + (x - img.x)) * info.channels;
        found = [data[o]!, data[o + 1]!, data[o + 2]!];
      }
    }
  }
  return found;
}

/** Reads (and acks) frames until (x, y) has the wanted colour; bounded. */
async function waitForColour(c: GuacTestClient, x: number, y: number, want: number[], frames: Frame[] = []): Promise<Frame[]> {
  for (let i = 0; i < 20; i++) {
    frames.push(await c.frame(true, 10_000));
    const got = await colourAt(frames, x, y);
    if (got && got.every((v, k) => Math.abs(v - want[k]!) <= 2)) return frames;
  }
  assert.fail(`pixel (${x},${y}) never became ${want}; last ${await colourAt(frames, x, y)}`);
}

describe('gateway with a real Xvnc', () => {
  it('has its prerequisites', () => assert.equal(missing, null));
  let g: GrantedGateway;
  let open: Xvnc;
  let locked: Xvnc;
  const clients: GuacTestClient[] = [];
  const client = async () => {
    const c = await GuacTestClient.connect(g.gw.endpoint);
    clients.push(c);
    return c;
  };

  before(async () => {
    // The default deployment: a unix socket in a private directory.
    g = await grantedGateway({ listen: { socketDir: '' } });
    [open, locked] = await Promise.all([startXvnc({ width: 640, height: 480 }), startXvnc({ width: 640, height: 480, password: 'S3cret!x' })]);
  });

  after(async () => {
    clients.forEach((c) => c.close());
    await g?.gw.close();
    await Promise.all([open?.stop(), locked?.stop()]);
  });

  it('streams the desktop (security None) and shows xsetroot colours', async () => {
    const c = await client();
    const { id } = await c.handshake({ hostname: '127.0.0.1', port: String(open.port) }, g.vnc(open.port));
    assert.match(id, /^\$/);
    const first = await c.frame();
    assert.ok(first.instructions.some((i) => i.opcode === 'size' && i.args.join() === '0,640,480'));
    await open.x('xsetroot', '-solid', '#ff0000');
    await waitForColour(c, 320, 240, [255, 0, 0], [first]);
    await open.x('xsetroot', '-solid', '#0000ff');
    await waitForColour(c, 5, 470, [0, 0, 255]);
  });

  it('draws a text-like pattern losslessly (PNG, or WebP lossless when offered) with exact pixels', async () => {
    const c = await client();
    await c.handshake({ hostname: '127.0.0.1', port: String(open.port) }, g.vnc(open.port));
    await c.frame();
    // xsetroot -mod tiles a two-colour grid pattern over the root window.
    await open.x('xsetroot', '-mod', '4', '4', '-fg', '#00ff00', '-bg', '#202020');
    const frames: Frame[] = [];
    for (let i = 0; i < 20 && !frames.some((f) => f.images.length > 0); i++) frames.push(await c.frame());
    const img = frames.flatMap((f) => f.images).find((im) => im.layer === '0');
    assert.ok(img, 'expected an image for the pattern');
    // The client offers WebP: a still, sharp area goes out as WebP lossless (VP8L), else PNG.
    assert.ok(img.mime === 'image/png' || (img.mime === 'image/webp' && img.data.toString('latin1', 12, 16) === 'VP8L'), img.mime);
    const { data, info } = await sharp(img.data).raw().toBuffer({ resolveWithObject: true });
    const seen = new Set<string>();
    for (let i = 0; i < info.width * info.height; i += 7) seen.add(`${data[i * info.channels]},${data[i * info.channels + 1]},${data[i * info.channels + 2]}`);
    assert.deepEqual([...seen].sort(), ['0,255,0', '32,32,32']);
  });

  it('connects with VNC Authentication and reports a wrong password as 0x0301', async () => {
    const ok = await client();
    await ok.handshake({ hostname: '127.0.0.1', port: String(locked.port), password: 'S3cret!x' }, g.vnc(locked.port));
    await ok.frame();
    await locked.x('xsetroot', '-solid', '#00ff00');
    await waitForColour(ok, 100, 100, [0, 255, 0]);

    const bad = await client();
    await bad.handshake({ hostname: '127.0.0.1', port: String(locked.port), password: 'nope' }, g.vnc(locked.port));
    const err = await bad.next((i) => i.opcode === 'error');
    assert.equal(Number(err.args[1]), Status.CLIENT_UNAUTHORIZED);
  });

  it('resizes the desktop when the client sends size (ExtendedDesktopSize)', async () => {
    const x = await startXvnc({ width: 640, height: 480 });
    try {
      const c = await client();
      await c.handshake({ hostname: '127.0.0.1', port: String(x.port) }, g.vnc(x.port));
      await c.frame();
      c.send('size', 800, 600);
      let size: string | undefined;
      for (let i = 0; i < 10 && !size; i++) {
        const f = await c.frame(true, 5000);
        size = f.instructions.find((ins) => ins.opcode === 'size' && ins.args[0] === '0')?.args.join();
      }
      assert.equal(size, '0,800,600');
      c.close();
    } finally {
      await x.stop();
    }
  });

  it('reports an unreachable VNC port as 0x0207', async () => {
    const c = await client();
    const closed = await freePort();
    await c.handshake({ hostname: '127.0.0.1', port: String(closed) }, g.vnc(closed));
    const err = await c.next((i) => i.opcode === 'error');
    assert.equal(Number(err.args[1]), Status.UPSTREAM_NOT_FOUND);
  });

  it('lets a read-only joiner see the same desktop; flow control holds frames until sync', async () => {
    const owner = await client();
    const { id } = await owner.handshake({ hostname: '127.0.0.1', port: String(open.port) }, g.vnc(open.port));
    await owner.frame();
    await open.x('xsetroot', '-solid', '#ffff00');
    await waitForColour(owner, 10, 10, [255, 255, 0]);

    const viewer = await client();
    await viewer.handshake({}, g.grant({ join: id }, { readOnly: true }));
    const vf = await viewer.frame();
    assert.ok(vf.instructions.some((i) => i.opcode === 'size' && i.args.join() === '0,640,480'));
    assert.deepEqual(await colourAt([vf], 10, 10), [255, 255, 0]);
    const of = await owner.frame(); // same refresh frame for the owner
    assert.equal(of.ts, vf.ts);

    // The viewer stops acknowledging: after its pending frame nothing more reaches anyone.
    await open.x('xsetroot', '-solid', '#00ffff');
    const held = await viewer.frame(false);
    await owner.frame();
    const mark = owner.received.length;
    await open.x('xsetroot', '-solid', '#ff00ff');
    await new Promise((r) => setTimeout(r, 400));
    assert.ok(!owner.received.slice(mark).some((i) => i.opcode === 'sync'), 'no frame while the viewer owes a sync');
    viewer.send('sync', held.ts);
    await waitForColour(owner, 10, 10, [255, 0, 255]);
  });
});

describe('RFB client with a real Xvnc, Raw on loopback and ZRLE on request', () => {
  const painterMissing = missing ?? (hasPainterDeps() ? null : 'painter build dependencies missing (cc, libx11-dev, libxft-dev, fonts-dejavu-core)');
  let x: Xvnc | undefined;
  const painters: Painter[] = [];
  const clients: RfbClient[] = [];

  before(async () => {
    if (painterMissing) return;
    x = await startXvnc({ width: 640, height: 480 });
  });

  after(async () => {
    clients.forEach((c) => c.close());
    for (const p of painters) await p.stop();
    await x?.stop();
  });

  /** Streams updates into the client's framebuffer until its RGB equals `want` (RGBA), or fails. */
  async function untilEqual(c: RfbClient, want: Buffer, what: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    const differs = () => {
      const fb = c.fb.data;
      for (let i = 0; i < want.length; i += 4) if (fb[i] !== want[i] || fb[i + 1] !== want[i + 1] || fb[i + 2] !== want[i + 2]) return true;
      return false;
    };
    while (differs()) {
      if (Date.now() > deadline) assert.fail(`${what}: the framebuffer never matched the X server's pixels`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function stream(loopbackRaw: boolean): Promise<RfbClient> {
    const c = await RfbClient.connect({ host: '127.0.0.1', port: x!.port, encodings: [16, 1, 0, -223, -224], loopbackRaw });
    clients.push(c);
    const sink = { resized() {}, damaged() {}, copied() {}, cursor() {}, clipboard() {}, updateDone: () => c.requestUpdate(true) };
    void c.run(sink);
    c.requestUpdate(false);
    return c;
  }

  it('decodes Xvnc\'s ZRLE (one zlib stream over many rectangles) and Raw into the exact pixels', async () => {
    assert.equal(painterMissing, null, `prerequisites missing: ${painterMissing}`);
    const [zrle, raw] = await Promise.all([stream(false), stream(true)]);
    // Two different screens, so later rectangles continue the first ones' zlib stream.
    for (const [mode, seed] of [['text', 1], ['photo', 2], ['text', 3]] as const) {
      const p = await startPainter({ display: x!.display, mode, fps: 0, dump: true, seed });
      painters.push(p);
      await untilEqual(zrle, p.pixels!, `ZRLE, ${mode} ${seed}`);
      await untilEqual(raw, p.pixels!, `Raw, ${mode} ${seed}`);
      await p.stop();
    }
    assert.ok((zrle.rectangles.get(16) ?? 0) > 3, `ZRLE rectangles: ${[...zrle.rectangles]}`);
    assert.equal(raw.rectangles.get(16), undefined, 'a server on loopback is not offered ZRLE');
    assert.ok((raw.rectangles.get(0) ?? 0) > 0, `Raw rectangles: ${[...raw.rectangles]}`);
  });

  it('offers ZRLE to a remote server as configured, and leaves it out on loopback', () => {
    const configured = [16, 1, 0, -223, -308, -224, -239];
    assert.deepEqual(preferredEncodings(configured, '192.0.2.10'), configured);
    assert.deepEqual(preferredEncodings(configured, '2001:db8::1'), configured);
    assert.deepEqual(preferredEncodings(configured, '127.0.0.1'), [1, 0, -223, -308, -224, -239]);
    assert.deepEqual(preferredEncodings(configured, '::ffff:127.0.0.2'), [1, 0, -223, -308, -224, -239]);
    assert.deepEqual(preferredEncodings(configured, '::1'), [1, 0, -223, -308, -224, -239]);
  });
});
