// latent-diffusion's AutoencoderKL as graph functions over ldm-keyed parameters:
// encoder (double_z) → quant_conv → diagonal Gaussian posterior; post_quant_conv → decoder.
// The Encoder/Decoder are the VQGAN's (models/vqgan/modules.ts); SD3/FLUX omit the quant convs.
import type { Tensor } from '../../graph/ir.ts';
import { scoped } from '../../graph/trace.ts';
import * as o from '../../ops/core.ts';
import { ParamView, initConv, shapesOf, type InitRng, type ShapeTree, type StateDict } from '../../nn/params.ts';
import { conv, decoder, encoder, initDecoder, initEncoder } from '../vqgan/modules.ts';
import { klFactor, type KLConfig } from './config.ts';

/** PyTorch-default initialization (rng = null gives zeros, for shapes). */
export function initAutoencoderKL(cfg: KLConfig, rng: InitRng | null): StateDict {
  const dd = cfg.ddconfig;
  const sd: StateDict = new Map();
  initEncoder(sd, rng, 'encoder', dd);
  initDecoder(sd, rng, 'decoder', dd);
  if (cfg.use_quant_conv) initConv(sd, rng, 'quant_conv', 2 * cfg.embed_dim, 2 * dd.z_channels, 1, 1);
  if (cfg.use_post_quant_conv) initConv(sd, rng, 'post_quant_conv', dd.z_channels, cfg.embed_dim, 1, 1);
  return sd;
}

export const klShapes = (cfg: KLConfig): ShapeTree => shapesOf(initAutoencoderKL(cfg, null));

export interface Posterior {
  /** [B, E, h, w] */
  mean: Tensor;
  /** log-variance clamped to [−30, 20], [B, E, h, w] */
  logvar: Tensor;
}

/** x [B, C, H, W] in [−1, 1] → posterior parameters: moments = quant_conv(encoder(x)) split in halves. */
export function encodePosterior(p: ParamView, cfg: KLConfig, x: Tensor): Posterior {
  const f = klFactor(cfg);
  if (x.shape[2]! % f || x.shape[3]! % f) throw new Error(`image size ${x.shape[3]}×${x.shape[2]} is not a multiple of the model's downsampling factor ${f}`);
  const h = encoder(p.sub('encoder'), cfg.ddconfig, x);
  const moments = cfg.use_quant_conv ? scoped('quant_conv', () => conv(p.sub('quant_conv'), h)) : h; // [B, 2E, h, w]
  return posteriorFromMoments(cfg, moments);
}

/** moments [B, 2E, h, w] → mean (first half) and log-variance (second half, clamped to [−30, 20]). */
export function posteriorFromMoments(cfg: KLConfig, moments: Tensor): Posterior {
  const e = cfg.embed_dim;
  return { mean: o.narrow(moments, 1, 0, e), logvar: o.minimum(o.maximum(o.narrow(moments, 1, e, 2 * e), -30), 20) };
}

/** Reparameterised sample: mean + exp(logvar / 2) · eps, eps ~ N(0, 1) given as an input. */
export const samplePosterior = (q: Posterior, eps: Tensor): Tensor => o.add(q.mean, o.mul(o.exp(o.mul(q.logvar, 0.5)), eps));

/** KL(q ‖ N(0, I)) per batch item: ½ Σ (mean² + var − 1 − logvar) over [C, h, w]. */
export const klDivergence = (q: Posterior): Tensor =>
  o.mul(o.sum(o.sub(o.sub(o.add(o.square(q.mean), o.exp(q.logvar)), 1), q.logvar), [1, 2, 3]), 0.5);

/** Unscaled latents z [B, E, h, w] → image [B, out_ch, H, W]. */
export function decodeLatents(p: ParamView, cfg: KLConfig, z: Tensor): Tensor {
  const h = cfg.use_post_quant_conv ? scoped('post_quant_conv', () => conv(p.sub('post_quant_conv'), z)) : z;
  return decoder(p.sub('decoder'), cfg.ddconfig, h);
}

/** One training forward: posterior, its sample (or mean when eps is absent), the reconstruction. */
export interface KLForward {
  posterior: Posterior;
  /** the latents decoded: mean + std · eps, or the mean */
  z: Tensor;
  /** [B, out_ch, H, W] */
  xrec: Tensor;
}

/**
 * ldm's AutoencoderKL.forward(x, sample_posterior): encoder → posterior → sample → decoder.
 * The noise eps [B, E, h, w] is an input (reparameterisation), so a step is a deterministic
 * function of (θ, x, eps); without eps the posterior's mode is decoded.
 */
export function klForward(p: ParamView, cfg: KLConfig, x: Tensor, eps?: Tensor): KLForward {
  const posterior = encodePosterior(p, cfg, x);
  if (eps && (eps.shape.length !== posterior.mean.shape.length || eps.shape.some((d, i) => d !== posterior.mean.shape[i]))) {
    throw new Error(`posterior noise eps has shape [${eps.shape.join(', ')}], expected [${posterior.mean.shape.join(', ')}]`);
  }
  const z = eps ? samplePosterior(posterior, eps) : posterior.mean;
  return { posterior, z, xrec: decodeLatents(p, cfg, z) };
}
