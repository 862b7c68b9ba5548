// Running the standalone ONNX exports (models/export_onnx.ts: weights inside, a JSON manifest)
// with any ONNX Runtime build — onnxruntime-web in a browser (WASM or WebGPU), or
// onnxruntime-node. No tracing, no Node modules: this is the page's in-browser path. Sampling
// goes through the same loop (sample/kv_loop.ts), chooser and seeded streams as the server,
// so the same seed gives the same tokens wherever the logits agree.
import type * as OrtNs from 'onnxruntime-common';
import type { KLOnnxManifest, Net2NetOnnxManifest, VQGANOnnxManifest } from '../models/onnx_manifest.ts';
import { kvDecode, type DecodeStats, type KVResult } from '../sample/kv_loop.ts';
import { guide, makeChooser, type SamplingOptions } from '../sample/filtering.ts';
import { maskgitDecode } from '../sample/maskgit.ts';
import { sampleStreams } from '../io/rng.ts';
import { normalizeDrawing, sketchToFloat } from '../io/sketch.ts';
import { HostTensor } from '../tensor.ts';

type Ort = typeof OrtNs;
/** Reads one file of the export by name (fetch in a browser, fs in Node). */
export type ReadFile = (name: string) => Promise<Uint8Array>;

export interface StandaloneOptions {
  /** e.g. ['webgpu', 'wasm'] or ['wasm'] (default) in a browser, ['cpu'] in Node. */
  executionProviders?: string[];
}

/** A session from ONNX bytes; a failure names the file. */
export async function createSession(ort: Ort, bytes: Uint8Array, name: string, o: StandaloneOptions): Promise<OrtNs.InferenceSession> {
  try {
    return await ort.InferenceSession.create(bytes, { executionProviders: o.executionProviders ?? ['wasm'], graphOptimizationLevel: 'all' });
  } catch (e) {
    throw new Error(`ONNX Runtime could not load ${name}: ${String((e as Error).message ?? e).split('\n')[0]}`, { cause: e });
  }
}

function expectFormat(manifest: { format?: unknown }, want: string): void {
  if (manifest?.format !== want) throw new Error(`expected a ${want} manifest, got format ${JSON.stringify(manifest?.format)}`);
}

/** A VQGAN export: image [1, C, H, W] in [−1, 1] → code indices [h, w] → image. */
export class StandaloneVQGAN {
  private constructor(
    readonly manifest: VQGANOnnxManifest,
    private ort: Ort,
    private enc: OrtNs.InferenceSession,
    private dec: OrtNs.InferenceSession,
  ) {}

  static async load(ort: Ort, manifest: VQGANOnnxManifest, read: ReadFile, o: StandaloneOptions = {}): Promise<StandaloneVQGAN> {
    expectFormat(manifest, 'latentkit-vqgan-onnx');
    const [e, d] = await Promise.all([manifest.files.encoder, manifest.files.decoder].map(async (f) => createSession(ort, await read(f), f, o)));
    return new StandaloneVQGAN(manifest, ort, e!, d!);
  }

  /** Planar float image [C·H·W] (the manifest's size) → code indices, row-major [h, w]. */
  async encode(image: Float32Array): Promise<{ indices: Int32Array; shape: [number, number] }> {
    const { channels: c, image_size: [h, w], grid } = this.manifest;
    if (image.length !== c * h * w) throw new Error(`encode: expected ${c}×${h}×${w} = ${c * h * w} values, got ${image.length}`);
    const r = await this.enc.run({ image: new this.ort.Tensor('float32', image, [1, c, h, w]) });
    return { indices: Int32Array.from(r.indices!.data as BigInt64Array, Number), shape: [...grid] };
  }

  /** Code indices [h·w] → planar float image [C, H, W] in ~[−1, 1]. */
  async decode(indices: ArrayLike<number>): Promise<Float32Array> {
    const [gh, gw] = this.manifest.grid;
    const n = this.manifest.codebook_size;
    if (indices.length !== gh * gw) throw new Error(`decode: expected ${gh}×${gw} = ${gh * gw} indices, got ${indices.length}`);
    const idx = BigInt64Array.from(Array.from(indices, (k) => {
      if (!Number.isInteger(k) || k < 0 || k >= n) throw new Error(`decode: index ${k} is not a code in [0, ${n})`);
      return BigInt(k);
    }));
    const r = await this.dec.run({ indices: new this.ort.Tensor('int64', idx, [1, gh, gw]) });
    return r.image!.data as Float32Array;
  }

