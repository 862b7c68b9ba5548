// taming's VQLPIPSWithDiscriminator as a graph: reconstruction (L1 or L2) [+ LPIPS],
// codebook loss, PatchGAN generator loss weighted by the adaptive λ on the decoder's last
// layer, and the discriminator's hinge/vanilla loss — from ONE forward pass of G and D.
import type { Tensor } from '../graph/ir.ts';
import * as o from '../ops/core.ts';
import { grad } from '../autodiff/grad.ts';
import { scoped } from '../graph/trace.ts';
import { ParamView, type TensorTree } from '../nn/params.ts';
import { discriminator, type DiscConfig } from '../models/discriminator.ts';
import { vqForward } from '../models/vqgan/vqmodel.ts';
import type { VQConfig } from '../models/vqgan/config.ts';
import type { LossOutput } from '../train/step.ts';

/** The PatchGAN part shared by taming's VQ loss and latent-diffusion's KL loss (contperceptual.ts). */
export interface GANLossConfig {
  disc_start: number;
  disc_weight: number;
  disc_factor: number;
  disc_loss: 'hinge' | 'vanilla';
  /** δ in λ = ‖∇L_rec‖ / (‖∇L_GAN‖ + δ): 1e-6 in the paper, 1e-4 in taming's and ldm's code. */
  adaptive_delta: number;
  disc: DiscConfig;
}

export interface VQLossConfig extends GANLossConfig {
  rec_loss: 'l1' | 'l2';
  codebook_weight: number;
  /** LPIPS weight (needs LPIPS weights; 0 = off). */
  perceptual_weight: number;
}

/** taming's VQLPIPSWithDiscriminator defaults (its code's δ = 1e-4). */
export const TAMING_LOSS: VQLossConfig = {
  rec_loss: 'l1',
  codebook_weight: 1,
  perceptual_weight: 0,
  disc_start: 10000,
  disc_weight: 0.8,
  disc_factor: 1,
  disc_loss: 'hinge',
  adaptive_delta: 1e-4,
  disc: { in_channels: 3, ndf: 64, n_layers: 3, actnorm: false },
};

export function discLoss(kind: 'hinge' | 'vanilla', real: Tensor, fake: Tensor): Tensor {
  if (kind === 'hinge') return o.mul(o.add(o.mean(o.relu(o.sub(1, real))), o.mean(o.relu(o.add(fake, 1)))), 0.5);
  return o.mul(o.add(o.mean(o.softplus(o.neg(real))), o.mean(o.softplus(fake))), 0.5);
}

const norm2 = (t: Tensor) => o.sqrt(o.sum(o.square(t)));

export interface GanTerms {
  /** −mean D(x̂) */
  gLoss: Tensor;
  /** adaptive weight clamp(‖∇_W rec‖ / (‖∇_W g_loss‖ + δ), 0, 1e4) · disc_weight, no gradient */
  lambda: Tensor;
  /** λ · disc_factor: the generator loss is rec + gw · g_loss */
  gw: Tensor;
  /** disc_factor · hinge/vanilla loss of D on (x, x̂) */
  dLoss: Tensor;
  /** ∂(rec + gw · g_loss)/∂x̂: the cotangent to backprop through the generator */
  xrecSeed: Tensor;
  /** BatchNorm running statistics after D(x) then D(x̂) */
  buffers: TensorTree;
  /** g_loss, d_loss, lambda, logits_real, logits_fake (means) */
  metrics: Record<string, Tensor>;
}

/**
 * The PatchGAN terms of taming's and ldm's losses from ONE forward of D on the real then the
 * reconstructed batch (BatchNorm running stats chain in that order): g_loss, the adaptive
 * weight on the decoder's last layer (`lastLayer`), D's loss, and the generator's cotangent
 * at x̂ — one D backward gives ∂g_loss/∂x̂, which both λ and the generator's gradient reuse.
 * `rec` is the reconstruction term the weight balances (taming's rec loss, ldm's nll);
 * `df` the disc_factor scalar (adopt_weight: 0 before disc_start).
 */
