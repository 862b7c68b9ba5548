// io/image: decode/encode round trips, resize+crop, alpha over white, grayscale, grids,
// clean errors, listImages, and the atomic writer it relies on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostTensor } from '../../src/tensor.ts';
import {
  decodeImageBytes,
  encodeImage,
  encodePng,
  floatToU8,
  imageGrid,
  imageInfo,
  listImages,
  loadImage,
  loadImageBatch,
  saveGrid,
  saveImage,
} from '../../src/io/image.ts';
import { writeFileAtomic, writeJsonAtomic, writeFileAtomicSync } from '../../src/io/atomic.ts';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/images');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-image-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** Deterministic test image in [-1, 1] on the uint8 grid. */
function pattern(c: number, h: number, w: number, seed = 1): HostTensor<'float32'> {
  const d = new Float32Array(c * h * w);
  for (let i = 0; i < d.length; i++) d[i] = ((i * 37 + seed * 101) % 256) / 127.5 - 1;
  return HostTensor.float32([c, h, w], d);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('PNG round trip is exact on the uint8 grid', async () => {
  const t = pattern(3, 5, 7);
  const file = path.join(tmp, 'rt.png');
  await saveImage(file, t);
  const back = await loadImage(file);
  assert.deepEqual(back.shape, [3, 5, 7]);
  assert.ok(maxAbsDiff(back.data, t.data) < 1 / 127.5, 'within one level');
  assert.ok(maxAbsDiff(back.data, t.data) < 1e-6, 'in fact exact');
});

test('saveImage accepts [1,3,H,W], clamps, and picks the format by extension', async () => {
  const t = HostTensor.float32([1, 3, 2, 2], [-5, -1, 0, 5, 1, 1, 1, 1, -1, -1, -1, -1]);
  const file = path.join(tmp, 'clamp.png');
  await saveImage(file, t);
  const back = await loadImage(file);
  assert.deepEqual(Array.from(floatToU8(back.data)), [0, 0, 128, 255, 255, 255, 255, 255, 0, 0, 0, 0]);
  for (const [ext, fmt] of [['jpg', 'jpeg'], ['jpeg', 'jpeg'], ['webp', 'webp'], ['png', 'png']] as const) {
    const f = path.join(tmp, `fmt.${ext}`);
    await saveImage(f, pattern(3, 8, 8));
    assert.equal((await imageInfo(fs.readFileSync(f))).format, fmt);
  }
  await assert.rejects(saveImage(path.join(tmp, 'x.bmp'), pattern(3, 2, 2)), /unknown extension '\.bmp'/);
  await assert.rejects(saveImage(path.join(tmp, 'x.png'), HostTensor.float32([2, 2, 2])), /expected a float32 \[3,H,W\]/);
});

test('JPEG round trip is close', async () => {
  const t = HostTensor.float32([3, 16, 16], new Float32Array(3 * 256).fill(0.2));
  const bytes = await encodeImage(t, 'jpeg');
  const back = await decodeImageBytes(bytes);
  assert.ok(maxAbsDiff(back.data, t.data) < 3 / 127.5);
});

test('size option resizes the shorter side and center-crops', async () => {
  // 20 wide × 10 tall: left half black, right half white, with a red middle band.
  const c = 3, h = 10, w = 20;
  const d = new Float32Array(c * h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = x < 5 ? -1 : x >= 15 ? 1 : 0;
      for (let k = 0; k < 3; k++) d[(k * h + y) * w + x] = v;
    }
  }
  const file = path.join(tmp, 'wide.png');
  await saveImage(file, HostTensor.float32([c, h, w], d));
  const full = await loadImage(file);
  assert.deepEqual(full.shape, [3, 10, 20]);
  const sq = await loadImage(file, { size: 4 });
  assert.deepEqual(sq.shape, [3, 4, 4]);
  // Center crop of a 8×4 resize keeps only the middle (gray) band, not the black/white sides.
  for (const v of sq.data) assert.ok(Math.abs(v) < 0.1, `center value ${v}`);
  const up = await loadImage(file, { size: 16 });
  assert.deepEqual(up.shape, [3, 16, 16]);
  await assert.rejects(loadImage(file, { size: 0 }), /size must be a positive integer/);
});

