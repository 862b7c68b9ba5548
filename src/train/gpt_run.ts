// The transformer training loop over a code set: AdamW (taming's decay groups) on the
// Net2Net loss in one ONNX Runtime call per step, progress, metrics.jsonl, validation loss in
// bits/token, sample grids, curves, atomic checkpoints, exact resume, Ctrl-C, NaN stop.
// The run directory doubles as a model directory: config.yaml (taming's Net2NetTransformer
// layout, first/cond stage ckpt_path relative to it) + model.safetensors (transformer.*).
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { readCodeSet, type CodeSet } from '../io/codes.ts';
import { saveLabeledGrid } from '../io/image.ts';
import { saveLossCurve, type Series } from '../io/plot.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { writeSafetensorsFile } from '../io/formats/safetensors.ts';
import { loadStateDict } from '../io/formats/checkpoint.ts';
import { InitRng, ParamView, type StateDict } from '../nn/params.ts';
import { HostTensor } from '../tensor.ts';
import { Program } from '../runtime/program.ts';
import { VQGAN } from '../models/vqgan/load.ts';
import { gptDecays, initCondEmbedding, initGPT, tokenNLL, type GPTDropout } from '../models/mingpt/gpt.ts';
import { net2netShapes } from '../models/cond_transformer/load.ts';
import { gptParamCount, type GPTConfig as GPTRunConfig } from '../models/mingpt/config.ts';
import { maskgitLogits, net2netLogits } from '../models/cond_transformer/net2net.ts';
import { maskedTokenLoss } from '../losses/maskgit.ts';
import { toTamingNet2Net, type Net2NetConfig } from '../models/cond_transformer/config.ts';
import { Net2Net } from '../models/cond_transformer/load.ts';
import { Trainer } from './step.ts';
import { loadLastCheckpoint, saveCheckpoint } from './checkpoint.ts';
import { cosine, constantLr, linearWarmup } from './schedule.ts';
import { gptLearningRate, type GPTTrainConfig } from './gpt_config.ts';
import { GPTBatcher } from './gpt_batches.ts';
import * as o from '../ops/core.ts';
import type { TrainEvents } from './vqgan_run.ts';

export interface GPTRunEvents extends Omit<TrainEvents, 'onStart'> {
  onStart?(info: { startStep: number; maxSteps: number; params: number; trainRows: number; valRows: number; resumed: boolean; tokensPerStep: number }): void;
}

export interface GPTRunOptions {
  config: GPTTrainConfig;
  codes: string;
  out: string;
  resume?: boolean;
  maxSteps?: number;
  threads?: number;
  events?: GPTRunEvents;
  shouldStop?: () => boolean;
}

const LN2 = Math.log(2);

/** A path stored in a code set, resolved as given or relative to the code set's directory. */
function resolveFrom(codesFile: string, p: string, what: string): string {
  if (fs.existsSync(p)) return path.resolve(p);
  const rel = path.resolve(path.dirname(codesFile), p);
  if (fs.existsSync(rel)) return rel;
  throw new Error(`${codesFile}: its ${what} ${p} is not found (the code set records the VQGAN that made it)`);
}

function loadVQ(file: string, threads?: number): VQGAN {
  return VQGAN.load(file, { session: { threads } });
}

