// The KL-autoencoder training loop (latent-diffusion's AutoencoderKL with LPIPSWithDiscriminator):
// the VQGAN loop's data, schedule, checkpoints and logs (vqgan_run.ts) around klLoss, with the
// posterior's noise drawn on the host from a seeded stream (its state is checkpointed, so a
// resumed run draws the same noise as an uninterrupted one).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { BatchLoader } from '../io/datasets.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { writeSafetensorsFile } from '../io/formats/safetensors.ts';
import { Rng } from '../io/rng.ts';
import { InitRng, ParamView, type StateDict } from '../nn/params.ts';
import { loadLpipsWeights, lpips } from '../models/lpips.ts';
import * as ops from '../ops/core.ts';
import type { Tensor } from '../graph/ir.ts';
import { initAutoencoderKL, klShapes } from '../models/autoencoder_kl/autoencoder.ts';
import { AutoencoderKL } from '../models/autoencoder_kl/load.ts';
import { klFactor } from '../models/autoencoder_kl/config.ts';
import { discShapes, initDiscriminator } from '../models/discriminator.ts';
import { klLoss } from '../losses/contperceptual.ts';
import { evaluateKL } from '../eval/evaluate.ts';
import { HostTensor } from '../tensor.ts';
import { Trainer, makeLayout, packFlat, splitFlat, unpackFlat, type ParamLayout } from './step.ts';
import type { InputSpecs } from '../runtime/program.ts';
import { saveCheckpoint } from './checkpoint.ts';
import { checkAttentionMemory, learningRateSchedule } from './config.ts';
import { StepCadence } from './cadence.ts';
import { toLdmObject, type KLTrainConfig } from './kl_config.ts';
import { loadTrainingData, openRun, saveRunPlots, saveValGrid, type TrainEvents } from './vqgan_run.ts';

export interface KLTrainRunOptions {
  config: KLTrainConfig;
  out: string;
  resume?: boolean;
  maxSteps?: number;
  threads?: number;
  events?: TrainEvents;
  /**
   * Initial autoencoder weights (ldm keys; e.g. `AutoencoderKL.load(vae).weights`) for a
   * config made with `loadKLTrainConfig(spec, vae)`; required when config.train is 'decoder'.
   * A resumed run takes every weight from its checkpoint instead.
   */
  init?: StateDict;
  /** Polled after every step; true = save and stop (Ctrl-C). */
  shouldStop?: () => boolean;
}

const f0 = (t: HostTensor | undefined) => (t ? Number(t.data[0]) : NaN);

/** Frozen under `train: 'decoder'`: the encoder and quant_conv, i.e. everything that makes the latents. */
export const isKLEncoderKey = (k: string): boolean => k.startsWith('encoder.') || k.startsWith('quant_conv.');

/**
 * The KL trainer: groups 'ae' (ldm's opt_ae list: encoder, decoder, quant convs; only decoder
 * + post_quant_conv with train 'decoder') and 'disc', each with its own Adam. Frozen weights
 * are no group at all — no optimizer state, no gradient in any program — but one flat input
 * (`frozen`) that every step is fed.
 */
export class KLTrainer extends Trainer {
  /** the frozen weights (empty unless train is 'decoder') */
  readonly frozen: StateDict;
  readonly frozenLayout: ParamLayout;
  private readonly frozenFlat: HostTensor<'float32'> | null;
  private readonly aeKeys: string[];