  async release(): Promise<void> {
    await this.enc.release();
    await this.dec.release();
  }
}

/**
 * A KL autoencoder export (vae.json, batch / height / width free): images ⇄ latents as the
 * diffusion pipelines use them — `encode` returns scaled latents (z − shift) · scale, `decode`
 * and `preview` take them — with the preview decoder when the export has one.
 */
export class StandaloneKL {
  private constructor(
    readonly manifest: KLOnnxManifest,
    private ort: Ort,
    private enc: OrtNs.InferenceSession,
    private dec: OrtNs.InferenceSession,
    private prev: OrtNs.InferenceSession | null,
  ) {}

  static async load(ort: Ort, manifest: KLOnnxManifest, read: ReadFile, o: StandaloneOptions = {}): Promise<StandaloneKL> {
    expectFormat(manifest, 'latentkit-kl-onnx');
    if (!manifest.dynamic_axes) throw new Error('StandaloneKL runs exports with free sizes (export-onnx without --size)');
    const f = manifest.files;
    const names = [f.encoder, f.decoder, ...(f.preview ? [f.preview] : [])];
    const [e, d, p] = await Promise.all(names.map(async (n) => createSession(ort, await read(n), n, o)));
    return new StandaloneKL(manifest, ort, e!, d!, p ?? null);
  }

  get factor(): number {
    return this.manifest.factor;
  }

  get latentChannels(): number {
    return this.manifest.config.embed_dim;
  }

  get hasPreview(): boolean {
    return this.prev !== null;
  }

  /** Planar image [C·H·W] in [−1, 1] → scaled latents [c·h·w] (the posterior's mode). */
  async encode(image: Float32Array, h: number, w: number): Promise<{ latents: Float32Array; shape: [number, number, number] }> {
    const c = this.manifest.config.ddconfig.in_channels;
    const f = this.factor;
    if (image.length !== c * h * w) throw new Error(`encode: expected ${c}×${h}×${w} = ${c * h * w} values, got ${image.length}`);
    if (h % f || w % f) throw new Error(`encode: ${w}×${h} is not a multiple of the model's factor ${f}`);
    const r = await this.enc.run({ sample: new this.ort.Tensor('float32', image, [1, c, h, w]) });
    const z = Float32Array.from(r.latent_sample!.data as Float32Array);
    const { scaling_factor: s, shift_factor: t } = this.manifest;
    for (let i = 0; i < z.length; i++) z[i] = (z[i]! - t) * s;
    return { latents: z, shape: [this.latentChannels, h / f, w / f] };
  }

  private checkLatents(latents: Float32Array, [c, h, w]: readonly number[]): void {
    if (c !== this.latentChannels || latents.length !== c * h! * w!) throw new Error(`decode: expected ${this.latentChannels}×h×w latents, got [${[c, h, w].join(', ')}] with ${latents.length} values`);
  }

  /** Scaled latents [c·h·w] → planar image [C, H, W] in ≈[−1, 1] (the full decoder). */
  async decode(latents: Float32Array, shape: readonly [number, number, number]): Promise<Float32Array> {
    this.checkLatents(latents, shape);
    const { scaling_factor: s, shift_factor: t } = this.manifest;
    const z = Float32Array.from(latents, (v) => v / s + t);
    const r = await this.dec.run({ latent_sample: new this.ort.Tensor('float32', z, [1, ...shape]) });
    return r.sample!.data as Float32Array;
  }

  /** Scaled latents → planar image by the preview decoder (fast, approximate). */
  async preview(latents: Float32Array, shape: readonly [number, number, number]): Promise<Float32Array> {
    if (!this.prev) throw new Error('this export has no preview decoder');
    this.checkLatents(latents, shape);
    const r = await this.prev.run({ latents: new this.ort.Tensor('float32', Float32Array.from(latents), [1, ...shape]) });
    return r.sample!.data as Float32Array;
  }

  async release(): Promise<void> {
    for (const s of [this.enc, this.dec, this.prev]) await s?.release();
  }
}

