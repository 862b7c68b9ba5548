// Standalone ONNX exports (weights inside) with a JSON manifest naming each file's inputs,
// outputs and, for transformers, the decoding loop: what `latentkit export-onnx` writes, what
// `latentkit serve` hands the web page, and what runtime/standalone.ts runs with any ONNX
// Runtime build (onnxruntime-web in a browser included). Weights that float16 holds exactly
// (the bundled models store theirs as F16) are stored as float16 and cast to float32 inside.
import { VQGAN } from './vqgan/load.ts';
import { Net2Net } from './cond_transformer/load.ts';
import { downFactor } from './vqgan/config.ts';
import { toTamingNet2Net } from './cond_transformer/config.ts';
import { traceBidirectional, traceStep, tracePrefill } from '../sample/decode.ts';
import type { Net2NetOnnxManifest, VQGANOnnxManifest } from './onnx_manifest.ts';
import { Program } from '../runtime/program.ts';
import { HostTensor } from '../tensor.ts';
import { ParamView } from '../nn/params.ts';
import type { AutoencoderKL } from './autoencoder_kl/load.ts';
import type { TAESD } from './taesd/load.ts';
import { taesdDecodeImage, taesdEncodeImage } from './taesd/taesd.ts';
import { decodeLatents, encodePosterior } from './autoencoder_kl/autoencoder.ts';
import { lowerToModel } from '../onnx/lower.ts';
import { makeDynamic, type Traced } from '../onnx/dynamic.ts';
import { ATTR_TYPE, encodeModel, type ModelObj } from '../onnx/proto.ts';
import { decodeElements, toHalf } from '../io/formats/safetensors.ts';

export type { Net2NetOnnxManifest, VQGANOnnxManifest } from './onnx_manifest.ts';

export interface OnnxExport {
  /** File name → ONNX bytes. */
  files: Map<string, Uint8Array>;
  /** The manifest's file name (model.json / transformer.json) and its content. */
  manifestName: string;
  manifest: Record<string, unknown>;
}

const ONNX_FLOAT = 1;
const ONNX_FLOAT16 = 10;

/**
 * Baked float32 weights that float16 holds exactly (weights stored as F16, e.g. the bundled
 * models) become float16 initializers, each read through a Cast to float32 at the start of
 * the graph: half the bytes, the same numbers (ONNX Runtime folds the Casts when it loads
 * the model). Weights float16 cannot hold exactly stay float32, so an export always computes
 * what the model computes. Returns how many initializers were stored as float16.
 */
export function halveExactInitializers(model: ModelObj, baked: ReadonlySet<string>): number {
  const casts: ModelObj['graph']['node'] = [];
  for (const t of model.graph.initializer) {
    if (!baked.has(t.name) || t.dataType !== ONNX_FLOAT || !t.rawData || t.rawData.byteLength < 64) continue;
    const raw = t.rawData;
    const x = raw.byteOffset % 4 ? new Float32Array(raw.slice().buffer) : new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const h = toHalf(x);
    const back = decodeElements('F16', new Uint8Array(h.buffer), h.length) as Float32Array;
    if (!back.every((v, i) => v === x[i] || (Number.isNaN(v) && Number.isNaN(x[i]!)))) continue;
    const name = t.name;
    t.name = `${name}.f16`;
    t.dataType = ONNX_FLOAT16;
    t.rawData = new Uint8Array(h.buffer);
    casts.push({ opType: 'Cast', input: [t.name], output: [name], name: `f16/${name}`, domain: '', attribute: [{ name: 'to', type: ATTR_TYPE.INT, i: ONNX_FLOAT }] });
  }
  model.graph.node.unshift(...casts);
  return casts.length;
}

/** A traced program as a standalone ONNX file: `bake` as initializers (float16 where exact). */
function standalone(p: Program, bake: Record<string, HostTensor>, metadata?: Record<string, string>): Uint8Array {
  const { model } = lowerToModel(p.graph, { inputs: p.inputs, outputs: p.outputs, metadata, bake: new Map(Object.entries(bake)) });
  halveExactInitializers(model, new Set(Object.keys(bake)));
  return encodeModel(model);
}

