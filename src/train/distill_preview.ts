// Preview decoders: distil a KL autoencoder's decoder into a TAESD-architecture decoder
// (madebyollin/taesd's layout, random init), so a cheap preview can be shown while the full
// decoder runs. Latents are the KL model's encode of the training images (posterior mode,
// scaled, as a diffusion pipeline holds them); the target is the KL decoder's output for
// those latents (clamped to [−1, 1], as shown); the preview learns to match it with
// L1 (+ optional MSE) under Adam. Both are computed per batch the first time an image comes
// up and kept in memory (up to `cacheMB`), so later epochs cost only the preview's step.
// A VAE of factor f = 2^k gets a decoder of k upsampling stages (taesd.ts; 3 for f8 is the
// original TAESD). The run directory holds metrics.jsonl, samples/latest.png (full decoder |
// preview), loss.png, checkpoints/ (resume) and decoder.safetensors: the decoder in the
// original taesd_decoder key layout, which TAESD.load reads.
import fs from 'node:fs';
import path from 'node:path';
import { BatchLoader } from '../io/datasets.ts';
import { saveLabeledGrid } from '../io/image.ts';
import { saveLossCurve, type Series } from '../io/plot.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { writeSafetensorsFile } from '../io/formats/safetensors.ts';
import { InitRng, ParamView, initConv, type StateDict } from '../nn/params.ts';
import * as ops from '../ops/core.ts';
import { Program, type CompiledProgram } from '../runtime/program.ts';
import { AutoencoderKL } from '../models/autoencoder_kl/load.ts';
import { taesdDecodeImage, taesdShapes } from '../models/taesd/taesd.ts';
import { mean, psnr } from '../eval/metrics.ts';
import { HostTensor } from '../tensor.ts';
import { Trainer } from './step.ts';
import { loadLastCheckpoint, saveCheckpoint } from './checkpoint.ts';
import { StepCadence } from './cadence.ts';
import { cosine } from './schedule.ts';
import { loadTrainingData, type TrainEvents } from './vqgan_run.ts';

export interface DistillPreviewOptions {
  /** The KL autoencoder (a path AutoencoderKL.load reads, or a loaded model). */
  model: string | AutoencoderKL;
  /** 'emoji', 'emoji:google', 'emoji:twitter' or a folder of images. */
  data: string;
  out: string;
  /** Training steps (default 2000). */
  steps?: number;
  /** Default 8. */
  batchSize?: number;
  /** Adam learning rate, cosine-decayed to a tenth after a short warm-up (default 1e-3). */
  lr?: number;
  /** Weight of an extra MSE term (default 0: L1 alone). */
  mseWeight?: number;
  /** Image size the data is resized to (default 64; a multiple of the VAE's factor). */
  size?: number;
  seed?: number;
  /** Share of the images held out (hashed split, as train-ae; default 0.05). */
  valFraction?: number;
  logEvery?: number;
  sampleEvery?: number;
  ckptEvery?: number;
  /** Memory for cached latents and targets, in MB (default 1024). */
  cacheMB?: number;
  resume?: boolean;
  threads?: number;
  events?: TrainEvents;
  shouldStop?: () => boolean;
}

export interface DistillPreviewResult {
  step: number;
  stopped: boolean;
  out: string;
  /** decoder.safetensors */
  decoder: string;
  /** The preview against the full decoder on all held-out images (absent when stopped early). */
  final?: { images: number; psnr: number; l1: number };
}

const f0 = (t: HostTensor | undefined) => (t ? Number(t.data[0]) : NaN);

/** The preview decoder's upsampling stages for a VAE of spatial factor f (f = 2^stages). */
export function previewStages(factor: number): number {
  const s = Math.log2(factor);
  if (!Number.isInteger(s) || s < 0) throw new Error(`the VAE's downsampling factor ${factor} is not a power of 2: a TAESD-style decoder (2× upsampling stages) cannot match it`);
  return s;
}

/** A TAESD decoder with PyTorch's default conv init (what the original was trained from). */
export function initPreviewDecoder(latentChannels: number, stages: number, seed: number): StateDict {
  const rng = new InitRng(seed);
  const sd: StateDict = new Map();
  const shapes = taesdShapes('decoder', latentChannels, stages);
  for (const [k, s] of Object.entries(shapes)) {
    if (!k.endsWith('.weight')) continue;
    const name = k.slice(0, -'.weight'.length);
    initConv(sd, rng, name, s[0]!, s[1]!, s[2]!, s[3]!, `${name}.bias` in shapes);
  }
  return new Map(Object.keys(shapes).map((k) => [k, sd.get(k)!]));
}

