// Sketch normalisation (src/io/sketch.ts): a drawing's filled areas survive — dots (eyes)
// solid, larger filled shapes as their outline (issue 17.7: they used to thin to a point and
// be dropped as specks) — while plain strokes of any width come out exactly as before.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeImageBytesU8, loadImageU8, svgToPng } from '../../src/io/image.ts';
import { distanceToPaper, normalizeDrawing, sketchFromImage } from '../../src/io/sketch.ts';
import { HostTensor } from '../../src/tensor.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const S = 64;

async function draw(size: number, body: string, alpha = false) {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}">${alpha ? '' : `<rect width="${size}" height="${size}" fill="white"/>`}${body}</svg>`;
  return decodeImageBytesU8(await svgToPng(svg, 1, { keepAlpha: alpha }));
}
const ring = (cx: number, cy: number, r: number, pen: number) => `<circle cx="${cx}" cy="${cy}" r="${r}" fill="none" stroke="#111" stroke-width="${pen}"/>`;
const dot = (cx: number, cy: number, r: number) => `<circle cx="${cx}" cy="${cy}" r="${r}" fill="#111"/>`;

/** Output pixels (S² canvas) within `r` of (x, y) given in the drawing's pixels, for a drawing whose ink box is `box`. */
function around(box: [number, number, number, number], x: number, y: number, r: number, rIn = 0, S = 64): number[] {
  const [x0, y0, x1, y1] = box;
  const side = (Math.max(x1 - x0, y1 - y0) * S) / (S - 6);
  const [sx, sy] = [(x0 + x1) / 2 - side / 2, (y0 + y1) / 2 - side / 2];
  const [cx, cy, cr] = [((x - sx) / side) * S - 0.5, ((y - sy) / side) * S - 0.5, (r / side) * S];
  const out: number[] = [];
  for (let yy = 0; yy < S; yy++) for (let xx = 0; xx < S; xx++) {
    const d = Math.hypot(xx - cx, yy - cy);
    if (d <= cr && d >= rIn * cr) out.push(yy * S + xx);
  }
  return out;
}
const inked = (s: HostTensor<'uint8'>, px: number[]) => px.filter((i) => s.data[i]! < 128).length / px.length;