export function vqganOnnx(m: VQGAN, o: { size?: number; batch?: number } = {}): OnnxExport {
  const size = o.size ?? m.config.ddconfig.resolution;
  const b = o.batch ?? 1;
  const f = m.factor;
  if (size % f) throw new Error(`size ${size} is not a multiple of the downsampling factor ${f}`);
  const bake = Object.fromEntries(m.weights);
  const meta = { config: JSON.stringify(m.config), producer: 'latentkit' };
  const [c, g] = [m.config.ddconfig.in_channels, size / f];
  const files = new Map([
    ['encoder.onnx', standalone(m.trace('encode', [b, c, size, size]), bake, meta)],
    ['decoder.onnx', standalone(m.trace('decode', [b, g, g]), bake, meta)],
  ]);
  const manifest: VQGANOnnxManifest & Record<string, unknown> = {
    format: 'latentkit-vqgan-onnx',
    batch: b,
    image_size: [size, size],
    channels: c,
    grid: [g, g],
    codebook_size: m.codebookSize,
    files: { encoder: 'encoder.onnx', decoder: 'decoder.onnx' },
    encoder: { inputs: { image: ['float32', [b, c, size, size], 'RGB in [-1, 1]'] }, outputs: { indices: ['int64', [b, g, g]], latents: ['float32', [b, m.config.embed_dim, g, g]] } },
    decoder: { inputs: { indices: ['int64', [b, g, g]] }, outputs: { image: ['float32', [b, m.config.ddconfig.out_ch, size, size], 'RGB in ~[-1, 1]'] } },
    config: m.config,
  };
  return { files, manifestName: 'model.json', manifest };
}

