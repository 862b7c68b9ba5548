// Loading VQGANs from real checkpoints (taming .ckpt, plain state dicts, safetensors with
// our config metadata) and running them for inference with cached per-size sessions.
import { loadStateDict, type LoadedStateDict } from '../../io/formats/checkpoint.ts';
import { kindFromKeys, resolveModelPath, type ModelPath } from '../../io/model_path.ts';
import { readNpyFile } from '../../io/formats/npy.ts';
import { ParamView, checkStateDict, countParams, type StateDict } from '../../nn/params.ts';
import { Program, type CompiledProgram } from '../../runtime/program.ts';
import type { SessionOptions } from '../../runtime/backend.ts';
import { HostTensor } from '../../tensor.ts';
import type { Tensor } from '../../graph/ir.ts';
import { downFactor, inferVQConfig, loadVQConfig, parseVQConfig, type VQConfig } from './config.ts';
import { decodeCode, encode, vqForward, vqShapes } from './vqmodel.ts';

/**
 * Keys in checkpoints that are not VQModel weights: taming's loss network and discriminator,
 * EMA-quantizer statistics, and the remap table (read separately as `used`).
 */
export const IGNORED_KEYS = /^loss\.|^quantize\.embedding\.(cluster_size|embed_avg)$|^quantize\.used$/;

export interface LoadOptions {
  /** taming YAML/JSON config path, or a config object. */
  config?: string | VQConfig;
  session?: SessionOptions;
}

export class VQGAN {
  readonly config: VQConfig;
  weights: StateDict;
  readonly used?: BigInt64Array;
  /** How the config was obtained (inferred, from metadata, from file). */
  readonly notes: string[];
  readonly source: string;
  /** The files it was read from (weights, config, remap table). */
  readonly files: string[];
  session: SessionOptions;
  /** Bake weights into the ONNX model as initializers (lets ORT pre-pack them) vs feed them per run. */
  bakeWeights = process.env.LATENTKIT_BAKE !== '0';
  private programs = new Map<string, Promise<CompiledProgram>>();

  constructor(config: VQConfig, weights: StateDict, opts: { used?: BigInt64Array; notes?: string[]; source?: string; session?: SessionOptions; files?: string[] } = {}) {
    this.config = config;
    this.used = opts.used;
    this.notes = opts.notes ?? [];
    this.source = opts.source ?? '<memory>';
    this.files = opts.files ?? (opts.source ? [opts.source] : []);
    this.session = opts.session ?? {};
    const expected = vqShapes(config);
    checkStateDict(weights, expected, { source: this.source, ignore: IGNORED_KEYS });
    this.weights = new Map(Object.keys(expected).map((k) => [k, weights.get(k)!]));
  }

  /**
   * Load a VQGAN from a model directory (its model.safetensors + config.yaml) or a checkpoint
   * file (taming .ckpt, state dict, .safetensors); the config as resolveModelPath describes.
   */
  static load(modelPath: string, opts: LoadOptions = {}): VQGAN {
    const where = resolveModelPath(modelPath, typeof opts.config === 'string' ? opts.config : undefined);
    return VQGAN.fromFiles(where, loadStateDict(where.weights), opts);
  }

  /** Load from resolved files and their state dict (read once by the caller). */
  static fromFiles(where: ModelPath, loaded: LoadedStateDict, opts: LoadOptions = {}): VQGAN {
    const { stateDict, metadata } = loaded;
    if (kindFromKeys(stateDict.keys()) === 'transformer') {
      throw new Error(`${where.given} is a Net2Net transformer (transformer.* keys), not a VQGAN: sample from it with \`latentkit sample\``);
    }
    const notes: string[] = [];
    const files = [where.weights];
    let config: VQConfig;
    if (opts.config && typeof opts.config !== 'string') {
      config = parseVQConfig(opts.config);
    } else if (where.config) {
      config = loadVQConfig(where.config);
      files.push(where.config);
      notes.push(`config from ${where.config}`);
    } else if (metadata.config) {
      config = parseVQConfig(JSON.parse(metadata.config), `${where.weights} (metadata)`);
      notes.push('config from the file metadata');
    } else {
      // a config beside the checkpoint (taming releases: ../configs/model.yaml), if it fits the weights
      let found: VQConfig | null = null;
      for (const f of where.beside) {
        try {
          const c = loadVQConfig(f);
          checkStateDict(stateDict, vqShapes(c), { ignore: IGNORED_KEYS });
          found = c;
          files.push(f);
          notes.push(`config from ${f}`);
          break;
        } catch {
          notes.push(`ignored ${f}: it does not match the weights`);
        }
      }
      if (found) config = found;
      else {
        const inf = inferVQConfig(stateDict);
        config = inf.config;
        notes.push(...inf.notes);
      }
    }
    let used: BigInt64Array | undefined;
    const usedT = stateDict.get('quantize.used');
    if (usedT) {
      used = usedT.dtype === 'int64' ? (usedT.data as BigInt64Array) : BigInt64Array.from(usedT.toArray().map(BigInt));
      notes.push(`remap: ${used.length} used codes (from quantize.used)`);
    } else if (config.remap) {
      used = readNpyFile(String(config.remap)).data as BigInt64Array;
      files.push(String(config.remap));
      notes.push(`remap: ${used.length} used codes (from ${config.remap})`);
    }
    return new VQGAN(config, stateDict, { used, notes, source: where.weights, session: opts.session, files });
  }

