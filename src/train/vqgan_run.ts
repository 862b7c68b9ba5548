// The VQGAN training loop: data, programs (autoencoder-only warm-up, then GAN), progress,
// metrics.jsonl, sample grids, loss curves, atomic checkpoints, exact resume, Ctrl-C, NaN stop.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { BatchLoader, cacheDataset, emojiDataset, folderDataset, splitDataset, type DatasetItem } from '../io/datasets.ts';
import { saveLabeledGrid } from '../io/image.ts';
import { saveLossCurve, type Series } from '../io/plot.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { writeSafetensorsFile } from '../io/formats/safetensors.ts';
import { InitRng, ParamView, type StateDict } from '../nn/params.ts';
import { loadLpipsWeights, lpips } from '../models/lpips.ts';
import * as ops from '../ops/core.ts';
import type { Tensor } from '../graph/ir.ts';
import { emaBufferShapes, initVQModel, vqShapes } from '../models/vqgan/vqmodel.ts';
import { VQGAN } from '../models/vqgan/load.ts';
import { codeUsage } from '../models/vqgan/quantize.ts';
import { discShapes, initDiscriminator } from '../models/discriminator.ts';
import { vqganLoss } from '../losses/vqperceptual.ts';
import { Trainer } from './step.ts';
import { loadLastCheckpoint, saveCheckpoint } from './checkpoint.ts';
import { checkAttentionMemory, learningRateSchedule, toTamingObject, type TrainConfig } from './config.ts';
import { StepCadence } from './cadence.ts';
import { evaluateBatches, take } from '../eval/evaluate.ts';
import { LatentPool, kmeans, latentRows, setCodes } from './codebook.ts';
import { Rng } from '../io/datasets.ts';
import { HostTensor } from '../tensor.ts';
import type { U8Tensor } from '../io/image.ts';
import { sketchBatch } from '../io/sketch.ts';

export interface TrainEvents {
  onStart?(info: { startStep: number; maxSteps: number; params: { ae: number; disc: number }; trainImages: number; valImages: number; resumed: boolean }): void;
  onStep?(step: number, m: Record<string, number>): void;
  onLog?(line: Record<string, unknown>): void;
  onSample?(file: string): void;
  onCheckpoint?(dir: string): void;
  onMessage?(msg: string): void;
}

export interface TrainRunOptions {
  config: TrainConfig;
  out: string;
  resume?: boolean;
  maxSteps?: number;
  threads?: number;
  events?: TrainEvents;
  /** Polled after every step; true = save and stop (Ctrl-C). */
  shouldStop?: () => boolean;
}

export interface LoadedData {
  images: U8Tensor;
  items: DatasetItem[];
  trainIdx: number[];
  valIdx: number[];
  flip: boolean;
}

export function cacheDir(): string {
  return process.env.LATENTKIT_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'latentkit');
}

/**
 * A training data source: 'emoji' (both sets), 'emoji:google' / 'emoji:twitter', a folder of
 * images, or 'sketch:<any of those>' — the sketches of those images (1 channel, black strokes
 * on white; io/sketch.ts), e.g. to train the condition VQGAN of a sketch → image model.
 */
