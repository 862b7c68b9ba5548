// Training runs end to end on a small folder: exact resume, kill -9 safety, NaN stop,
// a trained model that loads for inference, and the run directory's files.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import YAML from 'yaml';
import { parseTrainConfig, type TrainConfig } from '../../src/train/config.ts';
import { trainVQGAN } from '../../src/train/vqgan_run.ts';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { loadImage } from '../../src/io/image.ts';
import { lpipsShapes } from '../../src/models/lpips.ts';
import { hashStateDict } from '../../src/nn/hashinit.ts';
import { writeSafetensorsFile } from '../../src/io/formats/safetensors.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-train-'));
process.env.LATENTKIT_CACHE = path.join(tmp, 'cache');
const data = path.join(tmp, 'images');

const CONFIG = {
  model: {
    params: {
      embed_dim: 8,
      n_embed: 32,
      ddconfig: { double_z: false, z_channels: 8, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [8], dropout: 0 },
      lossconfig: { params: { disc_start: 6, disc_weight: 0.8, disc_num_layers: 1, disc_ndf: 8 } },
    },
  },
  data: { params: { batch_size: 4 } },
  latentkit: { data, size: 16, max_steps: 12, lr: 1e-3, log_every: 2, image_every: 4, ckpt_every: 4, val_fraction: 0.2, codebook: { kmeans_init: true, kmeans_steps: 2, restart_dead: true, restart_every: 4, pool: 256 } },
};
const cfg = (over: Record<string, unknown> = {}): TrainConfig => {
  const c = structuredClone(CONFIG) as any;
  Object.assign(c.latentkit, over);
  return parseTrainConfig(c);
};
const quiet = { onMessage: () => {} };

