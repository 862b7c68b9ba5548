// KL-autoencoder training configs: latent-diffusion's YAML layout (model.target
// ldm.models.autoencoder.AutoencoderKL, model.params.{embed_dim, ddconfig, lossconfig.params}
// with LPIPSWithDiscriminator's parameters, data.params.batch_size) plus the same `latentkit:`
// run section as the VQGAN configs (config.ts).
import { parseKLConfig, type KLConfig, type LatentScaling } from '../models/autoencoder_kl/config.ts';
import { readConfigFile } from '../models/vqgan/config.ts';
import { LDM_KL_LOSS, type KLLossConfig } from '../losses/contperceptual.ts';
import { parseRunOptions, type RunOptions } from './config.ts';

export const KL_TARGET = 'ldm.models.autoencoder.AutoencoderKL';
export const KL_LOSS_TARGET = 'ldm.modules.losses.LPIPSWithDiscriminator';

/** Which weights train: 'all' (encoder, decoder, quant convs) or 'decoder' (decoder + post_quant_conv; encoder and quant_conv frozen). */
export type KLTrainPart = 'all' | 'decoder';
export const KL_TRAIN_PARTS: readonly KLTrainPart[] = ['all', 'decoder'];

export interface KLTrainConfig {
  kind: 'kl';
  model: KLConfig;
  loss: KLLossConfig;
  run: RunOptions;
  /** 'decoder' keeps the latent space: the encoder and quant_conv get no optimizer at all. */
  train: KLTrainPart;
  /** the VAE the run started from (recorded in config.yaml; null = random initialization) */
  init: string | null;
}

/** A loaded VAE to start from (an AutoencoderKL is one): its architecture and latent scaling carry over. */
export interface KLInitModel {
  config: KLConfig;
  scaling: LatentScaling;
  source: string;
}

/**
 * A tiny KL config for smoke runs and tests (f2, 4 latent channels, 32×32 emoji): L1 nll
 * (no LPIPS), ldm's kl_weight 1e-6, a light discriminator from 75% of the steps.
 */