export function net2netOnnx(m: Net2Net, o: { batch?: number } = {}): OnnxExport {
  const B = o.batch ?? 1;
  const c = m.config.transformer;
  const [h, w] = m.grid;
  const Lc = m.condLength;
  const L = Lc + h * w - 1;
  const hs = c.n_embd / c.n_head;
  const f1 = downFactor(m.config.first_stage);
  const bake = Object.fromEntries(m.weights);
  const meta = { producer: 'latentkit', config: JSON.stringify(toTamingNet2Net(m.config)) };
  const files = new Map<string, Uint8Array>();
  const mg = m.config.maskgit;
  const P = mg?.cond === 'add' ? 0 : Lc; // prefix tokens before the image codes
  if (mg) files.set('bidir.onnx', standalone(traceBidirectional(c, m.weights, B, P, h * w, mg.cond === 'add'), bake, meta));
  else {
    files.set('step.onnx', standalone(traceStep(c, m.weights, B, L), bake, meta));
    if (Lc > 1) files.set('prefill.onnx', standalone(tracePrefill(c, m.weights, B, Lc), bake, meta));
  }
  files.set('decoder.onnx', standalone(m.firstStage.trace('decode', [B, h, w]), Object.fromEntries(m.firstStage.weights)));
  // MaskGIT models edit images: their first stage's encoder turns the image into the codes to keep
  if (mg) files.set('encoder.onnx', standalone(m.firstStage.trace('encode', [B, m.firstStage.config.ddconfig.in_channels, h * f1, w * f1]), Object.fromEntries(m.firstStage.weights)));
  let condImage: { image_size: [number, number]; channels: number } | null = null;
  if (m.condStage && m.condGrid) {
    const f = downFactor(m.condStage.config);
    const [hc, wc] = m.condGrid;
    const ch = m.condStage.config.ddconfig.in_channels;
    files.set('cond_encoder.onnx', standalone(m.condStage.trace('encode', [B, ch, hc * f, wc * f]), Object.fromEntries(m.condStage.weights)));
    condImage = { image_size: [hc * f, wc * f], channels: ch };
  }
  const cs = m.config.cond_stage;
  const manifest: Net2NetOnnxManifest & Record<string, unknown> = {
    format: 'latentkit-net2net-onnx',
    batch: B,
    grid: [h, w],
    image_size: [h * f1, w * f1],
    condition: {
      kind: cs.kind,
      tokens: Lc,
      ...(cs.kind === 'label' ? { classes: m.classes, null_class: m.config.null_class ? cs.n_classes : null } : {}),
      ...(cs.kind === 'sos' ? { sos_token: cs.token } : {}),
      ...(m.config.cond_input ? { input: m.config.cond_input } : {}),
      ...(condImage ?? {}),
    },
    vocab_size: c.vocab_size,
    n_layer: c.n_layer,
    n_head: c.n_head,
    head_dim: hs,
    cache_capacity: L,
    files: Object.fromEntries([...files.keys()].map((k) => [k.replace('.onnx', ''), k])),
    ...(mg ? {} : {
      step: {
        inputs: { tok: ['int64', [B]], pos: ['int64', [1]], 'cache.k.<i>': ['float32', [B, c.n_head, hs, L]], 'cache.v.<i>': ['float32', [B, c.n_head, L, hs]] },
        outputs: { logits: ['float32', [B, c.vocab_size]], 'k.<i>': ['float32', [B, c.n_head, hs]], 'v.<i>': ['float32', [B, c.n_head, hs]] },
      },
    }),
    ...(m.config.sampling ? { sampling: m.config.sampling } : {}),
    ...(mg ? maskgitManifest(m, B, P) : {}),
    ...(Lc > 1 && !mg ? { prefill: { inputs: { idx: ['int64', [B, Lc]] }, outputs: { logits: ['float32', [B, c.vocab_size]], 'k.<i>': ['float32', [B, c.n_head, hs, Lc]], 'v.<i>': ['float32', [B, c.n_head, Lc, hs]] } } } : {}),
    loop: mg ? maskgitLoop(m, B, P) : [
      'caches start as zeros; key caches are transposed ([B, nh, hs, L]) so the step reads them without a copy',
      Lc > 1 ? 'run prefill on the condition tokens; copy k.<i>/v.<i> into cache slots 0..Lc-1; take its logits' : 'run step with tok = the condition token, pos = 0; write k.<i>/v.<i> into slot 0; take its logits',
      `for t in 0..${h * w - 1}: choose a token from the logits (temperature / top-k / top-p); it is image code t; unless last, run step with tok = it, pos = ${Lc} + t, write k.<i>/v.<i> into slot pos (K: [.., d, pos], V: [.., pos, d])`,
      `decoder.onnx: indices [B, ${h}, ${w}] (int64) → image [B, C, ${h * f1}, ${w * f1}] in [-1, 1]`,
    ],
  };
  return { files, manifestName: 'transformer.json', manifest };
}

/** The manifest entries of a MaskGIT export: the mask token, how the condition enters, bidir.onnx's signature. */
function maskgitManifest(m: Net2Net, B: number, P: number): Record<string, unknown> {
  const mg = m.config.maskgit!;
  const Lz = m.grid[0] * m.grid[1];
  const V = m.config.transformer.vocab_size;
  return {
    maskgit: { mask_token: mg.mask_token, cond: mg.cond, codes: m.config.first_stage.n_embed },
    cache_capacity: 0,
    bidir: { inputs: { idx: ['int64', [B, P + Lz]], ...(mg.cond === 'add' ? { cond: ['int64', [B, Lz]] } : {}) }, outputs: { logits: ['float32', [B, Lz, V]] } },
  };
}

function maskgitLoop(m: Net2Net, B: number, P: number): string[] {
  const mg = m.config.maskgit!;
  const Lz = m.grid[0] * m.grid[1];
  const f1 = downFactor(m.config.first_stage);
  return [
    `codes start as the mask token ${mg.mask_token} at every position to generate (an edit keeps the others)`,
    mg.cond === 'add' ? 'idx = the codes; cond = the condition tokens, one per image cell' : `idx = the ${P} condition tokens, then the codes`,
    `for pass t of T (cosine schedule γ(r) = cos(πr/2)): run bidir; at each masked position sample a code from logits[.., :${m.config.first_stage.n_embed}] (temperature / top-k / top-p); confidence = log p + τ·(1 − (t+1)/T)·Gumbel; keep the most confident so that ⌊n·γ((t+1)/T)⌋ stay masked (none after the last pass)`,
    `guidance: a second row with the null condition (${m.config.cond_stage.kind === 'label' ? 'the null class' : 'every condition token = the mask token'}); logits = uncond + s·(cond − uncond)`,
    `decoder.onnx: indices [${B}, ${m.grid[0]}, ${m.grid[1]}] (int64) → image [${B}, C, ${m.grid[0] * f1}, ${m.grid[1] * f1}] in [-1, 1]; ${Lz} codes per image`,
  ];
}

