// Net2Net: a taming Net2NetTransformer loaded for sampling — the GPT (`transformer.*` keys),
// the first-stage VQGAN (`first_stage_model.*`, or the file its config's ckpt_path names) and,
// for image conditions, the cond-stage VQGAN (`cond_stage_model.*`, or its ckpt_path). Loads
// a Lightning .ckpt (+ its YAML) or one of our model directories (config.yaml +
// model.safetensors). Sampling: KV-cached decoding, classifier-free guidance, sliding windows
// for code grids larger than the training grid.
import fs from 'node:fs';
import path from 'node:path';
import { loadStateDict, type LoadedStateDict } from '../../io/formats/checkpoint.ts';
import { kindFromKeys, resolveModelPath, type ModelPath } from '../../io/model_path.ts';
import { readConfigFile } from '../vqgan/config.ts';
import { downFactor } from '../vqgan/config.ts';
import { VQGAN } from '../vqgan/load.ts';
import { checkStateDict, type ShapeTree, type StateDict } from '../../nn/params.ts';
import type { SessionOptions } from '../../runtime/backend.ts';
import { HostTensor } from '../../tensor.ts';
import { sampleStreams, type Rng } from '../../io/rng.ts';
import { causalMaskBuffer, gptShapes } from '../mingpt/gpt.ts';
import { parseNet2NetConfig, type Net2NetConfig } from './config.ts';
import { BidirectionalRunner, KVDecoder, RecomputeDecoder, type DecodeStats } from '../../sample/decode.ts';
import { checkSamplingOptions, guide, makeChooser, type SamplingOptions } from '../../sample/filtering.ts';
import { maskgitDecode } from '../../sample/maskgit.ts';
import { windowedSample } from '../../sample/window.ts';
import { normalizeDrawing, sketchToFloat } from '../../io/sketch.ts';
import { decodeImageBytes, decodeImageBytesU8 } from '../../io/image.ts';

export interface Net2NetLoadOptions {
  /** Net2NetTransformer YAML/JSON (default: beside the checkpoint, or the model directory's config.yaml). */
  config?: string;
  session?: SessionOptions;
}

export interface SampleRequest extends SamplingOptions {
  /** Number of samples. */
  n: number;
  /** Condition tokens: one row of Lc tokens shared by all samples, or n rows. */
  cond: ArrayLike<number>;
  /** Code grid to fill, [h, w] (default: the training grid; larger grids use a sliding window). */
  grid?: [number, number];
  /** For windowed sampling: the condition as a code grid [hc, wc] (image conditions only). */
  condGrid?: [number, number];
  seed?: number;
  /** Index of the first sample's uniform stream (batches of a larger request). */
  streamOffset?: number;
  /** Classifier-free guidance scale (needs a model trained with class dropout). */
  guidance?: number;
  /** Decode with full recompute instead of the KV cache (reference / benchmarks). */
  recompute?: boolean;
  /** Called as tokens are produced (t of total; MaskGIT: pass t of total). */
  onProgress?: (t: number, total: number) => void;
  stats?: DecodeStats;
  /** MaskGIT: parallel passes T (default 12). */
  steps?: number;
  /** MaskGIT: τ, the Gumbel noise on the confidences at the first pass (default 4.5). */
  choiceTemperature?: number;
  /**
   * Editing (MaskGIT): codes to keep, −1 where to generate; Lz values shared by all samples
   * or n·Lz. The kept codes come back unchanged.
   */
  init?: ArrayLike<number>;
  /** Stops sampling at the next token step or pass once aborted (rejects with an AbortError). */
  signal?: AbortSignal;
}

/** What a sampling stopped by its AbortSignal rejects with. */
export function abortError(signal: AbortSignal): Error {
  const reason = signal.reason as unknown;
  if (reason instanceof Error && reason.name === 'AbortError') return reason;
  return Object.assign(new Error('sampling cancelled'), { name: 'AbortError' });
}

const PREFIXES = ['transformer.', 'first_stage_model.', 'cond_stage_model.'];

/** The transformer's parameter shapes: taming's GPT, plus cond_emb for MaskGIT's aligned ('add') conditions. */
export function net2netShapes(c: Net2NetConfig): ShapeTree {
  const s = gptShapes(c.transformer);
  if (c.maskgit?.cond === 'add') s['cond_emb.weight'] = [c.transformer.vocab_size, c.transformer.n_embd];
  return s;
}

