// Training without the library: the export of a run (train/export_train.ts) driven by the
// standalone loop (runtime/standalone_train.ts) on onnxruntime-web's WASM build — the page's
// "train in your browser" — takes the same steps as train-ae's Trainer on onnxruntime-node
// (same initial weights, same batches: warm-up steps, then GAN steps with the discriminator),
// and its safetensors file loads as a VQGAN that reconstructs like the trainer's weights.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ortWeb from 'onnxruntime-web';
import { parseTrainConfig, withMaxSteps } from '../../src/train/config.ts';
import { createVQGANTrainer, defineVQGANPrograms } from '../../src/train/vqgan_run.ts';
import { trainOnnx } from '../../src/train/export_train.ts';
import { StandaloneVQGANTrainer } from '../../src/runtime/standalone_train.ts';
import { learningRateSchedule } from '../../src/train/config.ts';
import { readSafetensors } from '../../src/io/formats/safetensors.ts';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { HostTensor } from '../../src/tensor.ts';
import { relErr } from '../helpers.ts';

ortWeb.env.wasm.numThreads = 1;

const CONFIG = {
  model: {
    params: {
      embed_dim: 8,
      n_embed: 32,
      ddconfig: { double_z: false, z_channels: 8, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [8], dropout: 0 },
      lossconfig: { params: { disc_start: 3, disc_weight: 0.8, disc_num_layers: 1, disc_ndf: 8 } },
    },
  },
  data: { params: { batch_size: 4 } },
  latentkit: { size: 16, max_steps: 6, lr: 1e-3, warmup_steps: 2 },
};

function batch(k: number): HostTensor<'float32'> {
  const x = HostTensor.float32([4, 3, 16, 16]);
  for (let i = 0; i < x.size; i++) x.data[i] = Math.sin(i * 0.0137 * (k + 1) + k) * 0.9;
  return x;
}

describe('training export on onnxruntime-web (WASM)', () => {
  it('takes the same steps as the Trainer on onnxruntime-node: warm-up, then GAN steps', { timeout: 120_000 }, async () => {
    const cfg = parseTrainConfig(structuredClone(CONFIG));
    const { files, manifest } = trainOnnx(cfg);
    assert.deepEqual(Object.keys(manifest.programs), ['warmup', 'gan']);
    assert.deepEqual(manifest.grid, [8, 8]);
    const web = await StandaloneVQGANTrainer.load(ortWeb as never, manifest, async (f) => files.get(f)!);

    const { trainer } = createVQGANTrainer(cfg);
    trainer.session = { threads: 1 };
    defineVQGANPrograms(trainer, cfg);
    const lrAt = learningRateSchedule(cfg);
    const seen: string[] = [];
    for (let s = 0; s < 6; s++) {
      const x = batch(s);
      const gan = s >= cfg.loss.disc_start;
      const native = await trainer.run(gan ? 'gan' : 'warmup', gan ? { x, disc_factor: HostTensor.scalar(1) } : { x }, gan ? { ae: lrAt(s), disc: lrAt(s) } : { ae: lrAt(s) });
      if (!gan) trainer.advance('disc');
      const r = await web.trainStep(x.data);
      seen.push(r.program);
      assert.equal(r.step, s + 1);
      assert.equal(r.lr, lrAt(s));
      for (const k of ['ae', ...(gan ? ['disc', 'rec', 'g_loss', 'd_loss'] : ['rec', 'qloss'])]) {
        const want = Number(native[`loss.${k}`]?.data[0] ?? native[`metric.${k}`]?.data[0]);
        assert.ok(Number.isFinite(want), `native ${k}`);
        assert.ok(Math.abs(r.values[k]! - want) <= 1e-4 * (1 + Math.abs(want)), `step ${s + 1} ${k}: WASM ${r.values[k]} vs native ${want}`);
      }
    }
    assert.deepEqual(seen, ['warmup', 'warmup', 'warmup', 'gan', 'gan', 'gan']);
    // weights after 6 steps agree
    const mine = web.aeWeights();
    // (Adam moves a parameter whose gradient is ~0 by up to ±lr on rounding noise, so a few
    // elements differ by up to that per step; nearly all agree to float precision)
    const diffs: number[] = [];
    for (const [k, t] of trainer.params('ae')) {
      const a = mine.get(k)!.data as Float32Array;
      (t.data as Float32Array).forEach((v, i) => diffs.push(Math.abs(v - a[i]!)));
    }
    diffs.sort((a, b) => a - b);
    assert.ok(diffs[diffs.length - 1]! <= 6 * 1e-3, `largest weight difference ${diffs[diffs.length - 1]}`);
    assert.ok(diffs[Math.floor(diffs.length * 0.99)]! < 1e-5, `99th percentile weight difference ${diffs[Math.floor(diffs.length * 0.99)]}`);

    // the downloadable file: a VQGAN the CLI loads (config from its metadata), reconstructing as the trainer's weights do
    const bytes = web.safetensors();
    const st = readSafetensors(bytes);
    assert.deepEqual([...st.tensors.keys()].sort(), [...trainer.params('ae').keys()].sort());
    assert.equal(st.metadata?.format, 'latentkit-vqgan');
    assert.equal(st.metadata?.step, '6');
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lk-webtrain-')), 'model.safetensors');
    fs.writeFileSync(file, bytes);
    const vq = VQGAN.load(file, { session: { threads: 1 } });
    const x = batch(9);
    const lib = await vq.reconstruct(x);
    const { xrec, indices } = await web.reconstruct(x.data);
    assert.ok(relErr(xrec, lib.image.data as Float32Array) < 1e-4, 'reconstruction');
    assert.deepEqual(Array.from(indices), lib.indices.toArray());
    await vq.release();
    await web.release();
  });

  it('refuses what the host loop would do differently, and bad batches, with clear errors', async () => {
    const c = parseTrainConfig({ ...structuredClone(CONFIG), latentkit: { ...CONFIG.latentkit, codebook: { kmeans_init: true } } });
    assert.throws(() => trainOnnx(c), /k-means/);
    const cfg = parseTrainConfig(structuredClone(CONFIG));
    assert.equal(withMaxSteps(cfg, 60)?.includes('discriminator from step 30 (was 3)'), true);
    const { files, manifest } = trainOnnx(cfg);
    assert.equal(manifest.disc_start, 30);
    const web = await StandaloneVQGANTrainer.load(ortWeb as never, manifest, async (f) => files.get(f)!);
    await assert.rejects(web.trainStep(new Float32Array(7)), /expected a batch of 4×3×16×16 = 3072 values, got 7/);
    await web.release();
    await assert.rejects(StandaloneVQGANTrainer.load(ortWeb as never, { ...manifest, format: 'x' } as never, async (f) => files.get(f)!), /expected a latentkit-vqgan-train-onnx manifest/);
  });
});