/** The traced sizes behind a dynamic export (onnx/dynamic.ts): batch and latent height/width, distinct primes so each dim's formula is told apart. */
const KL_TRACE_DIMS: [number, number, number][] = [[2, 3, 5], [3, 7, 11], [5, 13, 4]];

/** `at` traced at the three KL_TRACE_DIMS sizes (its input's height and width are the latent's × `scaleHW`), lowered, and merged into one model whose `input` has free batch, height and width. */
function freeSizes(at: (d: number[]) => Program, lower: (p: Program) => ModelObj, input: string, scaleHW: number): ModelObj {
  const traces = KL_TRACE_DIMS.map((d): Traced => ({ model: lower(at(d)), dims: [d[0]!, d[1]! * scaleHW, d[2]! * scaleHW] }));
  return makeDynamic(traces, { input, axes: { 0: 'batch', 2: 'height', 3: 'width' } });
}

/**
 * A KL autoencoder as SD's ONNX pipelines name it: encoder `sample` → `latent_sample` (the
 * posterior mode, unscaled), decoder `latent_sample` → `sample`. By default batch, height
 * and width are free (traced at three sizes, onnx/dynamic.ts); `size` fixes them instead
 * (batch `batch`, a `size`² image). `float16` stores the weights as float16, computed in
 * float32 (see README: SDXL's VAE overflows in float16 arithmetic).
 */
export function klOnnx(m: AutoencoderKL, o: { size?: number; batch?: number; float16?: boolean; preview?: TAESD } = {}): OnnxExport {
  const f = m.factor;
  if (o.size !== undefined && o.size % f) throw new Error(`size ${o.size} is not a multiple of the downsampling factor ${f}`);
  const round = (t: HostTensor): HostTensor => HostTensor.float32(t.shape, decodeElements('F16', new Uint8Array(toHalf(t.data as Float32Array).buffer), t.size) as Float32Array);
  const bake = new Map([...m.weights].map(([k, v]) => [k, o.float16 ? round(v) : v]));
  const specs = Object.fromEntries([...m.weights].map(([k, v]) => [k, { shape: v.shape, dtype: v.dtype }]));
  const { scale, shift } = m.scaling;
  const meta = { producer: 'latentkit', config: JSON.stringify(m.config), scaling_factor: String(scale), shift_factor: String(shift) };
  const [c, e, oc] = [m.config.ddconfig.in_channels, m.latentChannels, m.config.ddconfig.out_ch];
  const encAt = ([b, h, w]: number[]) => Program.trace((ins) => ({ latent_sample: encodePosterior(new ParamView(ins), m.config, ins.sample!).mean }), { ...specs, sample: { shape: [b!, c, h! * f, w! * f], dtype: 'float32' } });
  const decAt = ([b, h, w]: number[]) => Program.trace((ins) => ({ sample: decodeLatents(new ParamView(ins), m.config, ins.latent_sample!) }), { ...specs, latent_sample: { shape: [b!, e, h!, w!], dtype: 'float32' } });
  const lower = (p: Program) => lowerToModel(p.graph, { inputs: p.inputs, outputs: p.outputs, metadata: meta, bake }).model;
  const finish = (model: ModelObj) => {
    halveExactInitializers(model, new Set(bake.keys()));
    return encodeModel(model);
  };
  const fixed = o.size !== undefined;
  const b = o.batch ?? 1;
  const g = fixed ? o.size! / f : 0;
  const files = new Map([
    ['encoder.onnx', finish(fixed ? lower(encAt([b, g, g])) : freeSizes(encAt, lower, 'sample', f))],
    ['decoder.onnx', finish(fixed ? lower(decAt([b, g, g])) : freeSizes(decAt, lower, 'latent_sample', 1))],
  ]);
  const preview = o.preview ? previewDecoderOnnx(o.preview, m) : null;
  if (preview) files.set('preview_decoder.onnx', preview);
  // shapes in the manifest: numbers when fixed, SD's axis names (and f-multiples) when free
  const [B, H, W, h, w] = fixed ? [b, o.size!, o.size!, g, g] : ['batch', 'height', 'width', `height/${f}`, `width/${f}`];
  const manifest = {
    format: 'latentkit-kl-onnx',
    dynamic_axes: !fixed,
    factor: f,
    ...(fixed ? { batch: b, image_size: [o.size, o.size], latent: [b, e, g, g] } : {}),
    scaling_factor: scale,
    shift_factor: shift,
    weights: o.float16 ? 'float16 (computed in float32)' : 'float32',
    files: { encoder: 'encoder.onnx', decoder: 'decoder.onnx', ...(preview ? { preview: 'preview_decoder.onnx' } : {}) },
    ...(o.preview ? { preview: { factor: o.preview.factor, parameters: o.preview.paramCount } } : {}),
    encoder: { inputs: { sample: ['float32', [B, c, H, W], `RGB in [-1, 1]${fixed ? '' : `; height and width multiples of ${f}`}`] }, outputs: { latent_sample: ['float32', [B, e, h, w], 'posterior mode, unscaled: (z - shift) * scale for the diffusion model'] } },
    decoder: { inputs: { latent_sample: ['float32', [B, e, fixed ? h : 'height', fixed ? w : 'width'], "unscaled: z = z' / scale + shift"] }, outputs: { sample: ['float32', [B, oc, fixed ? H : `height*${f}`, fixed ? W : `width*${f}`], 'RGB in ~[-1, 1]'] } },
    config: m.config,
  };
  return { files, manifestName: 'vae.json', manifest };
}

