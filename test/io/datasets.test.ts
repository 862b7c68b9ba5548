// io/datasets: emoji and folder datasets, hash split, Rng, decode cache and BatchLoader
// resume. Decodes only a handful of emoji to keep the run fast.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HostTensor } from '../../src/tensor.ts';
import { loadImage, saveImage } from '../../src/io/image.ts';
import {
  BatchLoader,
  Rng,
  cacheDataset,
  emojiDataset,
  folderDataset,
  hashString,
  readImageCache,
  splitDataset,
  type Batch,
} from '../../src/io/datasets.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-datasets-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

test('emoji dataset: >3000 images, 10 sorted categories, consistent labels', async () => {
  const ds = await emojiDataset({ set: 'google' });
  assert.ok(ds.items.length > 3000, `${ds.items.length} items`);
  assert.equal(ds.categories.length, 10);
  assert.deepEqual(ds.categories, [...ds.categories].sort());
  assert.deepEqual(ds.classes, ds.categories);
  assert.equal(ds.size, 64);
  assert.equal(ds.flip, false);
  assert.equal(new Set(ds.items.map((it) => it.key)).size, ds.items.length, 'keys are unique');
  for (const it of ds.items) {
    assert.equal(it.categoryIndex, ds.categories.indexOf(it.category));
    assert.equal(it.label, it.categoryIndex);
    assert.ok(it.key.startsWith('google/'));
  }
  const grin = ds.items.find((it) => it.name === 'grinning')!;
  assert.equal(grin.category, 'Smileys & Emotion');
  assert.ok(fs.existsSync(grin.path));
  const santa = ds.items.filter((it) => it.name.startsWith('santa'));
  assert.ok(santa.some((it) => it.name === 'santa::skin-tone-2'));
  assert.ok(santa.every((it) => it.group === santa[0].group), 'skin tones share a split group');
  const noTones = await emojiDataset({ set: 'twitter', skinTones: false });
  assert.ok(noTones.items.length < ds.items.length && noTones.items.length > 1500);
  const both = await emojiDataset({ set: 'both', size: 32 });
  assert.equal(both.items.length, ds.items.length + (await emojiDataset({ set: 'twitter' })).items.length);
  assert.equal(both.size, 32);
  await assert.rejects(emojiDataset({ size: 48 as 64 }), /size must be 64, 32 or 16/);
});

test('emoji images load as [3,64,64] in [-1,1], transparent corners white', async () => {
  const ds = await emojiDataset({ set: 'both' });
  const pick = [ds.items[0], ds.items.find((it) => it.name === 'grinning' && it.set === 'twitter')!, ds.items[ds.items.length - 1]];
  for (const it of pick) {
    const t = await loadImage(it.path);
    assert.deepEqual(t.shape, [3, 64, 64]);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of t.data) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    assert.ok(lo >= -1 && hi <= 1 && lo < hi, `${it.key} range ${lo}..${hi}`);
  }
  const grin = await loadImage(pick[1].path);
  for (let k = 0; k < 3; k++) assert.equal(grin.data[k * 64 * 64], 1, 'corner composited over white');
});

test('split is deterministic, disjoint, complete and respects groups', async () => {
  const ds = await emojiDataset({ set: 'both' });
  const a = splitDataset(ds.items);
  const b = splitDataset(ds.items);
  assert.deepEqual(a.valIndices, b.valIndices);
  const val = new Set(a.val.map((it) => it.key));
  assert.equal(a.train.length + a.val.length, ds.items.length);
  assert.ok(a.train.every((it) => !val.has(it.key)));
  const frac = a.val.length / ds.items.length;
  assert.ok(frac > 0.02 && frac < 0.09, `val fraction ${frac}`);
  const valGroups = new Set(a.val.map((it) => it.group));
  assert.ok(a.train.every((it) => !valGroups.has(it.group)), 'no group straddles the split');
  const salted = splitDataset(ds.items, { salt: 'other' });
  assert.notDeepEqual(salted.valIndices, a.valIndices);
  const ten = splitDataset(ds.items, { valFraction: 0.1 });
  assert.ok(a.valIndices.every((i) => ten.valIndices.includes(i)), 'growing the fraction only adds to val');
  assert.equal(splitDataset(ds.items, { valFraction: 0 }).val.length, 0);
  assert.throws(() => splitDataset(ds.items, { valFraction: 2 }), /valFraction/);
  assert.equal(hashString('abc'), hashString('abc'));
});

