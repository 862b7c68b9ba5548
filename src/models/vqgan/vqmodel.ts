// taming's VQModel: encoder → quant_conv → quantize → post_quant_conv → decoder, as graph
// functions over state-dict-keyed parameters, plus parameter shapes and initialization.
import type { Tensor } from '../../graph/ir.ts';
import { scoped } from '../../graph/trace.ts';
import { InitRng, ParamView, initConv, shapesOf, uniformTensor, type ShapeTree, type StateDict } from '../../nn/params.ts';
import { downFactor, type VQConfig } from './config.ts';
import { conv, decoder, encoder, initDecoder, initEncoder } from './modules.ts';
import { embedCode, quantize, type QuantizeResult, type QuantizerOptions } from './quantize.ts';

/** Training-only: EMA quantizer options (inference uses the stored codes as they are). */
export function quantizerOptions(cfg: VQConfig, used?: BigInt64Array, training = false): QuantizerOptions {
  return {
    ema: training && cfg.ema_decay ? { decay: cfg.ema_decay, eps: 1e-5 } : undefined, beta: cfg.beta ?? 0.25, legacy: cfg.legacy ?? true, used, unknownIndex: cfg.unknown_index ?? 'random', l2: cfg.l2_codes ?? false };
}

/** PyTorch-default initialization of a VQModel (rng = null gives zeros, for shapes). */
export function initVQModel(cfg: VQConfig, rng: InitRng | null): StateDict {
  const dd = cfg.ddconfig;
  const sd: StateDict = new Map();
  initEncoder(sd, rng, 'encoder', dd);
  initDecoder(sd, rng, 'decoder', dd);
  sd.set('quantize.embedding.weight', uniformTensor(rng, [cfg.n_embed, cfg.embed_dim], 1 / cfg.n_embed));
  initConv(sd, rng, 'quant_conv', cfg.embed_dim, dd.z_channels, 1, 1);
  initConv(sd, rng, 'post_quant_conv', dd.z_channels, cfg.embed_dim, 1, 1);
  return sd;
}

export const vqShapes = (cfg: VQConfig): ShapeTree => shapesOf(initVQModel(cfg, null));

/** Extra EMA-quantizer buffers (training with ema_decay): running cluster sizes and sums. */
export function emaBufferShapes(cfg: VQConfig): ShapeTree {
  return { 'quantize.embedding.cluster_size': [cfg.n_embed], 'quantize.embedding.embed_avg': [cfg.n_embed, cfg.embed_dim] };
}

export function checkInputSize(cfg: VQConfig, h: number, w: number): void {
  const f = downFactor(cfg);
  if (h % f !== 0 || w % f !== 0) {
    throw new Error(`image size ${w}×${h} is not a multiple of the model's downsampling factor ${f}`);
  }
}

/** x [B,3,H,W] in [−1,1] → pre-quantization latents h = quant_conv(encoder(x)). */
export function encodeLatents(p: ParamView, cfg: VQConfig, x: Tensor): Tensor {
  checkInputSize(cfg, x.shape[2]!, x.shape[3]!);
  const h = encoder(p.sub('encoder'), cfg.ddconfig, x);
  return scoped('quant_conv', () => conv(p.sub('quant_conv'), h));
}

export interface EncodeResult extends QuantizeResult {
  h: Tensor;
}

export function encode(p: ParamView, cfg: VQConfig, x: Tensor, used?: BigInt64Array, training = false): EncodeResult {
  const h = encodeLatents(p, cfg, x);
  const q = scoped('quantize', () => quantize(p.sub('quantize'), h, quantizerOptions(cfg, used, training)));
  return { ...q, h };
}

/** Quantized latents [B, embed_dim, h, w] → image [B, out_ch, H, W]. */
export function decode(p: ParamView, cfg: VQConfig, zq: Tensor): Tensor {
  const z = scoped('post_quant_conv', () => conv(p.sub('post_quant_conv'), zq));
  return decoder(p.sub('decoder'), cfg.ddconfig, z);
}

/** Code indices [B, h, w] → image. */
export function decodeCode(p: ParamView, cfg: VQConfig, indices: Tensor, used?: BigInt64Array): Tensor {
  return decode(p, cfg, embedCode(p.sub('quantize'), indices, used, cfg.l2_codes ?? false));
}

/** Full forward: reconstruction, codebook loss, indices. */
export function vqForward(p: ParamView, cfg: VQConfig, x: Tensor, used?: BigInt64Array, training = false): EncodeResult & { xrec: Tensor } {
  const e = encode(p, cfg, x, used, training);
  return { ...e, xrec: decode(p, cfg, e.zq) };
}