/**
 * One part of a TAESD (or a KL model's preview decoder, distill-preview) as an ONNX graph with
 * free batch, height and width, in the library's [−1, 1] image convention: decoder scaled
 * latents `latents` → `sample` (TAESD's [0, 1] output mapped), encoder `sample` → `latents`.
 */
export function taesdOnnx(t: TAESD, part: 'encoder' | 'decoder'): Uint8Array {
  const sd = t.parts[part];
  if (!sd) throw new Error(`this TAESD has no ${part}`);
  const specs = Object.fromEntries([...sd].map(([k, v]) => [k, { shape: v.shape, dtype: v.dtype }]));
  const f = t.factor;
  const at = ([b, h, w]: number[]) =>
    part === 'decoder'
      ? Program.trace((ins) => ({ sample: taesdDecodeImage(new ParamView(ins), ins.latents!, t.stages) }), { ...specs, latents: { shape: [b!, t.latentChannels, h!, w!], dtype: 'float32' } })
      : Program.trace((ins) => ({ latents: taesdEncodeImage(new ParamView(ins), ins.sample!, t.stages) }), { ...specs, sample: { shape: [b!, 3, h! * f, w! * f], dtype: 'float32' } });
  const bake = new Map(sd);
  const lower = (p: Program) => lowerToModel(p.graph, { inputs: p.inputs, outputs: p.outputs, bake, metadata: { producer: 'latentkit', role: `TAESD ${part}`, factor: String(f) } }).model;
  const model = part === 'decoder' ? freeSizes(at, lower, 'latents', 1) : freeSizes(at, lower, 'sample', f);
  halveExactInitializers(model, new Set(bake.keys()));
  return encodeModel(model);
}

/** A KL model's preview decoder, checked against the VAE it previews. */
function previewDecoderOnnx(t: TAESD, m: AutoencoderKL): Uint8Array {
  if (!t.parts.decoder) throw new Error('the preview has no decoder');
  if (t.latentChannels !== m.latentChannels || t.factor !== m.factor) throw new Error(`the preview decoder reads ${t.latentChannels} channels at factor ${t.factor}; the VAE has ${m.latentChannels} at factor ${m.factor}`);
  return taesdOnnx(t, 'decoder');
}