/** True when `modelPath` (a model directory or a file) holds a Net2Net transformer: its weights have transformer.* keys. */
export function isNet2NetModel(modelPath: string): boolean {
  const where = resolveModelPath(modelPath);
  return kindFromKeys(loadStateDict(where.weights).stateDict.keys()) === 'transformer';
}

/**
 * An autoregressive model can only continue a raster prefix: `init` (Lz or n·Lz codes, −1 =
 * generate) must keep codes up to some position and generate every one after it — the same
 * position for every sample.
 */
function rasterPrefix(init: ArrayLike<number>, n: number, Lz: number): { codes: Int32Array; stride: number; length: number } {
  if (init.length !== Lz && init.length !== n * Lz) throw new Error(`init has ${init.length} codes; expected ${Lz} (shared) or ${n}×${Lz}`);
  const codes = Int32Array.from(init, Number);
  const stride = init.length === Lz ? 0 : Lz;
  let length = -1;
  for (let b = 0; b < (stride ? n : 1); b++) {
    const row = codes.subarray(b * stride, b * stride + Lz);
    let k = row.indexOf(-1);
    if (k < 0) k = Lz;
    if (row.subarray(k).some((v) => v !== -1)) throw new Error('an autoregressive model regenerates a raster suffix: every code after the first −1 must be −1 (use a MaskGIT model to repaint a region)');
    if (length >= 0 && k !== length) throw new Error('an autoregressive edit needs the same kept prefix for every sample');
    length = k;
  }
  return { codes, stride, length };
}

/** Split a Net2Net state dict by its submodule prefixes; names anything else. */
function splitStateDict(sd: StateDict, source: string): Record<string, StateDict> {
  const parts: Record<string, StateDict> = Object.fromEntries(PREFIXES.map((p) => [p, new Map()]));
  const other: string[] = [];
  for (const [k, v] of sd) {
    const p = PREFIXES.find((q) => k.startsWith(q));
    if (p) parts[p]!.set(k.slice(p.length), v);
    else other.push(k);
  }
  if (parts['transformer.']!.size === 0) {
    const hint = sd.has('quantize.embedding.weight') || sd.has('encoder.conv_in.weight') ? ' (it looks like a VQGAN: use reconstruct / encode / decode)' : '';
    throw new Error(`${source}: no transformer.* keys — not a Net2NetTransformer checkpoint${hint}`);
  }
  if (other.length) throw new Error(`${source}: unexpected keys outside transformer/first_stage_model/cond_stage_model (${other.length}): ${other.slice(0, 5).join(', ')}`);
  return parts;
}

export class Net2Net {
  readonly config: Net2NetConfig;
  readonly weights: StateDict;
  readonly firstStage: VQGAN;
  readonly condStage: VQGAN | null;
  readonly notes: string[];
  readonly source: string;
  /** The files it was read from: weights, config, and the stages' ckpt_path files. */
  readonly files: string[];
  readonly session: SessionOptions;
  private kv: KVDecoder | null = null;
  private full: RecomputeDecoder | null = null;
  private bidir: BidirectionalRunner | null = null;

  constructor(config: Net2NetConfig, gptWeights: StateDict, firstStage: VQGAN, condStage: VQGAN | null, opts: { notes?: string[]; source?: string; session?: SessionOptions; files?: string[] } = {}) {
    this.config = config;
    this.source = opts.source ?? '<memory>';
    this.files = opts.files ?? (opts.source ? [opts.source] : []);
    this.notes = opts.notes ?? [];
    this.session = opts.session ?? {};
    const want = net2netShapes(config);
    const masks = new Map([...gptWeights].filter(([k]) => /^blocks\.\d+\.attn\.mask$/.test(k)));
    const B = config.transformer.block_size;
    for (const [k, m] of masks) if (m.shape.join() !== `1,1,${B},${B}`) throw new Error(`${this.source}: transformer.${k} has shape [${m.shape.join(', ')}], expected [1, 1, ${B}, ${B}]`);
    checkStateDict(gptWeights, want, { source: `${this.source} (transformer)`, ignore: /^blocks\.\d+\.attn\.mask$/ });
    this.weights = new Map(Object.keys(want).map((k) => [k, gptWeights.get(k)!]));
    this.firstStage = firstStage;
    this.condStage = condStage;
    if (config.cond_stage.kind === 'first_stage') this.condStage = firstStage;
  }