export interface StandaloneSampleRequest extends SamplingOptions {
  /** Condition tokens (one class token, the SOS token, or a condition image's codes). */
  cond: ArrayLike<number>;
  n: number;
  seed?: number;
  onProgress?: (done: number, total: number) => void;
  stats?: DecodeStats;
  /** MaskGIT exports: passes T (default: the model's recommended, else 12), Gumbel τ, guidance scale */
  steps?: number;
  choiceTemperature?: number;
  guidance?: number;
  /** MaskGIT exports: codes to keep (Lz values, −1 = generate), shared by every sample */
  init?: ArrayLike<number>;
}

/** A transformer export (transformer.json): condition → image codes → images. */
export class StandaloneNet2Net {
  private constructor(
    readonly manifest: Net2NetOnnxManifest,
    private ort: Ort,
    private sessions: Record<string, OrtNs.InferenceSession>,
  ) {}

  static async load(ort: Ort, manifest: Net2NetOnnxManifest, read: ReadFile, o: StandaloneOptions = {}): Promise<StandaloneNet2Net> {
    expectFormat(manifest, 'latentkit-net2net-onnx');
    if (manifest.batch !== 1) throw new Error(`the in-browser sampler runs batch-1 exports (samples one after another), got batch ${manifest.batch}`);
    const entries = await Promise.all(Object.entries(manifest.files).map(async ([k, f]) => [k, await createSession(ort, await read(f), f, o)] as const));
    return new StandaloneNet2Net(manifest, ort, Object.fromEntries(entries));
  }

  get classes(): string[] | null {
    return this.manifest.condition.classes ?? null;
  }

  /** A class name (case-insensitive) or index → its condition token. */
  classCondition(spec: string | number): number[] {
    const names = this.classes;
    if (!names) throw new Error(`this model's condition is ${this.manifest.condition.kind}, not a class`);
    const i = typeof spec === 'number' ? spec : names.findIndex((c) => c.toLowerCase() === spec.toLowerCase());
    if (!(Number.isInteger(i) && i >= 0 && i < names.length)) throw new Error(`unknown class ${JSON.stringify(spec)}; valid classes: ${names.join(', ')}`);
    return [i];
  }

  /**
   * A drawing (planar uint8 RGB [3, H, W], any size: dark strokes on white) → condition tokens,
   * normalised exactly as the server and the training data do (io/sketch.ts).
   */
  async sketchCondition(rgb: Uint8Array, height: number, width: number): Promise<Int32Array> {
    const c = this.manifest.condition;
    if (c.input !== 'sketch' || !c.image_size || !this.sessions.cond_encoder) throw new Error(`this model's condition is ${c.input ?? c.kind}, not a sketch`);
    const [hc, wc] = c.image_size;
    const s = sketchToFloat(normalizeDrawing(new HostTensor('uint8', [3, height, width], rgb), { size: hc }));
    const r = await this.sessions.cond_encoder.run({ image: new this.ort.Tensor('float32', s.data, [1, c.channels ?? 1, hc, wc]) });
    return Int32Array.from(r.indices!.data as BigInt64Array, Number);
  }

  /** Whether this export decodes in parallel passes (MaskGIT) rather than token by token. */
  get isMaskGit(): boolean {
    return !!this.manifest.maskgit;
  }

