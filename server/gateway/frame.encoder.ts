// Turns a frame's changes (CopyRects and dirty rectangles of the framebuffer) into Guacamole
// drawing instructions: `copy`, `rect`+`cfill` for solid areas, and `img`/`blob`/`end`
// streams made by sharp off the main thread. Content-aware (classify.ts): areas with sharp
// edges (text, UI; whatever their colour count) go out lossless (PNG, or WebP lossless when
// the client offers it and the area changes rarely); photo-like areas that keep changing
// (video, scrolling photos) go out lossy (JPEG, or WebP when offered and the client's link
// is slow) at the session's adaptive quality; they are refreshed losslessly once they settle.
// Pixels are snapshotted synchronously so the framebuffer may change while images encode.
import sharp from 'sharp';
import { isPhotoLike, isSolid, sharpness, TILE, type ChangeHeat } from './classify.ts';
import type { Framebuffer, Rect } from './framebuffer.ts';
import { encode, encodeBlobs, InstructionWriter } from './protocol.ts';

/** guacd's GUAC_COMP_OVER channel mask and GUAC_COMP_SRC. */
export const COMP_OVER = 0xe;
export const COMP_SRC = 0xc;
/** Bands (aligned to the desktop's tile grid) so a frame's images encode in parallel. */
const BAND_ROWS = 3 * TILE;
/** Rectangles up to this area are encoded whole, not in bands. */
const UNSPLIT_MAX_AREA = 1280 * BAND_ROWS;
/** Areas smaller than this are never lossy (JPEG blocks cost more than they save). */
const LOSSY_MIN_AREA = 64 * 64;
/** Neighbour pairs sampled per chunk by the classifier (~1 in 25 pixels of a 64×192 chunk). */
const CHUNK_SAMPLES = 512;
/** Lossy quality when the caller gives none. */
export const DEFAULT_QUALITY = 80;

// One libvips thread per image: a frame's bands already run in parallel on libuv's pool, and
// more threads per image only add scheduling overhead on small machines.
sharp.concurrency(1);

export type CopyOp = { sx: number; sy: number; rect: Rect };

/** Hands out stream indexes; guacamole-common-js frees an index at `end`. */
export class StreamIds {
  private next = 1;
  take(): number {
    const id = this.next;
    this.next = this.next >= 255 ? 1 : this.next + 1;
    return id;
  }
}

/** How a frame may be encoded: what every user accepts, and the session's adaptive state. */
export type EncodePolicy = {
  /** Every user of the connection offered image/webp (PNG is always allowed). */
  webp: boolean;
  /** Every user offered image/jpeg. */
  jpeg: boolean;
  /** Lossy quality (JPEG/WebP), 1–100. */
  quality: number;
  /** Prefer WebP for lossy areas (the link, not our CPU, is the bottleneck). */
  lossyWebp: boolean;
  /** Per-tile change frequency; when absent nothing counts as changing often (all lossless). */
  heat?: ChangeHeat;
  now: number;
};

export type Codec = 'png' | 'png-filtered' | 'webp-lossless' | 'jpeg' | 'webp';

type Fill = { kind: 'fill'; rect: Rect; r: number; g: number; b: number };
type Image = { kind: 'image'; rect: Rect; rgba: Buffer; codec: Codec };
type Snapshot = Fill | Image;

const MIME: Record<Codec, string> = {
  png: 'image/png',
  'png-filtered': 'image/png',
  'webp-lossless': 'image/webp',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
};

/** A Uint32Array view of the framebuffer's pixels (one element per pixel). */
export function pixels32(fb: Framebuffer): Uint32Array {
  const d = fb.data;
  return new Uint32Array(d.buffer, d.byteOffset, d.length >>> 2);
}

/**
 * Snapshot buffers, reused across frames and connections: a frame's snapshots are megabytes of
 * short-lived external memory, which would otherwise push V8 into full GCs and the allocator
 * into fresh pages for every frame. Sizes are powers of two; a few are kept per size.
 */
const snapshotPool = new Map<number, Buffer[]>();
const POOL_MIN = 64 * 1024;
const POOL_PER_SIZE = 8;
const POOL_MAX_SIZE = 16 * 1024 * 1024;

function poolSize(bytes: number): number {
  return bytes <= POOL_MIN ? POOL_MIN : 2 ** Math.ceil(Math.log2(bytes));
}

function takeSnapshotBuffer(bytes: number): Buffer {
  const size = poolSize(bytes);
  const b = snapshotPool.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);
  return b.subarray(0, bytes);
}

function giveSnapshotBuffer(b: Buffer): void {
  const size = b.buffer.byteLength;
  if (size > POOL_MAX_SIZE || b.byteOffset !== 0 || size !== poolSize(size)) return;
  let list = snapshotPool.get(size);
  if (!list) snapshotPool.set(size, (list = []));
  if (list.length < POOL_PER_SIZE) list.push(Buffer.from(b.buffer, 0, size));
}