/** The Net2Net config this run trains: its transformer, the code set's VQGANs and classes. */
export function net2netConfigFor(cfg: GPTTrainConfig, set: CodeSet, first: VQGAN, cond: VQGAN | null, paths: { first: string; cond?: string }): Net2NetConfig {
  const [, , h, w] = set.codes.shape as [number, number, number, number];
  const t = { ...cfg.transformer };
  const cs: Net2NetConfig['cond_stage'] =
    cfg.cond === 'class' ? { kind: 'label', n_classes: set.classes.length }
      : cfg.cond === 'image' ? { kind: 'vqgan', vq: cond!.config, ckpt_path: paths.cond }
        : { kind: 'sos', token: cfg.sos_token };
  const lc = cfg.cond === 'image' ? set.cond!.shape[2]! * set.cond!.shape[3]! : 1;
  const need = Math.max(set.nCodes, cfg.cond === 'image' ? set.condCodes : 0, cfg.cond === 'class' ? set.classes.length + (cfg.run.class_dropout > 0 ? 1 : 0) : 0);
  const mg = cfg.run.objective === 'maskgit';
  // MaskGIT's [MASK] is the first id after every code, condition code and class token
  if (t.vocab_size < need + (mg ? 1 : 0)) throw new Error(`transformer_config.vocab_size ${t.vocab_size} is smaller than the ${need} tokens this code set needs${mg ? ' + [MASK]' : ''}`);
  const add = mg && cfg.run.maskgit_cond === 'add';
  if (add && (cfg.cond !== 'image' || set.cond!.shape.slice(2).join() !== set.codes.shape.slice(2).join())) throw new Error(`maskgit_cond 'add' needs an image condition on the image's own code grid (${h}×${w})`);
  const positions = add ? h * w : mg ? lc + h * w : lc + h * w - 1;
  if (t.block_size < positions) throw new Error(`transformer_config.block_size ${t.block_size} is smaller than the ${lc} condition + ${h * w} image tokens${mg ? '' : ' (− 1)'} this code set needs`);
  if (mg && t.n_unmasked !== t.block_size) throw new Error(`objective 'maskgit' needs a bidirectional transformer: set transformer_config n_unmasked to block_size (${t.block_size}), got ${t.n_unmasked}`);
  if (mg && cfg.pkeep !== 1) throw new Error(`objective 'maskgit' masks codes itself: pkeep must be 1, got ${cfg.pkeep}`);
  return {
    transformer: t,
    first_stage: first.config,
    first_stage_ckpt: paths.first,
    cond_stage: cs,
    pkeep: cfg.pkeep,
    sos_token: cfg.sos_token,
    downsample_cond_size: -1,
    first_stage_key: 'image',
    cond_stage_key: cfg.cond === 'class' ? 'class_label' : cfg.cond === 'image' ? 'condition' : 'image',
    base_learning_rate: cfg.run.base_learning_rate,
    ...(cfg.cond === 'class' ? { classes: set.classes, null_class: cfg.run.class_dropout > 0 } : {}),
    ...(mg && cfg.cond === 'image' && cfg.run.cond_dropout > 0 ? { null_class: true } : {}),
    grid: [h, w],
    ...(cfg.cond === 'image' ? { cond_input: set.info.cond === 'sketch' ? ('sketch' as const) : ('image' as const) } : {}),
    ...(mg ? { maskgit: { mask_token: need, cond: add ? ('add' as const) : ('prefix' as const) } } : {}),
  };
}