export const TINY_KL_PRESET = {
  model: {
    base_learning_rate: 4.5e-6,
    target: KL_TARGET,
    params: {
      embed_dim: 4,
      ddconfig: { double_z: true, z_channels: 4, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
      lossconfig: {
        target: KL_LOSS_TARGET,
        params: { disc_start: 45, kl_weight: 1e-6, logvar_init: 0.0, disc_weight: 0.5, perceptual_weight: 0.0, disc_num_layers: 1, disc_ndf: 16, disc_loss: 'hinge' },
      },
    },
  },
  data: { params: { batch_size: 8 } },
  latentkit: { data: 'emoji', size: 32, max_steps: 60, lr: 1e-3, lr_schedule: 'cosine', log_every: 10, image_every: 30, ckpt_every: 30 },
};

/**
 * The emoji KL preset (`models/emoji-kl-f4`): the emoji VQGAN's architecture (f4: 64×64 →
 * 16×16, ch 32, ch_mult 1-2-4, one res block per level) with a Gaussian posterior of 4 latent
 * channels (SD's count) instead of a codebook; batch 16, L1 nll without LPIPS, ldm's kl_weight
 * 1e-6. No discriminator phase (disc_start after the last step): on a 2-core machine an hour
 * holds about 2,700 steps, and reconstruction PSNR — what this model is for — only loses from
 * a PatchGAN (the VQ run's λ stayed ≈ 0.003 anyway). Without a GAN the optimizer is plain Adam
 * (β 0.9, 0.999) rather than taming's GAN setting (0.5, 0.9), at 1e-3 with cosine decay: in
 * 300-step pilots its L1 was 12–22% below the GAN setting's at 6e-4 at the same steps, and 2e-3
 * was no better than 1e-3 (models/emoji-kl-f4/README.md).
 */
export const EMOJI_KL_PRESET = {
  model: {
    base_learning_rate: 4.5e-6,
    target: KL_TARGET,
    params: {
      embed_dim: 4,
      ddconfig: { double_z: true, z_channels: 4, resolution: 64, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2, 4], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
      lossconfig: {
        target: KL_LOSS_TARGET,
        params: { disc_start: 2701, kl_weight: 1e-6, logvar_init: 0.0, disc_weight: 0.1, perceptual_weight: 0.0, disc_num_layers: 2, disc_ndf: 32, disc_loss: 'hinge' },
      },
    },
  },
  data: { params: { batch_size: 16 } },
  latentkit: { data: 'emoji', size: 64, max_steps: 2700, lr: 1e-3, beta1: 0.9, beta2: 0.999, lr_schedule: 'cosine', warmup_steps: 100, min_lr_ratio: 0.05, adaptive_delta: 1e-6 },
};

/**
 * Fine-tuning a given VAE (`train-ae --init VAE`, usually with `--train decoder`, as SD's
 * ft-EMA / ft-MSE decoders were made): no model section — the architecture and latent scaling
 * come from the VAE. Loss: latent-diffusion's kl-f8 values (kl_weight 1e-6, disc_weight 0.5,
 * ldm's PatchGAN: 3 layers, 64 filters); L1 only by default so it runs without LPIPS weights
 * (ft-EMA used L1 + LPIPS: add --perceptual-weight 1 --lpips-vgg …). The discriminator starts
 * halfway: the VAE files people have carry no discriminator, and ldm's D only learns from
 * disc_start, so a D from step 0 would push an untrained critic's gradient (at half the
 * reconstruction gradient's norm, the adaptive weight) into a decoder that is already good;
 * the first half adapts it to the new images with the reconstruction loss alone.
 * Learning rate 2.5e-6 × batch (1e-5 at batch 4) with a 100-step warm-up and cosine decay:
 * a fine-tune on a few hundred images at ldm's from-scratch rate (4.5e-6 × batch × GPUs)
 * would overwrite more than it adapts. 256² images as SD's fine-tunes.
 */
export const KL_FINETUNE_PRESET = {
  model: {
    base_learning_rate: 2.5e-6,
    target: KL_TARGET,
    params: {
      lossconfig: {
        target: KL_LOSS_TARGET,
        params: { disc_start: 1000, kl_weight: 1e-6, logvar_init: 0.0, disc_weight: 0.5, perceptual_weight: 0.0, disc_num_layers: 3, disc_ndf: 64, disc_loss: 'hinge' },
      },
    },
  },
  data: { params: { batch_size: 4 } },
  latentkit: { size: 256, max_steps: 2000, lr_schedule: 'cosine', warmup_steps: 100, min_lr_ratio: 0.1, log_every: 25, image_every: 250, ckpt_every: 250 },
};

export const KL_PRESETS: Record<string, unknown> = { 'emoji-kl': EMOJI_KL_PRESET, 'tiny-kl': TINY_KL_PRESET, 'kl-finetune': KL_FINETUNE_PRESET };

/** Does this parsed config describe a KL autoencoder (ldm's AutoencoderKL) rather than a VQGAN? */
export function isKLTrainObject(obj: any): boolean {
  const m = obj?.model ?? obj;
  if (typeof m?.target === 'string') return m.target === KL_TARGET || /AutoencoderKL$/.test(m.target);
  const p = m?.params ?? m;
  return p?.ddconfig?.double_z === true && p?.n_embed === undefined;
}

function num(v: unknown, key: string, source: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${source}: lossconfig.params.${key} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** LPIPSWithDiscriminator's parameters (ldm names; disc_ndf is taming's, default 64 as ldm). */
export function klLossFromLdm(lp: Record<string, any>, lk: Record<string, any>, source = 'config'): KLLossConfig {
  if (lp.disc_conditional) throw new Error(`${source}: disc_conditional is not supported`);
  const d = LDM_KL_LOSS;
  const discLoss = lp.disc_loss ?? 'hinge';
  if (discLoss !== 'hinge' && discLoss !== 'vanilla') throw new Error(`${source}: lossconfig.params.disc_loss must be 'hinge' or 'vanilla', got ${JSON.stringify(discLoss)}`);
  if (lp.pixelloss_weight !== undefined && lp.pixelloss_weight !== 1) throw new Error(`${source}: pixelloss_weight ${lp.pixelloss_weight} has no effect in latent-diffusion's loss (it is never used); remove it`);
  return {
    kl_weight: num(lp.kl_weight, 'kl_weight', source, d.kl_weight),
    logvar_init: num(lp.logvar_init, 'logvar_init', source, d.logvar_init),
    perceptual_weight: num(lp.perceptual_weight, 'perceptual_weight', source, d.perceptual_weight),
    disc_start: num(lp.disc_start, 'disc_start', source, d.disc_start),
    disc_weight: num(lp.disc_weight, 'disc_weight', source, d.disc_weight),
    disc_factor: num(lp.disc_factor, 'disc_factor', source, d.disc_factor),
    disc_loss: discLoss,
    adaptive_delta: num(lk.adaptive_delta, 'adaptive_delta', source, d.adaptive_delta),
    disc: {
      in_channels: num(lp.disc_in_channels, 'disc_in_channels', source, 3),
      ndf: num(lp.disc_ndf, 'disc_ndf', source, 64),
      n_layers: num(lp.disc_num_layers, 'disc_num_layers', source, 3),
      actnorm: lp.use_actnorm ?? false,
    },
  };
}

/** The model config a run from `init` trains: its architecture, with its latent scaling written in. */
export function modelFromInit(init: KLInitModel): KLConfig {
  const { embed_dim, ddconfig, use_quant_conv, use_post_quant_conv } = init.config;
  const { scale, shift } = init.scaling;
  return { embed_dim, ddconfig: structuredClone(ddconfig), use_quant_conv, use_post_quant_conv, scaling_factor: scale, ...(shift ? { shift_factor: shift } : {}) };
}

/**
 * Build a KLTrainConfig from a parsed ldm-style object (a preset or a YAML/JSON file). With
 * `init`, the model is the given VAE's (any model section of the object is not used).
 */
export function parseKLTrainConfig(obj: any, source = 'config', init?: KLInitModel): KLTrainConfig {
  const mp = obj?.model ?? {};
  const params = { ...(mp.params ?? {}) };
  const lp = params.lossconfig?.params ?? {};
  delete params.lossconfig;
  if (!init && !params.ddconfig) throw new Error(`${source} has no model (model.params.ddconfig): it fine-tunes a given VAE — pass --init VAE`);
  const model = init ? modelFromInit(init) : parseKLConfig({ params }, source);
  const run = parseRunOptions(obj, source);
  // the run section's train / init are this config's own fields, not run options
  for (const k of ['train', 'init']) delete (run as unknown as Record<string, unknown>)[k];
  const loss = klLossFromLdm(lp, obj?.latentkit ?? {}, source);
  if (loss.disc.in_channels !== model.ddconfig.out_ch) throw new Error(`${source}: disc_in_channels (${loss.disc.in_channels}) must equal ddconfig.out_ch (${model.ddconfig.out_ch})${init ? ` of ${init.source}` : ''}`);
  const train = obj?.latentkit?.train ?? 'all';
  if (!KL_TRAIN_PARTS.includes(train)) throw new Error(`${source}: latentkit.train must be ${KL_TRAIN_PARTS.join(' or ')}, got ${JSON.stringify(train)}`);
  return { kind: 'kl', model, loss, run, train, init: init ? init.source : null };
}

/** A preset name (tiny-kl, kl-finetune) or a YAML/JSON file whose model is an AutoencoderKL; `init`: start from that VAE. */
export function loadKLTrainConfig(spec: string, init?: KLInitModel): KLTrainConfig {
  if (KL_PRESETS[spec]) return parseKLTrainConfig(structuredClone(KL_PRESETS[spec]), `preset '${spec}'`, init);
  const obj = readConfigFile(spec, ` (KL presets: ${Object.keys(KL_PRESETS).join(', ')})`);
  if (!isKLTrainObject(obj)) throw new Error(`${spec}: not an AutoencoderKL config (model.target is not ${KL_TARGET})`);
  return parseKLTrainConfig(obj, spec, init);
}

/** Is `spec` (preset name or file) a KL training config? For train-ae's dispatch. */
export function isKLTrainSpec(spec: string): boolean {
  if (KL_PRESETS[spec]) return true;
  try {
    return isKLTrainObject(readConfigFile(spec, ''));
  } catch {
    return false;
  }
}

/** Back to latent-diffusion's layout (written into each run directory and checkpoint). */
export function toLdmObject(c: KLTrainConfig): Record<string, unknown> {
  const { embed_dim, ddconfig, use_quant_conv, use_post_quant_conv, scaling_factor, shift_factor } = c.model;
  const l = c.loss;
  return {
    model: {
      base_learning_rate: c.run.base_learning_rate,
      target: KL_TARGET,
      params: {
        embed_dim,
        // latentkit keys (ldm's AutoencoderKL has no such arguments; written only when they
        // say something: the latent scaling a fine-tune keeps, SD3/FLUX-style missing convs)
        ...(scaling_factor !== undefined ? { scaling_factor } : {}),
        ...(shift_factor !== undefined ? { shift_factor } : {}),
        ...(use_quant_conv === false ? { use_quant_conv } : {}),
        ...(use_post_quant_conv === false ? { use_post_quant_conv } : {}),
        ddconfig,
        lossconfig: {
          target: KL_LOSS_TARGET,
          params: {
            disc_start: l.disc_start,
            kl_weight: l.kl_weight,
            logvar_init: l.logvar_init,
            perceptual_weight: l.perceptual_weight,
            disc_weight: l.disc_weight,
            disc_factor: l.disc_factor,
            disc_loss: l.disc_loss,
            disc_in_channels: l.disc.in_channels,
            disc_num_layers: l.disc.n_layers,
            disc_ndf: l.disc.ndf,
            use_actnorm: l.disc.actnorm,
          },
        },
      },
    },
    data: { params: { batch_size: c.run.batch_size } },
    latentkit: { ...c.run, adaptive_delta: l.adaptive_delta, train: c.train, ...(c.init ? { init: c.init } : {}) },
  };
}
