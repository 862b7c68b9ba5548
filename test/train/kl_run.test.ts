// KL-autoencoder training end to end (tiny-kl preset, 20 steps on 30 emoji): the warm-up and
// GAN phases run, losses stay finite, exact resume, and the saved model loads for inference
// with no config flag.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import YAML from 'yaml';
import { withMaxSteps } from '../../src/train/config.ts';
import { isKLTrainObject, isKLTrainSpec, loadKLTrainConfig, parseKLTrainConfig, TINY_KL_PRESET, type KLTrainConfig } from '../../src/train/kl_config.ts';
import { trainKL } from '../../src/train/kl_run.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl/load.ts';
import { loadImage } from '../../src/io/image.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-kltrain-'));
process.env.LATENTKIT_CACHE = path.join(tmp, 'cache');
const data = path.join(tmp, 'images');
const quiet = { onMessage: () => {} };

function config(): KLTrainConfig {
  const c = loadKLTrainConfig('tiny-kl');
  c.run.data = data;
  c.run.size = 16;
  c.run.batch_size = 4;
  c.run.val_fraction = 0.2;
  c.run.log_every = 2;
  c.run.image_every = 10;
  c.run.ckpt_every = 10;
  withMaxSteps(c, 20); // disc_start 45 of 60 → 15 of 20
  return c;
}
const lines = (dir: string) => fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

describe('train-ae, KL autoencoder', () => {
  before(() => {
    const pkg = path.dirname(createRequire(import.meta.url).resolve('emoji-datasource-google/package.json'));
    const src = path.join(pkg, 'img/google/64');
    for (const f of fs.readdirSync(src).filter((f) => f.endsWith('.png')).slice(0, 30)) {
      fs.mkdirSync(data, { recursive: true });
      fs.copyFileSync(path.join(src, f), path.join(data, f));
    }
  });

  it('configs: the ldm target selects KL training; bad loss params are one-line errors', () => {
    assert.ok(isKLTrainSpec('tiny-kl') && !isKLTrainSpec('tiny'));
    assert.ok(isKLTrainObject(TINY_KL_PRESET));
    const c = loadKLTrainConfig('tiny-kl');
    assert.equal(c.loss.disc_start, 45);
    assert.equal(c.loss.kl_weight, 1e-6);
    assert.equal(c.loss.adaptive_delta, 1e-4);
    const bad = structuredClone(TINY_KL_PRESET) as any;
    bad.model.params.lossconfig.params.kl_weight = 'high';
    assert.throws(() => parseKLTrainConfig(bad, 'x.yaml'), /x.yaml: lossconfig.params.kl_weight must be a number, got "high"/);
  });

  it('20 steps (warm-up, then GAN from step 15), exact resume, finite losses, PSNR up', async () => {
    const a = path.join(tmp, 'a');
    const b = path.join(tmp, 'b');
    await trainKL({ config: config(), out: a, threads: 1, events: quiet });
    await trainKL({ config: config(), out: b, maxSteps: 10, threads: 1, events: quiet });
    await trainKL({ config: config(), out: b, resume: true, threads: 1, events: quiet });
    const la = lines(a);
    const train = la.filter((l) => l.split === 'train');
    assert.equal(train.length, 10);
    for (const l of train) for (const k of ['ae', 'nll', 'kl']) assert.ok(Number.isFinite(l[k]), `step ${l.step} ${k} = ${l[k]}`);
    assert.ok(!('d_weight' in train[6]!) && 'd_weight' in train[8]!, 'the discriminator starts at step 15');
    assert.ok(train.at(-1)!.d_weight > 0 && Number.isFinite(train.at(-1)!.disc_loss));
    const val = la.filter((l) => l.split === 'val');
    assert.ok(val[1].psnr > val[0].psnr, `val PSNR ${val[0].psnr} → ${val[1].psnr}`);
    assert.equal(fs.readFileSync(path.join(b, 'metrics.jsonl'), 'utf8'), fs.readFileSync(path.join(a, 'metrics.jsonl'), 'utf8'));
    for (const f of ['config.yaml', 'model.safetensors', 'loss.png', 'val_psnr.png', 'samples/latest.png', 'checkpoints/last.json']) assert.ok(fs.existsSync(path.join(a, f)), f);
    const written = YAML.parse(fs.readFileSync(path.join(a, 'config.yaml'), 'utf8'));
    assert.equal(written.model.target, 'ldm.models.autoencoder.AutoencoderKL');
    assert.ok(isKLTrainObject(written));
  });

  it('the trained model loads for inference with no config flag', async () => {
    const m = AutoencoderKL.load(path.join(tmp, 'a', 'model.safetensors'));
    const x = await loadImage(path.join(data, fs.readdirSync(data)[0]!), { size: 16 });
    const r = await m.reconstruct(x.reshape([1, 3, 16, 16]));
    assert.deepEqual([...r.image.shape], [1, 3, 16, 16]);
    assert.deepEqual([...r.latents.shape], [1, 4, 8, 8]);
    await m.release();
  });
});