export async function trainGPT(opt: GPTRunOptions): Promise<{ step: number; stopped: boolean; out: string; valBpt: number | null }> {
  const cfg = opt.config;
  const ev = opt.events ?? {};
  const out = opt.out;
  const ckptRoot = path.join(out, 'checkpoints');
  const maxSteps = opt.maxSteps ?? cfg.run.max_steps;
  const metricsFile = path.join(out, 'metrics.jsonl');
  if (!opt.resume && fs.existsSync(path.join(ckptRoot, 'last.json'))) throw new Error(`${out} already holds a run; pass --resume to continue it or choose another --out`);
  const resumeFrom = opt.resume ? loadLastCheckpoint(ckptRoot) : null;
  if (opt.resume && !resumeFrom) ev.onMessage?.(`no checkpoint in ${ckptRoot}; starting fresh`);

  // ---- data and the stages that made it (validated before anything is written)
  const set = readCodeSet(opt.codes);
  const firstFile = resolveFrom(opt.codes, set.info.model, 'first-stage model');
  const first = loadVQ(firstFile, opt.threads);
  const condFile = cfg.cond === 'image' ? resolveFrom(opt.codes, set.info.condModel ?? '', 'condition model') : undefined;
  if (cfg.cond === 'image' && !set.cond) throw new Error(`${opt.codes}: the config is image-conditioned but the code set has no condition codes`);
  const cond = condFile ? loadVQ(condFile, opt.threads) : null;
  fs.mkdirSync(path.join(out, 'samples'), { recursive: true });
  const rel = (f: string) => path.relative(path.resolve(out), f) || '.';
  const n2n = net2netConfigFor(cfg, set, first, cond, { first: rel(firstFile), cond: condFile ? rel(condFile) : undefined });
  const gc = n2n.transformer;
  const { run } = cfg;
  const configYaml = { ...toTamingNet2Net(n2n), data: { params: { batch_size: run.batch_size } } } as Record<string, any>;
  configYaml.latentkit = { ...(configYaml.latentkit ?? {}), ...run, codes: rel(path.resolve(opt.codes)) };
  writeFileAtomicSync(path.join(out, 'config.yaml'), YAML.stringify(configYaml));

  const rows = (val: boolean) => Array.from(set.val.keys()).filter((i) => !!set.val[i] === val);
  const trainRows = rows(false);
  const valRows = rows(true);
  const nClasses = set.classes.length;
  const mg = n2n.maskgit;
  const common = {
    set, batchSize: run.batch_size, cond: cfg.cond, sosToken: cfg.sos_token, vocab: gc.vocab_size, pkeep: cfg.pkeep, classDropout: run.class_dropout, nullClass: nClasses, flip: run.flip, seed: run.seed,
    ...(mg ? { maskToken: mg.mask_token, condDropout: run.cond_dropout } : {}),
  };
  const batches = new GPTBatcher({ ...common, rows: trainRows, train: true });
  const lc = batches.lc;
  const lz = batches.lz;
  const addCond = mg?.cond === 'add';
  const T = addCond ? lz : mg ? lc + lz : lc + lz - 1;
  const nCodes = set.nCodes;

  // ---- programs: the training step (with dropout masks as inputs) and validation NLL
  const shapes = net2netShapes(n2n);
  const trainer = new Trainer(
    { gpt: { shapes, optimizer: { kind: 'adamw', beta1: run.beta1, beta2: run.beta2, weightDecay: run.weight_decay }, decay: gptDecays } },
    { params: initialWeights(gc, run, lc, lz, set, mg ? lc : lc - 1, addCond) },
  );
  trainer.session = { threads: opt.threads };
  const B = run.batch_size;
  const C = gc.n_embd;
  const maskSpecs: Record<string, { shape: number[]; dtype: 'bool' }> = {};
  const resid = gc.resid_pdrop > 0;
  if (gc.embd_pdrop > 0) maskSpecs['drop.embd'] = { shape: [B, T, C], dtype: 'bool' };
  for (let i = 0; i < gc.n_layer; i++) {
    if (gc.attn_pdrop > 0) maskSpecs[`drop.attn.${i}`] = { shape: [B, gc.n_head, T, T], dtype: 'bool' };
    if (resid) {
      maskSpecs[`drop.ra.${i}`] = { shape: [B, T, C], dtype: 'bool' };
      maskSpecs[`drop.rm.${i}`] = { shape: [B, T, C], dtype: 'bool' };
    }
  }
  const seqSpecs = { c: { shape: [B, lc], dtype: 'int64' as const }, a: { shape: [B, lz], dtype: 'int64' as const }, z: { shape: [B, lz], dtype: 'int64' as const } };
  const maskSpec: Record<string, { shape: number[]; dtype: 'float32' }> = mg ? { m: { shape: [B, lz], dtype: 'float32' } } : {};
  trainer.define('step', {
    batch: { ...seqSpecs, ...maskSpec, ...maskSpecs },
    loss: (p, b) => {
      const L = gc.n_layer;
      const drop: GPTDropout = {
        embd: b['drop.embd'],
        attn: gc.attn_pdrop > 0 ? Array.from({ length: L }, (_, i) => b[`drop.attn.${i}`]!) : undefined,
        residAttn: resid ? Array.from({ length: L }, (_, i) => b[`drop.ra.${i}`]!) : undefined,
        residMlp: resid ? Array.from({ length: L }, (_, i) => b[`drop.rm.${i}`]!) : undefined,
      };
      if (mg) return { losses: { gpt: maskedTokenLoss(maskgitLogits(new ParamView(p), gc, b.c!, b.a!, drop, mg.cond), b.z!, b.m!, nCodes, run.label_smoothing) } };
      const logits = net2netLogits(new ParamView(p), gc, b.c!, b.a!, drop);
      return { losses: { gpt: o.mean(tokenNLL(logits, b.z!)) } };
    },
  });
  // validation: nats per image code (AR: every code given the ones before; MaskGIT: the masked
  // codes, without label smoothing, given the rest — the fixed validation masks)
  const evalProg = Program.trace((ins) => {
    if (mg) return { nll: tokenNLL(o.narrow(maskgitLogits(new ParamView(ins), gc, ins.c!, ins.a!, undefined, mg.cond), 2, 0, nCodes), ins.z!) };
    const logits = net2netLogits(new ParamView(ins), gc, ins.c!, ins.z!);
    return { nll: tokenNLL(logits, ins.z!) };
  }, { ...Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, { shape: s, dtype: 'float32' as const }])), c: seqSpecs.c, z: seqSpecs.z, ...(mg ? { a: seqSpecs.a } : {}) });
  const evalCompiled = evalProg.compile({ threads: opt.threads });

  const lr0 = gptLearningRate(cfg);
  const lrAt = run.lr_schedule === 'cosine' ? cosine(lr0, run.max_steps, { warmup: run.warmup_steps, minLr: lr0 * run.min_lr_ratio }) : run.warmup_steps > 0 ? linearWarmup(lr0, run.warmup_steps) : constantLr(lr0);

  let step = 0;
  /** Losses since the last train line (saved with checkpoints: a partial end-of-run line is redone on resume). */
  let acc: number[] = [];
  if (resumeFrom) {
    const st = resumeFrom.state as { steps: Record<string, number>; batches: ReturnType<GPTBatcher['state']>; pending?: number[] };
    acc = st.pending ?? [];
    trainer.restore({ tensors: resumeFrom.optim, steps: st.steps });
    batches.setState(st.batches);
    step = resumeFrom.step;
    if (fs.existsSync(metricsFile)) {
      const kept = fs.readFileSync(metricsFile, 'utf8').split('\n').filter((l) => {
        if (!l) return false;
        const j = JSON.parse(l) as { step: number; split?: string; partial?: boolean };
        return j.step <= step && j.split !== 'val_final' && !j.partial;
      });
      writeFileAtomicSync(metricsFile, kept.map((l) => l + '\n').join(''));
    }
  } else if (fs.existsSync(metricsFile)) fs.rmSync(metricsFile);

  ev.onStart?.({ startStep: step, maxSteps, params: gptParamCount(gc), trainRows: trainRows.length, valRows: valRows.length, resumed: !!resumeFrom, tokensPerStep: B * lz });

  const weights = (): StateDict => new Map([...trainer.params('gpt')].map(([k, v]) => [k, v.clone()]));
  // the config travels with the weights; stage paths are relative to the run directory, like config.yaml's
  const modelMeta = () => ({ format: 'latentkit-net2net', config: JSON.stringify(toTamingNet2Net(n2n)), step: String(step) });
  const saveModel = () => {
    const sd = new Map([...trainer.params('gpt')].map(([k, v]) => [`transformer.${k}`, v]));
    writeSafetensorsFile(path.join(out, 'model.safetensors'), sd, modelMeta());
  };
  const checkpoint = () => {
    const snap = trainer.snapshot();
    const dir = saveCheckpoint(ckptRoot, {
      step,
      model: new Map([...trainer.params('gpt')].map(([k, v]) => [`transformer.${k}`, v])),
      optim: snap.tensors,
      state: { steps: snap.steps, batches: batches.state(), pending: acc },
      metadata: modelMeta(),
    });
    saveModel();
    ev.onCheckpoint?.(dir);
  };
  const logLine = (line: Record<string, unknown>) => {
    fs.appendFileSync(metricsFile, JSON.stringify(line) + '\n');
    ev.onLog?.(line);
  };

  /**
   * Mean validation NLL per token. With `otherCond`, validation grid i gets the condition of
   * grid i + 1 instead of its own: the gap to the true-condition loss is how much the model
   * reads its (image) condition.
   */
  const validate = async (otherCond = false): Promise<number | null> => {
    if (!valRows.length || (otherCond && valRows.length < 2)) return null;
    const vb = new GPTBatcher({ ...common, rows: valRows, train: false });
    const ob = otherCond ? new GPTBatcher({ ...common, rows: [...valRows.slice(1), valRows[0]!], train: false }) : null;
    const ce = await evalCompiled;
    const feedsW = Object.fromEntries(trainer.params('gpt'));
    let sum = 0;
    let count = 0;
    for (let k = 0; k < vb.batchesPerEpoch; k++) {
      const b = vb.next();
      const c = ob ? ob.next().c : b.c;
      const nll = (await ce.run({ ...feedsW, c, z: b.z, ...(mg ? { a: b.a } : {}) })).nll!.data as Float32Array;
      for (let i = 0; i < b.real * lz; i++) {
        const w = b.m ? b.m.data[i]! : 1;
        sum += w * nll[i]!;
        count += w;
      }
    }
    return sum / count;
  };
  /** The validation line: bits/token, and for image conditions the bits/token with another row's condition. */
  const valLine = async (split: string, loss: number) => {
    const other = cfg.cond === 'image' ? await validate(true) : null;
    logLine({ step, split, loss, bpt: loss / LN2, ...(other !== null ? { bpt_other_cond: other / LN2 } : {}), rows: valRows.length });
  };

  const sampleGrid = async () => {
    const model = new Net2Net(n2n, weights(), first, cond, { session: { threads: opt.threads } });
    const s = run.sample;
    const opts = { temperature: s.temperature, topK: s.top_k ?? undefined, topP: s.top_p ?? undefined, seed: run.seed, steps: s.steps, choiceTemperature: s.choice_temperature, guidance: s.guidance ?? undefined };
    const file = path.join(out, 'samples', `step-${String(step).padStart(7, '0')}.png`);
    if (cfg.cond === 'class') {
      const per = s.per_class;
      const condTokens = Array.from({ length: nClasses * per }, (_, i) => Math.floor(i / per));
      const tokens = await model.sample({ ...opts, n: condTokens.length, cond: condTokens });
      const imgs = await model.decodeTokens(tokens, condTokens.length);
      await saveLabeledGrid(file, imgs, { cols: per, rowLabels: set.classes, title: `step ${step}: samples per class (T ${s.temperature}${s.top_k ? `, top-k ${s.top_k}` : ''})` });
    } else if (cfg.cond === 'image') {
      const k = Math.min(8, valRows.length || trainRows.length);
      const pick = (valRows.length ? valRows : trainRows).slice(0, k);
      const [, , hc, wc] = set.cond!.shape as [number, number, number, number];
      const views = set.codes.shape[1]!;
      const cTok = pick.flatMap((r) => Array.from(set.cond!.data.subarray(r * views * hc * wc, (r * views + 1) * hc * wc)));
      const zTok = pick.flatMap((r) => Array.from(set.codes.data.subarray(r * views * lz, (r * views + 1) * lz)));
      const tokens = await model.sample({ ...opts, n: k, cond: cTok });
      const condImgs = await cond!.decode(HostTensor.int64([k, hc, wc], cTok));
      const toRgb = (t: HostTensor<'float32'>) => (t.shape[1] === 3 ? t : rgb(t));
      const sampled = await model.decodeTokens(tokens, k);
      const truth = await model.decodeTokens(zTok, k);
      const tiles: HostTensor[] = [];
      for (let i = 0; i < k; i++) for (const t of [toRgb(condImgs), sampled, truth]) tiles.push(tile(t, i));
      await saveLabeledGrid(file, tiles, { cols: 3, colLabels: ['condition', 'sample', 'original'], title: `step ${step}` });
    } else {
      const tokens = await model.sample({ ...opts, n: 16, cond: [cfg.sos_token] });
      await saveLabeledGrid(file, await model.decodeTokens(tokens, 16), { cols: 8, title: `step ${step}: unconditional samples` });
    }
    await model.release();
    fs.copyFileSync(file, path.join(out, 'samples', 'latest.png'));
    ev.onSample?.(file);
  };

  const plot = async () => {
    const lines = fs.readFileSync(metricsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number | string>);
    const pick = (k: string, split: string, name: string): Series => ({ name, points: lines.filter((l) => l.split === split && Number.isFinite(l[k])).map((l) => [Number(l.step), Number(l[k])]) });
    const v = pick('bpt', 'val', 'validation');
    const fin = pick('bpt', 'val_final', '').points.filter(([x]) => !v.points.some(([s]) => s === x));
    const val: Series = { name: v.name, points: [...v.points, ...fin] };
    const series = [pick('bpt', 'train', 'train'), val].filter((s) => s.points.length);
    if (series.length) await saveLossCurve(path.join(out, 'loss.png'), series, { title: 'cross-entropy (bits per image token)', yLabel: 'bits/token' });
  };

  let stopped = false;
  let tStart = performance.now();
  let stepsSince = 0;
  let lastVal: number | null = null;
  while (step < maxSteps) {
    const b = batches.next();
    const feeds: Record<string, HostTensor> = { c: b.c, a: b.a, z: b.z, ...(b.m ? { m: b.m } : {}) };
    for (const [k, spec] of Object.entries(maskSpecs)) feeds[k] = batches.keepMask(spec.shape, k.startsWith('drop.attn') ? gc.attn_pdrop : k === 'drop.embd' ? gc.embd_pdrop : gc.resid_pdrop);
    const lr = lrAt(step);
    const res = await trainer.run('step', feeds, { gpt: lr });
    const loss = res['loss.gpt']!.data[0] as number;
    if (!Number.isFinite(loss)) throw new Error(`loss became ${loss} at step ${step + 1}; stopped without saving — the last good checkpoint is in ${ckptRoot}. Try a lower learning rate.`);
    step++;
    stepsSince++;
    acc.push(loss);
    const secs = (performance.now() - tStart) / 1000;
    ev.onStep?.(step, { loss, bpt: loss / LN2, tokensPerSec: (stepsSince * B * lz) / secs, lr });
    const isLast = step === maxSteps;
    // lines written only because the run ends here are marked (partial / val_final), so a
    // resumed run drops them and its log equals an uninterrupted run's
    if (step % run.log_every === 0 || isLast) {
      const m = acc.reduce((x, y) => x + y, 0) / acc.length;
      logLine({ step, split: 'train', loss: m, bpt: m / LN2, lr, tokens_per_s: Math.round((stepsSince * B * lz) / secs), ...(step % run.log_every ? { partial: true } : {}) });
      if (step % run.log_every === 0) acc = [];
    }
    if (step % run.val_every === 0) {
      lastVal = await validate();
      if (lastVal !== null) await valLine('val', lastVal);
    }
    if (isLast) {
      if (step % run.val_every) lastVal = await validate();
      if (lastVal !== null) await valLine('val_final', lastVal);
    }
    if (step % run.sample_every === 0 || isLast) await sampleGrid();
    if (step % run.log_every === 0 || isLast) await plot();
    stopped = opt.shouldStop?.() ?? false;
    if (step % run.ckpt_every === 0 || isLast || stopped) checkpoint();
    if (step % run.val_every === 0 || step % run.sample_every === 0) {
      // time spent validating/sampling is not training throughput
      tStart = performance.now();
      stepsSince = 0;
    }
    if (stopped) break;
  }
  await (await evalCompiled).release();
  await first.release();
  await cond?.release();
  return { step, stopped, out, valBpt: lastVal === null ? null : lastVal / LN2 };
}