test('alpha is composited over white', async () => {
  const t = await loadImage(path.join(FIX, 'rgba-2x2.png'));
  assert.deepEqual(t.shape, [3, 2, 2]);
  // Pixels: red a=128, transparent black, opaque green, blue a=64 (planar R, G, B).
  const u8 = Array.from(floatToU8(t.data));
  assert.deepEqual(u8.slice(0, 4), [255, 255, 0, 191]); // R
  assert.deepEqual(u8.slice(4, 8), [127, 255, 255, 191]); // G
  assert.deepEqual(u8.slice(8, 12), [127, 255, 0, 255]); // B
});

test('16-bit grayscale is expanded to RGB and scaled to 8 bits', async () => {
  const t = await loadImage(path.join(FIX, 'gray16-3x2.png'));
  assert.deepEqual(t.shape, [3, 2, 3]);
  const u8 = Array.from(floatToU8(t.data));
  const expected = [0, 51, 102, 153, 204, 255];
  assert.deepEqual(u8.slice(0, 6), expected);
  assert.deepEqual(u8.slice(6, 12), expected);
  assert.deepEqual(u8.slice(12, 18), expected);
});

test('single-channel tensors save as grayscale and load as RGB', async () => {
  const file = path.join(tmp, 'gray.png');
  const t = pattern(1, 4, 4);
  await saveImage(file, t);
  const back = await loadImage(file);
  assert.deepEqual(back.shape, [3, 4, 4]);
  for (let k = 0; k < 3; k++) assert.ok(maxAbsDiff(back.data.subarray(k * 16, (k + 1) * 16), t.data) < 1e-6);
});