  /** Swap in new weights of the same shapes (sessions are kept when weights are fed, not baked). */
  setWeights(sd: StateDict): void {
    const next = new Map([...this.weights.keys()].map((k) => [k, sd.get(k)!]));
    for (const [k, v] of next) {
      const old = this.weights.get(k)!;
      if (!v || v.shape.join() !== old.shape.join()) throw new Error(`setWeights: '${k}' missing or reshaped`);
    }
    this.weights = next;
    if (this.bakeWeights) this.programs.clear();
  }

  get factor(): number {
    return downFactor(this.config);
  }

  get paramCount(): number {
    return countParams(Object.fromEntries([...this.weights].map(([k, v]) => [k, v.shape])));
  }

  /** Number of codes indices can take (remapped models report the used subset). */
  get codebookSize(): number {
    if (!this.used) return this.config.n_embed;
    return this.used.length + (this.config.unknown_index === 'extra' ? 1 : 0);
  }

  private weightSpecs() {
    return Object.fromEntries([...this.weights].map(([k, v]) => [k, { shape: v.shape, dtype: v.dtype }]));
  }

  private feeds(f: Record<string, HostTensor>): Record<string, HostTensor> {
    return this.bakeWeights ? f : { ...this.bake(), ...f };
  }

  private bake(): Record<string, HostTensor> {
    return Object.fromEntries(this.weights);
  }

  private program(kind: 'encode' | 'decode' | 'reconstruct', shape: readonly number[]): Promise<CompiledProgram> {
    const key = `${kind}:${shape.join('x')}`;
    let p = this.programs.get(key);
    if (!p) {
      const prog = this.trace(kind, shape);
      p = this.bakeWeights ? prog.compile({ ...this.session, bake: this.bake() }) : prog.compile(this.session);
      this.programs.set(key, p);
      p.catch(() => this.programs.delete(key));
    }
    return p;
  }

  /** Trace one of the inference programs (weights are inputs named by their state-dict keys). */
  trace(kind: 'encode' | 'decode' | 'reconstruct', shape: readonly number[]): Program {
    const specs = this.weightSpecs();
    const cfg = this.config;
    if (kind === 'decode') {
      return Program.trace((ins) => ({ image: decodeCode(new ParamView(ins), cfg, ins.indices!, this.used) }), {
        ...specs,
        indices: { shape, dtype: 'int64' },
      });
    }
    return Program.trace((ins): Record<string, Tensor> => {
      const p = new ParamView(ins);
      if (kind === 'encode') {
        const e = encode(p, cfg, ins.image!, this.used);
        return { indices: e.indices, latents: e.zq };
      }
      const r = vqForward(p, cfg, ins.image!, this.used);
      return { reconstruction: r.xrec, indices: r.indices };
    }, { ...specs, image: { shape, dtype: 'float32' } });
  }

  private checkImage(x: HostTensor): void {
    if (x.dtype !== 'float32' || x.shape.length !== 4 || x.shape[1] !== this.config.ddconfig.in_channels) {
      throw new Error(`expected images as float32 [B, ${this.config.ddconfig.in_channels}, H, W], got ${x.dtype}[${x.shape.join(', ')}]`);
    }
    const f = this.factor;
    if (x.shape[2]! % f || x.shape[3]! % f) {
      throw new Error(`image size ${x.shape[3]}×${x.shape[2]} is not a multiple of the model's downsampling factor ${f}; use --size or crop`);
    }
  }

  /** Images [B,3,H,W] in [−1,1] → code indices [B, H/f, W/f] and quantized latents. */
  async encode(x: HostTensor): Promise<{ indices: HostTensor<'int64'>; latents: HostTensor<'float32'> }> {
    this.checkImage(x);
    const r = await (await this.program('encode', x.shape)).run(this.feeds({ image: x }));
    return { indices: r.indices as HostTensor<'int64'>, latents: r.latents as HostTensor<'float32'> };
  }

  async decode(indices: HostTensor): Promise<HostTensor<'float32'>> {
    if (indices.shape.length !== 3) throw new Error(`expected code indices [B, h, w], got [${indices.shape.join(', ')}]`);
    const idx = indices.dtype === 'int64' ? indices : HostTensor.int64(indices.shape, indices.toArray());
    const n = this.codebookSize;
    for (const v of idx.data as BigInt64Array) {
      if (v < 0n || v >= BigInt(n)) throw new Error(`code index ${v} out of range [0, ${n})`);
    }
    return (await (await this.program('decode', idx.shape)).run(this.feeds({ indices: idx }))).image as HostTensor<'float32'>;
  }

  async reconstruct(x: HostTensor): Promise<{ image: HostTensor<'float32'>; indices: HostTensor<'int64'> }> {
    this.checkImage(x);
    const r = await (await this.program('reconstruct', x.shape)).run(this.feeds({ image: x }));
    return { image: r.reconstruction as HostTensor<'float32'>, indices: r.indices as HostTensor<'int64'> };
  }

  async release(): Promise<void> {
    for (const p of this.programs.values()) await (await p).release();
    this.programs.clear();
  }
}
