// Preview-decoder distillation (distill-preview) on the tiny diffusers KL fixture (f2 → a
// 1-stage TAESD decoder) and 30 emoji at 16×16: training lowers the preview's L1 against the
// KL decoder on held-out latents, the saved decoder.safetensors loads with TAESD.load (original
// key layout) and decodes the KL model's latents exactly as the run's own evaluation did, and
// resuming continues the run to the same weights.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { distillPreview, initPreviewDecoder, previewStages } from '../../src/train/distill_preview.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl/load.ts';
import { TAESD } from '../../src/models/taesd/load.ts';
import { taesdShapes, taesdStages } from '../../src/models/taesd/taesd.ts';
import { readSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { loadTrainingData } from '../../src/train/vqgan_run.ts';
import { BatchLoader } from '../../src/io/datasets.ts';
import { psnr, mean } from '../../src/eval/metrics.ts';
import { hashStateDict } from '../../src/nn/hashinit.ts';
import { HostTensor } from '../../src/tensor.ts';
import { relErr } from '../helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-distill-'));
process.env.LATENTKIT_CACHE = path.join(tmp, 'cache');
const data = path.join(tmp, 'images');
const vae = path.join(here, '../fixtures/kl/diffusers_tiny');
const lines = (dir: string) => fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number | string>);
const common = { data, size: 16, batchSize: 4, lr: 2e-3, valFraction: 0.2, logEvery: 5, sampleEvery: 100, ckptEvery: 100, threads: 1, events: { onMessage: () => {} } };

