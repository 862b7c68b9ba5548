// KL-autoencoder training configs: latent-diffusion's YAML layout (model.target
// ldm.models.autoencoder.AutoencoderKL, model.params.{embed_dim, ddconfig, lossconfig.params}
// with LPIPSWithDiscriminator's parameters, data.params.batch_size) plus the same `latentkit:`
// run section as the VQGAN configs (config.ts).
import { parseKLConfig, type KLConfig } from '../models/autoencoder_kl/config.ts';
import { readConfigFile } from '../models/vqgan/config.ts';
import { LDM_KL_LOSS, type KLLossConfig } from '../losses/contperceptual.ts';
import { parseRunOptions, type RunOptions } from './config.ts';

export const KL_TARGET = 'ldm.models.autoencoder.AutoencoderKL';
export const KL_LOSS_TARGET = 'ldm.modules.losses.LPIPSWithDiscriminator';

export interface KLTrainConfig {
  kind: 'kl';
  model: KLConfig;
  loss: KLLossConfig;
  run: RunOptions;
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

export const KL_PRESETS: Record<string, unknown> = { 'tiny-kl': TINY_KL_PRESET };

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

/** Build a KLTrainConfig from a parsed ldm-style object (a preset or a YAML/JSON file). */
export function parseKLTrainConfig(obj: any, source = 'config'): KLTrainConfig {
  const mp = obj?.model ?? {};
  const params = { ...(mp.params ?? {}) };
  const lp = params.lossconfig?.params ?? {};
  delete params.lossconfig;
  const model = parseKLConfig({ params }, source);
  const run = parseRunOptions(obj, source);
  const loss = klLossFromLdm(lp, obj?.latentkit ?? {}, source);
  if (loss.disc.in_channels !== model.ddconfig.out_ch) throw new Error(`${source}: disc_in_channels (${loss.disc.in_channels}) must equal ddconfig.out_ch (${model.ddconfig.out_ch})`);
  return { kind: 'kl', model, loss, run };
}

/** A preset name (tiny-kl) or a YAML/JSON file whose model is an AutoencoderKL. */
export function loadKLTrainConfig(spec: string): KLTrainConfig {
  if (KL_PRESETS[spec]) return parseKLTrainConfig(structuredClone(KL_PRESETS[spec]), `preset '${spec}'`);
  const obj = readConfigFile(spec, ` (KL presets: ${Object.keys(KL_PRESETS).join(', ')})`);
  if (!isKLTrainObject(obj)) throw new Error(`${spec}: not an AutoencoderKL config (model.target is not ${KL_TARGET})`);
  return parseKLTrainConfig(obj, spec);
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
  const { embed_dim, ddconfig } = c.model;
  const l = c.loss;
  return {
    model: {
      base_learning_rate: c.run.base_learning_rate,
      target: KL_TARGET,
      params: {
        embed_dim,
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
    latentkit: { ...c.run, adaptive_delta: l.adaptive_delta },
  };
}
