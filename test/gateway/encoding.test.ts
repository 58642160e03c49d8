// Content-aware encoding end to end: one Xvnc painted by bench/support/painter (anti-aliased
// Xft text, photo-like frames, text with a video region) streamed through the gateway to
// Guacamole test clients that decode every image with sharp and composite the frames the way
// guacamole-common-js does. Every Xvnc and painter is stopped by pid in after/finally hooks.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { hasPainterDeps, startPainter, type Painter, type PainterMode } from '../../bench/support/painter.ts';
import { encode } from '../../server/gateway/protocol.ts';
import { grantedGateway, type GrantedGateway } from './support/granted.ts';
import { GuacTestClient, type Frame } from './support/guac-client.ts';
import { hasXvnc, startXvnc, type Xvnc } from './support/xvnc.ts';

const W = 960;
const H = 540;
/**
 * Photo-like frames: bytes on the wire per drawn pixel. Measured with the gateway before
 * content-aware encoding (JPEG q85 for every many-coloured area) on the painter's photo mode
 * at 1280×720: 0.27 bytes per drawn pixel (/tmp measurement, see the H2 report). The issue
 * allows at most 1.2× that.
 */
const PHOTO_BYTES_PER_PIXEL = 1.2 * 0.27;
/** A single frame may be at most this many full screens' worth of that (a lossless first paint). */
const PHOTO_FRAME_SCREENS = 4;

const missing = !hasXvnc() ? 'Xvnc (tigervnc-standalone-server, tigervnc-tools, x11-xserver-utils)' : !hasPainterDeps() ? 'painter deps (cc, libx11-dev, libxft-dev, fonts-dejavu-core)' : null;

const OFFER_ALL = ['image/png', 'image/jpeg', 'image/webp'];
const OFFER_NO_WEBP = ['image/png', 'image/jpeg'];

/** A lossy image: JPEG, or WebP with a VP8 (not VP8L) bitstream. */
function isLossy(img: { mime: string; data: Buffer }): boolean {
  if (img.mime === 'image/jpeg') return true;
  if (img.mime !== 'image/webp') return false;
  // RIFF container: the first chunk is VP8 (lossy), VP8L (lossless) or VP8X then one of them.
  const chunk = img.data.toString('latin1', 12, 16);
  return chunk === 'VP8X' ? img.data.toString('latin1', 30, 34) === 'VP8 ' : chunk === 'VP8 ';
}

/** What guacamole-common-js shows on layer 0: copies, rect+cfill and images, in stream order. */
class Screen {
  readonly px: Buffer;
  constructor(
    readonly w: number,
    readonly h: number,
  ) {
    this.px = Buffer.alloc(w * h * 3);
  }

  async apply(f: Frame): Promise<void> {
    let rect: number[] | undefined;
    const images = [...f.images];
    const imageStreams = new Set(f.images.map((i) => i.stream));
    for (const ins of f.instructions) {
      const n = ins.args.map(Number);
      if (ins.opcode === 'copy' && n[0] === 0 && n[6] === 0) this.copy(n[1]!, n[2]!, n[3]!, n[4]!, n[7]!, n[8]!);
      else if (ins.opcode === 'rect' && n[0] === 0) rect = n.slice(1);
      else if (ins.opcode === 'cfill' && n[1] === 0 && rect) this.fill(rect, n.slice(2, 5));
      else if (ins.opcode === 'end' && imageStreams.has(ins.args[0]!)) {
        const img = images.shift()!;
        if (img.layer === '0') await this.draw(img.x, img.y, img.data);
      }
    }
  }

