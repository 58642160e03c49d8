// Content classification for the frame encoder, as pure logic over the framebuffer's pixels
// seen as a Uint32Array (one element per pixel, little endian: R | G<<8 | B<<16 | A<<24).
//
// - `isSolid`: one colour → `rect` + `cfill`.
// - `sharpness`: a sampled measure of neighbouring pixels (right and below): equal ("flat"),
//   differing a little ("smooth", as in photos, video and gradients) or differing strongly
//   ("edge", as at the rims of glyphs and widgets). Anti-aliased text has many colours but
//   mostly flat and edge pairs; photos have mostly smooth pairs. Colour counts are not used.
// - `ChangeHeat`: how often each 64×64 tile of the desktop changed recently, so only areas
//   that keep changing (video, scrolling photos) are sent lossy, and when they settle they
//   are sent again losslessly (the still screen is pixel-exact).
import type { Rect } from './framebuffer.ts';

/** Neighbours whose largest channel difference is at most this are a smooth transition. */
export const SMOOTH_MAX_DIFF = 24;
/** Pixels sampled per rectangle by default (each sample looks right and down). */
const MAX_SAMPLES = 1024;

export type Sharpness = { flat: number; smooth: number; edge: number };

/** True when every pixel of `r` has the colour of its first one (alpha ignored). */
export function isSolid(px: Uint32Array, stride: number, r: Rect): boolean {
  const c0 = px[r.y * stride + r.x]! & 0xffffff;
  for (let y = r.y; y < r.y + r.h; y++) {
    for (let i = y * stride + r.x, end = i + r.w; i < end; i++) {
      if ((px[i]! & 0xffffff) !== c0) return false;
    }
  }
  return true;
}

/** Largest channel difference of two pixels (alpha ignored). */
function diff(a: number, b: number): number {
  let d = (a & 255) - (b & 255);
  let m = d < 0 ? -d : d;
  d = ((a >>> 8) & 255) - ((b >>> 8) & 255);
  if (d < 0) d = -d;
  if (d > m) m = d;
  d = ((a >>> 16) & 255) - ((b >>> 16) & 255);
  if (d < 0) d = -d;
  return d > m ? d : m;
}

/** Counts flat / smooth / edge neighbour pairs on a sampling grid over `r`. */
export function sharpness(px: Uint32Array, stride: number, r: Rect, maxSamples = MAX_SAMPLES): Sharpness {
  // Plain local counters: this runs for every changed 64-pixel-wide chunk of every frame.
  let flat = 0;
  let smooth = 0;
  let edge = 0;
  if (r.w < 2 || r.h < 2) return { flat, smooth, edge };
  // A grid of about maxSamples pixels, each compared with its right and lower neighbour.
  const pixels = (r.w - 1) * (r.h - 1);
  const step = Math.max(1, Math.round(Math.sqrt(pixels / maxSamples)));
  const yEnd = r.y + r.h - 1;
  const xEnd = r.x + r.w - 1;
  for (let y = r.y; y < yEnd; y += step) {
    const row = y * stride;
    // Odd offsets per row so a regular pattern is not always sampled at the same phase.
    for (let x = r.x + (y % step); x < xEnd; x += step) {
      const i = row + x;
      const a = px[i]!;
      const right = px[i + 1]!;
      const below = px[i + stride]!;
      if (((a ^ right) & 0xffffff) === 0) flat++;
      else if (diff(a, right) <= SMOOTH_MAX_DIFF) smooth++;
      else edge++;
      if (((a ^ below) & 0xffffff) === 0) flat++;
      else if (diff(a, below) <= SMOOTH_MAX_DIFF) smooth++;
      else edge++;
    }
  }
  return { flat, smooth, edge };
}

/**
 * Photo-like (a lossy codec is fine): most neighbours differ a little, few are equal, and
 * strong edges are rare. Text, UI, line art and flat areas (whatever their colour count)
 * are not.
 */
export function isPhotoLike(s: Sharpness): boolean {
  const n = s.flat + s.smooth + s.edge;
  if (n === 0) return false;
  return s.flat < n * 0.4 && s.smooth >= n * 0.5 && s.edge < n * 0.2;
}

/** Tile side of the change-frequency grid. */
export const TILE = 64;
/** Each update of the VNC server multiplies every tile's update heat by this, then adds 1 where it changed. */
const DECAY = 0.7;
/**
 * Update heat at or above which a tile counts as changing often: changed in 3 updates in a
 * row (1 + 0.7 + 0.49), or in nearly every other update for a while (→ 1 / (1 − 0.49) ≈ 1.96).
 * A window opening (background, then content: 2 changes) is not hot.
 */
export const HOT = 1.9;
/**
 * Lower bars for photo-like areas, where "hot" picks the cheap codec (JPEG) over PNG: two
 * updates in a row, or every third one; two changes within about a second.
 */
export const HOT_PHOTO = 1.5;
export const HOT_PHOTO_PER_TIME = 2;
/** Time heat halves in this time; ... */
const HALF_LIFE_MS = 1000;
/** ...and time heat at or above this is hot too: ~3 changes within a second, however many updates. */
export const HOT_PER_TIME = 2.5;

/**
 * Per-tile change frequency and what was sent lossy. Two measures, either makes a tile hot:
 * heat per update (when encoding limits the frame rate — a busy server, a slow client —
 * updates are far apart, yet content that changes in most of them changes often), and heat
 * per time (a VNC server may report a repainted area piecewise over several small updates).
 */
