// ZRLE (RFB encoding 16) tile decoding. The input is the already inflated data of one
// rectangle; pixels are CPIXELs of 3 bytes (R, G, B) because we ask for 32 bpp, depth 24,
// little endian, shifts 0/8/16. Malformed data throws; it never reads past the input.
// Pixels are written as one uint32 each (R | G<<8 | B<<16 | 0xff<<24) through the
// framebuffer's Uint32Array view: a quarter of the stores of byte-wise writes.
import type { Framebuffer, Rect } from './framebuffer.ts';

export class ZrleError extends Error {}

export function decodeZrle(fb: Framebuffer, r: Rect, src: Buffer): void {
  let p = 0;
  const need = (n: number) => {
    if (p + n > src.length) throw new ZrleError('ZRLE data truncated');
  };
  const stride = fb.width;
  const out = fb.pixels;
  const palette = new Uint32Array(128);
  const OPAQUE = 0xff000000;

  for (let ty = r.y; ty < r.y + r.h; ty += 64) {
    const th = Math.min(64, r.y + r.h - ty);
    for (let tx = r.x; tx < r.x + r.w; tx += 64) {
      const tw = Math.min(64, r.x + r.w - tx);
      need(1);
      const sub = src[p++]!;
      if (sub === 0) {
        need(tw * th * 3);
        for (let y = 0; y < th; y++) {
          let d = (ty + y) * stride + tx;
          for (let x = 0; x < tw; x++, d++, p += 3) {
            out[d] = (src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | OPAQUE) >>> 0;
          }
        }
      } else if (sub === 1) {
        need(3);
        fb.fill({ x: tx, y: ty, w: tw, h: th }, src[p]!, src[p + 1]!, src[p + 2]!);
        p += 3;
      } else if (sub >= 2 && sub <= 16) {
        const n = sub;
        need(n * 3);
        for (let i = 0; i < n; i++, p += 3) palette[i] = (src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | OPAQUE) >>> 0;
        const bits = n === 2 ? 1 : n <= 4 ? 2 : 4;
        const rowBytes = Math.ceil((tw * bits) / 8);
        need(rowBytes * th);
        const mask = (1 << bits) - 1;
        for (let y = 0; y < th; y++) {
          let d = (ty + y) * stride + tx;
          let byte = 0;
          let left = 0;
          let q = p + y * rowBytes;
          for (let x = 0; x < tw; x++, d++) {
            if (left === 0) {
              byte = src[q++]!;
              left = 8;
            }
            left -= bits;
            const idx = (byte >> left) & mask;
            if (idx >= n) throw new ZrleError('ZRLE palette index out of range');
            out[d] = palette[idx]!;
          }
        }
        p += rowBytes * th;
      } else if (sub === 128 || sub >= 130) {
        const paletted = sub !== 128;
        const n = sub - 128;
        if (paletted) {
          need(n * 3);
          for (let i = 0; i < n; i++, p += 3) palette[i] = (src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | OPAQUE) >>> 0;
        }
        const total = tw * th;
        let i = 0;
        let col = 0;
        let d = ty * stride + tx;
        const rowSkip = stride - tw;
        while (i < total) {
          let v: number;
          let run = 1;
          if (paletted) {
            need(1);
            const b = src[p++]!;
            const idx = b & 127;
            if (idx >= n) throw new ZrleError('ZRLE palette index out of range');
            v = palette[idx]!;
            if (b & 128) run = readRun();
          } else {
            need(3);
            v = (src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | OPAQUE) >>> 0;
            p += 3;
            run = readRun();
          }
          if (i + run > total) throw new ZrleError('ZRLE run overflows tile');
          i += run;
          // Fill whole row segments at once.
          while (run > 0) {
            const n2 = Math.min(run, tw - col);
            if (n2 > 8) out.fill(v, d, d + n2);
            else for (let k = 0; k < n2; k++) out[d + k] = v;
            d += n2;
            col += n2;
            run -= n2;
            if (col === tw) {
              col = 0;
              d += rowSkip;
            }
          }
        }
      } else {
        throw new ZrleError(`ZRLE subencoding ${sub} is invalid`);
      }
    }
  }

  function readRun(): number {
    let run = 1;
    for (;;) {
      need(1);
      const b = src[p++]!;
      run += b;
      if (b !== 255) return run;
    }
  }
}

/** Encodes a rectangle as ZRLE tiles (raw or solid subencodings only); for tests/bench. */
export function encodeZrleSimple(pixels: Buffer, width: number, r: Rect): Buffer {
  const parts: Buffer[] = [];
  for (let ty = r.y; ty < r.y + r.h; ty += 64) {
    const th = Math.min(64, r.y + r.h - ty);
    for (let tx = r.x; tx < r.x + r.w; tx += 64) {
      const tw = Math.min(64, r.x + r.w - tx);
      const tile = Buffer.allocUnsafe(1 + tw * th * 3);
      let q = 1;
      let solid = true;
      const s0 = (ty * width + tx) * 4;
      for (let y = 0; y < th; y++) {
        let s = ((ty + y) * width + tx) * 4;
        for (let x = 0; x < tw; x++, s += 4) {
          tile[q++] = pixels[s]!;
          tile[q++] = pixels[s + 1]!;
          tile[q++] = pixels[s + 2]!;
          if (solid && (pixels[s] !== pixels[s0] || pixels[s + 1] !== pixels[s0 + 1] || pixels[s + 2] !== pixels[s0 + 2])) solid = false;
        }
      }
      if (solid) parts.push(Buffer.from([1, pixels[s0]!, pixels[s0 + 1]!, pixels[s0 + 2]!]));
      else {
        tile[0] = 0;
        parts.push(tile);
      }
    }
  }
  return Buffer.concat(parts);
}