  private copy(sx: number, sy: number, w: number, h: number, dx: number, dy: number): void {
    const tmp = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) this.px.copy(tmp, y * w * 3, ((sy + y) * this.w + sx) * 3, ((sy + y) * this.w + sx + w) * 3);
    for (let y = 0; y < h; y++) tmp.copy(this.px, ((dy + y) * this.w + dx) * 3, y * w * 3, (y + 1) * w * 3);
  }

  private fill(r: number[], c: number[]): void {
    const [x, y, w, h] = r as [number, number, number, number];
    for (let j = y; j < y + h; j++) for (let i = x; i < x + w; i++) this.px.set(c, (j * this.w + i) * 3);
  }

  private async draw(x: number, y: number, data: Buffer): Promise<void> {
    const { data: raw, info } = await sharp(data).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    for (let j = 0; j < info.height; j++) raw.copy(this.px, ((y + j) * this.w + x) * 3, j * info.width * 3, (j + 1) * info.width * 3);
  }

  /** Pixels that differ from an RGBA source (alpha ignored), and the first one. */
  diff(rgba: Buffer): { count: number; first?: string } {
    let count = 0;
    let first: string | undefined;
    for (let i = 0; i < this.w * this.h; i++) {
      const a = this.px.subarray(i * 3, i * 3 + 3);
      if (a[0] !== rgba[i * 4] || a[1] !== rgba[i * 4 + 1] || a[2] !== rgba[i * 4 + 2]) {
        count++;
        first ??= `(${i % this.w},${Math.floor(i / this.w)}) got ${[...a].join()} want ${[...rgba.subarray(i * 4, i * 4 + 3)].join()}`;
      }
    }
    return { count, first };
  }
}

/** Bytes of a frame on the wire (instructions re-encoded exactly as sent). */
function frameBytes(f: Frame): number {
  return f.instructions.reduce((s, i) => s + Buffer.byteLength(encode(i.opcode, ...i.args)), 0);
}

/** Pixels a frame draws on layer 0 (fills and images; copies excluded). */
async function drawnPixels(f: Frame): Promise<number> {
  let n = 0;
  for (const i of f.instructions) if (i.opcode === 'rect' && i.args[0] === '0') n += Number(i.args[3]) * Number(i.args[4]);
  for (const img of f.images) {
    if (img.layer !== '0') continue;
    const m = await sharp(img.data).metadata();
    n += m.width! * m.height!;
  }
  return n;
}

type Viewer = { c: GuacTestClient; screen: Screen; frames: Frame[] };

