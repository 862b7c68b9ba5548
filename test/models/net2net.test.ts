// A taming class-conditional Net2NetTransformer checkpoint (Lightning .ckpt + YAML, fixture
// from scripts/make_gpt_fixtures.py): loads by its own keys, greedy samples equal PyTorch's
// sample_with_past tokens exactly, decoded images match; the KV-cached decoder gives exactly
// the tokens of full recompute, greedy and sampled, for the same seed.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { Net2Net } from '../../src/models/cond_transformer/load.ts';
import { parseNet2NetConfig } from '../../src/models/cond_transformer/config.ts';
import { relErr } from '../helpers.ts';
import { loadStateDict } from '../../src/io/formats/checkpoint.ts';
import { convertNet2Net, exportNet2Net } from '../../src/cli/gpt.ts';
import * as ort from 'onnxruntime-node';
import { perBackend } from '../backends.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = path.join(here, '../fixtures/gpt');
const io = readSafetensorsFile(path.join(dir, 'net2net_io.safetensors')).tensors;

perBackend('taming Net2NetTransformer checkpoint', () => {
  let m: Net2Net;
  before(() => {
    m = Net2Net.load(path.join(dir, 'net2net_class.ckpt'), { config: path.join(dir, 'net2net_class.yaml'), session: { threads: 1 } });
  });
  after(() => m.release());

  it('reads the GPT, first stage and Labelator from taming keys', () => {
    assert.equal(m.config.cond_stage.kind, 'label');
    assert.deepEqual(m.grid, [4, 4]);
    assert.equal(m.condLength, 1);
    assert.equal(m.weights.size, 2 + 2 * 16 + 2 + 1); // tok/pos emb, 16 per block, ln_f, head (attn.mask buffers dropped)
  });

  it("greedy samples are exactly PyTorch's sample_with_past tokens, and decode alike", async () => {
    const classes = io.get('classes')!.toArray();
    const tokens = await m.sample({ n: classes.length, cond: classes, greedy: true });
    assert.deepEqual(Array.from(tokens), io.get('tokens')!.toArray());
    const images = await m.decodeTokens(tokens, classes.length);
    assert.ok(relErr(images.data as Float32Array, io.get('images')!.data as Float32Array) < 1e-4);
  });

  it('KV cache and full recompute choose the same tokens (greedy and sampled, same seed)', async () => {
    const cond = [0, 1, 2, 3, 4, 0, 1, 2];
    for (const o of [{ greedy: true }, { temperature: 1.0 }, { temperature: 0.8, topK: 5 }, { topP: 0.7 }]) {
      const kv = await m.sample({ n: 8, cond, seed: 7, ...o });
      const full = await m.sample({ n: 8, cond, seed: 7, recompute: true, ...o });
      assert.deepEqual(Array.from(kv), Array.from(full), JSON.stringify(o));
    }
  });

  it('a sample does not depend on the batch it is drawn in', async () => {
    const a = await m.sample({ n: 3, cond: [2], seed: 11, temperature: 1 });
    const b = await m.sample({ n: 1, cond: [2], seed: 11, temperature: 1 });
    assert.deepEqual(Array.from(a.subarray(0, 16)), Array.from(b));
  });

  it('class names and ids: one-line errors list the valid ones', () => {
    assert.equal(m.classIndex('3'), 3);
    assert.throws(() => m.classIndex(5), /class 5 out of range: this model has 5 classes/);
    assert.throws(() => m.classIndex('Flags'), /unknown class 'Flags'; valid classes: 0 0, 1 1/);
    assert.throws(() => m.sosCondition(), /conditional/);
  });

  it('a checkpoint without a transformer, or a VQGAN config, is named as such', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-n2n-'));
    const f = path.join(tmp, 'vq.safetensors');
    writeSafetensorsFile(f, m.firstStage.weights);
    assert.throws(() => Net2Net.load(f, { config: path.join(dir, 'net2net_class.yaml') }), /no transformer\.\* keys — not a Net2NetTransformer checkpoint \(it looks like a VQGAN/);
    assert.throws(() => parseNet2NetConfig({ model: { target: 'taming.models.vqgan.VQModel', params: {} } }, 'x.yaml'), /not a taming.models.cond_transformer.Net2NetTransformer/);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('convert writes a torch.save checkpoint with exactly the keys and values of the taming original', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-n2n-'));
    const out = path.join(tmp, 'converted.ckpt');
    const err = console.error;
    console.error = () => {};
    try {
      await convertNet2Net({ model: path.join(dir, 'net2net_class.ckpt'), config: path.join(dir, 'net2net_class.yaml'), output: out });
    } finally {
      console.error = err;
    }
    const a = loadStateDict(path.join(dir, 'net2net_class.ckpt')).stateDict;
    const b = loadStateDict(out).stateDict;
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
    for (const [k, v] of a) assert.deepEqual(Array.from(b.get(k)!.data as Float32Array), Array.from(v.data as Float32Array), k);
    const again = Net2Net.load(out);
    assert.deepEqual(Array.from(await again.sample({ n: 5, cond: [0, 1, 2, 3, 4], greedy: true })), io.get('tokens')!.toArray());
    await again.release();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('export-onnx: plain onnxruntime runs the step graph loop to the same greedy tokens and images', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-n2n-'));
    const err = console.error;
    console.error = () => {};
    try {
      await exportNet2Net({ model: path.join(dir, 'net2net_class.ckpt'), config: path.join(dir, 'net2net_class.yaml'), output: tmp, batch: '5' });
    } finally {
      console.error = err;
    }
    const man = JSON.parse(fs.readFileSync(path.join(tmp, 'transformer.json'), 'utf8'));
    assert.equal(man.cache_capacity, 16);
    const step = await ort.InferenceSession.create(path.join(tmp, 'step.onnx'));
    const dec = await ort.InferenceSession.create(path.join(tmp, 'decoder.onnx'));
    const { batch: B, n_layer: nl, n_head: nh, head_dim: hs, cache_capacity: L, vocab_size: V } = man;
    const caches: Record<string, ort.Tensor> = {};
    for (let i = 0; i < nl; i++) {
      caches[`cache.k.${i}`] = new ort.Tensor('float32', new Float32Array(B * nh * hs * L), [B, nh, hs, L]);
      caches[`cache.v.${i}`] = new ort.Tensor('float32', new Float32Array(B * nh * L * hs), [B, nh, L, hs]);
    }
    let tok = BigInt64Array.from([0n, 1n, 2n, 3n, 4n]);
    const out: number[][] = [[], [], [], [], []];
    for (let pos = 0; pos < 17; pos++) {
      const r = await step.run({ ...caches, tok: new ort.Tensor('int64', tok, [B]), pos: new ort.Tensor('int64', BigInt64Array.of(BigInt(pos)), [1]) });
      for (let i = 0; i < nl; i++) {
        const k = r[`k.${i}`]!.data as Float32Array;
        const v = r[`v.${i}`]!.data as Float32Array;
        const K = caches[`cache.k.${i}`]!.data as Float32Array;
        const Vc = caches[`cache.v.${i}`]!.data as Float32Array;
        for (let row = 0; row < B * nh; row++) for (let d = 0; d < hs; d++) {
          if (pos < L) K[(row * hs + d) * L + pos] = k[row * hs + d]!;
          if (pos < L) Vc[(row * L + pos) * hs + d] = v[row * hs + d]!;
        }
      }
      const logits = r.logits!.data as Float32Array;
      tok = BigInt64Array.from({ length: B }, (_, b) => {
        let best = 0;
        for (let j = 1; j < V; j++) if (logits[b * V + j]! > logits[b * V + best]!) best = j;
        return BigInt(best);
      });
      if (pos < 16) tok.forEach((t, b) => out[b]!.push(Number(t)));
      if (pos === 15) break;
    }
    assert.deepEqual(out.flat(), io.get('tokens')!.toArray());
    const img = await dec.run({ indices: new ort.Tensor('int64', BigInt64Array.from(out.flat(), BigInt), [5, 4, 4]) });
    assert.ok(relErr(img.image!.data as Float32Array, io.get('images')!.data as Float32Array) < 1e-4);
    fs.rmSync(tmp, { recursive: true, force: true });
  });
});