test('missing and corrupt files give one-line errors naming the file', async () => {
  const missing = path.join(tmp, 'nope.png');
  await assert.rejects(loadImage(missing), (e: Error) => {
    assert.match(e.message, /cannot read image .*nope\.png: file not found/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
  const corrupt = path.join(FIX, 'corrupt.png');
  await assert.rejects(loadImage(corrupt), (e: Error) => {
    assert.match(e.message, /^cannot decode image .*corrupt\.png: /);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
  await assert.rejects(loadImage(tmp), /is a directory/);
  await assert.rejects(decodeImageBytes(new Uint8Array([1, 2, 3])), /cannot decode image <bytes>/);
});

test('loadImageBatch stacks images and names the odd one out', async () => {
  const a = path.join(tmp, 'b0.png');
  const b = path.join(tmp, 'b1.png');
  const odd = path.join(tmp, 'b-odd.png');
  await saveImage(a, pattern(3, 6, 6, 1));
  await saveImage(b, pattern(3, 6, 6, 2));
  await saveImage(odd, pattern(3, 6, 5, 3));
  const batch = await loadImageBatch([a, b]);
  assert.deepEqual(batch.shape, [2, 3, 6, 6]);
  assert.ok(maxAbsDiff(batch.data.subarray(108), pattern(3, 6, 6, 2).data) < 1e-6);
  await assert.rejects(loadImageBatch([a, odd]), /b-odd\.png is 5x6 but .*b0\.png is 6x6/);
  const resized = await loadImageBatch([a, odd], { size: 4 });
  assert.deepEqual(resized.shape, [2, 3, 4, 4]);
});

test('imageGrid places tiles row-major with padding', () => {
  const n = 5, h = 2, w = 3;
  const d = new Float32Array(n * 3 * h * w);
  for (let i = 0; i < n; i++) d.fill(i / 10, i * 3 * h * w, (i + 1) * 3 * h * w);
  const g = imageGrid(HostTensor.float32([n, 3, h, w], d), { cols: 3, pad: 1, padValue: -1 });
  const rows = 2;
  const gh = rows * h + (rows + 1) * 1;
  const gw = 3 * w + 4 * 1;
  assert.deepEqual(g.shape, [3, gh, gw]);
  const at = (k: number, y: number, x: number) => g.data[(k * gh + y) * gw + x];
  assert.equal(at(0, 0, 0), -1); // border
  for (let i = 0; i < n; i++) {
    const y0 = 1 + Math.floor(i / 3) * (h + 1);
    const x0 = 1 + (i % 3) * (w + 1);
    for (let k = 0; k < 3; k++) {
      assert.ok(Math.abs(at(k, y0, x0) - i / 10) < 1e-7);
      assert.ok(Math.abs(at(k, y0 + h - 1, x0 + w - 1) - i / 10) < 1e-7);
    }
    assert.equal(at(0, y0, x0 + w), -1); // gap to the right
  }
  // The empty 6th cell stays padding.
  assert.equal(at(1, 1 + h + 1, 1 + 2 * (w + 1)), -1);
  // Defaults: ceil(sqrt(N)) columns, pad 2, white.
  const g2 = imageGrid([pattern(3, 4, 4), pattern(3, 4, 4)]);
  assert.deepEqual(g2.shape, [3, 4 + 4, 2 * 4 + 3 * 2]);
  assert.equal(g2.data[0], 1);
  assert.throws(() => imageGrid([pattern(3, 4, 4), pattern(3, 4, 5)]), /image 1 is \[3, 4, 5\]/);
});

test('saveGrid and encodePng write a decodable PNG of the grid size', async () => {
  const file = path.join(tmp, 'sub/dir/grid.png');
  await saveGrid(file, HostTensor.float32([4, 3, 8, 8]), { cols: 2, pad: 2 });
  const info = await imageInfo(fs.readFileSync(file));
  assert.deepEqual([info.width, info.height, info.format], [22, 22, 'png']);
  const bytes = await encodePng(pattern(3, 3, 3));
  assert.deepEqual(Array.from(bytes.subarray(1, 4)), [0x50, 0x4e, 0x47]); // "PNG"
});

test('listImages is recursive, filtered by extension and sorted', async () => {
  const root = path.join(tmp, 'list');
  for (const f of ['b/2.PNG', 'b/1.jpg', 'a.webp', 'c/d/e.jpeg', 'notes.txt', '.hidden/x.png', 'b/.x.png']) {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    fs.writeFileSync(path.join(root, f), 'x');
  }
  const got = (await listImages(root)).map((f) => path.relative(root, f).split(path.sep).join('/'));
  assert.deepEqual(got, ['a.webp', 'b/1.jpg', 'b/2.PNG', 'c/d/e.jpeg']);
  await assert.rejects(listImages(path.join(tmp, 'missing-dir')), /cannot read directory .*missing-dir: not found/);
});

test('atomic writes create parents, replace whole files and leave no temp files', async () => {
  const dir = path.join(tmp, 'atomic/a/b');
  const file = path.join(dir, 'f.bin');
  await writeFileAtomic(file, new Uint8Array([1, 2, 3]));
  assert.deepEqual(Array.from(fs.readFileSync(file)), [1, 2, 3]);
  await writeFileAtomic(file, 'hello');
  assert.equal(fs.readFileSync(file, 'utf8'), 'hello');
  writeFileAtomicSync(file, 'sync');
  assert.equal(fs.readFileSync(file, 'utf8'), 'sync');
  await writeJsonAtomic(path.join(dir, 'j.json'), { a: [1, 2] });
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'j.json'), 'utf8')), { a: [1, 2] });
  assert.deepEqual(fs.readdirSync(dir).sort(), ['f.bin', 'j.json']);
  await assert.rejects(writeFileAtomic(path.join(file, 'under-a-file'), 'x'), /writeFileAtomic: cannot write/);
});

test('headerSize reads PNG, JPEG and WebP sizes from the header alone, null otherwise', async () => {
  const { headerSize, encodeImage } = await import('../../src/io/image.ts');
  const t = HostTensor.float32([3, 23, 41]);
  for (let i = 0; i < t.size; i++) t.data[i] = Math.sin(i);
  for (const format of ['png', 'jpeg', 'webp'] as const) {
    const bytes = await encodeImage(t, format);
    assert.deepEqual(headerSize(bytes), { width: 41, height: 23, format }, format);
  }
  assert.equal(headerSize(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])), null);
  assert.equal(headerSize(new Uint8Array(0)), null);
});

test("rgbaOverWhite (the browser's exact PNG path) equals the server's decoder on every alpha", async () => {
  const { default: sharp } = await import('sharp');
  const { rgbaOverWhite } = await import('../../src/io/pixels.ts');
  const { decodeImageBytesU8 } = await import('../../src/io/image.ts');
  const [h, w] = [64, 64];
  const rgba = new Uint8Array(4 * h * w);
  for (let i = 0; i < h * w; i++) rgba.set([(i * 37) % 256, (i * 91 + 7) % 256, (i * 13 + 200) % 256, i % 256], 4 * i); // every alpha 16×
  const png = await sharp(Buffer.from(rgba), { raw: { width: w, height: h, channels: 4 } }).png().toBuffer();
  const server = await decodeImageBytesU8(png, { size: 64 });
  assert.deepEqual(Array.from(rgbaOverWhite(rgba, h, w)), Array.from(server.data));
});