export async function loadTrainingData(source: string, size: number, valFraction: number, onProgress?: (d: number, t: number) => void): Promise<LoadedData & { classes: string[]; note?: string }> {
  if (source.startsWith('sketch:')) {
    const d = await loadTrainingData(source.slice('sketch:'.length), size, valFraction, onProgress);
    return { ...d, images: sketchBatch(d.images) };
  }
  let items: DatasetItem[];
  let classes: string[];
  let flip: boolean;
  let tag: string;
  if (source === 'emoji' || source.startsWith('emoji:')) {
    const set = (source.split(':')[1] ?? 'both') as 'google' | 'twitter' | 'both';
    const ds = await emojiDataset({ set });
    items = ds.items;
    classes = ds.classes;
    flip = false;
    tag = `emoji-${set}`;
  } else {
    if (!fs.existsSync(source) || !fs.statSync(source).isDirectory()) throw new Error(`data folder not found: ${source} (or use 'emoji')`);
    const ds = await folderDataset(source);
    if (!ds.items.length) throw new Error(`no images (png/jpg/webp) under ${source}`);
    items = ds.items;
    classes = ds.classes;
    flip = true;
    tag = `folder-${path.resolve(source).replace(/[^a-zA-Z0-9]+/g, '_').slice(-60)}`;
  }
  const cachePath = path.join(cacheDir(), `${tag}-${size}.lkimg`);
  const images = await cacheDataset(items, size, { cachePath, onProgress });
  const split = splitDataset(items, { valFraction });
  let trainIdx = split.trainIndices;
  let valIdx = split.valIndices;
  let note: string | undefined;
  // small folders: the hashed split may hold out nothing (or everything)
  if (items.length === 1) {
    note = `1 image: it is both the training and the validation image`;
    trainIdx = [0];
    valIdx = [0];
  } else if (!valIdx.length || !trainIdx.length) {
    const all = [...trainIdx, ...valIdx].sort((a, b) => a - b);
    valIdx = [all[all.length - 1]!];
    trainIdx = all.slice(0, -1);
    note = `${items.length} images: the ${Math.round(valFraction * 100)}% validation split came out ${split.valIndices.length ? 'as everything' : 'empty'}; holding out 1 image (${items[valIdx[0]!]!.key}) for validation`;
  }
  return { images, items, classes, trainIdx, valIdx, flip, note };
}

/** The codebook's key: an Adam parameter, or (EMA codebook) a buffer. */
const EMB = 'quantize.embedding.weight';

const f0 = (t: HostTensor | undefined) => (t ? Number(t.data[0]) : NaN);

function interleave(x: HostTensor<'float32'>, y: HostTensor<'float32'>, n: number): HostTensor<'float32'> {
  const [, c, h, w] = x.shape as [number, number, number, number];
  const sz = c * h * w;
  const out = HostTensor.float32([2 * n, c, h, w]);
  for (let i = 0; i < n; i++) {
    out.data.set((x.data as Float32Array).subarray(i * sz, (i + 1) * sz), 2 * i * sz);
    out.data.set((y.data as Float32Array).subarray(i * sz, (i + 1) * sz), (2 * i + 1) * sz);
  }
  return out;
}

/** The validation grid both autoencoder runs write: input | reconstruction pairs, labelled. */
export async function saveValGrid(file: string, valX: HostTensor<'float32'>, recon: HostTensor<'float32'>, valN: number, size: number): Promise<void> {
  const cols = Math.min(8, 2 * valN);
  await saveLabeledGrid(file, interleave(valX, recon, valN), { cols, colLabels: Array.from({ length: cols }, (_, i) => (i % 2 ? 'reconstruction' : 'input')), scale: size <= 64 ? 2 : 1 });
}

/** An autoencoder run's plots from its metrics.jsonl: the training losses `lossKeys` (loss.png, log scale) and the validation PSNR (val_psnr.png). */
export async function saveRunPlots(out: string, metricsFile: string, lossKeys: readonly string[]): Promise<void> {
  const lines = fs.existsSync(metricsFile) ? fs.readFileSync(metricsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number | string>) : [];
  const pick = (k: string, split = 'train'): Series => ({ name: k, points: lines.filter((l) => (l.split ?? 'train') === split && Number.isFinite(l[k])).map((l) => [Number(l.step), Number(l[k])]) });
  await saveLossCurve(path.join(out, 'loss.png'), lossKeys.map((k) => pick(k)).filter((s) => s.points.length), { title: 'training losses', logY: true });
  const val = pick('psnr', 'val');
  if (val.points.length) await saveLossCurve(path.join(out, 'val_psnr.png'), [val], { title: 'validation PSNR (dB)', yLabel: 'PSNR (dB)' });
}