  /**
   * Load from a model directory (its model.safetensors + config.yaml) or a checkpoint file
   * (a Lightning .ckpt + its YAML, or a .safetensors with the config in its metadata); the
   * config as resolveModelPath describes.
   */
  static load(modelPath: string, opts: Net2NetLoadOptions = {}): Net2Net {
    const where = resolveModelPath(modelPath, opts.config);
    return Net2Net.fromFiles(where, loadStateDict(where.weights), opts);
  }

  /** Load from resolved files and their state dict (read once by the caller). */
  static fromFiles(where: ModelPath, loaded: LoadedStateDict, opts: Net2NetLoadOptions = {}): Net2Net {
    const notes: string[] = [];
    const weightsFile = where.weights;
    const files = [weightsFile];
    const { stateDict, metadata } = loaded;
    const parts = splitStateDict(stateDict, weightsFile);
    let cfgObj: unknown;
    let cfgDir: string;
    let cfgFile: string | null = where.config;
    if (cfgFile) {
      cfgObj = readConfigFile(cfgFile);
      cfgDir = path.dirname(cfgFile);
      notes.push(`config from ${cfgFile}`);
    } else if (metadata.config) {
      cfgObj = JSON.parse(metadata.config);
      cfgDir = path.dirname(weightsFile);
      notes.push('config from the file metadata');
    } else {
      // the first config beside the weights that describes a Net2NetTransformer
      for (const f of where.beside) {
        const obj = readConfigFile(f);
        try {
          parseNet2NetConfig(obj, f);
        } catch {
          notes.push(`ignored ${f}: not a Net2NetTransformer config`);
          continue;
        }
        cfgObj = obj;
        cfgFile = f;
        break;
      }
      if (!cfgFile) throw new Error(`${weightsFile}: no config found beside it; pass --config <Net2NetTransformer YAML>`);
      cfgDir = path.dirname(cfgFile);
      notes.push(`config from ${cfgFile}`);
    }
    if (cfgFile) files.push(cfgFile);
    const config = parseNet2NetConfig(cfgObj, cfgFile ?? weightsFile);
    const session = opts.session ?? {};
    const stage = (prefix: string, vq: Net2NetConfig['first_stage'], ckpt: string | undefined, what: string): VQGAN => {
      const sd = parts[prefix]!;
      if (sd.size) return new VQGAN(vq, sd, { source: `${weightsFile} (${prefix.slice(0, -1)})`, session, files: [weightsFile] });
      if (!ckpt) throw new Error(`${weightsFile}: no ${prefix}* keys, and the config names no ${what}.params.ckpt_path`);
      const file = path.isAbsolute(ckpt) ? ckpt : path.join(cfgDir, ckpt);
      if (!fs.existsSync(file)) throw new Error(`${what}: ckpt_path ${ckpt} not found (looked for ${file})`);
      // a ckpt_path may name a model directory too (same rule as every command)
      const stageFile = resolveModelPath(file).weights;
      notes.push(`${what} weights from ${stageFile}`);
      files.push(stageFile);
      const m = loadStateDict(stageFile);
      return new VQGAN(vq, m.stateDict, { source: stageFile, session, files: [stageFile] });
    };
    const first = stage('first_stage_model.', config.first_stage, config.first_stage_ckpt, 'first_stage_config');
    const cs = config.cond_stage;
    const cond = cs.kind === 'vqgan' ? stage('cond_stage_model.', cs.vq, cs.ckpt_path, 'cond_stage_config') : null;
    return new Net2Net(config, parts['transformer.']!, first, cond, { notes, source: weightsFile, session, files });
  }

  /** The image code grid the GPT was trained on: latentkit.grid, else resolution / f of the first stage. */
  get grid(): [number, number] {
    if (this.config.grid) return this.config.grid;
    const g = this.config.first_stage.ddconfig.resolution / downFactor(this.config.first_stage);
    return [g, g];
  }

  /** The condition's code grid (image conditions) or null. */
  get condGrid(): [number, number] | null {
    const cs = this.config.cond_stage;
    if (cs.kind !== 'vqgan' && cs.kind !== 'first_stage') return null;
    const vq = cs.kind === 'vqgan' ? cs.vq : this.config.first_stage;
    const res = this.config.downsample_cond_size > 0 ? this.config.downsample_cond_size : vq.ddconfig.resolution;
    const g = res / downFactor(vq);
    return [g, g];
  }

  /** Tokens in the condition: 1 for a class or SOS, the cond grid's size for images. */
  get condLength(): number {
    const g = this.condGrid;
    return g ? g[0] * g[1] : 1;
  }

