// The gateway's content classifier and codec choice as pure logic (server/gateway/classify.ts,
// frame.encoder.ts chooseCodec).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChangeHeat, isPhotoLike, isSolid, sharpness } from '../../server/gateway/classify.ts';
import { chooseCodec, type EncodePolicy } from '../../server/gateway/frame.encoder.ts';

const W = 128;
const H = 128;
const rgb = (r: number, g: number, b: number) => (r | (g << 8) | (b << 16) | 0xff000000) >>> 0;

/** Dark glyph-like strokes on white with 3-pixel anti-aliased ramps: hundreds of colours. */
function antiAliasedText(): Uint32Array {
  const px = new Uint32Array(W * H).fill(rgb(255, 255, 255));
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const inGlyphRow = y % 16 >= 3 && y % 16 < 12;
      const d = Math.abs((x % 9) - 4); // distance from a vertical stroke's centre
      if (!inGlyphRow || d > 3) continue;
      const shade = d === 0 ? 20 : 20 + d * 70 + ((x * 7 + y * 13) % 31); // AA ramp, varied
      px[y * W + x] = rgb(shade, shade, Math.min(255, shade + 20));
    }
  }
  return px;
}

/** A gradient with fine noise, like a photo. */
function photo(): Uint32Array {
  const px = new Uint32Array(W * H);
  let n = 7;
  for (let i = 0; i < W * H; i++) {
    n = (n * 1103515245 + 12345) >>> 0;
    const noise = (n >>> 24) & 15;
    const x = i % W;
    const y = Math.floor(i / W);
    px[i] = rgb((x + noise) & 255, (y + noise) & 255, ((x + y) / 2) & 255);
  }
  return px;
}

const all = { x: 0, y: 0, w: W, h: H };

describe('content classifier', () => {
  it('tells anti-aliased text (many colours) from photos by edges, not colour count', () => {
    const text = antiAliasedText();
    assert.ok(new Set(text).size > 40, 'the text sample has many colours');
    assert.equal(isPhotoLike(sharpness(text, W, all)), false);
    assert.equal(isPhotoLike(sharpness(photo(), W, all)), true);
  });

  it('finds solid areas and ignores alpha', () => {
    const px = new Uint32Array(W * H).fill(rgb(1, 2, 3));
    px[5] = rgb(1, 2, 3) & 0xffffff; // alpha 0, same colour
    assert.equal(isSolid(px, W, all), true);
    px[W * H - 1] = rgb(1, 2, 4);
    assert.equal(isSolid(px, W, all), false);
    assert.equal(isSolid(px, W, { x: 0, y: 0, w: W, h: H - 1 }), true);
  });

  it('counts a tile hot after three updates in a row, not after two (a window opening)', () => {
    const heat = new ChangeHeat(256, 256);
    const r = { x: 0, y: 0, w: 64, h: 64 };
    heat.changed([r], 0);
    heat.changed([r], 5000);
    assert.equal(heat.hot(r, 5000), false);
    heat.changed([r], 10_000);
    assert.equal(heat.hot(r, 10_000), true, 'three updates in a row, however slow');
    assert.equal(heat.hot({ x: 128, y: 128, w: 64, h: 64 }, 10_000), false);
  });

  it('sends lossy tiles again once they stop changing, and only then', () => {
    const heat = new ChangeHeat(200, 100);
    const r = { x: 0, y: 0, w: 200, h: 100 };
    for (const t of [0, 10, 20]) heat.changed([r], t);
    heat.sent(r, true, 20);
    assert.ok(heat.anyLossy);
    assert.deepEqual(heat.settled(100, 600, false), [], 'not quiet yet');
    assert.deepEqual(heat.settled(1000, 600, false), [], 'quiet, but no update since: maybe only a slow server');
    const settled = heat.settled(1000, 600, true);
    assert.equal(settled.length, 8, '4×2 tiles, the last column and row clipped');
    assert.deepEqual(settled.at(-1), { x: 192, y: 64, w: 8, h: 36 });
    assert.equal(heat.anyLossy, false);
    assert.equal(heat.hot(r, 1000), false, 'the refresh itself is lossless');
  });
});

describe('codec choice', () => {
  const policy = (o: Partial<EncodePolicy>): EncodePolicy => ({ webp: false, jpeg: true, quality: 80, lossyWebp: false, now: 0, ...o });
  const BIG = 256 * 256;

  it('never picks WebP unless offered, and never a lossy codec for sharp or settled content', () => {
    for (const photoLike of [true, false]) {
      for (const hot of [true, false]) {
        for (const lossyWebp of [true, false]) {
          const c = chooseCodec(photoLike, hot, BIG, policy({ webp: false, lossyWebp }));
          assert.ok(!c.startsWith('webp'), c);
          if (!photoLike || !hot) assert.ok(c.startsWith('png'), c);
        }
      }
    }
  });

  it('uses WebP when offered: lossless for still sharp areas, lossy on slow links', () => {
    assert.equal(chooseCodec(false, false, BIG, policy({ webp: true })), 'webp-lossless');
    assert.equal(chooseCodec(false, true, BIG, policy({ webp: true })), 'png');
    assert.equal(chooseCodec(true, true, BIG, policy({ webp: true })), 'jpeg');
    assert.equal(chooseCodec(true, true, BIG, policy({ webp: true, lossyWebp: true })), 'webp');
    assert.equal(chooseCodec(true, true, 32 * 32, policy({ webp: true })), 'png-filtered', 'small areas stay lossless');
  });
});