/** Copies `r`'s RGBA rows out of the framebuffer into a pooled buffer (one memcpy when it spans whole rows). */
function copyOut(fb: Framebuffer, r: Rect): Buffer {
  const src = fb.data;
  const stride = fb.width * 4;
  const row = r.w * 4;
  const out = takeSnapshotBuffer(row * r.h);
  if (r.x === 0 && r.w === fb.width) {
    src.copy(out, 0, r.y * stride, (r.y + r.h) * stride);
    return out;
  }
  for (let y = 0; y < r.h; y++) {
    const s = (r.y + y) * stride + r.x * 4;
    src.copy(out, y * row, s, s + row);
  }
  return out;
}

/** The codec for a non-solid area: see the file comment. */
export function chooseCodec(photoLike: boolean, hot: boolean, area: number, p: EncodePolicy): Codec {
  if (photoLike && hot && area >= LOSSY_MIN_AREA && (p.jpeg || p.webp)) {
    return (p.lossyWebp && p.webp) || !p.jpeg ? 'webp' : 'jpeg';
  }
  // Lossless. Photo-like: PNG with row filters (WebP lossless would cost ~3× the CPU).
  // Sharp content: WebP lossless is ~40 % smaller than PNG but costs ~5× its CPU, so not
  // where it changes in most updates (scrolling), where our CPU is the limit.
  if (photoLike) return 'png-filtered';
  return !hot && p.webp ? 'webp-lossless' : 'png';
}

type Chunk = { x: number; w: number; fill?: number; codec?: Codec };

/**
 * Cuts a band into tile-wide chunks, classifies each (solid / photo-like / changing often)
 * and merges neighbours of the same class, so a video next to text is sent as a lossy image
 * and a lossless one.
 */
function classifyBand(fb: Framebuffer, px: Uint32Array, band: Rect, p: EncodePolicy, out: Snapshot[], swapRedBlue: boolean): void {
  const chunks: Chunk[] = [];
  for (let x = band.x; x < band.x + band.w; ) {
    const end = Math.min(band.x + band.w, (Math.floor(x / TILE) + 1) * TILE);
    const r = { x, y: band.y, w: end - x, h: band.h };
    if (isSolid(px, fb.width, r)) chunks.push({ x, w: r.w, fill: px[r.y * fb.width + r.x]! & 0xffffff });
    else {
      const photo = isPhotoLike(sharpness(px, fb.width, r, CHUNK_SAMPLES));
      const hot = p.heat?.hot(r, p.now, photo) ?? false;
      // The area that decides "large enough to be lossy" is the whole band's.
      chunks.push({ x, w: r.w, codec: chooseCodec(photo, hot, band.w * band.h, p) });
    }
    x = end;
  }
  // Merge runs of equal class (same fill colour, or same codec).
  const runs: Chunk[] = [];
  for (const c of chunks) {
    const last = runs[runs.length - 1];
    if (last && last.fill === c.fill && last.codec === c.codec) last.w += c.w;
    else runs.push({ ...c });
  }
  for (const c of runs) {
    const rect = { x: c.x, y: band.y, w: c.w, h: band.h };
    if (c.fill !== undefined) {
      const v = c.fill;
      const [r, b] = swapRedBlue ? [(v >>> 16) & 255, v & 255] : [v & 255, (v >>> 16) & 255];
      out.push({ kind: 'fill', rect, r, g: (v >>> 8) & 255, b });
    } else {
      out.push({ kind: 'image', rect, rgba: copyOut(fb, rect), codec: c.codec! });
    }
  }
}

/**
 * Splits rectangles into bands whose edges lie on the BAND_ROWS grid; one no larger than a
 * full-width band of a 1280-pixel desktop stays whole (each image costs a thread-pool hop,
 * libvips start-up and a few hundred option look-ups in sharp: slivers are not worth it).
 */
export function bands(rects: Rect[]): Rect[] {
  const out: Rect[] = [];
  for (const r of rects) {
    if (r.w * r.h <= UNSPLIT_MAX_AREA) {
      out.push(r);
      continue;
    }
    for (let y = r.y; y < r.y + r.h; ) {
      const end = Math.min(r.y + r.h, (Math.floor(y / BAND_ROWS) + 1) * BAND_ROWS);
      out.push({ x: r.x, y, w: r.w, h: end - y });
      y = end;
    }
  }
  return out;
}