  get classes(): string[] | null {
    const cs = this.config.cond_stage;
    if (cs.kind !== 'label') return null;
    return this.config.classes ?? Array.from({ length: cs.n_classes }, (_, i) => String(i));
  }

  /** A class name (as the data spells it, case-insensitive) or index → label token. */
  classIndex(spec: string | number): number {
    const names = this.classes;
    if (!names) throw new Error(`this model is not class-conditional (its condition is ${this.config.cond_stage.kind === 'sos' ? 'none (unconditional)' : 'an image: use --cond'})`);
    const n = names.length;
    if (typeof spec === 'number' || /^\d+$/.test(spec)) {
      const i = Number(spec);
      if (!Number.isInteger(i) || i < 0 || i >= n) throw new Error(`class ${spec} out of range: this model has ${n} classes (0–${n - 1}: ${names.join(', ')})`);
      return i;
    }
    const i = names.findIndex((c) => c.toLowerCase() === spec.toLowerCase());
    if (i < 0) throw new Error(`unknown class '${spec}'; valid classes: ${names.map((c, k) => `${k} ${c}`).join(', ')}`);
    return i;
  }

  /** The unconditional condition: the SOS token. */
  sosCondition(): number[] {
    const cs = this.config.cond_stage;
    if (cs.kind !== 'sos') throw new Error(`this model is conditional (${cs.kind === 'label' ? 'pass --class' : 'pass --cond <image>'})`);
    return [cs.token];
  }

  /** Condition images [B, C, H, W] in [−1, 1] → flat condition tokens [B·Lc]. */
  async encodeCondition(images: HostTensor): Promise<Int32Array> {
    if (!this.condStage) throw new Error('this model does not take an image condition');
    const want = this.condStage.config.ddconfig.in_channels;
    if (images.shape[1] !== want) throw new Error(`the condition must have ${want} channel(s), got ${images.shape[1]}`);
    const { indices } = await this.condStage.encode(images);
    return Int32Array.from(indices.toArray());
  }

  /**
   * A condition image as a user gives it (encoded bytes, any size; `name` for errors) →
   * condition tokens for `grid`, and the image the model saw (float [C, hc, wc]). Sketch
   * models take a drawing (black strokes on white or transparent), normalized like their
   * training data; other image conditions are resized and center-cropped.
   */
  async conditionFromImage(bytes: Uint8Array, name: string, grid: [number, number] = this.grid): Promise<{ cond: Int32Array; condGrid: [number, number]; condImage: HostTensor<'float32'> }> {
    if (!this.condStage) throw new Error(`this model's condition is ${this.config.cond_stage.kind === 'label' ? 'a class' : 'none (unconditional)'}, not an image`);
    const cf = downFactor(this.condStage.config);
    const [hc, wc] = [grid[0] * cf, grid[1] * cf];
    let condImage: HostTensor<'float32'>;
    if (this.config.cond_input === 'sketch') {
      if (hc !== wc) throw new Error('sketch conditions need a square size');
      condImage = sketchToFloat(normalizeDrawing(await decodeImageBytesU8(bytes, {}, name), { size: hc }));
    } else {
      const f = await decodeImageBytes(bytes, { size: hc }, name);
      condImage = this.condStage.config.ddconfig.in_channels === 3 ? f : HostTensor.float32([1, hc, wc], (f.data as Float32Array).slice(0, hc * wc));
    }
    const cond = await this.encodeCondition(condImage.reshape([1, ...condImage.shape]));
    return { cond, condGrid: [hc / cf, wc / cf], condImage };
  }

  private decoder(recompute: boolean): KVDecoder | RecomputeDecoder {
    if (recompute) return (this.full ??= new RecomputeDecoder(this.config.transformer, this.weights, this.session));
    return (this.kv ??= new KVDecoder(this.config.transformer, this.weights, this.session));
  }

  /** Per-sample uniform streams: sample i of a seed draws the same numbers whatever n is. */
  static streams(seed: number, n: number, offset = 0): Rng[] {
    return sampleStreams(seed, n, offset);
  }