test('Rng is deterministic, resumable and in range', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b.nextU32()));
  assert.notDeepEqual(xs, Array.from({ length: 5 }, () => new Rng(43).nextU32()));
  const st = a.state();
  const next = Array.from({ length: 5 }, () => a.next());
  const c = Rng.fromState(st);
  assert.deepEqual(Array.from({ length: 5 }, () => c.next()), next);
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 7000; i++) counts[a.int(7)]++;
  assert.ok(counts.every((k) => k > 850 && k < 1150), `counts ${counts}`);
  for (let i = 0; i < 1000; i++) {
    const f = a.next();
    assert.ok(f >= 0 && f < 1);
  }
  const perm = a.shuffle(Array.from({ length: 20 }, (_, i) => i));
  assert.deepEqual([...perm].sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i));
  assert.throws(() => a.setState([1, 2, 3]), /4 uint32/);
  assert.equal(new Rng('seed').nextU32(), new Rng('seed').nextU32());
});

function syntheticImages(n: number, s: number): HostTensor<'uint8'> {
  const d = new Uint8Array(n * 3 * s * s);
  for (let i = 0; i < d.length; i++) d[i] = (i * 131 + (i >> 7)) & 255;
  return new HostTensor('uint8', [n, 3, s, s], d);
}

function sameBatch(a: Batch, b: Batch): void {
  assert.deepEqual(a.x.shape, b.x.shape);
  assert.deepEqual(a.x.data, b.x.data);
  assert.deepEqual(a.labels, b.labels);
  assert.deepEqual(a.keys, b.keys);
  assert.equal(a.epoch, b.epoch);
  assert.equal(a.position, b.position);
}

test('BatchLoader: epochs, crops, flips and exact resume via setState', () => {
  const n = 10;
  const images = syntheticImages(n, 8);
  const labels = Array.from({ length: n }, (_, i) => i % 3);
  const keys = Array.from({ length: n }, (_, i) => `k${i}`);
  const opts = { images, labels, keys, batchSize: 3, crop: 6, flip: true, seed: 7 };
  const L = new BatchLoader(opts);
  assert.equal(L.batchesPerEpoch, 3);
  const first: Batch[] = [];
  for (let i = 0; i < 5; i++) first.push(L.next());
  assert.deepEqual(first[0].x.shape, [3, 3, 6, 6]);
  // Within an epoch rows don't repeat; the 4th batch starts epoch 1 (dropLast).
  const ep0 = first.slice(0, 3).flatMap((b) => Array.from(b.rows));
  assert.equal(new Set(ep0).size, 9);
  assert.equal(first[3].epoch, 1);
  assert.equal(first[3].position, 0);
  for (const b of first) b.rows.forEach((r, i) => {
    assert.equal(b.labels[i], r % 3);
    assert.equal(b.keys[i], `k${r}`);
  });
  // Every value comes from the uint8 grid in [-1, 1].
  for (const v of first[0].x.data) {
    const u = (v + 1) * 127.5;
    assert.ok(v >= -1 && v <= 1 && Math.abs(u - Math.round(u)) < 1e-3);
  }

  const st = JSON.parse(JSON.stringify(L.state()));
  const rest = Array.from({ length: 6 }, () => L.next());
  const R = new BatchLoader(opts);
  R.setState(st);
  rest.forEach((b) => sameBatch(R.next(), b));
  // Same seed from scratch reproduces the whole stream.
  const S = new BatchLoader(opts);
  [...first, ...rest].forEach((b) => sameBatch(S.next(), b));
  // A different seed gives a different order.
  assert.notDeepEqual(Array.from(new BatchLoader({ ...opts, seed: 8 }).next().rows), Array.from(first[0].rows));
  assert.throws(() => new BatchLoader({ ...opts, seed: 8 }).setState(st), /seed/);
  assert.throws(() => new BatchLoader({ ...opts, indices: [0, 1, 2, 3] }).setState(st), /state is for 10 images/);
});

