// Turns a frame's changes (CopyRects and dirty rectangles of the framebuffer) into Guacamole
// drawing instructions: `copy`, `rect`+`cfill` for solid areas, and `img`/`blob`/`end`
// streams with PNG (small or text-like areas) or JPEG (large photo-like areas) made by sharp
// off the main thread. Pixels are snapshotted synchronously so the framebuffer may change
// while images encode.
import sharp from 'sharp';
import type { Framebuffer, Rect } from './framebuffer.ts';
import { encode, encodeBlobs } from './protocol.ts';

/** guacd's GUAC_COMP_OVER channel mask and GUAC_COMP_SRC. */
export const COMP_OVER = 0xe;
export const COMP_SRC = 0xc;
/** Bands taller than this are split so their images encode in parallel. */
const BAND_ROWS = 180;
/** Areas at least this large with many colours go out as JPEG. */
const LOSSY_MIN_AREA = 64 * 64;
const LOSSY_MIN_COLOURS = 48;
const JPEG_QUALITY = 85;

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

type Snapshot =
  | { kind: 'fill'; rect: Rect; r: number; g: number; b: number }
  | { kind: 'image'; rect: Rect; rgb: Buffer; lossy: boolean };

/** Copies a rectangle out as packed RGB and classifies it (solid / colour count). */
export function snapshot(fb: Framebuffer, rect: Rect, swapRedBlue: boolean): Snapshot {
  const src = fb.data;
  const stride = fb.width * 4;
  const first = rect.y * stride + rect.x * 4;
  const c0 = src.readUInt32LE(first) & 0xffffff;
  let solid = true;
  for (let y = 0; y < rect.h && solid; y++) {
    for (let s = (rect.y + y) * stride + rect.x * 4, end = s + rect.w * 4; s < end; s += 4) {
      if ((src.readUInt32LE(s) & 0xffffff) !== c0) {
        solid = false;
        break;
      }
    }
  }
  const ri = swapRedBlue ? 2 : 0;
  const bi = swapRedBlue ? 0 : 2;
  if (solid) return { kind: 'fill', rect, r: src[first + ri]!, g: src[first + 1]!, b: src[first + bi]! };
  const rgb = Buffer.allocUnsafe(rect.w * rect.h * 3);
  let q = 0;
  for (let y = 0; y < rect.h; y++) {
    for (let s = (rect.y + y) * stride + rect.x * 4, end = s + rect.w * 4; s < end; s += 4) {
      rgb[q++] = src[s + ri]!;
      rgb[q++] = src[s + 1]!;
      rgb[q++] = src[s + bi]!;
    }
  }
  let lossy = false;
  if (rect.w * rect.h >= LOSSY_MIN_AREA) {
    // Sample up to ~1024 pixels on a grid; many distinct colours means photo-like.
    const step = Math.max(1, Math.floor((rect.w * rect.h) / 1024));
    const seen = new Set<number>();
    for (let i = 0; i < rect.w * rect.h && seen.size < LOSSY_MIN_COLOURS; i += step) {
      seen.add((rgb[i * 3]! << 16) | (rgb[i * 3 + 1]! << 8) | rgb[i * 3 + 2]!);
    }
    lossy = seen.size >= LOSSY_MIN_COLOURS;
  }
  return { kind: 'image', rect, rgb, lossy };
}

/** Splits tall rectangles into bands. */
export function bands(rects: Rect[]): Rect[] {
  const out: Rect[] = [];
  for (const r of rects) {
    for (let y = r.y; y < r.y + r.h; y += BAND_ROWS) {
      out.push({ x: r.x, y, w: r.w, h: Math.min(BAND_ROWS, r.y + r.h - y) });
    }
  }
  return out;
}

async function encodeImage(s: Extract<Snapshot, { kind: 'image' }>): Promise<{ mime: string; data: Buffer }> {
  const img = sharp(s.rgb, { raw: { width: s.rect.w, height: s.rect.h, channels: 3 } });
  if (s.lossy) {
    return { mime: 'image/jpeg', data: await img.jpeg({ quality: JPEG_QUALITY, chromaSubsampling: '4:2:0' }).toBuffer() };
  }
  return { mime: 'image/png', data: await img.png({ compressionLevel: 2, adaptiveFiltering: false }).toBuffer() };
}

/** Instructions that draw an image stream onto a layer. */
export function imageInstructions(ids: StreamIds, mask: number, layer: number, mime: string, x: number, y: number, data: Buffer): string {
  const id = ids.take();
  return encode('img', id, mask, layer, mime, x, y) + encodeBlobs(id, data) + encode('end', id);
}

/**
 * Snapshots now, encodes asynchronously. Copies go first (they were checked to read only
 * pixels the client already has), then fills and images of the final framebuffer content.
 */
export function prepareFrame(fb: Framebuffer, copies: CopyOp[], rects: Rect[], swapRedBlue: boolean, ids: StreamIds): Promise<string> {
  let head = '';
  for (const c of copies) {
    head += encode('copy', 0, c.sx, c.sy, c.rect.w, c.rect.h, COMP_OVER, 0, c.rect.x, c.rect.y);
  }
  const snaps = bands(rects).map((r) => snapshot(fb, r, swapRedBlue));
  for (const s of snaps) {
    if (s.kind === 'fill') {
      head += encode('rect', 0, s.rect.x, s.rect.y, s.rect.w, s.rect.h) + encode('cfill', COMP_OVER, 0, s.r, s.g, s.b, 255);
    }
  }
  const images = snaps.filter((s): s is Extract<Snapshot, { kind: 'image' }> => s.kind === 'image');
  if (images.length === 0) return Promise.resolve(head);
  return Promise.all(images.map(encodeImage)).then((encoded) => {
    let out = head;
    encoded.forEach((e, i) => {
      const r = images[i]!.rect;
      out += imageInstructions(ids, COMP_OVER, 0, e.mime, r.x, r.y, e.data);
    });
    return out;
  });
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