  /** Sample image code grids; returns tokens [n, h·w] (row-major). */
  async sample(req: SampleRequest): Promise<Int32Array> {
    const { signal } = req;
    if (signal?.aborted) throw abortError(signal);
    // cancellation is checked where progress is reported: every token step, every pass
    const r: SampleRequest = signal ? { ...req, onProgress: (t, T) => {
      if (signal.aborted) throw abortError(signal);
      req.onProgress?.(t, T);
    } } : req;
    const [h, w] = r.grid ?? this.grid;
    const [gh, gw] = this.grid;
    const V = this.config.transformer.vocab_size;
    const Lc = this.condLength;
    const n = r.n;
    if (!Number.isInteger(n) || n < 1) throw new Error(`n must be a positive integer, got ${n}`);
    if (r.cond.length !== Lc && r.cond.length !== n * Lc) throw new Error(`condition has ${r.cond.length} tokens; expected ${Lc} (shared) or ${n}×${Lc}`);
    const cond = r.cond.length === Lc && n > 1 ? Int32Array.from({ length: n * Lc }, (_, i) => r.cond[i % Lc]!) : Int32Array.from(r.cond);
    if (r.guidance !== undefined && !this.config.null_class) throw new Error('classifier-free guidance needs a model trained with class dropout (latentkit.null_class)');
    const streams = Net2Net.streams(r.seed ?? 0, n, r.streamOffset ?? 0);
    if (this.config.maskgit) return this.sampleMaskGit(r, cond, streams);
    const prefix = r.init !== undefined ? rasterPrefix(r.init, n, h * w) : null;
    const choose = makeChooser(r, V, streams);
    if (h !== gh || w !== gw) {
      if (h < gh || w < gw) throw new Error(`grid ${h}×${w} is smaller than the training grid ${gh}×${gw}`);
      if (r.guidance !== undefined) throw new Error('classifier-free guidance is not supported with a sliding window (sizes above the training grid)');
      if (prefix) throw new Error('editing is not supported with a sliding window (sizes above the training grid)');
      return windowedSample({ decoder: this.decoder(true) as RecomputeDecoder, n, grid: [h, w], window: [gh, gw], cond, condLength: Lc, condGrid: r.condGrid ?? null, choose, onProgress: r.onProgress });
    }
    let feedCond = cond;
    let B = n;
    if (r.guidance !== undefined) {
      const nul = this.nullClass();
      feedCond = Int32Array.from([...cond, ...new Array(n * Lc).fill(nul)]);
      B = 2 * n;
    }
    const steps = h * w;
    const dec = this.decoder(!!r.recompute);
    const stats = r.stats;
    // image completion: the given raster prefix is fed as if sampled, then sampling continues
    const forced = new Int32Array(B);
    const out = await dec.decode(feedCond, B, steps, (logits, t) => {
      r.onProgress?.(t + 1, steps);
      if (!prefix || t >= prefix.length) return choose(logits);
      for (let b = 0; b < B; b++) forced[b] = prefix.codes[(b % n) * prefix.stride + t]!;
      return forced;
    }, stats);
    return B === n ? out : out.subarray(0, n * steps);
  }

  /** Is this a MaskGIT (parallel-decoding) model? */
  get isMaskGit(): boolean {
    return !!this.config.maskgit;
  }