describe('train-ae', () => {
  before(() => {
    // 30 emoji from the npm package, in two class folders
    const pkg = path.dirname(createRequire(import.meta.url).resolve('emoji-datasource-google/package.json'));
    const src = path.join(pkg, 'img/google/64');
    const files = fs.readdirSync(src).filter((f) => f.endsWith('.png')).slice(0, 30);
    files.forEach((f, i) => {
      const d = path.join(data, i % 2 ? 'a' : 'b');
      fs.mkdirSync(d, { recursive: true });
      fs.copyFileSync(path.join(src, f), path.join(d, f));
    });
  });

  it('resume continues exactly: same metrics as an uninterrupted run', async () => {
    const a = path.join(tmp, 'a');
    const b = path.join(tmp, 'b');
    const sched = { lr_schedule: 'cosine', warmup_steps: 2 };
    await trainVQGAN({ config: cfg(sched), out: a, threads: 1, events: quiet });
    await trainVQGAN({ config: cfg(sched), out: b, maxSteps: 8, threads: 1, events: quiet });
    await trainVQGAN({ config: cfg(sched), out: b, resume: true, threads: 1, events: quiet });
    const ma = fs.readFileSync(path.join(a, 'metrics.jsonl'), 'utf8');
    const mb = fs.readFileSync(path.join(b, 'metrics.jsonl'), 'utf8');
    assert.ok(ma.includes('"d_loss"') && ma.includes('"lambda"'), 'the GAN phase ran');
    assert.equal(mb, ma);
    for (const f of ['config.yaml', 'model.safetensors', 'loss.png', 'val_psnr.png', 'samples/latest.png', 'checkpoints/last.json']) assert.ok(fs.existsSync(path.join(a, f)), f);
    const written = YAML.parse(fs.readFileSync(path.join(a, 'config.yaml'), 'utf8'));
    assert.equal(written.model.params.lossconfig.params.disc_start, 6);
  });

  it('the trained model loads for inference with no config flag', async () => {
    const m = VQGAN.load(path.join(tmp, 'a', 'model.safetensors'));
    const x = await loadImage(path.join(data, 'a', fs.readdirSync(path.join(data, 'a'))[0]!), { size: 16 });
    const r = await m.reconstruct(x.reshape([1, 3, 16, 16]));
    assert.deepEqual([...r.image.shape], [1, 3, 16, 16]);
    assert.deepEqual([...r.indices.shape], [1, 8, 8]);
  });

  it('eval scores every image of the split, the last batch smaller when the batch does not divide it', async () => {
    const { execFileSync } = await import('node:child_process');
    const args = [path.join(root, 'bin/latentkit.js'), 'eval', '-m', path.join(tmp, 'a', 'model.safetensors'), '-d', data, '--split', 'all', '-s', '16', '-b', '4', '-t', '1'];
    const r = JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8', env: process.env, stdio: ['ignore', 'pipe', 'ignore'] })) as Record<string, number>;
    assert.equal(r.images, 30);
    assert.ok(r.psnr > 5 && r.psnr < 60, `psnr ${r.psnr}`);
    assert.ok(r.codes_used >= 1 && r.codes_used <= 32);
  });

  it('refuses to overwrite an existing run without --resume', async () => {
    await assert.rejects(trainVQGAN({ config: cfg(), out: path.join(tmp, 'a'), threads: 1, events: quiet }), /already holds a run; pass --resume/);
  });

  it('a NaN loss stops the run with a clear message and keeps the last good checkpoint', async () => {
    const out = path.join(tmp, 'nan');
    await assert.rejects(
      trainVQGAN({ config: cfg({ lr: 1e30, ckpt_every: 1, max_steps: 50 }), out, threads: 1, events: quiet }),
      /loss became (NaN|Infinity|-Infinity) .* at step \d+; stopped without saving — the last good checkpoint is in/,
    );
    const last = JSON.parse(fs.readFileSync(path.join(out, 'checkpoints', 'last.json'), 'utf8')) as { dir: string };
    assert.ok(fs.existsSync(path.join(out, 'checkpoints', last.dir, 'model.safetensors')));
  });

  it('LPIPS perceptual term: needs weight files, then trains with them', async () => {
    const c = cfg({ max_steps: 3, log_every: 1 });
    c.loss.perceptual_weight = 1;
    await assert.rejects(trainVQGAN({ config: c, out: path.join(tmp, 'lp0'), threads: 1, events: quiet }), /perceptual_weight > 0 needs LPIPS weights: pass --lpips-vgg/);
    const shapes = lpipsShapes();
    const vgg = path.join(tmp, 'vgg16.safetensors');
    const lin = path.join(tmp, 'lin.safetensors');
    writeSafetensorsFile(vgg, hashStateDict(shapes.vgg));
    writeSafetensorsFile(lin, hashStateDict(shapes.lin));
    c.run.lpips = { vgg, lin };
    const out = path.join(tmp, 'lp1');
    await trainVQGAN({ config: c, out, threads: 1, events: quiet });
    const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { rec?: number });
    assert.ok(lines.filter((l) => l.rec !== undefined).every((l) => Number.isFinite(l.rec)));
  });

  it('small folders train: 1 image or 3 images, a batch larger than the data; a broken image is named and leaves no run directory', async () => {
    const pkg = path.dirname(createRequire(import.meta.url).resolve('emoji-datasource-google/package.json'));
    const pngs = fs.readdirSync(path.join(pkg, 'img/google/64')).filter((f) => f.endsWith('.png')).slice(100, 103);
    for (const [name, n] of [['one', 1], ['three', 3]] as const) {
      const dir = path.join(tmp, `small-${name}`);
      fs.mkdirSync(dir, { recursive: true });
      for (const f of pngs.slice(0, n)) fs.copyFileSync(path.join(pkg, 'img/google/64', f), path.join(dir, f));
      const msgs: string[] = [];
      const out = path.join(tmp, `small-run-${name}`);
      await trainVQGAN({ config: cfg({ data: dir, max_steps: 2, val_fraction: 0.05 }), out, threads: 1, events: { onMessage: (m) => msgs.push(m) } });
      const m = msgs.join('\n');
      assert.match(m, n === 1 ? /1 image: it is both the training and the validation image/ : /3 images: the 5% validation split came out (empty|as everything); holding out 1 image/);
      assert.match(m, new RegExp(`batch size 4 is more than the ${n === 1 ? 1 : 2} training image\\(s\\): using batch ${n === 1 ? 1 : 2}`));
      const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.ok(lines.some((l) => l.split === 'val_full' && l.images === 1 && Number.isFinite(l.psnr)), 'validated on one image');
      assert.equal(YAML.parse(fs.readFileSync(path.join(out, 'config.yaml'), 'utf8')).data.params.batch_size, n === 1 ? 1 : 2);
    }
    const bad = path.join(tmp, 'small-bad');
    fs.mkdirSync(bad, { recursive: true });
    fs.copyFileSync(path.join(pkg, 'img/google/64', pngs[0]!), path.join(bad, 'ok.png'));
    fs.writeFileSync(path.join(bad, 'broken.png'), 'not a png');
    const out = path.join(tmp, 'small-run-bad');
    await assert.rejects(trainVQGAN({ config: cfg({ data: bad, max_steps: 2 }), out, threads: 1, events: quiet }), /cannot decode image .*small-bad\/broken\.png/);
    assert.ok(!fs.existsSync(out), 'no half-made run directory');
  });

  it('a start that fails after making the run directory removes it, unless it existed or holds a checkpoint', async () => {
    const { removeIfFailedStart } = await import('../../src/cli/util.ts');
    const fresh = path.join(tmp, 'failed-start');
    await assert.rejects(removeIfFailedStart(fresh, async () => {
      fs.mkdirSync(path.join(fresh, 'samples'), { recursive: true });
      throw new Error('boom');
    }), /boom/);
    assert.ok(!fs.existsSync(fresh));
    const kept = path.join(tmp, 'kept-dir');
    fs.mkdirSync(kept);
    await assert.rejects(removeIfFailedStart(kept, async () => { throw new Error('boom'); }), /boom/);
    assert.ok(fs.existsSync(kept));
  });

  it('kill -9 mid-training, then --resume: finishes, and no checkpoint is half-written', async () => {
    const out = path.join(tmp, 'killed');
    const cfgFile = path.join(tmp, 'kill.yaml');
    const c = structuredClone(CONFIG) as any;
    Object.assign(c.latentkit, { max_steps: 40, ckpt_every: 2, image_every: 100 });
    fs.writeFileSync(cfgFile, YAML.stringify(c));
    const args = [path.join(root, 'bin/latentkit.js'), 'train-ae', '-c', cfgFile, '-o', out, '-t', '1'];
    const child = spawn(process.execPath, args, { stdio: 'ignore', env: process.env });
    const last = path.join(out, 'checkpoints', 'last.json');
    for (let i = 0; i < 600 && !(fs.existsSync(last) && JSON.parse(fs.readFileSync(last, 'utf8')).step >= 4); i++) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const killedAt = JSON.parse(fs.readFileSync(last, 'utf8')).step as number;
    assert.ok(killedAt >= 4 && killedAt < 40, `killed at checkpoint ${killedAt}`);
    const resumed = spawn(process.execPath, [...args, '--resume'], { stdio: 'ignore', env: process.env });
    const code = await new Promise((r) => resumed.on('exit', r));
    assert.equal(code, 0);
    assert.equal(JSON.parse(fs.readFileSync(last, 'utf8')).step, 40);
    for (const d of fs.readdirSync(path.join(out, 'checkpoints')).filter((x) => x.startsWith('step-'))) {
      assert.ok(!d.includes('.tmp-'), `leftover ${d}`);
      for (const f of ['model.safetensors', 'optim.safetensors', 'state.json']) assert.ok(fs.existsSync(path.join(out, 'checkpoints', d, f)), `${d}/${f}`);
    }
  });
});