export class ChangeHeat {
  private cols = 0;
  private rows = 0;
  private width = 0;
  private height = 0;
  private heat = new Float64Array(0);
  private timeHeat = new Float64Array(0);
  /** Time of each tile's last change. */
  private at = new Float64Array(0);
  /** Number of the update that last changed each tile. */
  private seqAt = new Float64Array(0);
  private seq = 0;
  /** Tiles whose client copy is lossy: time of the last lossy send (0 = exact). */
  private lossy = new Float64Array(0);

  constructor(width: number, height: number) {
    this.resize(width, height);
  }

  resize(width: number, height: number): void {
    this.width = width;
    this.height = height;
    this.cols = Math.ceil(width / TILE);
    this.rows = Math.ceil(height / TILE);
    const n = this.cols * this.rows;
    this.heat = new Float64Array(n);
    this.timeHeat = new Float64Array(n);
    this.at = new Float64Array(n);
    this.seqAt = new Float64Array(n);
    this.lossy = new Float64Array(n);
  }

  private *tiles(r: Rect): Generator<number> {
    const x0 = Math.floor(r.x / TILE);
    const y0 = Math.floor(r.y / TILE);
    const x1 = Math.min(this.cols - 1, Math.floor((r.x + r.w - 1) / TILE));
    const y1 = Math.min(this.rows - 1, Math.floor((r.y + r.h - 1) / TILE));
    for (let ty = y0; ty <= y1; ty++) for (let tx = x0; tx <= x1; tx++) yield ty * this.cols + tx;
  }

  /** Records one update of the VNC server that changed `rects` (each tile counts once). */
  changed(rects: Rect[], now: number): void {
    this.seq++;
    for (let t = 0; t < this.heat.length; t++) this.heat[t]! *= DECAY;
    const seen = new Set<number>();
    for (const r of rects) {
      for (const t of this.tiles(r)) {
        if (seen.has(t)) continue;
        seen.add(t);
        this.heat[t]! += 1;
        this.timeHeat[t] = this.timeHeatAt(t, now) + 1;
        this.at[t] = now;
        this.seqAt[t] = this.seq;
      }
    }
  }

  private timeHeatAt(t: number, now: number): number {
    const h = this.timeHeat[t]!;
    return h === 0 ? 0 : h * Math.pow(0.5, (now - this.at[t]!) / HALF_LIFE_MS);
  }

  /**
   * True when at least half of the tiles `r` touches are changing often (photo-like areas
   * with the lower bars).
   */
  hot(r: Rect, now: number, photoLike = false): boolean {
    const [perUpdate, perTime] = photoLike ? [HOT_PHOTO, HOT_PHOTO_PER_TIME] : [HOT, HOT_PER_TIME];
    let hot = 0;
    let all = 0;
    for (const t of this.tiles(r)) {
      all++;
      if (this.heat[t]! >= perUpdate || this.timeHeatAt(t, now) >= perTime) hot++;
    }
    return all > 0 && hot * 2 >= all;
  }

  /** Notes how `r` was sent: lossy tiles will need a lossless refresh, exact ones do not. */
  sent(r: Rect, lossy: boolean, now: number): void {
    // A lossless image fixes only tiles it covers entirely.
    for (const t of this.tiles(r)) {
      if (lossy) this.lossy[t] = now;
      else if (this.covers(r, t)) this.lossy[t] = 0;
    }
  }

  private covers(r: Rect, t: number): boolean {
    const tx = (t % this.cols) * TILE;
    const ty = Math.floor(t / this.cols) * TILE;
    return r.x <= tx && r.y <= ty && r.x + r.w >= Math.min(this.width, tx + TILE) && r.y + r.h >= Math.min(this.height, ty + TILE);
  }

  /** True when some tile `r` touches is held lossy by the client. */
  lossyIn(r: Rect): boolean {
    for (const t of this.tiles(r)) if (this.lossy[t] !== 0) return true;
    return false;
  }

  /** True while some tile's client copy is lossy. */
  get anyLossy(): boolean {
    return this.lossy.some((v) => v !== 0);
  }

  /**
   * Tiles sent lossy that stopped changing: unchanged for `quietMs`, and either left alone by
   * the last two updates or the VNC server has had nothing new for a while (`serverIdle`).
   * Wall time alone is not enough: while encoding limits the frame rate, updates are far
   * apart and a video would look still. Returned as rectangles (clipped to the desktop) to
   * send again losslessly; their heat drops below HOT.
   */
  settled(now: number, quietMs: number, serverIdle: boolean): Rect[] {
    const out: Rect[] = [];
    for (let t = 0; t < this.lossy.length; t++) {
      if (this.lossy[t] === 0 || now - Math.max(this.at[t]!, this.lossy[t]!) < quietMs) continue;
      if (!serverIdle && this.seq - this.seqAt[t]! < 2) continue;
      this.lossy[t] = 0;
      // Below HOT (so the refresh is lossless) but one change away from it: a video that only
      // looked still (a slow server) goes back to lossy at its next change.
      this.heat[t] = Math.min(this.heat[t]!, HOT_PHOTO - 0.5);
      this.timeHeat[t] = 0;
      const x = (t % this.cols) * TILE;
      const y = Math.floor(t / this.cols) * TILE;
      out.push({ x, y, w: Math.min(TILE, this.width - x), h: Math.min(TILE, this.height - y) });
    }
    return out;
  }
}