/** A run directory's checkpoint root, metrics file and the checkpoint to resume from; refuses to overwrite a run without --resume. */
export function openRun(out: string, resume: boolean | undefined, ev: TrainEvents) {
  const ckptRoot = path.join(out, 'checkpoints');
  const metricsFile = path.join(out, 'metrics.jsonl');
  const resumeFrom = resume ? loadLastCheckpoint(ckptRoot) : null;
  if (!resume && fs.existsSync(path.join(ckptRoot, 'last.json'))) {
    throw new Error(`${out} already holds a run; pass --resume to continue it or choose another --out`);
  }
  if (resume && !resumeFrom) ev.onMessage?.(`no checkpoint in ${ckptRoot}; starting fresh`);
  return { ckptRoot, metricsFile, resumeFrom };
}

export async function trainVQGAN(o: TrainRunOptions): Promise<{ step: number; stopped: boolean; out: string }> {
  let cfg = o.config;
  const ev = o.events ?? {};
  const out = o.out;
  const maxSteps = o.maxSteps ?? cfg.run.max_steps;
  const { ckptRoot, metricsFile, resumeFrom } = openRun(out, o.resume, ev);
  // ---- data (checked before the run directory is made)
  checkAttentionMemory(cfg.model.ddconfig, cfg.run.size, cfg.run.batch_size, os.totalmem(), 'train-ae');
  const data = await loadTrainingData(cfg.run.data, cfg.run.size, cfg.run.val_fraction, (d, t) => {
    if (d === t || d % 1000 === 0) ev.onMessage?.(`decoding images: ${d}/${t}`);
  });
  if (data.note) ev.onMessage?.(data.note);
  const dataCh = data.images.shape[1]!;
  if (dataCh !== cfg.model.ddconfig.in_channels) {
    throw new Error(`data '${cfg.run.data}' has ${dataCh} channel(s) but the model's ddconfig.in_channels is ${cfg.model.ddconfig.in_channels}${dataCh === 1 ? " (sketch data: use --config sketch or set in_channels/out_ch/disc_in_channels to 1)" : ''}`);
  }
  if (data.trainIdx.length < cfg.run.batch_size) {
    ev.onMessage?.(`batch size ${cfg.run.batch_size} is more than the ${data.trainIdx.length} training image(s): using batch ${data.trainIdx.length}`);
    cfg = { ...cfg, run: { ...cfg.run, batch_size: data.trainIdx.length } };
  }
  fs.mkdirSync(path.join(out, 'samples'), { recursive: true });
  writeFileAtomicSync(path.join(out, 'config.yaml'), YAML.stringify(toTamingObject(cfg)));
  const loader = new BatchLoader({ images: data.images, indices: data.trainIdx, batchSize: cfg.run.batch_size, flip: cfg.run.flip ?? data.flip, seed: cfg.run.seed });
  const valN = Math.min(16, data.valIdx.length);
  const valLoader = new BatchLoader({ images: data.images, indices: data.valIdx.slice(0, valN), batchSize: valN, augment: false, shuffle: false, dropLast: false });
  const valX = valLoader.next().x;

  // ---- model, discriminator, trainer
  const { trainer, aeWeights, emaOn } = createVQGANTrainer(cfg);
  trainer.session = { threads: o.threads };
  defineVQGANPrograms(trainer, cfg, (m) => ev.onMessage?.(m));

  // codebook care (k-means init, dead-code restarts): pool of recent latents, counts, RNG
  const cb = cfg.run.codebook;
  const cbOn = cb.kmeans_init || cb.restart_dead;
  const pool = new LatentPool(cfg.model.embed_dim, cb.pool);
  const deadCounts = new Float32Array(cfg.model.n_embed);
  const cbRng = new Rng(cfg.run.seed + 17);

  const usageWindow: bigint[][] = [];
  let step = 0;
  if (resumeFrom) {
    const st = resumeFrom.state as { steps: Record<string, number>; loader: ReturnType<BatchLoader['state']>; codebook?: { size: number; head: number; rng: number[] } };
    const tensors: Record<string, HostTensor> = { ...resumeFrom.optim };
    trainer.restore({ tensors, steps: st.steps });
    loader.setState(st.loader);
    step = resumeFrom.step;
    const uw = tensors['usage.window'];
    if (uw) {
      const [w, n] = uw.shape as [number, number];
      for (let i = 0; i < w; i++) usageWindow.push(Array.from((uw.data as Float32Array).subarray(i * n, (i + 1) * n), (v) => BigInt(v)));
    }
    if (cbOn && st.codebook) {
      pool.data.set(tensors['codebook.pool']!.data as Float32Array);
      deadCounts.set(tensors['codebook.counts']!.data as Float32Array);
      pool.size = st.codebook.size;
      pool.head = st.codebook.head;
      cbRng.setState(st.codebook.rng);
    }
    // keep metrics up to the checkpoint so the log matches an uninterrupted run
    if (fs.existsSync(metricsFile)) {
      // (a final evaluation of an earlier, shorter run is not part of the continued run)
      const kept = fs.readFileSync(metricsFile, 'utf8').split('\n').filter((l) => {
        if (!l) return false;
        const j = JSON.parse(l) as { step: number; split?: string };
        return j.step <= step && j.split !== 'val_full';
      });
      writeFileAtomicSync(metricsFile, kept.map((l) => l + '\n').join(''));
    }
  } else if (fs.existsSync(metricsFile)) {
    fs.rmSync(metricsFile);
  }

  const lrAt = learningRateSchedule(cfg);
  let lr = lrAt(step);
  const paramsOf = (g: string) => trainer.layouts[g]!.total;
  ev.onStart?.({ startStep: step, maxSteps, params: { ae: paramsOf('ae'), disc: paramsOf('disc') }, trainImages: data.trainIdx.length, valImages: data.valIdx.length, resumed: !!resumeFrom });

  const evalModel = new VQGAN(cfg.model, aeWeights(), { session: { threads: o.threads } });
  evalModel.bakeWeights = false;
  const modelMeta = () => ({ format: 'latentkit-vqgan', config: JSON.stringify(cfg.model), train_config: JSON.stringify(toTamingObject(cfg)), step: String(step) });

  const modelState = (): StateDict => new Map([...trainer.params('ae'), ...trainer.params('disc'), ...trainer.buffers()]);
  const checkpoint = () => {
    const snap = trainer.snapshot();
    const optim = { ...snap.tensors };
    if (usageWindow.length) {
      const n = usageWindow[0]!.length;
      optim['usage.window'] = HostTensor.float32([usageWindow.length, n], Float32Array.from(usageWindow.flat(), (v) => Number(v)));
    }
    if (cbOn) {
      optim['codebook.pool'] = HostTensor.float32([pool.data.length], pool.data);
      optim['codebook.counts'] = HostTensor.float32([deadCounts.length], deadCounts);
    }
    const dir = saveCheckpoint(ckptRoot, {
      step,
      model: modelState(),
      optim,
      state: { steps: snap.steps, loader: loader.state(), lr, ...(cbOn ? { codebook: { size: pool.size, head: pool.head, rng: cbRng.state() } } : {}) },
      metadata: modelMeta(),
    });
    writeSafetensorsFile(path.join(out, 'model.safetensors'), aeWeights(), modelMeta());
    ev.onCheckpoint?.(dir);
  };

  const logLine = (line: Record<string, unknown>) => {
    fs.appendFileSync(metricsFile, JSON.stringify(line) + '\n');
    ev.onLog?.(line);
  };
  const sample = async () => {
    evalModel.setWeights(aeWeights());
    const r = await evaluateBatches(evalModel, [valX]);
    const file = path.join(out, 'samples', `step-${String(step).padStart(7, '0')}.png`);
    // pairs side by side, headed "input" / "reconstruction"
    await saveValGrid(file, valX, r.last!, valN, cfg.run.size);
    fs.copyFileSync(file, path.join(out, 'samples', 'latest.png'));
    ev.onSample?.(file);
    logLine({ step, split: 'val', psnr: r.psnr, ssim: r.ssim, usage: r.usage, perplexity: r.perplexity });
  };
  const plot = () => saveRunPlots(out, metricsFile, ['rec', 'qloss', 'g_loss', 'd_loss']);

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
    const feeds: Record<string, HostTensor> = { x: batch.x };
    if (gan) feeds.disc_factor = HostTensor.scalar(cfg.loss.disc_factor);
    const res = await trainer.run(gan ? 'gan' : 'warmup', feeds, gan ? { ae: lr, disc: lr } : { ae: lr });
    if (!gan) trainer.advance('disc'); // taming steps D's optimizer with zero gradients during warm-up
    const m: Record<string, number> = {};
    for (const [k, v] of Object.entries(res)) if (k !== 'metric.indices' && k !== 'metric.h') m[k.replace(/^(loss|metric)\./, '')] = f0(v);
    if (!Number.isFinite(m.ae!) || (gan && !Number.isFinite(m.disc!))) {
      throw new Error(`loss became ${m.ae} (ae) / ${m.disc ?? '-'} (disc) at step ${step + 1}; stopped without saving — the last good checkpoint is in ${ckptRoot}. Try a lower learning rate.`);
    }
    step++;
    const idxs = res['metric.indices']!.data as BigInt64Array;
    usageWindow.push(Array.from(idxs));
    if (cbOn) {
      pool.push(latentRows(res['metric.h']!));
      for (const v of idxs) deadCounts[Number(v)]!++;
      const emb = () => aeWeights().get(EMB)!;
      // Adam moments of restarted codes are zeroed; EMA statistics restart at the new code
      const slots = () => (emaOn ? [] : trainer.slots('ae').map((s) => s.get(EMB)!));
      const resetEma = (codes: number[]) => {
        if (!emaOn) return;
        const b = trainer.buffers();
        const cs = b.get('quantize.embedding.cluster_size')!.data as Float32Array;
        const ea = b.get('quantize.embedding.embed_avg')!.data as Float32Array;
        const w = b.get(EMB)!.data as Float32Array;
        const d = cfg.model.embed_dim;
        for (const k of codes) {
          cs[k] = 1;
          ea.set(w.subarray(k * d, (k + 1) * d), k * d);
        }
      };
      if (cb.kmeans_init && step === cb.kmeans_steps) {
        const pts = Array.from({ length: Math.min(pool.size, 8192) }, () => pool.row(cbRng.int(pool.size)).slice());
        const cent = kmeans(pts, cfg.model.n_embed, cbRng, 8);
        setCodes(emb(), slots(), cent.map((_, i) => i), cent);
        resetEma(cent.map((_, i) => i));
        deadCounts.fill(0);
        ev.onMessage?.(`step ${step}: codebook initialized by k-means on ${pts.length} encoder outputs`);
      } else if (cb.restart_dead && step % cb.restart_every === 0 && step > cb.kmeans_steps) {
        const dead = Array.from(deadCounts.keys()).filter((k) => deadCounts[k] === 0);
        if (dead.length) {
          setCodes(emb(), slots(), dead, dead.map(() => pool.row(cbRng.int(pool.size)).slice()));
          resetEma(dead);
          m.restarted = dead.length;
        }
        deadCounts.fill(0);
      }
    }
    if (usageWindow.length > 20) usageWindow.shift();
    const u = codeUsage(usageWindow.flat(), cfg.model.n_embed);
    m.usage = u.usage;
    m.perplexity = u.perplexity;
    stopped = await cadence.after(step, lr, m);
    if (stopped) break;
  }
  // final evaluation on the whole validation split (every image; the last batch may be smaller)
  if (!stopped && valN > 0) {
    evalModel.setWeights(aeWeights());
    const all = new BatchLoader({ images: data.images, indices: data.valIdx, batchSize: valN, augment: false, shuffle: false, dropLast: false });
    const r = await evaluateBatches(evalModel, take(() => all.next(), Math.ceil(data.valIdx.length / valN)));
    logLine({ step, split: 'val_full', images: r.images, psnr: r.psnr, ssim: r.ssim, usage: r.usage, perplexity: r.perplexity });
  }
  await evalModel.release();
  return { step, stopped, out };
}

