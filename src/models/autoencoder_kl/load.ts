// AutoencoderKL for inference: load from any supported file (weights.ts), pick the latent
// scaling, and run encode / decode / reconstruct through cached per-shape ONNX sessions.
// Latents outside are scaled as the diffusion pipelines use them: z' = (z − shift) · scale.
// `save` writes a diffusers vae/ folder or an ldm-named single-file .safetensors.
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync } from '../../io/atomic.ts';
import { writeSafetensorsFile } from '../../io/formats/safetensors.ts';
import { ldmToDiffusers } from '../../io/formats/kl_keymap.ts';
import { ParamView, checkStateDict, countParams, type StateDict } from '../../nn/params.ts';
import { Program, type CompiledProgram } from '../../runtime/program.ts';
import type { SessionOptions } from '../../runtime/backend.ts';
import { HostTensor } from '../../tensor.ts';
import { Rng } from '../../io/rng.ts';
import { readConfigFile } from '../vqgan/config.ts';
import { FAMILY_SCALING, guessFamily, inferKLConfig, klFactor, parseKLConfig, toDiffusersVaeConfig, type KLConfig, type KLFamily, type LatentScaling } from './config.ts';
import { decodeLatents, encodePosterior, klShapes } from './autoencoder.ts';
import { KL_IGNORED_KEYS, readKLWeights } from './weights.ts';
import { TiledAutoencoder, type TileOptions } from './tiled.ts';

export interface KLLoadOptions {
  /** latent-diffusion YAML/JSON config (path or object); default: the diffusers config.json, else inferred from the keys */
  config?: string | Record<string, unknown>;
  /** model family for the latent scaling when the file does not say (sd, sdxl, sd3, flux) */
  family?: KLFamily;
  /** override the scaling factor / shift (either alone keeps the other's default) */
  scale?: number;
  shift?: number;
  /** latents unscaled (scale 1, shift 0) */
  noScale?: boolean;
  session?: SessionOptions;
}

export interface EncodeOptions extends Partial<TileOptions> {
  /** draw from the posterior (mean + std·ε) instead of taking its mode (the mean) */
  sample?: boolean;
  /** seed of ε when sampling (default 0) */
  seed?: number | string;
}

export interface EncodeResult {
  /** scaled latents [B, E, h, w]: (z − shift) · scale, z the mode or a sample */
  latents: HostTensor<'float32'>;
  /** posterior mean and clamped log-variance, unscaled */
  mean: HostTensor<'float32'>;
  logvar: HostTensor<'float32'>;
}

function pickScaling(cfg: KLConfig, otherKeys: readonly string[], opts: KLLoadOptions): LatentScaling {
  if (opts.noScale) return { scale: 1, shift: 0, source: 'unscaled (noScale)' };
  let base: LatentScaling;
  if (opts.family) {
    const f = FAMILY_SCALING[opts.family];
    if (!f) throw new Error(`unknown family '${opts.family}' (expected one of ${Object.keys(FAMILY_SCALING).join(', ')})`);
    base = { scale: f.scale, shift: f.shift, source: `${f.name} (family option)` };
  } else if (cfg.scaling_factor !== undefined) {
    base = { scale: cfg.scaling_factor, shift: cfg.shift_factor ?? 0, source: 'from the file\'s config' };
  } else {
    const g = guessFamily(cfg, otherKeys);
    const f = FAMILY_SCALING[g.family];
    base = { scale: f.scale, shift: f.shift, source: g.why };
  }
  if (opts.scale !== undefined || opts.shift !== undefined) {
    for (const [k, v] of [['scale', opts.scale], ['shift', opts.shift]] as const) {
      if (v !== undefined && !Number.isFinite(v)) throw new Error(`${k} must be a finite number, got ${v}`);
    }
    if (opts.scale === 0) throw new Error('scale must not be 0');
    return { scale: opts.scale ?? base.scale, shift: opts.shift ?? base.shift, source: 'given' };
  }
  return base;
}

export class AutoencoderKL {
  readonly config: KLConfig;
  weights: StateDict;
  readonly scaling: LatentScaling;
  /** what was loaded and how (format, config, scaling) */
  readonly notes: string[];
  readonly source: string;
  session: SessionOptions;
  /** Bake weights into the ONNX model as initializers vs feed them per run. */
  bakeWeights = process.env.LATENTKIT_BAKE !== '0';
  private programs = new Map<string, Promise<CompiledProgram>>();

  constructor(config: KLConfig, weights: StateDict, opts: { scaling?: LatentScaling; notes?: string[]; source?: string; session?: SessionOptions } = {}) {
    this.config = config;
    this.notes = opts.notes ?? [];
    this.source = opts.source ?? '<memory>';
    this.session = opts.session ?? {};
    this.scaling = opts.scaling ?? pickScaling(config, [], {});
    const expected = klShapes(config);
    checkStateDict(weights, expected, { source: this.source, ignore: KL_IGNORED_KEYS });
    this.weights = new Map(Object.keys(expected).map((k) => [k, weights.get(k)!]));
  }