  /**
   * MaskGIT's parallel decoding (sample/maskgit.ts): every sample starts from its `init` codes
   * ([MASK] where −1, or everywhere), and each of T passes runs the whole grid through the
   * bidirectional transformer once — twice as many rows with guidance, whose unconditional rows
   * carry the null class or an all-[MASK] condition.
   */
  private async sampleMaskGit(r: SampleRequest, cond: Int32Array, streams: ReturnType<typeof Net2Net.streams>): Promise<Int32Array> {
    const { mask_token: mt } = this.config.maskgit!;
    const [h, w] = r.grid ?? this.grid;
    const [gh, gw] = this.grid;
    if (h !== gh || w !== gw) throw new Error(`a MaskGIT model fills its training grid ${gh}×${gw}; got ${h}×${w}`);
    const n = r.n;
    const Lz = h * w;
    const Lc = this.condLength;
    const V = this.config.transformer.vocab_size;
    const nCodes = this.config.first_stage.n_embed;
    const steps = r.steps ?? 12;
    if (!Number.isInteger(steps) || steps < 1) throw new Error(`steps must be a whole number ≥ 1, got ${steps}`);
    checkSamplingOptions(r, nCodes);
    const init = r.init;
    if (init && init.length !== Lz && init.length !== n * Lz) throw new Error(`init has ${init.length} codes; expected ${Lz} (shared) or ${n}×${Lz}`);
    const codes = Array.from({ length: n }, (_, b) => {
      const c = new Int32Array(Lz).fill(mt);
      if (init) {
        const off = init.length === Lz ? 0 : b * Lz;
        for (let i = 0; i < Lz; i++) {
          const v = Number(init[off + i]);
          if (v >= nCodes || (v < 0 && v !== -1) || !Number.isInteger(v)) throw new Error(`init code ${v} at position ${i} is neither a code in [0, ${nCodes}) nor −1 (generate)`);
          if (v >= 0) c[i] = v;
        }
      }
      return c;
    });
    const g = r.guidance;
    const B = g !== undefined ? 2 * n : n;
    const nul = g !== undefined ? this.nullCondition() : null;
    // 'prefix': [condition, codes] in one sequence; 'add': the codes, with the aligned condition beside them
    const add = this.config.maskgit!.cond === 'add';
    const P = add ? 0 : Lc;
    const T = P + Lz;
    const idx = HostTensor.int64([B, T]);
    const condIdx = add ? HostTensor.int64([B, Lc]) : null;
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < Lc; j++) {
        const v = BigInt(b < n ? cond[b * Lc + j]! : nul![j]!);
        if (condIdx) condIdx.data[b * Lc + j] = v;
        else idx.data[b * T + j] = v;
      }
    }
    const runner = (this.bidir ??= new BidirectionalRunner(this.config.transformer, this.weights, this.session));
    const per = Lz * V;
    const mixed = g !== undefined ? codes.map(() => new Float32Array(per)) : [];
    const model = async (cur: readonly Int32Array[]): Promise<Float32Array[]> => {
      for (let b = 0; b < B; b++) {
        const c = cur[b % n]!;
        for (let i = 0; i < Lz; i++) idx.data[b * T + P + i] = BigInt(c[i]!);
      }
      const logits = await runner.logits(idx, P, condIdx);
      return cur.map((_, b) => {
        const row = logits.subarray(b * per, (b + 1) * per);
        return g === undefined ? row : guide(row, logits.subarray((n + b) * per, (n + b + 1) * per), g, mixed[b]!);
      });
    };
    const res = await maskgitDecode(model, { codes, maskId: mt, vocab: nCodes, streams }, { ...r, steps }, (p) => r.onProgress?.(p.pass + 1, steps));
    const out = new Int32Array(n * Lz);
    res.codes.forEach((c, b) => out.set(c, b * Lz));
    return out;
  }

  /** The condition of guidance's unconditional rows: the null class, or (MaskGIT image conditions) every token [MASK]. */
  nullCondition(): number[] {
    if (this.config.cond_stage.kind === 'label') return [this.nullClass()];
    if (this.config.maskgit) return new Array(this.condLength).fill(this.config.maskgit.mask_token);
    throw new Error('guidance needs a class-conditional model, or a MaskGIT model trained with condition dropout');
  }

  private nullClass(): number {
    const cs = this.config.cond_stage;
    if (cs.kind !== 'label') throw new Error('guidance needs a class-conditional model');
    return cs.n_classes;
  }

  /** Tokens [n, h·w] → images [n, C, h·f, w·f] in [−1, 1]. */
  async decodeTokens(tokens: ArrayLike<number>, n: number, grid: [number, number] = this.grid): Promise<HostTensor<'float32'>> {
    return this.firstStage.decode(HostTensor.int64([n, grid[0], grid[1]], Array.from(tokens, Number)));
  }

  /**
   * The whole model as taming's Net2NetTransformer.state_dict() has it: transformer.* (with
   * the attn.mask buffers), first_stage_model.*, and cond_stage_model.* for image conditions
   * (the first stage's weights again under '__is_first_stage__'), so load_state_dict(strict=True) accepts it.
   */
  tamingStateDict(): StateDict {
    const sd: StateDict = new Map();
    const mask = causalMaskBuffer(this.config.transformer);
    for (const [k, v] of this.weights) sd.set(`transformer.${k}`, v);
    for (let i = 0; i < this.config.transformer.n_layer; i++) sd.set(`transformer.blocks.${i}.attn.mask`, mask);
    for (const [k, v] of this.firstStage.weights) sd.set(`first_stage_model.${k}`, v);
    if (this.condStage) for (const [k, v] of this.condStage.weights) sd.set(`cond_stage_model.${k}`, v);
    return sd;
  }

  async release(): Promise<void> {
    await this.kv?.release();
    await this.full?.release();
    await this.bidir?.release();
    await this.firstStage.release();
    if (this.condStage && this.condStage !== this.firstStage) await this.condStage.release();
  }
}