test('BatchLoader: center crop without augmentation, flips mirror, subsets, last batch', () => {
  const images = syntheticImages(4, 4);
  const at = (r: number, k: number, y: number, x: number) => images.data[((r * 3 + k) * 4 + y) * 4 + x] / 127.5 - 1;
  const ev = new BatchLoader({ images, batchSize: 3, crop: 2, augment: false, shuffle: false, dropLast: false });
  const b0 = ev.next();
  assert.deepEqual(Array.from(b0.rows), [0, 1, 2]);
  assert.equal(b0.x.data[0], Math.fround(at(0, 0, 1, 1)));
  assert.equal(b0.x.data[3], Math.fround(at(0, 0, 2, 2)));
  const b1 = ev.next();
  assert.deepEqual(b1.x.shape, [1, 3, 2, 2]);
  assert.deepEqual(Array.from(b1.rows), [3]);
  assert.equal(ev.next().epoch, 1);
  // Flip on, full-size crop: each output is the image or its mirror.
  const fl = new BatchLoader({ images, batchSize: 4, flip: true, seed: 3, shuffle: false });
  let flips = 0;
  for (let t = 0; t < 10; t++) {
    const b = fl.next();
    for (let i = 0; i < 4; i++) {
      const straight = b.x.data[i * 48] === Math.fround(at(i, 0, 0, 0)) && b.x.data[i * 48 + 3] === Math.fround(at(i, 0, 0, 3));
      const mirrored = b.x.data[i * 48] === Math.fround(at(i, 0, 0, 3)) && b.x.data[i * 48 + 3] === Math.fround(at(i, 0, 0, 0));
      assert.ok(straight || mirrored);
      if (!straight) flips++;
    }
  }
  assert.ok(flips > 5 && flips < 35, `${flips} flips of 40`);
  const sub = new BatchLoader({ images, indices: [1, 3], batchSize: 2 });
  for (let t = 0; t < 3; t++) assert.deepEqual([...sub.next().rows].sort(), [1, 3]);
  assert.throws(() => new BatchLoader({ images, batchSize: 5 }), /fewer than one batch/);
  assert.throws(() => new BatchLoader({ images, batchSize: 2, crop: 5 }), /crop 5 must be an integer in 1\.\.4/);
});

test('cacheDataset decodes once, round-trips through its cache file, rebuilds stale files', async () => {
  const ds = await emojiDataset({ set: 'twitter', size: 16 });
  const items = ds.items.slice(100, 106);
  const cachePath = path.join(tmp, 'cache/emoji16.lkc');
  const progress: number[] = [];
  const a = await cacheDataset(items, ds.size, { cachePath, onProgress: (done, total) => progress.push(done / total) });
  assert.deepEqual(a.shape, [6, 3, 16, 16]);
  assert.equal(progress.length, 6);
  assert.equal(progress[5], 1);
  assert.ok(fs.statSync(cachePath).size > 6 * 3 * 16 * 16);
  // Same pixels as decoding directly.
  const direct = await loadImage(items[2].path, { size: 16 });
  for (let i = 0; i < direct.size; i += 37) assert.equal(direct.data[i], Math.fround(a.data[2 * 768 + i] / 127.5 - 1));

  const calls: number[] = [];
  const b = await cacheDataset(items, ds.size, { cachePath, onProgress: (d) => calls.push(d) });
  assert.equal(calls.length, 0, 'second run reads the cache file');
  assert.deepEqual(b.data, a.data);
  const { header } = await readImageCache(cachePath);
  assert.deepEqual(header.keys, items.map((it) => it.key));

  // A different item list (or size) invalidates the file; a corrupt file is rebuilt.
  const c = await cacheDataset(items.slice(0, 4), ds.size, { cachePath, onProgress: (d) => calls.push(d) });
  assert.deepEqual(c.data, a.data.subarray(0, 4 * 768));
  assert.equal(calls.length, 4);
  fs.writeFileSync(cachePath, 'garbage');
  await assert.rejects(readImageCache(cachePath), /is not a valid image cache \(bad magic\)/);
  const d = await cacheDataset(items, ds.size, { cachePath });
  assert.deepEqual(d.data, a.data);

  // The loader works straight from the cache.
  const loader = new BatchLoader({ images: d, labels: items.map((it) => it.label), keys: items.map((it) => it.key), batchSize: 2, crop: 12 });
  const batch = loader.next();
  assert.deepEqual(batch.x.shape, [2, 3, 12, 12]);
  assert.ok(items.some((it) => it.key === batch.keys[0]));
});

test('folderDataset labels by first-level subfolder', async () => {
  const root = path.join(tmp, 'folder');
  const img = HostTensor.float32([3, 4, 6]);
  for (const f of ['cats/a.png', 'cats/deep/b.jpg', 'dogs/c.webp', 'top.png']) await saveImage(path.join(root, f), img);
  const ds = await folderDataset(root);
  assert.deepEqual(ds.classes, ['.', 'cats', 'dogs']);
  assert.deepEqual(
    ds.items.map((it) => [it.key, it.label]),
    [
      ['cats/a.png', 1],
      ['cats/deep/b.jpg', 1],
      ['dogs/c.webp', 2],
      ['top.png', 0],
    ],
  );
  const flat = path.join(tmp, 'flat');
  await saveImage(path.join(flat, 'x.png'), img);
  assert.deepEqual((await folderDataset(flat)).classes, ['.']);
  const cache = await cacheDataset(ds.items, 4);
  assert.deepEqual(cache.shape, [4, 3, 4, 4]);
  fs.mkdirSync(path.join(tmp, 'empty'), { recursive: true });
  await assert.rejects(folderDataset(path.join(tmp, 'empty')), /no png\/jpg\/jpeg\/webp images under/);
});