  /** Load from an SD .ckpt / .safetensors, an ldm VAE file, or a diffusers vae/ folder (or its weights file). */
  static load(modelPath: string, opts: KLLoadOptions = {}): AutoencoderKL {
    const w = readKLWeights(modelPath);
    const notes = [...w.notes];
    let config: KLConfig;
    if (typeof opts.config === 'string') {
      config = parseKLConfig(readConfigFile(opts.config), opts.config);
      notes.push(`config from ${opts.config}`);
    } else if (opts.config) {
      config = parseKLConfig(opts.config);
    } else if (w.config) {
      config = w.config;
    } else if (w.metadata.config) {
      config = parseKLConfig(JSON.parse(w.metadata.config), `${modelPath} (metadata)`);
      notes.push('config from the file metadata');
    } else {
      const inf = inferKLConfig(w.stateDict, modelPath);
      config = inf.config;
      notes.push(...inf.notes);
    }
    const scaling = pickScaling(config, w.otherKeys, opts);
    const sh = scaling.shift ? `, shift ${scaling.shift}` : '';
    notes.push(`latent scaling ${scaling.scale}${sh} (${scaling.source})`);
    return new AutoencoderKL(config, w.stateDict, { scaling, notes, source: w.file, session: opts.session });
  }

  get factor(): number {
    return klFactor(this.config);
  }

  get latentChannels(): number {
    return this.config.embed_dim;
  }

  get paramCount(): number {
    return countParams(Object.fromEntries([...this.weights].map(([k, v]) => [k, v.shape])));
  }

  private program(kind: 'encode' | 'decode', shape: readonly number[]): Promise<CompiledProgram> {
    const key = `${kind}:${shape.join('x')}`;
    let p = this.programs.get(key);
    if (!p) {
      const prog = this.trace(kind, shape);
      p = this.bakeWeights ? prog.compile({ ...this.session, bake: Object.fromEntries(this.weights) }) : prog.compile(this.session);
      this.programs.set(key, p);
      p.catch(() => this.programs.delete(key));
    }
    return p;
  }

  /** Trace encode (image → mean, logvar) or decode (unscaled latents → image); weights are inputs named by their keys. */
  trace(kind: 'encode' | 'decode', shape: readonly number[]): Program {
    const specs = Object.fromEntries([...this.weights].map(([k, v]) => [k, { shape: v.shape, dtype: v.dtype }]));
    const cfg = this.config;
    if (kind === 'decode') {
      return Program.trace((ins) => ({ image: decodeLatents(new ParamView(ins), cfg, ins.latents!) }), { ...specs, latents: { shape, dtype: 'float32' } });
    }
    return Program.trace((ins) => {
      const q = encodePosterior(new ParamView(ins), cfg, ins.image!);
      return { mean: q.mean, logvar: q.logvar };
    }, { ...specs, image: { shape, dtype: 'float32' } });
  }

  private run(kind: 'encode' | 'decode', name: string, x: HostTensor) {
    return this.program(kind, x.shape).then((p) => p.run(this.bakeWeights ? { [name]: x } : { ...Object.fromEntries(this.weights), [name]: x }));
  }

  private checkImage(x: HostTensor): void {
    const c = this.config.ddconfig.in_channels;
    if (x.dtype !== 'float32' || x.shape.length !== 4 || x.shape[1] !== c) throw new Error(`expected images as float32 [B, ${c}, H, W], got ${x.dtype}[${x.shape.join(', ')}]`);
    const f = this.factor;
    if (x.shape[2]! % f || x.shape[3]! % f) throw new Error(`image size ${x.shape[3]}×${x.shape[2]} is not a multiple of the model's downsampling factor ${f}`);
  }

  /** Images [B, C, H, W] in [−1, 1] → scaled latents (the posterior's mode, or a seeded sample). */
  async encode(x: HostTensor, opts: EncodeOptions = {}): Promise<EncodeResult> {
    this.checkImage(x);
    const r = opts.tile
      ? await this.tiled({ tile: opts.tile, halo: opts.halo, queryChunk: opts.queryChunk, storage: opts.storage, recompute: opts.recompute }).encode(x as HostTensor<'float32'>)
      : await this.run('encode', 'image', x);
    const mean = r.mean as HostTensor<'float32'>;
    const logvar = r.logvar as HostTensor<'float32'>;
    const z = mean.data.slice();
    if (opts.sample) {
      const rng = new Rng(opts.seed ?? 0);
      const lv = logvar.data;
      for (let i = 0; i < z.length; i++) z[i] = z[i]! + Math.exp(0.5 * lv[i]!) * rng.normal();
    }
    const { scale, shift } = this.scaling;
    for (let i = 0; i < z.length; i++) z[i] = (z[i]! - shift) * scale;
    return { latents: HostTensor.float32(mean.shape, z), mean, logvar };
  }

