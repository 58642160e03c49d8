// The per-connection framebuffer (RGBX: the fourth byte is 255 or whatever a Raw rectangle
// carried there; every reader ignores it) and its dirty region: the set of
// rectangles changed since the last frame was sent, merged so a frame stays a few images.
import { promisify } from 'node:util';
import { deflate, inflateSync } from 'node:zlib';

const deflateAsync = promisify(deflate);

export type Rect = { x: number; y: number; w: number; h: number };

/** Largest desktop we accept from a VNC server (each side). */
export const MAX_SIDE = 8192;

export function intersects(a: Rect, b: Rect): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

function union(a: Rect, b: Rect): Rect {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, w: Math.max(a.x + a.w, b.x + b.w) - x, h: Math.max(a.y + a.h, b.y + b.h) - y };
}

const area = (r: Rect) => r.w * r.h;

/** Dirty rectangles; merges overlapping ones and those whose union wastes little area. */
export class DirtyRegion {
  rects: Rect[] = [];
  private readonly maxRects: number;

  constructor(maxRects = 32) {
    this.maxRects = maxRects;
  }

  get empty(): boolean {
    return this.rects.length === 0;
  }

  add(r: Rect): void {
    if (r.w <= 0 || r.h <= 0) return;
    let cur = r;
    let merged = true;
    while (merged) {
      merged = false;
      for (let i = 0; i < this.rects.length; i++) {
        const o = this.rects[i]!;
        const u = union(o, cur);
        // Merge when they touch/overlap or the union costs ≤ 30 % more pixels.
        if (intersects(o, cur) || area(u) <= (area(o) + area(cur)) * 1.3) {
          this.rects.splice(i, 1);
          cur = u;
          merged = true;
          break;
        }
      }
    }
    this.rects.push(cur);
    if (this.rects.length > this.maxRects) {
      this.rects = [this.rects.reduce(union)];
    }
  }

  intersects(r: Rect): boolean {
    return this.rects.some((o) => intersects(o, r));
  }

  take(): Rect[] {
    const out = this.rects;
    this.rects = [];
    return out;
  }
}

/**
 * RGBX pixels (see the file comment). An idle framebuffer can be hibernated (deflated) to save memory;
 * any access to `data` transparently inflates it again.
 */
export class Framebuffer {
  width: number;
  height: number;
  private raw: Buffer | undefined;
  private view: Uint32Array | undefined;
  private packed: Buffer | undefined;
  private generation = 0;
  /** Writers that hold `data` across awaits (a Raw rectangle arriving): no hibernation meanwhile. */
  private holds = 0;

  constructor(width: number, height: number) {
    this.width = width;
    this.height = height;
    // Buffer.alloc never uses the shared pool: the memory is 4-byte aligned for `pixels`.
    const data = Buffer.alloc(width * height * 4, 0);
    new Uint32Array(data.buffer, data.byteOffset, width * height).fill(0xff000000);
    this.raw = data;
  }

  get data(): Buffer {
    if (!this.raw) {
      let raw = inflateSync(this.packed!);
      // Uint32Array views need 4-byte alignment.
      if (raw.byteOffset % 4 !== 0) raw = Buffer.from(raw);
      this.raw = raw;
      this.packed = undefined;
    }
    this.generation++;
    return this.raw;
  }

  /** The pixels as one little-endian uint32 each (R | G<<8 | B<<16 | A<<24), same memory as `data`. */
  get pixels(): Uint32Array {
    const d = this.data;
    if (this.view?.buffer !== d.buffer || this.view.byteOffset !== d.byteOffset) this.view = new Uint32Array(d.buffer, d.byteOffset, d.length >>> 2);
    return this.view;
  }

  /** Keeps the pixels in memory until release(), e.g. while a rectangle is read into `data`. */
  hold(): void {
    this.holds++;
    this.generation++;
  }

  release(): void {
    this.holds--;
    this.generation++;
  }

  get hibernating(): boolean {
    return this.raw === undefined;
  }

  /** Deflates the pixels off the main thread; dropped if anyone touched them meanwhile. */
  async hibernate(): Promise<void> {
    const src = this.raw;
    if (!src || this.holds > 0) return;
    const gen = ++this.generation;
    const packed = await deflateAsync(src, { level: 1 });
    if (this.generation === gen && this.raw === src && this.holds === 0) {
      this.packed = packed;
      this.raw = undefined;
      this.view = undefined;
    }
  }

  resize(width: number, height: number): void {
    const old = this.data;
    const next = new Framebuffer(width, height).data;
    const w = Math.min(width, this.width) * 4;
    for (let y = 0; y < Math.min(height, this.height); y++) {
      old.copy(next, y * width * 4, y * this.width * 4, y * this.width * 4 + w);
    }
    this.width = width;
    this.height = height;
    this.raw = next;
    this.packed = undefined;
  }

  contains(r: Rect): boolean {
    return r.x >= 0 && r.y >= 0 && r.x + r.w <= this.width && r.y + r.h <= this.height;
  }

  copyRect(sx: number, sy: number, r: Rect): void {
    const data = this.data;
    const stride = this.width * 4;
    const row = r.w * 4;
    // Buffer.copy handles overlap within a row; walk rows in the safe direction.
    if (sy < r.y) {
      for (let y = r.h - 1; y >= 0; y--) {
        data.copy(data, (r.y + y) * stride + r.x * 4, (sy + y) * stride + sx * 4, (sy + y) * stride + sx * 4 + row);
      }
    } else {
      for (let y = 0; y < r.h; y++) {
        data.copy(data, (r.y + y) * stride + r.x * 4, (sy + y) * stride + sx * 4, (sy + y) * stride + sx * 4 + row);
      }
    }
  }

  fill(r: Rect, red: number, green: number, blue: number): void {
    const px = this.pixels;
    const v = (red | (green << 8) | (blue << 16) | 0xff000000) >>> 0;
    for (let y = r.y; y < r.y + r.h; y++) px.fill(v, y * this.width + r.x, y * this.width + r.x + r.w);
  }
}
