// The committed models give the same answers on every backend: onnxruntime-node and
// onnxruntime-web's WebAssembly build in Node (the fallback of a plain `npm install`).
// Issue 17 §1: on WASM the KV decoder sampled all zeros (greedy) and noise (sampled).
import { it, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Net2Net } from '../../src/models/cond_transformer/load.ts';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { loadImage } from '../../src/io/image.ts';
import { BACKENDS, NATIVE } from '../backends.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const models = path.join(root, 'models');
after(() => NATIVE.use());

it('emoji-class: greedy and sampled tokens are the same on onnxruntime-node and WASM', async () => {
  const got: Record<string, number[][]> = {};
  for (const b of BACKENDS) {
    b.use();
    const m = Net2Net.load(path.join(models, 'emoji-class'), { session: { threads: 1 } });
    const flags = m.classIndex('Flags');
    const greedy = Array.from(await m.sample({ n: 2, cond: [flags], seed: 1, greedy: true }));
    const sampled = Array.from(await m.sample({ n: 2, cond: [flags], seed: 1, topK: 100 }));
    await m.release();
    // a degenerate decoder (all zeros, one repeated code) would pass the comparisons below
    assert.ok(new Set(greedy).size > 8, `${b.name}: greedy sample uses only ${new Set(greedy).size} distinct codes`);
    got[b.name] = [greedy, sampled];
  }
  const [a, w] = [got['onnxruntime-node']!, got.wasm!];
  assert.deepEqual(w[0], a[0], 'greedy tokens differ between backends');
  assert.deepEqual(w[1], a[1], 'sampled tokens differ between backends');
});

it('emoji-f4: the same code indices and reconstruction on onnxruntime-node and WASM', async () => {
  const file = path.join(root, 'node_modules/emoji-datasource-google/img/google/64/1f600.png'); // 😀
  const res: { indices: number[]; image: Float32Array }[] = [];
  for (const b of BACKENDS) {
    b.use();
    const m = VQGAN.load(path.join(models, 'emoji-f4', 'model.safetensors'), { session: { threads: 1 } });
    const x = (await loadImage(file, { size: 64 })).reshape([1, 3, 64, 64]);
    const r = await m.reconstruct(x);
    res.push({ indices: r.indices.toArray(), image: r.image.data as Float32Array });
    await m.release();
  }
  assert.deepEqual(res[1]!.indices, res[0]!.indices);
  let maxd = 0;
  for (let i = 0; i < res[0]!.image.length; i++) maxd = Math.max(maxd, Math.abs(res[0]!.image[i]! - res[1]!.image[i]!));
  assert.ok(maxd < 1e-3, `reconstructions differ by up to ${maxd}`);
});