  /**
   * Scaled latents [B, E, h, w] → images [B, out_ch, H, W] in about [−1, 1]. With `tile`, the
   * decoder runs over tiles of that many latent pixels with whole-image GroupNorm statistics
   * (tiled.ts): the same output up to float error.
   */
  async decode(latents: HostTensor, opts: Partial<TileOptions> = {}): Promise<HostTensor<'float32'>> {
    const e = this.config.embed_dim;
    if (latents.dtype !== 'float32' || latents.shape.length !== 4) throw new Error(`expected latents as float32 [B, ${e}, h, w], got ${latents.dtype}[${latents.shape.join(', ')}]`);
    if (latents.shape[1] !== e) throw new Error(`latents have ${latents.shape[1]} channels, but this model's latent space has ${e} (latents [${latents.shape.join(', ')}])`);
    const { scale, shift } = this.scaling;
    const z = HostTensor.float32(latents.shape, (latents.data as Float32Array).map((v) => v / scale + shift));
    if (opts.tile) return this.tiled({ tile: opts.tile, halo: opts.halo, queryChunk: opts.queryChunk, storage: opts.storage, recompute: opts.recompute }).decode(z);
    return (await this.run('decode', 'latents', z)).image as HostTensor<'float32'>;
  }

  /**
   * The latent scaling a diffusion model would want for this VAE, found as SD's 0.18215 was:
   * 1 / the standard deviation of the posterior's mode over these images (all channels and
   * positions together), so that scaled latents have unit variance. Rounded to 5 digits.
   */
  async fitScale(batches: Iterable<HostTensor>): Promise<{ scale: number; std: number; mean: number; values: number }> {
    let n = 0;
    let s1 = 0;
    let s2 = 0;
    for (const x of batches) {
      this.checkImage(x);
      const m = ((await this.run('encode', 'image', x)).mean as HostTensor<'float32'>).data;
      for (const v of m) {
        s1 += v;
        s2 += v * v;
      }
      n += m.length;
    }
    if (n < 2) throw new Error('fitScale: no images');
    const mean = s1 / n;
    const std = Math.sqrt(Math.max(0, (s2 - n * mean * mean) / (n - 1)));
    if (!(std > 0)) throw new Error(`fitScale: the latents do not vary (std ${std})`);
    return { scale: Number((1 / std).toPrecision(5)), std, mean, values: n };
  }

  /** encode then decode (tiled both ways with `tile`); returns the scaled latents too. */
  async reconstruct(x: HostTensor, opts: EncodeOptions = {}): Promise<{ image: HostTensor<'float32'>; latents: HostTensor<'float32'> }> {
    const { latents } = await this.encode(x, opts);
    return { image: await this.decode(latents, opts), latents };
  }

  private tiledRunners = new Map<string, TiledAutoencoder>();

  /** The tiled encoder/decoder for these options (its compiled stage programs are kept). */
  tiled(opts: TileOptions): TiledAutoencoder {
    const key = `${opts.tile}:${opts.halo ?? 1}:${opts.queryChunk ?? 'auto'}:${opts.storage ?? 'auto'}:${opts.recompute ?? 'auto'}`;
    let d = this.tiledRunners.get(key);
    if (!d) this.tiledRunners.set(key, (d = new TiledAutoencoder(this.config, this.weights, this.session, opts)));
    return d;
  }

  /**
   * Writes the model: 'diffusers' → a vae/ folder at `target` (config.json with the scaling +
   * diffusion_pytorch_model.safetensors, diffusers names); 'ldm' → one .safetensors with ldm
   * names and the config in its metadata. `float16` stores the weights as F16.
   */
  save(target: string, opts: { format: 'diffusers' | 'ldm'; float16?: boolean }): string[] {
    const cfg: KLConfig = { ...this.config, scaling_factor: this.scaling.scale, ...(this.scaling.shift ? { shift_factor: this.scaling.shift } : {}) };
    if (opts.format === 'diffusers') {
      const dc = toDiffusersVaeConfig(cfg);
      const levels = this.config.ddconfig.ch_mult.length;
      fs.mkdirSync(target, { recursive: true });
      const wfile = path.join(target, opts.float16 ? 'diffusion_pytorch_model.fp16.safetensors' : 'diffusion_pytorch_model.safetensors');
      writeSafetensorsFile(wfile, ldmToDiffusers(this.weights, levels), undefined, { float16: opts.float16 });
      const cfile = path.join(target, 'config.json');
      writeFileAtomicSync(cfile, JSON.stringify(dc, null, 2) + '\n');
      return [cfile, wfile];
    }
    if (opts.format !== 'ldm') throw new Error(`unknown format '${String(opts.format)}' (expected diffusers or ldm)`);
    const { ddconfig, embed_dim, use_quant_conv, use_post_quant_conv, scaling_factor, shift_factor } = cfg;
    const meta = { config: JSON.stringify({ embed_dim, ddconfig, use_quant_conv, use_post_quant_conv, scaling_factor, shift_factor }), format: 'latent-diffusion AutoencoderKL' };
    writeSafetensorsFile(target, this.weights, meta, { float16: opts.float16 });
    return [target];
  }

  async release(): Promise<void> {
    for (const p of this.programs.values()) await (await p).release();
    this.programs.clear();
    for (const d of this.tiledRunners.values()) await d.release();
    this.tiledRunners.clear();
  }
}