describe('content-aware encoding with a real Xvnc', () => {
  it('has its prerequisites', () => assert.equal(missing, null));
  let g: GrantedGateway;
  let x: Xvnc;
  const clients: GuacTestClient[] = [];
  const painters: Painter[] = [];

  /** A Guacamole client whose handshake offers `images` (the `image` instruction). */
  async function viewer(images: string[]): Promise<Viewer> {
    const c = await GuacTestClient.connect(g.gw.endpoint);
    clients.push(c);
    c.send('select', g.vnc(x.port));
    const args = await c.next((i) => i.opcode === 'args');
    c.send('size', W, H, 96);
    c.send('audio');
    c.send('video');
    c.send('image', ...images);
    c.send('connect', ...args.args.map((n) => (n.startsWith('VERSION_') ? n : '')));
    await c.next((i) => i.opcode === 'ready');
    return { c, screen: new Screen(W, H), frames: [] };
  }

  /** Reads, composites and acknowledges frames until `until` holds (bounded). */
  async function readFrames(v: Viewer, until: () => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!until()) {
      const f = await v.c.frame(true, Math.max(1, deadline - Date.now()));
      v.frames.push(f);
      await v.screen.apply(f);
    }
  }

  /** Keeps reading (and acknowledging) frames until the screen equals `want`, or fails. */
  async function untilExact(v: Viewer, want: Buffer, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let d = v.screen.diff(want);
    while (d.count > 0) {
      if (Date.now() > deadline) break;
      const f = await v.c.frame(true, Math.max(1, deadline - Date.now())).catch(() => undefined);
      if (!f) break;
      v.frames.push(f);
      await v.screen.apply(f);
      d = v.screen.diff(want);
    }
    assert.equal(d.count, 0, `client screen differs from Xvnc in ${d.count} pixels once still; first ${d.first}`);
  }

  async function paint(mode: PainterMode, fps: number, dump = false, seed = 1): Promise<Painter> {
    const p = await startPainter({ display: x.display, mode, fps, dump, seed });
    painters.push(p);
    assert.deepEqual([p.width, p.height], [W, H]);
    return p;
  }

  before(async () => {
    if (missing) return;
    g = await grantedGateway();
    x = await startXvnc({ width: W, height: H });
  });

  after(async () => {
    clients.forEach((c) => c.close());
    for (const p of painters) await p.stop();
    await g?.gw.close();
    await x?.stop();
  });

  it('text stays sharp: scrolling anti-aliased text is never lossy and the still screen is pixel-exact', async () => {
    assert.equal(missing, null, `prerequisites missing: ${missing}`);
    const [a, b] = await Promise.all([viewer(OFFER_ALL), viewer(OFFER_NO_WEBP)]);
    const scrolling = await paint('text', 10);
    const t0 = Date.now();
    await Promise.all([a, b].map((v) => readFrames(v, () => Date.now() - t0 > 2500 && v.frames.length >= 6)));
    await scrolling.stop();
    const still = await paint('text', 0, true, 7);
    await Promise.all([a, b].map((v) => untilExact(v, still.pixels!)));
    for (const v of [a, b]) {
      const images = v.frames.flatMap((f) => f.images).filter((i) => i.layer === '0');
      assert.ok(images.length > 0);
      const lossy = images.filter(isLossy);
      assert.equal(lossy.length, 0, `text went out lossy: ${lossy.map((i) => i.mime).join(', ')}`);
    }
    await still.stop();
  });

  it('photos stay bounded: moving photo-like frames go lossy within the byte bound, then are refreshed losslessly', async () => {
    assert.equal(missing, null, `prerequisites missing: ${missing}`);
    const v = await viewer(OFFER_NO_WEBP);
    await readFrames(v, () => v.frames.length >= 1);
    const moving = await paint('photo', 15);
    // Steady state: from the first frame drawn only with lossy images on, for about 3 s.
    await readFrames(v, () => v.frames.some((f) => f.images.length > 0 && f.images.every(isLossy)));
    const steady: Frame[] = [];
    const t0 = Date.now();
    await readFrames(v, () => {
      const last = v.frames[v.frames.length - 1]!;
      if (!steady.includes(last)) steady.push(last);
      return Date.now() - t0 > 3000 && steady.length >= 5;
    });
    let bytes = 0;
    let drawn = 0;
    for (const f of steady) {
      const b = frameBytes(f);
      bytes += b;
      drawn += await drawnPixels(f);
      assert.ok(b <= PHOTO_FRAME_SCREENS * PHOTO_BYTES_PER_PIXEL * W * H, `a frame of ${b} bytes`);
    }
    const perPixel = bytes / drawn;
    assert.ok(perPixel <= PHOTO_BYTES_PER_PIXEL, `${perPixel.toFixed(3)} bytes per drawn pixel > ${PHOTO_BYTES_PER_PIXEL}`);
    assert.ok(steady.flatMap((f) => f.images).some(isLossy), 'moving photos go out lossy');
    await moving.stop();
    // The photo stops on one frame: the areas the client holds lossy are sent again, exactly.
    const still = await paint('photo', 0, true, 3);
    await untilExact(v, still.pixels!);
    await still.stop();
  });

  it('WebP is used when offered and never when not', async () => {
    assert.equal(missing, null, `prerequisites missing: ${missing}`);
    const [a, b] = await Promise.all([viewer(OFFER_ALL), viewer(OFFER_NO_WEBP)]);
    const p = await paint('mixed', 10);
    const t0 = Date.now();
    await Promise.all([a, b].map((v) => readFrames(v, () => Date.now() - t0 > 2000 && v.frames.length >= 4)));
    await p.stop();
    const mimes = (v: Viewer) => new Set(v.frames.flatMap((f) => f.images).filter((i) => i.layer === '0').map((i) => i.mime));
    assert.ok(mimes(a).has('image/webp'), `offered WebP, got ${[...mimes(a)]}`);
    assert.ok(!mimes(b).has('image/webp'), `not offered WebP, got ${[...mimes(b)]}`);
    assert.ok(mimes(b).size > 0);
  });
});