  constructor(cfg: KLTrainConfig, init?: StateDict) {
    const rng = new InitRng(cfg.run.seed + 1);
    const shapes = klShapes(cfg.model);
    let ae: StateDict;
    if (init) {
      ae = new Map();
      for (const [k, want] of Object.entries(shapes)) {
        const t = init.get(k);
        if (!t) throw new Error(`initial weights: missing '${k}' (expected an AutoencoderKL with this run's config)`);
        if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) throw new Error(`initial weights: '${k}' has shape [${t.shape.join(', ')}], expected [${want.join(', ')}]`);
        ae.set(k, t);
      }
    } else {
      ae = initAutoencoderKL(cfg.model, rng);
    }
    const frozenKeys = new Set(cfg.train === 'decoder' ? Object.keys(shapes).filter(isKLEncoderKey) : []);
    const pick = (keep: (k: string) => boolean) => Object.fromEntries(Object.entries(shapes).filter(([k]) => keep(k)));
    const disc = initDiscriminator(cfg.loss.disc, rng, 'loss.discriminator.');
    const dShapes = discShapes(cfg.loss.disc, 'loss.discriminator.');
    const opt = { kind: 'adam' as const, beta1: cfg.run.beta1, beta2: cfg.run.beta2, eps: 1e-8 };
    super(
      { ae: { shapes: pick((k) => !frozenKeys.has(k)), optimizer: opt }, disc: { shapes: dShapes.params, optimizer: opt } },
      { params: new Map([...ae, ...disc.params]), buffers: disc.buffers, bufferShapes: dShapes.buffers },
    );
    this.aeKeys = Object.keys(shapes);
    this.frozenLayout = makeLayout(pick((k) => frozenKeys.has(k)));
    this.frozenFlat = frozenKeys.size ? HostTensor.float32([this.frozenLayout.total], packFlat(ae, this.frozenLayout, 'frozen weights')) : null;
    this.frozen = this.frozenFlat ? unpackFlat(this.frozenFlat.data, this.frozenLayout) : new Map();
  }

  /** The whole autoencoder (trained and frozen weights, klShapes order; views of the live buffers). */
  autoencoder(): StateDict {
    const trained = this.params('ae');
    return new Map(this.aeKeys.map((k) => [k, trained.get(k) ?? this.frozen.get(k)!]));
  }

  override feeds(name: string, batch: Record<string, HostTensor>, lr: Record<string, number>) {
    return super.feeds(name, this.frozenFlat ? { ...batch, frozen: this.frozenFlat } : batch, lr);
  }
}

/** The trainer of a KL config, starting from `init` (a VAE's weights) or a seeded random initialization. */
export function createKLTrainer(cfg: KLTrainConfig, init?: StateDict): KLTrainer {
  return new KLTrainer(cfg, init);
}

/** The latents' shape for a batch: [B, embed_dim, size/f, size/f]. */
export const klLatentShape = (cfg: KLTrainConfig): number[] => {
  const h = cfg.run.size / klFactor(cfg.model);
  if (!Number.isInteger(h)) throw new Error(`image size ${cfg.run.size} is not a multiple of the model's downsampling factor ${klFactor(cfg.model)}`);
  return [cfg.run.batch_size, cfg.model.embed_dim, h, h];
};

/** 'warmup' (autoencoder only, before disc_start) and 'gan' (both groups from one forward). */
export function defineKLPrograms(trainer: Trainer, cfg: KLTrainConfig, note: (m: string) => void = () => {}): void {
  const frozen = trainer instanceof KLTrainer && trainer.frozenLayout.total ? trainer.frozenLayout : null;
  const batchSpec: InputSpecs = {
    x: { shape: [cfg.run.batch_size, cfg.model.ddconfig.in_channels, cfg.run.size, cfg.run.size], dtype: 'float32' as const },
    eps: { shape: klLatentShape(cfg), dtype: 'float32' as const },
    ...(frozen ? { frozen: { shape: [frozen.total], dtype: 'float32' as const } } : {}),
  };
  // frozen weights join the parameters inside the graph, as inputs no gradient is taken for
  const withFrozen = (loss: ReturnType<typeof klLoss>): ReturnType<typeof klLoss> =>
    frozen ? (params, batch, buffers) => loss({ ...params, ...splitFlat(batch.frozen!, frozen) }, batch, buffers) : loss;
  let perceptual: ((x: Tensor, y: Tensor) => Tensor) | undefined;
  if (cfg.loss.perceptual_weight > 0) {
    if (!cfg.run.lpips) throw new Error('perceptual_weight > 0 needs LPIPS weights: pass --lpips-vgg <vgg16.pth> [--lpips-lin <vgg.pth>] (nothing is downloaded)');
    const w = loadLpipsWeights(cfg.run.lpips.vgg, cfg.run.lpips.lin);
    for (const n of w.notes) note(`lpips: ${n}`);
    perceptual = (x, y) => {
      const c = (sd: StateDict) => new ParamView(Object.fromEntries([...sd].map(([k, v]) => [k, ops.constant(v)])));
      return lpips({ vgg: c(w.vgg), lin: c(w.lin) }, x, y);
    };
  }
  trainer.define('warmup', { batch: batchSpec, loss: withFrozen(klLoss({ model: cfg.model, loss: cfg.loss, withDisc: false, perceptual })), train: ['ae'] });
  trainer.define('gan', { batch: { ...batchSpec, disc_factor: { shape: [], dtype: 'float32' } }, loss: withFrozen(klLoss({ model: cfg.model, loss: cfg.loss, withDisc: true, perceptual })) });
}