/** The preview's output in the library's [−1, 1] convention (TAESD works in [0, 1]). */
const previewImage = taesdDecodeImage;

function pairs(a: HostTensor<'float32'>, b: HostTensor<'float32'>, n: number): HostTensor<'float32'> {
  const [, c, h, w] = a.shape as [number, number, number, number];
  const sz = c * h * w;
  const out = HostTensor.float32([2 * n, c, h, w]);
  for (let i = 0; i < n; i++) {
    out.data.set(a.data.subarray(i * sz, (i + 1) * sz), 2 * i * sz);
    out.data.set(b.data.subarray(i * sz, (i + 1) * sz), (2 * i + 1) * sz);
  }
  return out;
}

const clamp1 = (t: HostTensor<'float32'>) => HostTensor.float32(t.shape, t.data.map((v) => Math.min(1, Math.max(-1, v))));

function meanAbs(a: HostTensor<'float32'>, b: HostTensor<'float32'>): number {
  let s = 0;
  for (let i = 0; i < a.size; i++) s += Math.abs(a.data[i]! - b.data[i]!);
  return s / a.size;
}

export async function distillPreview(o: DistillPreviewOptions): Promise<DistillPreviewResult> {
  const ev = o.events ?? {};
  const out = o.out;
  const steps = o.steps ?? 2000;
  const size = o.size ?? 64;
  const seed = o.seed ?? 0;
  const lr0 = o.lr ?? 1e-3;
  const mseWeight = o.mseWeight ?? 0;
  const logEvery = o.logEvery ?? 50;
  const sampleEvery = o.sampleEvery ?? 500;
  const ckptEvery = o.ckptEvery ?? 500;
  const cacheBytes = (o.cacheMB ?? 1024) * 2 ** 20;
  for (const [k, v] of Object.entries({ steps, size, logEvery, sampleEvery, ckptEvery })) {
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${k} must be a positive integer, got ${v}`);
  }
  if (!(lr0 > 0)) throw new Error(`lr must be positive, got ${lr0}`);
  if (!(mseWeight >= 0)) throw new Error(`mseWeight must be ≥ 0, got ${mseWeight}`);
  const ckptRoot = path.join(out, 'checkpoints');
  const metricsFile = path.join(out, 'metrics.jsonl');
  const resumeFrom = o.resume ? loadLastCheckpoint(ckptRoot) : null;
  if (!o.resume && fs.existsSync(path.join(ckptRoot, 'last.json'))) throw new Error(`${out} already holds a run; pass --resume to continue it or choose another --out`);
  if (o.resume && !resumeFrom) ev.onMessage?.(`no checkpoint in ${ckptRoot}; starting fresh`);

  // ---- the KL model and the data (checked before the run directory is made)
  const session = { threads: o.threads };
  const kl = typeof o.model === 'string' ? AutoencoderKL.load(o.model, { session }) : o.model;
  const modelName = typeof o.model === 'string' ? o.model : kl.source;
  const C = kl.latentChannels;
  const f = kl.factor;
  const stages = previewStages(f);
  if (kl.config.ddconfig.out_ch !== 3) throw new Error(`${modelName}: the VAE decodes ${kl.config.ddconfig.out_ch} channel(s); a TAESD decoder makes RGB (3)`);
  if (size % f) throw new Error(`image size ${size} is not a multiple of the VAE's downsampling factor ${f}`);
  const data = await loadTrainingData(o.data, size, o.valFraction ?? 0.05, (d, t) => {
    if (d === t || d % 1000 === 0) ev.onMessage?.(`decoding images: ${d}/${t}`);
  });
  if (data.note) ev.onMessage?.(data.note);
  if (data.images.shape[1] !== kl.config.ddconfig.in_channels) throw new Error(`data '${o.data}' has ${data.images.shape[1]} channel(s) but the VAE encodes ${kl.config.ddconfig.in_channels}`);
  let B = o.batchSize ?? 8;
  if (!Number.isInteger(B) || B <= 0) throw new Error(`batch size must be a positive integer, got ${B}`);
  if (data.trainIdx.length < B) {
    ev.onMessage?.(`batch size ${B} is more than the ${data.trainIdx.length} training image(s): using batch ${B = data.trainIdx.length}`);
  }
  fs.mkdirSync(path.join(out, 'samples'), { recursive: true });
  const h = size / f;
  const zShape = [B, C, h, h];
  const xShape = [B, 3, size, size];

  // ---- latents and targets: the KL model's encode (mode, scaled) and decode, cached per image
  const cache = new Map<number, { z: Float32Array; t: Float32Array }>();
  let cached = 0;
  const zSize = C * h * h;
  const tSize = 3 * size * size;
  const teacher = async (x: HostTensor<'float32'>) => {
    const { latents } = await kl.encode(x);
    return { z: latents, t: clamp1(await kl.decode(latents)) };
  };
  const batchOf = async (rows: Int32Array, x: HostTensor<'float32'>) => {
    const z = HostTensor.float32([rows.length, C, h, h]);
    const t = HostTensor.float32([rows.length, 3, size, size]);
    if ([...rows].every((r) => cache.has(r))) {
      rows.forEach((r, i) => {
        const c = cache.get(r)!;
        z.data.set(c.z, i * zSize);
        t.data.set(c.t, i * tSize);
      });
      return { z, t };
    }
    const r = await teacher(x);
    rows.forEach((row, i) => {
      if (cache.has(row) || cached + 4 * (zSize + tSize) > cacheBytes) return;
      cache.set(row, { z: r.z.data.slice(i * zSize, (i + 1) * zSize), t: r.t.data.slice(i * tSize, (i + 1) * tSize) });
      cached += 4 * (zSize + tSize);
    });
    return r;
  };
  const loader = new BatchLoader({ images: data.images, indices: data.trainIdx, batchSize: B, augment: false, seed });
  const valN = Math.min(16, data.valIdx.length);
  const valBatches = async (idx: number[]) => {
    const res: { z: HostTensor<'float32'>; t: HostTensor<'float32'> }[] = [];
    const l = new BatchLoader({ images: data.images, indices: idx, batchSize: valN, augment: false, shuffle: false, dropLast: false });
    for (let i = 0; i < Math.ceil(idx.length / valN); i++) res.push(await teacher(l.next().x));
    return res;
  };
  const val = (await valBatches(data.valIdx.slice(0, valN)))[0]!;

  // ---- the preview decoder and its training program
  const shapes = taesdShapes('decoder', C, stages);
  const opt = { kind: 'adam' as const, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
  const trainer = new Trainer({ dec: { shapes, optimizer: opt } }, { params: initPreviewDecoder(C, stages, seed + 1) });
  trainer.session = session;
  trainer.define('step', {
    batch: { z: { shape: zShape, dtype: 'float32' }, target: { shape: xShape, dtype: 'float32' } },
    loss: (params, b) => {
      const d = ops.sub(previewImage(new ParamView(params), b.z!, stages), b.target!);
      const l1 = ops.mean(ops.abs(d));
      const mse = ops.mean(ops.mul(d, d));
      return { losses: { dec: mseWeight ? ops.add(l1, ops.mul(mse, mseWeight)) : l1 }, metrics: { l1, mse } };
    },
  });
  // the preview for evaluation: weights fed as inputs (one session per latent shape)
  const evalPrograms = new Map<string, Promise<CompiledProgram>>();
  const preview = async (z: HostTensor<'float32'>) => {
    const key = z.shape.join('x');
    let p = evalPrograms.get(key);
    if (!p) {
      const specs = Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, { shape: s, dtype: 'float32' as const }]));
      p = Program.trace((ins) => ({ image: previewImage(new ParamView(ins), ins.z!, stages) }), { ...specs, z: { shape: z.shape, dtype: 'float32' } }).compile(session);
      evalPrograms.set(key, p);
    }
    const r = await (await p).run({ ...Object.fromEntries(trainer.params('dec')), z });
    return clamp1(r.image as HostTensor<'float32'>);
  };

  let step = 0;
  if (resumeFrom) {
    const st = resumeFrom.state as { steps: Record<string, number>; loader: ReturnType<BatchLoader['state']> };
    trainer.restore({ tensors: resumeFrom.optim, steps: st.steps });
    loader.setState(st.loader);
    step = resumeFrom.step;
    if (fs.existsSync(metricsFile)) {
      const kept = fs.readFileSync(metricsFile, 'utf8').split('\n').filter((l) => l && (JSON.parse(l) as { step: number; split?: string }).step <= step && !l.includes('"val_full"'));
      writeFileAtomicSync(metricsFile, kept.map((l) => l + '\n').join(''));
    }
  } else if (fs.existsSync(metricsFile)) fs.rmSync(metricsFile);

  const lrAt = cosine(lr0, steps, { warmup: Math.min(100, Math.ceil(steps / 20)), minLr: lr0 / 10 });
  ev.onStart?.({ startStep: step, maxSteps: steps, params: { ae: trainer.layouts.dec!.total, disc: 0 }, trainImages: data.trainIdx.length, valImages: data.valIdx.length, resumed: !!resumeFrom });
  ev.onMessage?.(`preview decoder: ${stages} upsampling stage(s) for the VAE's factor ${f}, ${C} latent channels; latents ${zShape.slice(1).join('×')} → images ${xShape.slice(1).join('×')}`);

  const decoderFile = path.join(out, 'decoder.safetensors');
  const meta = (extra: Record<string, string> = {}) => ({
    format: 'taesd-decoder',
    stages: String(stages),
    factor: String(f),
    latent_channels: String(C),
    vae: path.basename(modelName),
    latent_scale: String(kl.scaling.scale),
    latent_shift: String(kl.scaling.shift),
    step: String(step),
    ...extra,
  });
  const checkpoint = () => {
    const snap = trainer.snapshot();
    const dir = saveCheckpoint(ckptRoot, { step, model: trainer.params('dec'), optim: snap.tensors, state: { steps: snap.steps, loader: loader.state() }, metadata: meta() });
    writeSafetensorsFile(decoderFile, trainer.params('dec'), meta());
    ev.onCheckpoint?.(dir);
  };
  const logLine = (line: Record<string, unknown>) => {
    fs.appendFileSync(metricsFile, JSON.stringify(line) + '\n');
    ev.onLog?.(line);
  };
  const evaluate = async (batches: { z: HostTensor<'float32'>; t: HostTensor<'float32'> }[]) => {
    const ps: number[] = [];
    const l1s: number[] = [];
    let last: HostTensor<'float32'> | null = null;
    for (const b of batches) {
      last = await preview(b.z);
      ps.push(...psnr(b.t, last));
      l1s.push(meanAbs(b.t, last) * b.t.shape[0]!);
    }
    return { images: ps.length, psnr: mean(ps), l1: l1s.reduce((a, v) => a + v, 0) / ps.length, last };
  };
  const sample = async () => {
    const r = await evaluate([val]);
    const file = path.join(out, 'samples', `step-${String(step).padStart(7, '0')}.png`);
    const cols = Math.min(8, 2 * valN);
    await saveLabeledGrid(file, pairs(val.t, r.last!, valN), { cols, colLabels: Array.from({ length: cols }, (_, i) => (i % 2 ? 'preview' : 'KL decoder')), scale: size <= 32 ? 4 : size <= 64 ? 2 : 1 });
    fs.copyFileSync(file, path.join(out, 'samples', 'latest.png'));
    ev.onSample?.(file);
    logLine({ step, split: 'val', psnr: r.psnr, l1: r.l1 });
  };
  const plot = async () => {
    const lines = fs.readFileSync(metricsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number | string>);
    const pick = (k: string, split: string): Series => ({ name: `${split} ${k}`, points: lines.filter((l) => l.split === split && Number.isFinite(l[k])).map((l) => [Number(l.step), Number(l[k])]) });
    await saveLossCurve(path.join(out, 'loss.png'), [pick('l1', 'train'), pick('l1', 'val')].filter((s) => s.points.length), { title: 'preview vs full decoder: L1', logY: true });
  };

  if (step === 0 && valN > 0) await sample(); // the untrained preview, for comparison
  let stopped = false;
  const cadence = new StepCadence({
    maxSteps: steps,
    logEvery,
    sampleEvery,
    ckptEvery,
    log: logLine,
    sample: async () => {
      if (valN === 0) return;
      await sample();
      await plot();
    },
    checkpoint,
    shouldStop: o.shouldStop,
    onStep: ev.onStep,
    keys: ['l1', 'mse'],
  });
  while (step < steps) {
    const b = loader.next();
    const { z, t } = await batchOf(b.rows, b.x);
    const lr = lrAt(step);
    const res = await trainer.run('step', { z, target: t }, { dec: lr });
    const m: Record<string, number> = {};
    for (const [k, v] of Object.entries(res)) m[k.replace(/^(loss|metric)\./, '')] = f0(v);
    if (!Number.isFinite(m.dec!)) throw new Error(`loss became ${m.dec} at step ${step + 1}; stopped without saving — the last good checkpoint is in ${ckptRoot}. Try a lower --lr.`);
    step++;
    stopped = await cadence.after(step, lr, m);
    if (stopped) break;
  }
  let final: DistillPreviewResult['final'];
  if (!stopped && valN > 0) {
    const r = await evaluate(await valBatches(data.valIdx));
    final = { images: r.images, psnr: r.psnr, l1: r.l1 };
    logLine({ step, split: 'val_full', ...final });
    writeSafetensorsFile(decoderFile, trainer.params('dec'), meta({ psnr_vs_vae: r.psnr.toFixed(2), val_images: String(r.images) }));
  }
  if (!fs.existsSync(decoderFile)) checkpoint(); // resumed at the last step
  for (const p of evalPrograms.values()) await (await p).release();
  if (typeof o.model === 'string') await kl.release();
  return { step, stopped, out, decoder: decoderFile, final };
}
