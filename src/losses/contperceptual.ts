// latent-diffusion's LPIPSWithDiscriminator (ldm/modules/losses/contperceptual.py) as a graph,
// for training KL autoencoders: a Laplace negative log-likelihood with a fixed log-variance,
//   nll = Σ_pixels ((|x − x̂| + w_p · LPIPS(x, x̂)) / e^logvar + logvar) / B,
// the posterior's KL to N(0, I) summed over latents / B times kl_weight, and the same PatchGAN,
// adaptive weight and disc_factor as taming's VQ loss (patchGanTerms in vqperceptual.ts,
// which ldm itself imports from taming) — generator and discriminator from ONE forward.
import type { Tensor } from '../graph/ir.ts';
import * as o from '../ops/core.ts';
import { scoped } from '../graph/trace.ts';
import { ParamView, type TensorTree } from '../nn/params.ts';
import { klDivergence, klForward } from '../models/autoencoder_kl/autoencoder.ts';
import type { KLConfig } from '../models/autoencoder_kl/config.ts';
import type { LossOutput } from '../train/step.ts';
import { patchGanTerms, type GANLossConfig } from './vqperceptual.ts';

export interface KLLossConfig extends GANLossConfig {
  kl_weight: number;
  /**
   * The output log-variance. ldm makes it an nn.Parameter (logvar_init) but leaves it out of
   * both optimizers, so it stays at its initial value: here it is that constant.
   */
  logvar_init: number;
  /** LPIPS weight (needs LPIPS weights; 0 = off). */
  perceptual_weight: number;
}

/** LPIPSWithDiscriminator's defaults (disc_start has none there; taming's 10000 here). */
export const LDM_KL_LOSS: KLLossConfig = {
  kl_weight: 1,
  logvar_init: 0,
  perceptual_weight: 1,
  disc_start: 10000,
  disc_weight: 1,
  disc_factor: 1,
  disc_loss: 'hinge',
  adaptive_delta: 1e-4,
  disc: { in_channels: 3, ndf: 64, n_layers: 3, actnorm: false },
};

export interface KLStepOptions {
  model: KLConfig;
  loss: KLLossConfig;
  /** Include the discriminator (after disc_start); false = autoencoder-only warm-up. */
  withDisc: boolean;
  /** Optional perceptual distance d(x, x̂) → [B] or [B,1,1,1] (LPIPS). */
  perceptual?: (x: Tensor, y: Tensor) => Tensor;
  /** false: decode the posterior's mean (no `eps` in the batch). Default true, as ldm trains. */
  sample?: boolean;
}

/** ldm's nll and the per-pixel rec_loss map (|x − x̂| + w_p · P broadcast per image). */
export function klNll(lc: KLLossConfig, x: Tensor, xrec: Tensor, perceptual?: (x: Tensor, y: Tensor) => Tensor): { nll: Tensor; recMap: Tensor } {
  return scoped('loss.nll', () => {
    const B = x.shape[0]!;
    let recMap = o.abs(o.sub(x, xrec));
    if (perceptual && lc.perceptual_weight > 0) {
      // LPIPS gives one distance per image ([B,1,1,1]); ldm adds it to every pixel of that image
      const d = o.reshape(perceptual(x, xrec), [B, 1, 1, 1]);
      recMap = o.add(recMap, o.mul(d, lc.perceptual_weight));
    }
    const lv = lc.logvar_init;
    const nll = o.div(o.sum(o.add(o.mul(recMap, Math.exp(-lv)), lv)), B);
    return { nll, recMap };
  });
}

/**
 * Loss function for Trainer programs. Batch: `x` [B,3,H,W], `eps` [B,E,h,w] (the posterior's
 * noise, unless sample is false); with the discriminator also `disc_factor` (scalar, 0 before
 * disc_start). Groups: 'ae' (encoder, decoder, quant convs) and 'disc'.
 * Metrics: nll, kl, rec_loss (mean of the rec map), and with D g_loss, d_weight (λ), disc_loss,
 * logits_real, logits_fake.
 */
export function klLoss(opts: KLStepOptions) {
  const lc = opts.loss;
  const sample = opts.sample ?? true;
  return (params: TensorTree, batch: Record<string, Tensor>, buffers: TensorTree): LossOutput => {
    const p = new ParamView({ ...buffers, ...params });
    const x = batch.x!;
    if (sample && !batch.eps) throw new Error('KL training step: the batch needs eps (the posterior noise) when sampling');
    const f = klForward(p, opts.model, x, sample ? batch.eps : undefined);
    const xrec = f.xrec;
    const { nll, recMap } = klNll(lc, x, xrec, opts.perceptual);
    const B = x.shape[0]!;
    const kl = scoped('loss.kl', () => o.div(o.sum(klDivergence(f.posterior)), B));
    const klTerm = o.mul(kl, lc.kl_weight);
    const metrics: Record<string, Tensor> = { nll, kl, rec_loss: o.mean(recMap) };
    if (!opts.withDisc) return { losses: { ae: o.add(nll, klTerm) }, metrics };
    const gan = patchGanTerms(p, lc, x, xrec, nll, batch.disc_factor!, buffers);
    const aeLoss = o.add(o.add(nll, klTerm), o.mul(gan.gw, gan.gLoss));
    const { lambda, d_loss, ...rest } = gan.metrics;
    return {
      losses: { ae: aeLoss, disc: gan.dLoss },
      // ∂aeLoss/∂θ = backprop of (∂nll/∂x̂ + λ·df·∂g_loss/∂x̂) through x̂, plus the KL term's
      backward: { ae: { outputs: [xrec, klTerm], seeds: [gan.xrecSeed, o.constant(1)] } },
      buffers: gan.buffers,
      metrics: { ...metrics, ...rest, d_weight: lambda!, disc_loss: d_loss! },
    };
  };
}
