// Standalone ONNX exports (weights inside) with a JSON manifest naming each file's inputs,
// outputs and, for transformers, the decoding loop: what `latentkit export-onnx` writes, what
// `latentkit serve` hands the web page, and what runtime/standalone.ts runs with any ONNX
// Runtime build (onnxruntime-web in a browser included).
import { VQGAN } from './vqgan/load.ts';
import { Net2Net } from './cond_transformer/load.ts';
import { downFactor } from './vqgan/config.ts';
import { toTamingNet2Net } from './cond_transformer/config.ts';
import { traceStep, tracePrefill } from '../sample/decode.ts';
import type { Net2NetOnnxManifest, VQGANOnnxManifest } from './onnx_manifest.ts';

export type { Net2NetOnnxManifest, VQGANOnnxManifest } from './onnx_manifest.ts';

export interface OnnxExport {
  /** File name → ONNX bytes. */
  files: Map<string, Uint8Array>;
  /** The manifest's file name (model.json / transformer.json) and its content. */
  manifestName: string;
  manifest: Record<string, unknown>;
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
    ['encoder.onnx', m.trace('encode', [b, c, size, size]).toOnnx({ bake, metadata: meta })],
    ['decoder.onnx', m.trace('decode', [b, g, g]).toOnnx({ bake, metadata: meta })],
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
  files.set('step.onnx', traceStep(c, m.weights, B, L).toOnnx({ bake, metadata: meta }));
  if (Lc > 1) files.set('prefill.onnx', tracePrefill(c, m.weights, B, Lc).toOnnx({ bake, metadata: meta }));
  files.set('decoder.onnx', m.firstStage.trace('decode', [B, h, w]).toOnnx({ bake: Object.fromEntries(m.firstStage.weights) }));
  let condImage: { image_size: [number, number]; channels: number } | null = null;
  if (m.condStage && m.condGrid) {
    const f = downFactor(m.condStage.config);
    const [hc, wc] = m.condGrid;
    const ch = m.condStage.config.ddconfig.in_channels;
    files.set('cond_encoder.onnx', m.condStage.trace('encode', [B, ch, hc * f, wc * f]).toOnnx({ bake: Object.fromEntries(m.condStage.weights) }));
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
    step: {
      inputs: { tok: ['int64', [B]], pos: ['int64', [1]], 'cache.k.<i>': ['float32', [B, c.n_head, hs, L]], 'cache.v.<i>': ['float32', [B, c.n_head, L, hs]] },
      outputs: { logits: ['float32', [B, c.vocab_size]], 'k.<i>': ['float32', [B, c.n_head, hs]], 'v.<i>': ['float32', [B, c.n_head, hs]] },
    },
    ...(Lc > 1 ? { prefill: { inputs: { idx: ['int64', [B, Lc]] }, outputs: { logits: ['float32', [B, c.vocab_size]], 'k.<i>': ['float32', [B, c.n_head, hs, Lc]], 'v.<i>': ['float32', [B, c.n_head, Lc, hs]] } } } : {}),
    loop: [
      'caches start as zeros; key caches are transposed ([B, nh, hs, L]) so the step reads them without a copy',
      Lc > 1 ? 'run prefill on the condition tokens; copy k.<i>/v.<i> into cache slots 0..Lc-1; take its logits' : 'run step with tok = the condition token, pos = 0; write k.<i>/v.<i> into slot 0; take its logits',
      `for t in 0..${h * w - 1}: choose a token from the logits (temperature / top-k / top-p); it is image code t; unless last, run step with tok = it, pos = ${Lc} + t, write k.<i>/v.<i> into slot pos (K: [.., d, pos], V: [.., pos, d])`,
      `decoder.onnx: indices [B, ${h}, ${w}] (int64) → image [B, C, ${h * f1}, ${w * f1}] in [-1, 1]`,
    ],
  };
  return { files, manifestName: 'transformer.json', manifest };
}