describe('presets', () => {
  it("'taming' keeps taming's values; 'emoji' turns the latentkit extras on", async () => {
    const { loadTrainConfig, learningRate } = await import('../../src/train/config.ts');
    const t = loadTrainConfig('taming');
    assert.equal(t.loss.adaptive_delta, 1e-4);
    assert.equal(t.loss.perceptual_weight, 1);
    assert.equal(t.loss.disc.n_layers, 3);
    assert.equal(learningRate(t), 4.5e-6 * 16);
    assert.equal(t.run.codebook.kmeans_init || t.run.codebook.restart_dead, false);
    assert.equal(t.model.ema_decay, undefined, 'taming: plain codebook');
    assert.equal(t.run.lr_schedule, 'constant');
    const e = loadTrainConfig('emoji');
    assert.equal(e.loss.adaptive_delta, 1e-6);
    assert.ok(e.run.codebook.kmeans_init && e.run.codebook.restart_dead);
    assert.equal(e.model.ema_decay, 0.99);
    const { toTamingObject, parseTrainConfig: parse } = await import('../../src/train/config.ts');
    const again = parse(YAML.parse(YAML.stringify(toTamingObject(e))));
    // the config.yaml written into a run directory reproduces the preset
    assert.deepEqual(again.loss, e.loss);
    assert.deepEqual(again.run, e.run);
    for (const k of ['embed_dim', 'n_embed', 'ema_decay', 'l2_codes', 'ddconfig'] as const) assert.deepEqual(again.model[k], e.model[k], k);
    assert.equal(e.run.lr_schedule, 'cosine');
    assert.throws(() => loadTrainConfig('nope.yaml'), /cannot read config nope\.yaml: ENOENT \(presets: emoji, sketch, tiny, taming\)/);
  });

  it('learning-rate schedules: constant (taming), warm-up, cosine to a floor; bad values are named', async () => {
    const { learningRateSchedule } = await import('../../src/train/config.ts');
    const at = (over: Record<string, unknown>) => learningRateSchedule(cfg({ lr: 1e-3, max_steps: 102, ...over }));
    assert.equal(at({})(50), 1e-3);
    const w = at({ warmup_steps: 4 });
    assert.deepEqual([0, 1, 3, 4, 90].map(w), [2.5e-4, 5e-4, 1e-3, 1e-3, 1e-3]);
    const c = at({ lr_schedule: 'cosine', warmup_steps: 2, min_lr_ratio: 0.1 });
    assert.equal(c(0), 5e-4);
    assert.equal(c(2), 1e-3); // peak right after warm-up
    assert.ok(Math.abs(c(52) - 0.55e-3) < 1e-12); // half-way: (peak + floor) / 2
    assert.ok(Math.abs(c(102) - 1e-4) < 1e-12); // the floor at max_steps
    assert.throws(() => cfg({ lr_schedule: 'linear' }), /lr_schedule must be 'constant' or 'cosine', got "linear"/);
    assert.throws(() => cfg({ min_lr_ratio: 2 }), /'min_lr_ratio' must be in \[0, 1\], got 2/);
  });

  it('--max-steps shortens or stretches the schedule, and says which', async () => {
    const { loadTrainConfig, withMaxSteps } = await import('../../src/train/config.ts');
    const t = loadTrainConfig('tiny');
    assert.equal(withMaxSteps(t, 60), null);
    assert.equal(withMaxSteps(t, 100), "--max-steps 100 stretches the config's 60-step schedule to 100 steps: warm-up 0 steps, cosine learning rate, discriminator from step 75 (was 45)");
    assert.deepEqual([t.run.max_steps, t.loss.disc_start], [100, 75]);
    const e = loadTrainConfig('emoji');
    assert.equal(withMaxSteps(e, 200), "--max-steps 200 shortens the config's 3800-step schedule to 200 steps: warm-up 5 steps, cosine learning rate, discriminator from step 150 (was 2850)");
    const s = loadTrainConfig('sketch');
    assert.match(withMaxSteps(s, 4000)!, /stretches .* discriminator from step 1000000 \(after the run: off\)$/);
  });
});
