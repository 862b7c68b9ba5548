// MaskGIT training and sampling end to end on a small code set: the batches mask ⌈γ(r)·N⌉
// codes with [MASK] and score only those, a run resumes exactly, the run directory samples in
// parallel passes (class and guidance), edits keep every unmasked code, and an image-conditioned
// model drops its whole condition to [MASK] for guidance.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { extractCodes } from '../../src/train/extract_codes.ts';
import { readCodeSet, writeCodeSet } from '../../src/io/codes.ts';
import { parseGPTTrainConfig, TINY_MASKGIT_PRESET, loadGPTTrainConfig } from '../../src/train/gpt_config.ts';
import { trainGPT } from '../../src/train/gpt_run.ts';
import { Net2Net } from '../../src/models/cond_transformer/load.ts';
import { readSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { GPTBatcher } from '../../src/train/gpt_batches.ts';
import { emojiClassFolders } from '../helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-maskgit-'));
process.env.LATENTKIT_CACHE = path.join(tmp, 'cache');
const data = path.join(tmp, 'images');
const codesFile = path.join(tmp, 'codes.safetensors');
const VQ = path.join(root, 'models/emoji-f4/model.safetensors');
const quiet = { onMessage: () => {} };
const tiny = (over: Record<string, unknown> = {}) => {
  const c = structuredClone(TINY_MASKGIT_PRESET) as any;
  Object.assign(c.latentkit, { max_steps: 6, log_every: 2, val_every: 3, sample_every: 6, ckpt_every: 3 }, over);
  return parseGPTTrainConfig(c, 'tiny-maskgit');
};