  /** n samples, one after another (sample i draws stream i of the seed, as the server's batch does). */
  async sample(r: StandaloneSampleRequest): Promise<Int32Array> {
    if (this.manifest.maskgit) return this.sampleMaskGit(r);
    const m = this.manifest;
    // an autoregressive edit keeps a raster prefix (taming's image completion): fed as if sampled
    let keep = 0;
    if (r.init !== undefined) {
      const lz = m.grid[0] * m.grid[1];
      if (r.init.length !== lz) throw new Error(`init has ${r.init.length} codes; expected ${lz}`);
      keep = Array.prototype.indexOf.call(r.init, -1) as number;
      if (keep < 0) keep = lz;
      for (let i = keep; i < lz; i++) if (r.init[i] !== -1) throw new Error('an autoregressive model regenerates a raster suffix: every code after the first −1 must be −1');
    }
    const [h, w] = m.grid;
    const steps = h * w;
    const Lc = m.condition.tokens;
    if (r.cond.length !== Lc) throw new Error(`condition has ${r.cond.length} tokens; this model takes ${Lc}`);
    if (!(Number.isInteger(r.n) && r.n >= 1)) throw new Error(`n must be a positive integer, got ${r.n}`);
    const out = new Int32Array(r.n * steps);
    const layers = Array.from({ length: m.n_layer }, (_, i) => i);
    const [nh, hs, L] = [m.n_head, m.head_dim, m.cache_capacity];
    const result = (o: OrtNs.InferenceSession.OnnxValueMapType): KVResult => ({
      logits: o.logits!.data as Float32Array,
      k: layers.map((i) => o[`k.${i}`]!.data as Float32Array),
      v: layers.map((i) => o[`v.${i}`]!.data as Float32Array),
    });
    // guidance: a second row with the null class, decoded in lockstep (the server's doubled batch)
    let nul: number[] | null = null;
    if (r.guidance !== undefined) {
      if (m.condition.kind !== 'label' || m.condition.null_class == null) throw new Error('classifier-free guidance needs a class-conditional model trained with class dropout');
      nul = [m.condition.null_class];
    }
    const B = nul ? 2 : 1;
    const { step, prefill } = this.sessions;
    // the exported sessions take one row: a batch of B rows runs row by row, each on its own
    // slice of the caches and tokens, and the results are concatenated
    const concat = (parts: Float32Array[]) => {
      if (parts.length === 1) return parts[0]!;
      const o = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
      let at = 0;
      for (const p of parts) {
        o.set(p, at);
        at += p.length;
      }
      return o;
    };
    const byRow = (rs: KVResult[]): KVResult => ({
      logits: concat(rs.map((x) => x.logits)),
      k: layers.map((i) => concat(rs.map((x) => x.k[i]!))),
      v: layers.map((i) => concat(rs.map((x) => x.v[i]!))),
    });
    const rowOf = (a: Float32Array, b: number) => a.subarray((b * a.length) / B, ((b + 1) * a.length) / B);
    const runner = {
      nLayer: m.n_layer,
      nHead: nh,
      headDim: hs,
      step: async (tok: BigInt64Array, pos: number, K: readonly Float32Array[], V: readonly Float32Array[]) => {
        const rs: KVResult[] = [];
        for (let b = 0; b < B; b++) {
          const feeds: Record<string, OrtNs.Tensor> = { tok: new this.ort.Tensor('int64', tok.subarray(b, b + 1), [1]), pos: new this.ort.Tensor('int64', BigInt64Array.of(BigInt(pos)), [1]) };
          for (const i of layers) {
            feeds[`cache.k.${i}`] = new this.ort.Tensor('float32', rowOf(K[i]!, b), [1, nh, hs, L]);
            feeds[`cache.v.${i}`] = new this.ort.Tensor('float32', rowOf(V[i]!, b), [1, nh, L, hs]);
          }
          rs.push(result(await step!.run(feeds)));
        }
        return byRow(rs);
      },
      ...(prefill ? { prefill: async (idx: BigInt64Array) => {
        const rs: KVResult[] = [];
        for (let b = 0; b < B; b++) rs.push(result(await prefill.run({ idx: new this.ort.Tensor('int64', idx.subarray(b * Lc, (b + 1) * Lc), [1, Lc]) })));
        return byRow(rs);
      } } : {}),
    };
    const cond = nul ? [...Array.from(r.cond), ...nul] : r.cond;
    const forced = new Int32Array(B);
    for (let i = 0; i < r.n; i++) {
      const choose = makeChooser(r, m.vocab_size, sampleStreams(r.seed ?? 0, 1, i));
      const tokens = await kvDecode(runner, cond, B, steps, (logits, t) => {
        r.onProgress?.(i * steps + t + 1, r.n * steps);
        return t < keep ? forced.fill(r.init![t]!) : choose(logits);
      }, r.stats);
      out.set(tokens.subarray(0, steps), i * steps);
    }
    return out;
  }