/**
 * Initial GPT weights (taming's init). With pos_init 'aligned' and an image condition on the
 * image's own grid, pos_emb starts from random vectors shared cell by cell: condition cell j
 * (position j) and the position that predicts image cell j (`imageAt` + j: Lc − 1 + j for the
 * autoregressive objective, which holds code j−1; Lc + j for MaskGIT, which holds code j itself)
 * get the same N(0, 0.02) vector. taming starts pos_emb at zero, so the model must learn 256
 * separate "look at the aligned condition cell" relations; shared starting vectors turn them
 * into one relation a single attention head can learn for all cells.
 *
 * 'aligned_head' also starts one head already attending there: token embeddings live in the
 * first 3/4 of the channels and the shared position vectors in the last 1/4 (equal norms), and
 * head 0 of block 0 reads only the position channels through one orthonormal map (× 1.25) for
 * both its query and its key. Its attention logits start at ≈ 11–20 for the two keys holding the query's
 * position vector (itself and the aligned condition cell) and ≈ 0 ± 3 for all others, so from
 * step 0 half of that head's output is the aligned condition code. Only the starting values
 * differ from taming's; the architecture and the checkpoint are taming's. Measured on the sketch
 * model: models/emoji-sketch/README.md.
 */
export function initialWeights(gc: GPTRunConfig, run: GPTTrainConfig['run'], lc: number, lz: number, set: CodeSet, imageAt = lc - 1, condEmbedding = false): StateDict {
  const rng = new InitRng(run.seed + 1);
  const w = initGPT(gc, rng);
  if (condEmbedding) {
    if (run.pos_init !== 'zeros') throw new Error(`pos_init '${run.pos_init}' lines up a prefix condition with the image; maskgit_cond 'add' is aligned already: use pos_init 'zeros'`);
    w.set('cond_emb.weight', initCondEmbedding(gc, rng));
  }
  if (run.pos_init === 'zeros') return w;
  const cg = set.cond?.shape.slice(2).join('x');
  if (!set.cond || lc !== lz || cg !== set.codes.shape.slice(2).join('x')) throw new Error(`pos_init '${run.pos_init}' needs an image condition on the image's own code grid`);
  const C = gc.n_embd;
  const head = run.pos_init === 'aligned_head';
  const hs = C / gc.n_head;
  const P = head ? C / 4 : C; // position channels: the last P
  if (head && hs > P) throw new Error(`pos_init 'aligned_head' needs a head size (${hs}) of at most n_embd/4 (${P})`);
  const sigma = head ? 0.02 * Math.sqrt((C - P) / P) : 0.02; // equal token and position norms
  const pos = w.get('pos_emb')!.data as Float32Array;
  for (let j = 0; j < lc; j++) {
    for (let k = C - P; k < C; k++) pos[j * C + k] = rng.normal() * sigma;
    if (imageAt + j >= lc) pos.copyWithin((imageAt + j) * C, j * C, (j + 1) * C);
  }
  if (!head) return w;
  const tok = w.get('tok_emb.weight')!.data as Float32Array;
  for (let v = 0; v < gc.vocab_size; v++) tok.fill(0, v * C + C - P, (v + 1) * C);
  // hs orthonormal rows over the P position channels (Gram–Schmidt on Gaussian rows)
  const R: Float64Array[] = [];
  for (let r = 0; r < hs; r++) {
    const v = Float64Array.from({ length: P }, () => rng.normal());
    for (const u of R) {
      let d = 0;
      for (let k = 0; k < P; k++) d += u[k] * v[k];
      for (let k = 0; k < P; k++) v[k] -= d * u[k];
    }
    const n = Math.hypot(...v);
    for (let k = 0; k < P; k++) v[k] /= n;
    R.push(v);
  }
  for (const name of ['blocks.0.attn.query.weight', 'blocks.0.attn.key.weight']) {
    const m = w.get(name)!.data as Float32Array; // [C out, C in]; head 0 = rows 0..hs−1
    for (let r = 0; r < hs; r++) {
      m.fill(0, r * C, (r + 1) * C);
      for (let k = 0; k < P; k++) m[r * C + C - P + k] = 1.25 * R[r][k];
    }
  }
  return w;
}

/** Image i of a batch [N, C, H, W] as [C, H, W]. */
function tile(t: HostTensor<'float32'>, i: number): HostTensor<'float32'> {
  const [, c, h, w] = t.shape as [number, number, number, number];
  return HostTensor.float32([c, h, w], (t.data as Float32Array).slice(i * c * h * w, (i + 1) * c * h * w));
}

/** A 1-channel batch as RGB (grey). */
function rgb(t: HostTensor<'float32'>): HostTensor<'float32'> {
  const [n, , h, w] = t.shape as [number, number, number, number];
  const out = HostTensor.float32([n, 3, h, w]);
  for (let i = 0; i < n; i++) for (let k = 0; k < 3; k++) out.data.set((t.data as Float32Array).subarray(i * h * w, (i + 1) * h * w), (i * 3 + k) * h * w);
  return out;
}

/** Load a run directory's or model directory's weights (transformer.*), for tests and tools. */
export function readTransformerWeights(file: string): StateDict {
  const { stateDict } = loadStateDict(file);
  return new Map([...stateDict].filter(([k]) => k.startsWith('transformer.')).map(([k, v]) => [k.slice('transformer.'.length), v]));
}