export function patchGanTerms(p: ParamView, lc: GANLossConfig, x: Tensor, xrec: Tensor, rec: Tensor, df: Tensor, buffers: TensorTree, lastLayer = 'decoder.conv_out.weight'): GanTerms {
  const dp = p.sub('loss.discriminator');
  const real = scoped('disc.real', () => discriminator(dp, lc.disc, x, true, buffers));
  const fake = scoped('disc.fake', () => discriminator(dp, lc.disc, xrec, true, { ...buffers, ...real.buffers }));
  const gLoss = o.neg(o.mean(fake.logits));
  const [ctG] = scoped('loss.ctG', () => grad(gLoss, [xrec]));
  const [ctN] = scoped('loss.ctN', () => grad(rec, [xrec]));
  const lastW = p.get(lastLayer);
  const [gN] = grad(xrec, [lastW], [ctN!]);
  const [gG] = grad(xrec, [lastW], [ctG!]);
  let lambda = o.div(norm2(gN!), o.add(norm2(gG!), lc.adaptive_delta));
  lambda = o.stopGradient(o.mul(o.minimum(o.maximum(lambda, 0), 1e4), lc.disc_weight));
  const gw = o.mul(lambda, df);
  const dLoss = o.mul(df, discLoss(lc.disc_loss, real.logits, fake.logits));
  return {
    gLoss,
    lambda,
    gw,
    dLoss,
    xrecSeed: o.add(ctN!, o.mul(ctG!, gw)),
    buffers: fake.buffers,
    metrics: { g_loss: gLoss, d_loss: dLoss, lambda, logits_real: o.mean(real.logits), logits_fake: o.mean(fake.logits) },
  };
}

export interface VQGANStepOptions {
  model: VQConfig;
  loss: VQLossConfig;
  /** Include the discriminator (after disc_start); false = autoencoder-only warm-up. */
  withDisc: boolean;
  /** Optional perceptual distance d(x, x̂) → [B] (LPIPS). */
  perceptual?: (x: Tensor, y: Tensor) => Tensor;
}

/**
 * Loss function for Trainer programs. Batch: `x` [B,3,H,W]; with the discriminator also
 * `disc_factor` (scalar, 0 before disc_start). Groups: 'ae' and 'disc'.
 */
export function vqganLoss(opts: VQGANStepOptions) {
  const lc = opts.loss;
  return (params: TensorTree, batch: Record<string, Tensor>, buffers: TensorTree): LossOutput => {
    // buffers hold the EMA codebook when the quantizer is EMA-trained
    const p = new ParamView({ ...buffers, ...params });
    const x = batch.x!;
    const f = vqForward(p, opts.model, x, undefined, true);
    const ema: TensorTree = Object.fromEntries(Object.entries(f.emaUpdate ?? {}).map(([k, v]) => [`quantize.${k}`, v]));
    const xrec = f.xrec;
    const rec = scoped('loss.rec', () => {
      const d = o.sub(x, xrec);
      let r = lc.rec_loss === 'l1' ? o.mean(o.abs(d)) : o.mean(o.square(d));
      if (opts.perceptual && lc.perceptual_weight > 0) r = o.add(r, o.mul(o.mean(opts.perceptual(x, xrec)), lc.perceptual_weight));
      return r;
    });
    const qloss = o.mul(f.loss, lc.codebook_weight);
    const metrics: Record<string, Tensor> = { rec, qloss: f.loss, indices: f.indices, h: f.h };
    if (!opts.withDisc) {
      return { losses: { ae: o.add(rec, qloss) }, metrics, buffers: ema };
    }
    const gan = patchGanTerms(p, lc, x, xrec, rec, batch.disc_factor!, buffers);
    const aeLoss = o.add(o.add(rec, o.mul(gan.gw, gan.gLoss)), qloss);
    return {
      losses: { ae: aeLoss, disc: gan.dLoss },
      // ∂aeLoss/∂θ_G = backprop of (ctN + λ·df·ctG) through x̂, plus the codebook term
      backward: { ae: { outputs: [xrec, qloss], seeds: [gan.xrecSeed, o.constant(1)] } },
      buffers: { ...gan.buffers, ...ema },
      metrics: { ...metrics, ...gan.metrics },
    };
  };
}
