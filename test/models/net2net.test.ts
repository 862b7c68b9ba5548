// A taming class-conditional Net2NetTransformer checkpoint (Lightning .ckpt + YAML, fixture
// from scripts/make_gpt_fixtures.py): loads by its own keys, greedy samples equal PyTorch's
// sample_with_past tokens exactly, decoded images match; the KV-cached decoder gives exactly
// the tokens of full recompute, greedy and sampled, for the same seed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/safetensors.ts';
import { Net2Net } from '../../src/models/cond_transformer/load.ts';
import { parseNet2NetConfig } from '../../src/models/cond_transformer/config.ts';
import { relErr } from '../helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = path.join(here, '../fixtures/gpt');
const io = readSafetensorsFile(path.join(dir, 'net2net_io.safetensors')).tensors;

describe('taming Net2NetTransformer checkpoint', () => {
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
});
