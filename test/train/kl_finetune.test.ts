// Fine-tuning only the decoder of a given VAE (`train-ae --init VAE --train decoder`, issue 19):
// the encoder and quant_conv get no optimizer, so the latents of the run's model are
// bit-identical to the source VAE's while the decoder moves; the source's latent scaling
// carries into the run's model, config.yaml and a converted diffusers folder; exact resume;
// `--train all` from the same VAE does move the latents (so the exactness check can fail).
// Source VAE: the tiny diffusers fixture (test/fixtures/kl) with a non-default scaling.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { withMaxSteps } from '../../src/train/config.ts';
import { KL_FINETUNE_PRESET, isKLTrainObject, loadKLTrainConfig, type KLTrainConfig, type KLTrainPart } from '../../src/train/kl_config.ts';
import { KLTrainer, defineKLPrograms, trainKL } from '../../src/train/kl_run.ts';
import type { ParamLayout } from '../../src/train/step.ts';
import type { Program } from '../../src/runtime/program.ts';
import type { Tensor } from '../../src/graph/ir.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl/load.ts';
import { readSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { loadImage } from '../../src/io/image.ts';
import { HostTensor } from '../../src/tensor.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-klft-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
process.env.LATENTKIT_CACHE = path.join(tmp, 'cache');
const data = path.join(tmp, 'images');
const SRC = path.join(tmp, 'vae'); // diffusers_tiny with scaling 0.5 / shift 0.1 (not a family's)
const quiet = { onMessage: () => {} };
const t = (f: string) => path.join(tmp, f);

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin/latentkit.js'), ...args], { encoding: 'utf8', env: { ...process.env, LATENTKIT_THREADS: '1' } });
  return { code: r.status, err: r.stderr, out: r.stdout };
}

/** The kl-finetune preset on 16² images, 6 steps (discriminator from step 3), a small D. */
function config(src: AutoencoderKL, train: KLTrainPart): KLTrainConfig {
  const c = loadKLTrainConfig('kl-finetune', src);
  c.train = train;
  Object.assign(c.run, { data, size: 16, batch_size: 4, val_fraction: 0.25, log_every: 3, image_every: 3, ckpt_every: 3 });
  c.loss.disc = { ...c.loss.disc, ndf: 8, n_layers: 1 };
  withMaxSteps(c, 6);
  return c;
}

const bytes = (x: HostTensor) => Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength);
const same = (a: HostTensor, b: HostTensor) => a.shape.join() === b.shape.join() && bytes(a).equals(bytes(b));

let images: HostTensor<'float32'>;
async function encodeAll(m: AutoencoderKL) {
  const r = await m.encode(images);
  await m.release();
  return r;
}