describe('sketch normalisation', () => {
  it('distanceToPaper is the exact squared Euclidean distance to the nearest paper pixel (brute force)', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (const [h, w, p] of [[13, 17, 0.8], [31, 20, 0.95], [4, 9, 1]] as const) {
      const m = Uint8Array.from({ length: h * w }, () => (rnd() < p ? 1 : 0));
      const d = distanceToPaper(m, h, w);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
        let best = m[y * w + x] ? Infinity : 0;
        // outside the canvas is paper
        for (let yy = -1; yy <= h && best; yy++) for (let xx = -1; xx <= w; xx++) {
          if (yy < 0 || yy >= h || xx < 0 || xx >= w || !m[yy * w + xx]) best = Math.min(best, (yy - y) ** 2 + (xx - x) ** 2);
        }
        assert.equal(d[y * w + x], best, `(${y}, ${x}) of ${h}×${w}`);
      }
    }
  });

  it('a face with filled 30 px eye dots keeps them in the condition (solid; as outlines with filled: outline)', async () => {
    // the page's pad: 256², 6 px pen; face ring r = 100 at (128, 130) → ink box 25..231 × 27..233
    const img = await draw(256, ring(128, 130, 100, 6) + dot(92, 102, 15) + dot(164, 102, 15));
    const box: [number, number, number, number] = [25, 27, 231, 233];
    const at = (size: number, x: number, y: number, r: number, rIn = 0) => around(box, x, y, r, rIn, size);
    for (const size of [64, 128]) {
      const s = normalizeDrawing(img, { size });
      const outline = normalizeDrawing(img, { size, filled: 'outline' });
      const old = normalizeDrawing(img, { size, filled: 'thin' });
      for (const [x, y] of [[92, 102], [164, 102]] as const) {
        // the disc is ink now, all paper before
        assert.equal(inked(s, at(size, x, y, 15)), 1, `disc at ${x},${y} (${size}²)`);
        assert.equal(inked(old, at(size, x, y, 18)), 0, 'the thinned (old) condition lost the dot');
        // as an outline: the disc's edge (its outer 2 px) is ink, its centre paper at 128²
        assert.equal(inked(outline, at(size, x, y, 15, size === 64 ? 0.6 : 0.8)), 1, `outline of the disc at ${x},${y} (${size}²)`);
        if (size === 128) assert.equal(inked(outline, at(size, x, y, 4)), 0, 'the outline has a hole');
      }
      // nothing else moved: away from the eyes, the condition is the old one
      const eyes = new Set([...at(size, 92, 102, 24), ...at(size, 164, 102, 24)]);
      for (let i = 0; i < size * size; i++) if (!eyes.has(i)) assert.equal(s.data[i], old.data[i], `pixel ${i} (${size}²)`);
    }
  });

  it('a dot the width of the pen (a tap) is kept; a stray 1-pixel speck is not', async () => {
    const img = await draw(400, ring(200, 200, 170, 12) + dot(140, 150, 6) + dot(260, 150, 6) + dot(200, 260, 1));
    const s = normalizeDrawing(img);
    const box: [number, number, number, number] = [24, 24, 376, 376];
    assert.ok(inked(s, around(box, 140, 150, 6)) === 1 && inked(s, around(box, 260, 150, 6)) === 1);
    assert.equal(inked(s, around(box, 200, 260, 8)), 0);
  });

  it('a filled shape becomes its outline: ink along the edge, paper inside', async () => {
    const img = await draw(300, dot(150, 150, 120), true);
    const s = normalizeDrawing(img);
    const box: [number, number, number, number] = [30, 30, 270, 270];
    assert.equal(inked(s, around(box, 150, 150, 118, 0.97)), 1, 'edge');
    assert.equal(inked(s, around(box, 150, 150, 100)), 0, 'inside');
    assert.ok(inked(normalizeDrawing(img, { filled: 'thin' }), around(box, 150, 150, 120)) < 0.05, 'thinned: a point');
    assert.equal(inked(normalizeDrawing(img, { filled: 'solid' }), around(box, 150, 150, 120)), 1, 'solid: all ink');
  });

  it('the training sketch of a dark dot on a colour is its outline (what the model reads)', () => {
    const img = new HostTensor('uint8', [3, S, S], new Uint8Array(3 * S * S));
    for (let i = 0; i < S * S; i++) {
      const [y, x] = [Math.floor(i / S), i % S];
      const eye = Math.hypot(y - 32, x - 32) <= 7;
      [img.data[i], img.data[S * S + i], img.data[2 * S * S + i]] = eye ? [60, 40, 20] : [250, 200, 40];
    }
    const s = sketchFromImage(img);
    assert.equal(s.data[32 * S + 32], 255, 'centre is paper');
    assert.equal(s.data[32 * S + 25], 0, 'edge is ink');
  });

  it('plain strokes, thin or thick, come out exactly as before (committed drawings pinned; no filled areas)', async () => {
    // sha256 of normalizeDrawing's output before filled areas were kept (64², 128²)
    const pinned: Record<string, [string, string]> = {
      face: ['0d572b79d82461ab9632e540deac4961c7c6bc5830c9a07e77cbda3042e8da59', '9693d8631c109552af5a554dbd3691fc1605153d863d991e9b76320cfc52c407'],
      heart: ['22da0dcd715f0ea1bcbb85b9a83a044f6efbe24e3c372a0aaa019e0c94fb7ed0', 'cc3b0e90c25709ead495b2dcda5d28025995eee6a30e7061c06a23ccc9e8815c'],
      house: ['63f8ba132bcc7b54e50a7ac16607102c439000994e64e07f4cddee0968c60dff', '267ad09dc23e941707279b4047b2b0936a3d5d7f2e3e100895b011a22a2979b8'],
      star: ['c537c19900e33719e6ac1c9528eaa86164bb12d304361fac238ed15f3d29c238', 'e649af508876299f7c3f15f77f3c2e8b78c86092769236b89f46298600f487ac'],
    };
    for (const [name, [h64, h128]] of Object.entries(pinned)) {
      const img = await loadImageU8(path.join(root, 'models/emoji-sketch/drawings', `${name}.png`));
      for (const [size, want] of [[64, h64], [128, h128]] as const) {
        const got = normalizeDrawing(img, { size });
        assert.equal(crypto.createHash('sha256').update(got.data).digest('hex'), want, `${name} at ${size}²`);
      }
    }
    // a thick marker (40 px on 400²: ~6 px at 64²) is still a stroke, not a filled area
    const marker = await draw(400, ring(200, 200, 150, 40) + '<path d="M120,260 L280,260" stroke="#111" stroke-width="40" stroke-linecap="round"/>');
    assert.deepEqual(normalizeDrawing(marker).data, normalizeDrawing(marker, { filled: 'thin' }).data);
  });
});