describe('MaskGIT training (train-gpt, objective maskgit)', () => {
  before(async () => {
    emojiClassFolders(data, 300, 330, ['dogs', 'cats']);
    const model = VQGAN.load(VQ, { session: { threads: 1 } });
    writeCodeSet(codesFile, await extractCodes({ model, modelPath: VQ, data, size: 64, flip: false, valFraction: 0.2 }));
    await model.release();
  });

  it('batches: [MASK] exactly where m = 1, ⌈cos(πr/2)·N⌉ of them, targets clean; validation masks are the same every pass', () => {
    const s = readCodeSet(codesFile);
    const rows = Array.from({ length: 30 }, (_, i) => i);
    const opts = { set: s, rows, batchSize: 8, cond: 'class' as const, sosToken: 0, vocab: 1025, pkeep: 1, classDropout: 0, nullClass: 2, flip: true, seed: 3, maskToken: 1024 };
    const b = new GPTBatcher({ ...opts, train: true });
    const counts: number[] = [];
    for (let k = 0; k < 4; k++) {
      const x = b.next();
      for (let r = 0; r < 8; r++) {
        let n = 0;
        for (let i = 0; i < 256; i++) {
          const j = r * 256 + i;
          const masked = x.m!.data[j] === 1;
          n += masked ? 1 : 0;
          assert.equal(x.a.data[j], masked ? 1024n : x.z.data[j], `row ${r} position ${i}`);
          assert.ok(x.z.data[j]! < 1024n);
        }
        assert.ok(n >= 1 && n <= 256);
        counts.push(n / 256);
      }
    }
    const mean = counts.reduce((a, v) => a + v, 0) / counts.length;
    assert.ok(mean > 0.45 && mean < 0.85, `mean masked fraction ${mean} (expected ≈ 2/π)`);
    const v1 = new GPTBatcher({ ...opts, train: false }).next();
    const v2 = new GPTBatcher({ ...opts, train: false }).next();
    assert.deepEqual(Array.from(v1.m!.data), Array.from(v2.m!.data));
  });

  it('an image condition is dropped to all-[MASK] with probability cond_dropout', () => {
    const s = readCodeSet(codesFile);
    const set = { ...s, cond: s.codes.clone(), condCodes: 1024 };
    const b = new GPTBatcher({ set, rows: Array.from({ length: 30 }, (_, i) => i), batchSize: 8, cond: 'image', sosToken: 0, vocab: 1025, pkeep: 1, classDropout: 0, nullClass: 0, flip: false, seed: 1, train: true, maskToken: 1024, condDropout: 0.5 });
    let dropped = 0;
    let kept = 0;
    for (let k = 0; k < 3; k++) {
      const x = b.next();
      for (let r = 0; r < 8; r++) {
        const row = Array.from(x.c.data.subarray(r * 256, (r + 1) * 256));
        if (row.every((v) => v === 1024n)) dropped++;
        else {
          assert.ok(row.every((v) => v < 1024n), 'a kept condition is never partly masked');
          kept++;
        }
      }
    }
    assert.ok(dropped > 3 && kept > 3, `dropped ${dropped}, kept ${kept}`);
  });

  it('resume continues exactly; the run directory samples in parallel passes and edits keep every given code', async () => {
    const a = path.join(tmp, 'a');
    const b = path.join(tmp, 'b');
    await trainGPT({ config: tiny(), codes: codesFile, out: a, threads: 1, events: quiet });
    await trainGPT({ config: tiny(), codes: codesFile, out: b, maxSteps: 3, threads: 1, events: quiet });
    await trainGPT({ config: tiny(), codes: codesFile, out: b, resume: true, threads: 1, events: quiet });
    const wa = readSafetensorsFile(path.join(a, 'model.safetensors')).tensors;
    const wb = readSafetensorsFile(path.join(b, 'model.safetensors')).tensors;
    for (const [k, v] of wa) assert.deepEqual(Array.from(wb.get(k)!.data as Float32Array), Array.from(v.data as Float32Array), k);
    const lines = fs.readFileSync(path.join(a, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const val = lines.filter((j) => j.split === 'val');
    assert.ok(val.length >= 1 && val.every((j) => Number.isFinite(j.bpt) && j.bpt > 0), JSON.stringify(val));
    assert.ok(fs.existsSync(path.join(a, 'samples/latest.png')));

    const m = Net2Net.load(a, { session: { threads: 1 } });
    assert.ok(m.isMaskGit);
    assert.equal(m.config.maskgit!.mask_token, 1024);
    assert.equal(m.config.transformer.n_unmasked, m.config.transformer.block_size);
    const passes: number[] = [];
    const t = await m.sample({ n: 2, cond: [m.classIndex('dogs')], topK: 20, seed: 5, steps: 4, onProgress: (p) => passes.push(p) });
    assert.deepEqual(passes, [1, 2, 3, 4]);
    assert.equal(t.length, 512);
    assert.ok(t.every((v) => v >= 0 && v < 1024), 'no [MASK] left, no id outside the codebook');
    // a seed gives the same sample whatever n
    const one = await m.sample({ n: 1, cond: [m.classIndex('dogs')], topK: 20, seed: 5, steps: 4 });
    assert.deepEqual(Array.from(one), Array.from(t.subarray(0, 256)));
    // editing: every given code comes back unchanged, the rest are generated
    const init = Int32Array.from(t.subarray(0, 256));
    for (let i = 0; i < 256; i++) if (i % 16 >= 4 && i % 16 < 12 && i >= 64 && i < 192) init[i] = -1;
    const e = await m.sample({ n: 3, cond: [0], seed: 9, steps: 6, init, guidance: 2 });
    for (let k = 0; k < 3; k++) for (let i = 0; i < 256; i++) if (init[i]! >= 0) assert.equal(e[k * 256 + i], init[i], `edit ${k} kept code ${i}`);
    await assert.rejects(m.sample({ n: 1, cond: [0], init: new Int32Array(255) }), /init has 255 codes; expected 256/);
    await assert.rejects(m.sample({ n: 1, cond: [0], steps: 0 }), /steps must be a whole number ≥ 1/);
    await m.release();
  });

  it("image conditions: 'add' (cond_emb cell by cell, 256 positions) and 'prefix' (512) both train, sample with guidance and reload", async () => {
    const s = readCodeSet(codesFile);
    const file = path.join(tmp, 'self-cond.safetensors');
    writeCodeSet(file, { ...s, cond: s.codes.clone(), condCodes: 1024, info: { ...s.info, condModel: VQ, cond: 'self' } });
    for (const mode of ['add', 'prefix'] as const) {
      const c = tiny({ max_steps: 2, val_every: 2, log_every: 1, sample_every: 2, ckpt_every: 2, maskgit_cond: mode, cond_dropout: 0.2, class_dropout: 0 });
      c.cond = 'image';
      const T = mode === 'add' ? 256 : 512;
      Object.assign(c.transformer, { block_size: T, n_unmasked: T });
      const out = path.join(tmp, `img-${mode}`);
      await trainGPT({ config: c, codes: file, out, threads: 1, events: quiet });
      const m = Net2Net.load(out, { session: { threads: 1 } });
      assert.equal(m.config.maskgit!.cond, mode);
      assert.equal(m.config.null_class, true, 'trained with condition dropout: guidance is on');
      const keys = [...readSafetensorsFile(path.join(out, 'model.safetensors')).tensors.keys()];
      assert.equal(keys.includes('transformer.cond_emb.weight'), mode === 'add');
      const cond = Array.from(s.codes.data.subarray(0, 256), Number);
      const t = await m.sample({ n: 2, cond, seed: 1, steps: 3, guidance: 1.5 });
      assert.ok(t.length === 512 && t.every((v) => v >= 0 && v < 1024));
      await m.release();
    }
    const bad = tiny({ maskgit_cond: 'add' });
    await assert.rejects(trainGPT({ config: bad, codes: codesFile, out: path.join(tmp, 'add-class'), threads: 1, events: quiet }), /maskgit_cond 'add' needs an image condition on the image's own code grid/);
  });

  it('the presets are bidirectional with [MASK] after the codes; a causal transformer is refused for maskgit', async () => {
    for (const p of ['maskgit-class', 'maskgit-sketch', 'maskgit-sketch-prefix']) {
      const c = loadGPTTrainConfig(p);
      assert.equal(c.run.objective, 'maskgit');
      assert.equal(c.transformer.vocab_size, 1025);
      assert.equal(c.transformer.n_unmasked, c.transformer.block_size);
    }
    const c = tiny();
    c.transformer.n_unmasked = 0;
    await assert.rejects(trainGPT({ config: c, codes: codesFile, out: path.join(tmp, 'causal'), threads: 1, events: quiet }), /needs a bidirectional transformer: set transformer_config n_unmasked to block_size \(257\)/);
    const v = tiny();
    v.transformer.vocab_size = 1024;
    await assert.rejects(trainGPT({ config: v, codes: codesFile, out: path.join(tmp, 'small'), threads: 1, events: quiet }), /vocab_size 1024 is smaller than the 1024 tokens this code set needs \+ \[MASK\]/);
  });
});