describe('train-ae --train decoder (fine-tune a given VAE keeping its latent space)', () => {
  let src: AutoencoderKL;
  before(async () => {
    const emoji = path.join(root, 'node_modules/emoji-datasource-google/img/google/64');
    fs.mkdirSync(data, { recursive: true });
    for (const f of fs.readdirSync(emoji).filter((f) => f.endsWith('.png')).slice(0, 16)) fs.copyFileSync(path.join(emoji, f), path.join(data, f));
    fs.cpSync(path.join(root, 'test/fixtures/kl/diffusers_tiny'), SRC, { recursive: true });
    const cfgFile = path.join(SRC, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), scaling_factor: 0.5, shift_factor: 0.1 }));
    src = AutoencoderKL.load(SRC);
    const xs = await Promise.all(fs.readdirSync(data).slice(0, 4).map((f) => loadImage(path.join(data, f), { size: 16 })));
    images = HostTensor.float32([4, 3, 16, 16]);
    xs.forEach((x, i) => images.data.set(x.data as Float32Array, i * 3 * 16 * 16));
  });

  it('the kl-finetune preset takes the model and its latent scaling from the VAE; without one it is an error', () => {
    assert.ok(isKLTrainObject(KL_FINETUNE_PRESET));
    const c = loadKLTrainConfig('kl-finetune', src);
    assert.deepEqual(c.model.ddconfig.ch_mult, [1, 2]);
    assert.equal(c.model.ddconfig.norm_num_groups, 2);
    assert.equal(c.model.scaling_factor, 0.5);
    assert.equal(c.model.shift_factor, 0.1);
    assert.equal(c.train, 'all');
    assert.throws(() => loadKLTrainConfig('kl-finetune'), /preset 'kl-finetune' has no model .*pass --init VAE/);
  });

  it('the trainer: encoder and quant_conv are in no optimizer group, only a frozen input', () => {
    const c = config(src, 'decoder');
    const tr = new KLTrainer(c, src.weights);
    const trained = tr.layouts.ae!.names;
    assert.ok(trained.length > 0 && trained.every((k) => k.startsWith('decoder.') || k.startsWith('post_quant_conv.')), trained.join());
    assert.ok([...tr.frozen.keys()].every((k) => k.startsWith('encoder.') || k.startsWith('quant_conv.')));
    assert.ok(tr.frozen.has('quant_conv.weight') && tr.frozen.has('encoder.conv_in.weight'));
    const snap = tr.snapshot();
    assert.equal(snap.tensors['ae.s0']!.size, tr.layouts.ae!.total, 'Adam moments only for the decoder');
    assert.ok(!Object.keys(snap.tensors).some((k) => k.startsWith('frozen')));
    assert.equal(tr.layouts.ae!.total + tr.frozenLayout.total, src.paramCount);
    // initial weights are the VAE's, not random
    for (const [k, v] of tr.autoencoder()) assert.ok(same(v, src.weights.get(k)!), k);
  });

  it('no gradient program for the frozen weights: each is read once (its forward op); with --train all the encoder is differentiated through', () => {
    /** How many graph nodes read each weight split out of the flat input `input` (slice, then reshape). */
    const readers = (p: Program, input: string, lay: ParamLayout): Map<string, number> => {
      const flat = p.inputs.find((i) => i.name === input)!.tensor;
      const nodes = p.graph.nodes;
      const uses = (t: Tensor) => nodes.filter((n) => n.inputs.includes(t));
      const out = new Map<string, number>();
      for (const n of uses(flat).filter((n) => n.prim === 'slice')) {
        const name = lay.names[lay.offsets.indexOf((n.attrs.starts as number[])[0]!)]!;
        let w = n.outputs[0]!;
        const u = uses(w);
        if (u.length === 1 && u[0]!.prim === 'reshape') w = u[0]!.outputs[0]!;
        out.set(name, uses(w).length);
      }
      return out;
    };
    const dec = new KLTrainer(config(src, 'decoder'), src.weights);
    defineKLPrograms(dec, config(src, 'decoder'));
    for (const prog of ['warmup', 'gan']) {
      const r = readers(dec.program(prog), 'frozen', dec.frozenLayout);
      assert.equal(r.size, dec.frozenLayout.names.length);
      for (const [k, n] of r) assert.equal(n, 1, `${prog}: ${k} is read by ${n} nodes`);
    }
    const all = new KLTrainer(config(src, 'all'), src.weights);
    defineKLPrograms(all, config(src, 'all'));
    const r = readers(all.program('warmup'), 'ae.params', all.layouts.ae!);
    assert.ok([...r].some(([k, n]) => k.startsWith('encoder.') && n > 1), 'with train all the encoder weights are read by backward ops too');
  });

  it('6 steps: latents bit-identical to the source VAE, decoder moved, scaling kept, exact resume', async () => {
    const a = t('dec');
    const b = t('dec-resumed');
    await trainKL({ config: config(src, 'decoder'), init: src.weights, out: a, threads: 1, events: quiet });
    await trainKL({ config: config(src, 'decoder'), init: src.weights, out: b, maxSteps: 3, threads: 1, events: quiet });
    await assert.rejects(trainKL({ config: config(src, 'all'), init: src.weights, out: b, resume: true, threads: 1, events: quiet }), /was trained with --train decoder; resume it with --train decoder/);
    await trainKL({ config: config(src, 'decoder'), out: b, resume: true, threads: 1, events: quiet });
    const file = path.join(a, 'model.safetensors');
    assert.ok(fs.readFileSync(path.join(b, 'model.safetensors')).equals(fs.readFileSync(file)), 'resumed = uninterrupted');
    assert.equal(fs.readFileSync(path.join(b, 'metrics.jsonl'), 'utf8'), fs.readFileSync(path.join(a, 'metrics.jsonl'), 'utf8'));

    const saved = readSafetensorsFile(file).tensors;
    let moved = 0;
    for (const [k, v] of src.weights) {
      if (k.startsWith('encoder.') || k.startsWith('quant_conv.')) assert.ok(same(saved.get(k)!, v), `${k} changed`);
      else if (!same(saved.get(k)!, v)) moved++;
    }
    assert.ok(saved.get('decoder.conv_out.weight') && !same(saved.get('decoder.conv_out.weight')!, src.weights.get('decoder.conv_out.weight')!));
    assert.ok(!same(saved.get('post_quant_conv.weight')!, src.weights.get('post_quant_conv.weight')!), 'post_quant_conv trains');
    assert.ok(moved > 10, `${moved} decoder tensors moved`);

    const want = await encodeAll(AutoencoderKL.load(SRC));
    // the run's model as a file (config from its metadata) and as the CLI reads a run (config.yaml beside)
    for (const m of [AutoencoderKL.load(file), AutoencoderKL.load(file, { config: path.join(a, 'config.yaml') })]) {
      assert.equal(m.scaling.scale, 0.5);
      assert.equal(m.scaling.shift, 0.1);
      const got = await encodeAll(m);
      assert.ok(same(got.mean, want.mean) && same(got.logvar, want.logvar) && same(got.latents, want.latents), 'latents bit-identical');
    }
    const written = YAML.parse(fs.readFileSync(path.join(a, 'config.yaml'), 'utf8'));
    assert.equal(written.model.params.scaling_factor, 0.5);
    assert.equal(written.latentkit.train, 'decoder');
    const train = fs.readFileSync(path.join(a, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.split === 'train');
    assert.ok(train.every((l) => Number.isFinite(l.ae)) && 'd_weight' in train.at(-1)!, 'the discriminator ran from step 3');
  });

  it('contrast: --train all from the same VAE moves the latents', async () => {
    const a = t('all');
    await trainKL({ config: config(src, 'all'), init: src.weights, out: a, threads: 1, events: quiet });
    const got = await encodeAll(AutoencoderKL.load(path.join(a, 'model.safetensors')));
    const want = await encodeAll(AutoencoderKL.load(SRC));
    assert.ok(!same(got.mean, want.mean));
  });

  it('CLI: --train decoder without --init is a one-line error', () => {
    const r = cli('train-ae', '--train', 'decoder', '--data', data, '--out', t('x'));
    assert.equal(r.code, 1);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
    assert.match(r.err, /--train decoder .*--init VAE/);
    assert.ok(!fs.existsSync(t('x')));
  });

  it('CLI: train-ae --init VAE --train decoder, then convert → a diffusers folder with the same scaling and latents', async () => {
    const yml = t('ft.yaml');
    const obj = structuredClone(KL_FINETUNE_PRESET) as any;
    Object.assign(obj.model.params.lossconfig.params, { disc_ndf: 8, disc_num_layers: 1 });
    obj.latentkit = { ...obj.latentkit, size: 16, max_steps: 4, val_fraction: 0.25, log_every: 2, image_every: 4, ckpt_every: 4 };
    fs.writeFileSync(yml, YAML.stringify(obj));
    const run = t('cli-run');
    let r = cli('train-ae', '--init', SRC, '--train', 'decoder', '--config', yml, '--data', data, '--out', run, '-t', '1');
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /encoder \+ quant_conv parameters are frozen/);
    const out = t('cli-diffusers');
    r = cli('convert', '--model', run, '--output', out);
    assert.equal(r.code, 0, r.err);
    const dc = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.equal(dc.scaling_factor, 0.5);
    assert.equal(dc.shift_factor, 0.1);
    assert.equal(dc.norm_num_groups, 2);
    const want = await encodeAll(AutoencoderKL.load(SRC));
    const got = await encodeAll(AutoencoderKL.load(out));
    assert.ok(same(got.latents, want.latents), 'latents bit-identical after convert');
  });
});