function normalTensor(rng: Rng, shape: number[]): HostTensor<'float32'> {
  const t = HostTensor.float32(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = rng.normal();
  return t;
}


export async function trainKL(o: KLTrainRunOptions): Promise<{ step: number; stopped: boolean; out: string }> {
  let cfg = o.config;
  const ev = o.events ?? {};
  const out = o.out;
  const maxSteps = o.maxSteps ?? cfg.run.max_steps;
  const { ckptRoot, metricsFile, resumeFrom } = openRun(out, o.resume, ev);
  if (resumeFrom) {
    const was = (JSON.parse(resumeFrom.metadata.train_config ?? '{}') as { latentkit?: { train?: string } }).latentkit?.train ?? 'all';
    if (was !== cfg.train) throw new Error(`${out} was trained with --train ${was}; resume it with --train ${was} (and the same --init)`);
  } else if (cfg.train === 'decoder' && !o.init) {
    throw new Error("train 'decoder' fine-tunes a given VAE's decoder: pass its weights (--init VAE)");
  }
  checkAttentionMemory(cfg.model.ddconfig, cfg.run.size, cfg.run.batch_size, os.totalmem(), cfg.init ? `fine-tuning ${cfg.init}` : 'train-ae');
  const data = await loadTrainingData(cfg.run.data, cfg.run.size, cfg.run.val_fraction, (d, t) => {
    if (d === t || d % 1000 === 0) ev.onMessage?.(`decoding images: ${d}/${t}`);
  });
  if (data.note) ev.onMessage?.(data.note);
  const dataCh = data.images.shape[1]!;
  if (dataCh !== cfg.model.ddconfig.in_channels) throw new Error(`data '${cfg.run.data}' has ${dataCh} channel(s) but the model's ddconfig.in_channels is ${cfg.model.ddconfig.in_channels}`);
  if (data.trainIdx.length < cfg.run.batch_size) {
    ev.onMessage?.(`batch size ${cfg.run.batch_size} is more than the ${data.trainIdx.length} training image(s): using batch ${data.trainIdx.length}`);
    cfg = { ...cfg, run: { ...cfg.run, batch_size: data.trainIdx.length } };
  }
  const epsShape = klLatentShape(cfg);
  fs.mkdirSync(path.join(out, 'samples'), { recursive: true });
  writeFileAtomicSync(path.join(out, 'config.yaml'), YAML.stringify(toLdmObject(cfg)));
  const loader = new BatchLoader({ images: data.images, indices: data.trainIdx, batchSize: cfg.run.batch_size, flip: cfg.run.flip ?? data.flip, seed: cfg.run.seed });
  const valN = Math.min(16, data.valIdx.length);
  const valX = new BatchLoader({ images: data.images, indices: data.valIdx.slice(0, valN), batchSize: valN, augment: false, shuffle: false, dropLast: false }).next().x;

  // a resumed run's weights all come from its checkpoint (the frozen ones too, kept in its model file)
  const resumedAe = resumeFrom
    ? new Map(Object.keys(klShapes(cfg.model)).map((k) => {
        const t = resumeFrom.model.get(k);
        if (!t) throw new Error(`${ckptRoot}: the last checkpoint has no '${k}' (started with a different model or --init?)`);
        return [k, t] as const;
      }))
    : undefined;
  const trainer = createKLTrainer(cfg, resumedAe ?? o.init);
  if (cfg.train === 'decoder') {
    const n = (x: number) => `${(x / 1e6).toFixed(2)} M`;
    ev.onMessage?.(`train decoder: ${n(trainer.layouts.ae!.total)} decoder + post_quant_conv parameters train; ${n(trainer.frozenLayout.total)} encoder + quant_conv parameters are frozen (no optimizer), so the latents stay those of ${cfg.init ?? 'the initial VAE'}`);
  }
  trainer.session = { threads: o.threads };
  defineKLPrograms(trainer, cfg, (m) => ev.onMessage?.(m));
  const noise = new Rng(`kl-eps:${cfg.run.seed}`);

  let step = 0;
  if (resumeFrom) {
    const st = resumeFrom.state as { steps: Record<string, number>; loader: ReturnType<BatchLoader['state']>; noise: number[] };
    trainer.restore({ tensors: resumeFrom.optim, steps: st.steps });
    loader.setState(st.loader);
    noise.setState(st.noise);
    step = resumeFrom.step;
    if (fs.existsSync(metricsFile)) {
      const kept = fs.readFileSync(metricsFile, 'utf8').split('\n').filter((l) => {
        if (!l) return false;
        const j = JSON.parse(l) as { step: number; split?: string };
        return j.step <= step && j.split !== 'val_full' && j.split !== 'latent_scale'; // both made again at the end
      });
      writeFileAtomicSync(metricsFile, kept.map((l) => l + '\n').join(''));
    }
  } else if (fs.existsSync(metricsFile)) {
    fs.rmSync(metricsFile);
  }

  const lrAt = learningRateSchedule(cfg);
  let lr = lrAt(step);
  ev.onStart?.({ startStep: step, maxSteps, params: { ae: trainer.layouts.ae!.total, disc: trainer.layouts.disc!.total }, trainImages: data.trainIdx.length, valImages: data.valIdx.length, resumed: !!resumeFrom });

  const aeWeights = () => trainer.autoencoder();
  const evalModel = new AutoencoderKL(cfg.model, aeWeights(), { session: { threads: o.threads }, source: 'training run' });
  evalModel.bakeWeights = false;
  const modelMeta = () => ({ format: 'latentkit-kl', config: JSON.stringify(cfg.model), train_config: JSON.stringify(toLdmObject(cfg)), step: String(step) });
  const checkpoint = () => {
    const snap = trainer.snapshot();
    const dir = saveCheckpoint(ckptRoot, {
      step,
      model: new Map([...aeWeights(), ...trainer.params('disc'), ...trainer.buffers()]),
      optim: { ...snap.tensors },
      state: { steps: snap.steps, loader: loader.state(), noise: noise.state(), lr },
      metadata: modelMeta(),
    });
    writeSafetensorsFile(path.join(out, 'model.safetensors'), aeWeights(), modelMeta());
    ev.onCheckpoint?.(dir);
  };
  const logLine = (line: Record<string, unknown>) => {
    fs.appendFileSync(metricsFile, JSON.stringify(line) + '\n');
    ev.onLog?.(line);
  };
  /** Reconstructions from the posterior's mean (as ldm's log_images and SD's pipelines decode). */
  const evaluate = async (batches: HostTensor<'float32'>[]) => {
    evalModel.weights = aeWeights();
    return evaluateKL(evalModel, batches);
  };
  const sample = async () => {
    const r = await evaluate([valX]);
    const file = path.join(out, 'samples', `step-${String(step).padStart(7, '0')}.png`);
    await saveValGrid(file, valX, r.last!, valN, cfg.run.size);
    fs.copyFileSync(file, path.join(out, 'samples', 'latest.png'));
    ev.onSample?.(file);
    logLine({ step, split: 'val', psnr: r.psnr, ssim: r.ssim });
  };
  const plot = () => saveRunPlots(out, metricsFile, ['rec_loss', 'kl', 'disc_loss']);

  let stopped = false;
  const cadence = new StepCadence({
    maxSteps,
    logEvery: cfg.run.log_every,
    sampleEvery: cfg.run.image_every,
    ckptEvery: cfg.run.ckpt_every,
    log: logLine,
    sample: async () => {
      await sample();
      await plot();
    },
    checkpoint,
    shouldStop: o.shouldStop,
    onStep: ev.onStep,
  });
  while (step < maxSteps) {
    const batch = loader.next();
    const gan = step >= cfg.loss.disc_start;
    lr = lrAt(step);
    const feeds: Record<string, HostTensor> = { x: batch.x, eps: normalTensor(noise, epsShape) };
    if (gan) feeds.disc_factor = HostTensor.scalar(cfg.loss.disc_factor);
    const res = await trainer.run(gan ? 'gan' : 'warmup', feeds, gan ? { ae: lr, disc: lr } : { ae: lr });
    if (!gan) trainer.advance('disc'); // ldm steps D's optimizer with zero gradients (disc_factor 0) before disc_start
    const m: Record<string, number> = {};
    for (const [k, v] of Object.entries(res)) m[k.replace(/^(loss|metric)\./, '')] = f0(v);
    if (!Number.isFinite(m.ae!) || (gan && !Number.isFinite(m.disc!))) {
      throw new Error(`loss became ${m.ae} (ae) / ${m.disc ?? '-'} (disc) at step ${step + 1}; stopped without saving — the last good checkpoint is in ${ckptRoot}. Try a lower learning rate.`);
    }
    step++;
    stopped = await cadence.after(step, lr, m);
    if (stopped) break;
  }
  if (!stopped && valN > 0) {
    const all = new BatchLoader({ images: data.images, indices: data.valIdx, batchSize: valN, augment: false, shuffle: false, dropLast: false });
    const r = await evaluate(Array.from({ length: Math.ceil(data.valIdx.length / valN) }, () => all.next().x));
    logLine({ step, split: 'val_full', images: r.images, psnr: r.psnr, ssim: r.ssim });
  }
  // a VAE trained from scratch gets its latent scaling as SD's did (1 / std of the latents, on
  // up to 512 training images); a fine-tune keeps the scaling of the VAE it started from
  if (!stopped && !cfg.init && cfg.model.scaling_factor === undefined) {
    const idx = data.trainIdx.slice(0, 512);
    const imgs = new BatchLoader({ images: data.images, indices: idx, batchSize: Math.min(32, idx.length), augment: false, shuffle: false, dropLast: false });
    evalModel.weights = aeWeights();
    const fit = await evalModel.fitScale(Array.from({ length: Math.ceil(idx.length / Math.min(32, idx.length)) }, () => imgs.next().x));
    cfg = { ...cfg, model: { ...cfg.model, scaling_factor: fit.scale } };
    writeFileAtomicSync(path.join(out, 'config.yaml'), YAML.stringify(toLdmObject(cfg)));
    writeSafetensorsFile(path.join(out, 'model.safetensors'), aeWeights(), modelMeta());
    logLine({ step, split: 'latent_scale', images: idx.length, std: fit.std, mean: fit.mean, scaling_factor: fit.scale });
    ev.onMessage?.(`latent scaling factor ${fit.scale} (1 / std of the latents of ${idx.length} training images, as SD's 0.18215 was found), written to config.yaml`);
  }
  await evalModel.release();
  return { step, stopped, out };
}