  /**
   * MaskGIT: each sample runs its T passes through bidir.onnx (and a second, null-condition run
   * per pass with guidance), drawing its own stream of the seed — the server's batched loop
   * gives the same codes wherever the logits agree.
   */
  private async sampleMaskGit(r: StandaloneSampleRequest): Promise<Int32Array> {
    const m = this.manifest;
    const mg = m.maskgit!;
    const [h, w] = m.grid;
    const Lz = h * w;
    const Lc = m.condition.tokens;
    const P = mg.cond === 'add' ? 0 : Lc;
    if (r.cond.length !== Lc) throw new Error(`condition has ${r.cond.length} tokens; this model takes ${Lc}`);
    if (!(Number.isInteger(r.n) && r.n >= 1)) throw new Error(`n must be a positive integer, got ${r.n}`);
    const steps = r.steps ?? m.sampling?.steps ?? 12;
    const g = r.guidance;
    let nul: number[] | null = null;
    if (g !== undefined) {
      if (m.condition.kind === 'label') {
        if (m.condition.null_class == null) throw new Error('classifier-free guidance needs a model trained with class dropout');
        nul = [m.condition.null_class];
      } else nul = new Array(Lc).fill(mg.mask_token);
    }
    if (r.init && r.init.length !== Lz) throw new Error(`init has ${r.init.length} codes; expected ${Lz}`);
    const bidir = this.sessions.bidir!;
    const logitsFor = async (codes: Int32Array, cond: ArrayLike<number>): Promise<Float32Array> => {
      const idx = new BigInt64Array(P + Lz);
      for (let j = 0; j < P; j++) idx[j] = BigInt(cond[j]!);
      for (let i = 0; i < Lz; i++) idx[P + i] = BigInt(codes[i]!);
      const feeds: Record<string, OrtNs.Tensor> = { idx: new this.ort.Tensor('int64', idx, [1, P + Lz]) };
      if (mg.cond === 'add') feeds.cond = new this.ort.Tensor('int64', BigInt64Array.from(Array.from(cond, (v) => BigInt(v))), [1, Lz]);
      return (await bidir.run(feeds)).logits!.data as Float32Array;
    };
    const out = new Int32Array(r.n * Lz);
    for (let i = 0; i < r.n; i++) {
      const codes = new Int32Array(Lz).fill(mg.mask_token);
      if (r.init) for (let k = 0; k < Lz; k++) if (r.init[k]! >= 0) codes[k] = r.init[k]!;
      const mixed = new Float32Array(Lz * m.vocab_size);
      const model = async ([c]: readonly Int32Array[]) => {
        const l = await logitsFor(c!, r.cond);
        return [g === undefined ? l : guide(l, await logitsFor(c!, nul!), g, mixed)];
      };
      const res = await maskgitDecode(model, { codes: [codes], maskId: mg.mask_token, vocab: mg.codes, streams: sampleStreams(r.seed ?? 0, 1, i) }, { ...r, steps }, (p) => r.onProgress?.(i * steps + p.pass + 1, r.n * steps));
      out.set(res.codes[0]!, i * Lz);
    }
    return out;
  }

  /** MaskGIT exports: an image (planar float [C, H, W] in [−1, 1], the model's size) → its code grid, the codes an edit keeps. */
  async encodeImage(image: Float32Array): Promise<Int32Array> {
    const enc = this.sessions.encoder;
    if (!enc) throw new Error('this export has no image encoder (MaskGIT exports carry one for editing)');
    const [H, W] = this.manifest.image_size;
    const c = image.length / (H * W);
    if (!Number.isInteger(c)) throw new Error(`encodeImage: expected C×${H}×${W} values, got ${image.length}`);
    const r = await enc.run({ image: new this.ort.Tensor('float32', image, [1, c, H, W]) });
    return Int32Array.from(r.indices!.data as BigInt64Array, Number);
  }

  /** Tokens [n, h·w] → n planar float images [C, H, W] in ~[−1, 1]. */
  async decodeTokens(tokens: Int32Array, n: number): Promise<Float32Array[]> {
    const [h, w] = this.manifest.grid;
    const images: Float32Array[] = [];
    for (let i = 0; i < n; i++) {
      const idx = BigInt64Array.from(tokens.subarray(i * h * w, (i + 1) * h * w), (k) => BigInt(k));
      const r = await this.sessions.decoder!.run({ indices: new this.ort.Tensor('int64', idx, [1, h, w]) });
      images.push(r.image!.data as Float32Array);
    }
    return images;
  }

  async release(): Promise<void> {
    for (const s of Object.values(this.sessions)) await s.release();
  }
}