describe('distill-preview', () => {
  before(() => {
    const pkg = path.dirname(createRequire(import.meta.url).resolve('emoji-datasource-google/package.json'));
    const src = path.join(pkg, 'img/google/64');
    fs.mkdirSync(data, { recursive: true });
    for (const f of fs.readdirSync(src).filter((f) => f.endsWith('.png')).slice(0, 30)) fs.copyFileSync(path.join(src, f), path.join(data, f));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('decoder layouts by stage count: 3 is the original TAESD, the last index gives the count back', () => {
    assert.equal(previewStages(8), 3);
    assert.equal(previewStages(2), 1);
    assert.throws(() => previewStages(6), /factor 6 is not a power of 2/);
    for (const s of [0, 1, 2, 3, 4]) {
      const keys = Object.keys(taesdShapes('decoder', 4, s));
      assert.equal(taesdStages('decoder', keys), s);
      assert.equal(taesdStages('encoder', Object.keys(taesdShapes('encoder', 4, s))), s);
      assert.equal(keys.at(-1), `${5 * s + 4}.bias`);
    }
    assert.deepEqual(Object.keys(taesdShapes('decoder', 4)), Object.keys(taesdShapes('decoder', 4, 3)));
    const sd = initPreviewDecoder(4, 1, 1);
    assert.deepEqual([...sd.keys()], Object.keys(taesdShapes('decoder', 4, 1)));
    assert.ok(!sd.has('7.bias') && sd.has('8.conv.4.bias'), 'the conv after an upsample has no bias, as in TAESD');
  });

  it('1- and 2-stage TAESD decode and encode like PyTorch (scripts/make_taesd_stages_fixture.py)', async () => {
    const fx = readSafetensorsFile(path.join(here, '../fixtures/taesd/taesd_stages.safetensors'));
    const T = fx.tensors;
    for (const s of [1, 2]) {
      for (const part of ['encoder', 'decoder'] as const) assert.deepEqual(Object.entries(taesdShapes(part, 4, s)), JSON.parse(fx.metadata[`keys.${part}.s${s}`]!), `${part}, ${s} stages`);
      const m = new TAESD({ decoder: hashStateDict(taesdShapes('decoder', 4, s)), encoder: hashStateDict(taesdShapes('encoder', 4, s)) }, { session: { threads: 1 } });
      assert.equal(m.stages, s);
      assert.equal(m.factor, 2 ** s);
      const img = await m.decode(T.get(`s${s}.latents`)!); // [−1, 1]
      const want = T.get(`s${s}.decoded`)!;
      assert.deepEqual([...img.shape], [...want.shape]);
      const e = relErr(Float32Array.from(img.data, (v) => (v + 1) / 2), want.data as Float32Array);
      assert.ok(e < 1e-4, `decoder, ${s} stages: relative error ${e.toExponential(2)}`);
      const x = T.get(`s${s}.image`)!;
      const z = await m.encode(HostTensor.float32(x.shape, (x.data as Float32Array).map((v) => v * 2 - 1)));
      const ez = relErr(z.data, T.get(`s${s}.encoded`)!.data as Float32Array);
      assert.ok(ez < 1e-4, `encoder, ${s} stages: relative error ${ez.toExponential(2)}`);
      await m.release();
    }
  });

  it('training lowers the L1 against the KL decoder; decoder.safetensors loads with TAESD.load; resume', async () => {
    const a = path.join(tmp, 'a');
    const r = await distillPreview({ ...common, model: vae, out: a, steps: 40 });
    assert.equal(r.step, 40);
    const ls = lines(a);
    const val = ls.filter((l) => l.split === 'val');
    assert.equal(val[0]!.step, 0);
    assert.equal(val.at(-1)!.step, 40);
    const l1First = val[0]!.l1 as number;
    const l1Last = val.at(-1)!.l1 as number;
    assert.ok(l1Last < 0.5 * l1First, `held-out L1 vs the KL decoder: step 0 ${l1First.toFixed(4)} → step 40 ${l1Last.toFixed(4)}`);
    const train = ls.filter((l) => l.split === 'train');
    assert.equal(train.length, 8);
    assert.ok((train.at(-1)!.l1 as number) < (train[0]!.l1 as number));
    const full = ls.find((l) => l.split === 'val_full')!;
    assert.ok(r.final && r.final.images === full.images && r.final.images >= 2);
    assert.ok(fs.existsSync(path.join(a, 'samples', 'latest.png')) && fs.existsSync(path.join(a, 'loss.png')));
    console.log(`preview vs KL decoder on ${r.final.images} held-out images: PSNR ${r.final.psnr.toFixed(2)} dB, L1 ${l1First.toFixed(4)} → ${l1Last.toFixed(4)}`);

    // the saved decoder: original bare-Sequential keys, metadata, and TAESD.load decodes the KL latents
    const st = readSafetensorsFile(r.decoder);
    assert.deepEqual([...st.tensors.keys()].sort(), Object.keys(taesdShapes('decoder', 4, 1)).sort());
    assert.equal(st.metadata.stages, '1');
    assert.equal(st.metadata.factor, '2');
    const t = TAESD.load(r.decoder, { session: { threads: 1 } });
    assert.equal(t.stages, 1);
    assert.equal(t.factor, 2);
    const kl = AutoencoderKL.load(vae, { session: { threads: 1 } });
    const d = await loadTrainingData(data, 16, 0.2);
    const x = new BatchLoader({ images: d.images, indices: d.valIdx, batchSize: d.valIdx.length, augment: false, shuffle: false, dropLast: false }).next().x;
    const { latents } = await kl.encode(x);
    const full8 = await kl.decode(latents);
    const prev = await t.decode(latents);
    assert.deepEqual([...prev.shape], [d.valIdx.length, 3, 16, 16]);
    const p = mean(psnr(full8, prev));
    assert.ok(Math.abs(p - r.final.psnr) < 1e-3, `TAESD.load's decode: PSNR ${p} vs the run's ${r.final.psnr}`);
    // and a random (untrained) decoder is far worse: the PSNR measures the training
    const untrained = new TAESD({ decoder: initPreviewDecoder(4, 1, 1) }, { session: { threads: 1 } });
    assert.ok(mean(psnr(full8, await untrained.decode(latents))) < p - 3);
    await Promise.all([t.release(), kl.release(), untrained.release()]);

    // resume: 20 steps, then 20 more, gives the uninterrupted run's weights
    const b = path.join(tmp, 'b');
    await distillPreview({ ...common, model: vae, out: b, steps: 40, shouldStop: (() => { let n = 0; return () => ++n === 20; })() });
    await assert.rejects(distillPreview({ ...common, model: vae, out: b, steps: 40 }), /already holds a run; pass --resume/);
    const rb = await distillPreview({ ...common, model: vae, out: b, steps: 40, resume: true });
    assert.equal(rb.step, 40);
    const wa = readSafetensorsFile(r.decoder).tensors;
    const wb = readSafetensorsFile(rb.decoder).tensors;
    let maxDiff = 0;
    for (const [k, v] of wa) {
      const u = wb.get(k)!.data as Float32Array;
      (v.data as Float32Array).forEach((q, i) => (maxDiff = Math.max(maxDiff, Math.abs(q - u[i]!))));
    }
    assert.ok(maxDiff < 1e-5, `resumed weights differ by ${maxDiff}`);
    assert.deepEqual(lines(b).filter((l) => l.split === 'train').map((l) => l.step), train.map((l) => l.step));
  });

  it('one-line errors: a missing model, an image size off the factor', async () => {
    await assert.rejects(distillPreview({ ...common, model: vae, out: path.join(tmp, 'c'), size: 15 }), /image size 15 is not a multiple of the VAE's downsampling factor 2/);
    assert.ok(!fs.existsSync(path.join(tmp, 'c')), 'nothing written for a refused run');
    await assert.rejects(distillPreview({ ...common, model: path.join(tmp, 'nothing'), out: path.join(tmp, 'c') }), /not found|no such/i);
  });
});