async function encodeImage(s: Image, quality: number, swapRedBlue: boolean): Promise<Buffer> {
  let img = sharp(s.rgba, { raw: { width: s.rect.w, height: s.rect.h, channels: 4 } }).removeAlpha();
  if (swapRedBlue) img = img.recomb([[0, 0, 1], [0, 1, 0], [1, 0, 0]]);
  switch (s.codec) {
    case 'jpeg':
      // No Huffman optimisation pass: half the CPU for ~4 % more bytes.
      return img.jpeg({ quality, chromaSubsampling: '4:2:0', optimiseCoding: false }).toBuffer();
    case 'webp':
      return img.webp({ quality, effort: 0, smartSubsample: false }).toBuffer();
    case 'webp-lossless':
      return img.webp({ lossless: true, effort: 0 }).toBuffer();
    case 'png-filtered':
      // Gradients compress ~6× better with PNG's per-row filters.
      return img.png({ compressionLevel: 2, adaptiveFiltering: true }).toBuffer();
    default:
      return img.png({ compressionLevel: 2, adaptiveFiltering: false }).toBuffer();
  }
}

/** Instructions that draw an image stream onto a layer. */
export function imageInstructions(ids: StreamIds, mask: number, layer: number, mime: string, x: number, y: number, data: Buffer): string {
  const id = ids.take();
  return encode('img', id, mask, layer, mime, x, y) + encodeBlobs(id, data) + encode('end', id);
}

/** imageInstructions() written into `out`. */
function writeImage(out: InstructionWriter, ids: StreamIds, mask: number, layer: number, mime: string, x: number, y: number, data: Buffer): void {
  const id = ids.take();
  out.instruction('img', id, mask, layer, mime, x, y).blobs(id, data).instruction('end', id);
}

const DEFAULT_POLICY: EncodePolicy = { webp: false, jpeg: true, quality: DEFAULT_QUALITY, lossyWebp: false, now: 0 };

/**
 * Snapshots now, encodes asynchronously, and writes the frame's instructions into `out`.
 * Copies go first (they were checked to read only pixels the client already has), then fills
 * and images of the final framebuffer content. Records in `policy.heat` which areas the
 * client now holds lossy.
 */
export async function prepareFrame(
  fb: Framebuffer,
  copies: CopyOp[],
  rects: Rect[],
  swapRedBlue: boolean,
  ids: StreamIds,
  policy: EncodePolicy = DEFAULT_POLICY,
  out: InstructionWriter = new InstructionWriter(),
): Promise<InstructionWriter> {
  for (const c of copies) {
    out.instruction('copy', 0, c.sx, c.sy, c.rect.w, c.rect.h, COMP_OVER, 0, c.rect.x, c.rect.y);
  }
  const px = pixels32(fb);
  const snaps: Snapshot[] = [];
  for (const band of bands(rects)) classifyBand(fb, px, band, policy, snaps, swapRedBlue);
  const images: Image[] = [];
  for (const s of snaps) {
    if (s.kind === 'fill') {
      out.instruction('rect', 0, s.rect.x, s.rect.y, s.rect.w, s.rect.h).instruction('cfill', COMP_OVER, 0, s.r, s.g, s.b, 255);
    } else images.push(s);
    const lossy = s.kind === 'image' && (s.codec === 'jpeg' || s.codec === 'webp');
    policy.heat?.sent(s.rect, lossy, policy.now);
  }
  if (images.length === 0) return out;
  const encoded = await Promise.all(
    images.map((s) =>
      encodeImage(s, policy.quality, swapRedBlue).finally(() => giveSnapshotBuffer(s.rgba)),
    ),
  );
  // Room for every image's blobs (base64: 4 bytes per 3) and instructions, in one step.
  out.reserve(encoded.reduce((n, d) => n + Math.ceil(d.length / 3) * 4 + Math.ceil(d.length / 4536) * 24 + 96, 0));
  encoded.forEach((data, i) => {
    const s = images[i]!;
    writeImage(out, ids, COMP_OVER, 0, MIME[s.codec], s.rect.x, s.rect.y, data);
  });
  return out;
}

/** A cursor image: drawn into buffer -1, then `cursor` points at it. */
export async function cursorInstructions(ids: StreamIds, hotX: number, hotY: number, w: number, h: number, rgba: Buffer): Promise<string> {
  if (w === 0 || h === 0) {
    // An empty cursor hides the pointer: a 1×1 transparent image.
    rgba = Buffer.alloc(4);
    w = h = 1;
    hotX = hotY = 0;
  }
  const png = await sharp(rgba, { raw: { width: w, height: h, channels: 4 } }).png().toBuffer();
  return (
    encode('size', -1, w, h) +
    imageInstructions(ids, COMP_SRC, -1, 'image/png', 0, 0, png) +
    encode('cursor', Math.min(hotX, w - 1), Math.min(hotY, h - 1), -1, 0, 0, w, h)
  );
}