/**
 * The VQGAN trainer: autoencoder and discriminator as two Adam groups initialised from the
 * config's seed; with an EMA codebook, the embedding lives among the buffers (updated by
 * running means), not in the Adam group. `aeWeights()` gathers the autoencoder's current
 * weights wherever they live.
 */
export function createVQGANTrainer(cfg: TrainConfig): { trainer: Trainer; aeWeights: () => StateDict; emaOn: boolean } {
  const rng = new InitRng(cfg.run.seed + 1);
  const ae = initVQModel(cfg.model, rng);
  const disc = initDiscriminator(cfg.loss.disc, rng, 'loss.discriminator.');
  const dShapes = discShapes(cfg.loss.disc, 'loss.discriminator.');
  const opt = { kind: 'adam' as const, beta1: cfg.run.beta1, beta2: cfg.run.beta2, eps: 1e-8 };
  const emaOn = !!cfg.model.ema_decay;
  const aeShapes = vqShapes(cfg.model);
  const emaShapes: Record<string, readonly number[]> = emaOn ? { [EMB]: aeShapes[EMB]!, ...emaBufferShapes(cfg.model) } : {};
  const emaInit: StateDict = new Map();
  if (emaOn) {
    delete aeShapes[EMB];
    emaInit.set(EMB, ae.get(EMB)!);
    emaInit.set('quantize.embedding.cluster_size', HostTensor.float32([cfg.model.n_embed]));
    emaInit.set('quantize.embedding.embed_avg', ae.get(EMB)!.clone());
    ae.delete(EMB);
  }
  const trainer = new Trainer(
    { ae: { shapes: aeShapes, optimizer: opt }, disc: { shapes: dShapes.params, optimizer: opt } },
    { params: new Map([...ae, ...disc.params]), buffers: new Map([...disc.buffers, ...emaInit]), bufferShapes: { ...dShapes.buffers, ...emaShapes } },
  );
  const aeWeights = (): StateDict => {
    const w = trainer.params('ae');
    if (emaOn) w.set(EMB, trainer.buffers().get(EMB)!);
    return w;
  };
  return { trainer, aeWeights, emaOn };
}

/**
 * The two training programs: 'warmup' (autoencoder only, before disc_start) and 'gan'
 * (both groups from one forward). LPIPS weights, when the loss uses them, are baked in as
 * constants.
 */
export function defineVQGANPrograms(trainer: Trainer, cfg: TrainConfig, note: (m: string) => void = () => {}): void {
  const batchSpec = { x: { shape: [cfg.run.batch_size, cfg.model.ddconfig.in_channels, cfg.run.size, cfg.run.size], dtype: 'float32' as const } };
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
  trainer.define('warmup', { batch: batchSpec, loss: vqganLoss({ model: cfg.model, loss: cfg.loss, withDisc: false, perceptual }), train: ['ae'] });
  trainer.define('gan', {
    batch: { ...batchSpec, disc_factor: { shape: [], dtype: 'float32' } },
    loss: vqganLoss({ model: cfg.model, loss: cfg.loss, withDisc: true, perceptual }),
  });
}
