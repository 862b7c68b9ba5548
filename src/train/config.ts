// Training configs: taming's YAML layout (model.base_learning_rate, model.params.{embed_dim,
// n_embed, ddconfig, lossconfig.params}, data.params.batch_size) plus a `latentkit:` section
// for what taming's YAML does not say (data source, steps, logging, δ, codebook options).
import { parseVQConfig, readConfigFile, type VQConfig } from '../models/vqgan/config.ts';
import { TAMING_LOSS, type VQLossConfig } from '../losses/vqperceptual.ts';
import { CODEBOOK_OFF, type CodebookOptions } from './codebook.ts';
import { scheduleFromSpec, type Schedule, type ScheduleSpec } from './schedule.ts';

export interface RunOptions {
  data: string;
  size: number;
  batch_size: number;
  max_steps: number;
  /** Absolute learning rate; default base_learning_rate × batch_size (taming's rule). */
  lr: number | null;
  base_learning_rate: number;
  /**
   * 'constant' (taming) or 'cosine': linear warm-up over `warmup_steps`, then cosine decay
   * to `min_lr_ratio` × lr at `max_steps`.
   */
  lr_schedule: 'constant' | 'cosine';
  warmup_steps: number;
  min_lr_ratio: number;
  beta1: number;
  beta2: number;
  log_every: number;
  image_every: number;
  ckpt_every: number;
  val_fraction: number;
  seed: number;
  flip: boolean | null;
  /** Codebook care beyond taming (all off in the taming layout's defaults). */
  codebook: CodebookOptions;
  /** LPIPS weights for perceptual_weight > 0: torchvision vgg16 state dict + LPIPS heads (vgg.pth). */
  lpips: { vgg: string; lin?: string } | null;
}

export interface TrainConfig {
  model: VQConfig;
  loss: VQLossConfig;
  run: RunOptions;
}

export const RUN_DEFAULTS: RunOptions = {
  data: 'emoji',
  size: 64,
  batch_size: 16,
  max_steps: 5000,
  lr: null,
  base_learning_rate: 4.5e-6,
  lr_schedule: 'constant',
  warmup_steps: 0,
  min_lr_ratio: 0.05,
  beta1: 0.5,
  beta2: 0.9,
  log_every: 25,
  image_every: 500,
  ckpt_every: 500,
  val_fraction: 0.05,
  seed: 0,
  flip: null,
  codebook: CODEBOOK_OFF,
  lpips: null,
};

/**
 * The emoji preset: f4 VQGAN for 64×64 emoji (16×16 codes), 2.8 M parameters, an EMA
 * codebook of 1,024 entries with k-means init and dead-code restarts, cosine learning rate,
 * and a light, late discriminator (from 75% of the steps, disc_weight 0.1) so the
 * adversarial term sharpens without costing the PSNR it cost the first f8 preset (2–3 dB
 * at disc_weight 0.8). Session-2 probes behind the choice are in bench/README.md.
 */
export const EMOJI_PRESET = {
  model: {
    base_learning_rate: 4.5e-6,
    target: 'taming.models.vqgan.VQModel',
    params: {
      embed_dim: 32,
      n_embed: 1024,
      ema_decay: 0.99,
      ddconfig: { double_z: false, z_channels: 64, resolution: 64, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2, 4], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
      lossconfig: {
        target: 'taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator',
        params: { disc_conditional: false, disc_in_channels: 3, disc_start: 2850, disc_weight: 0.1, codebook_weight: 1.0, perceptual_weight: 0.0, disc_num_layers: 2, disc_ndf: 32, disc_loss: 'hinge' },
      },
    },
  },
  data: { params: { batch_size: 16 } },
  latentkit: {
    data: 'emoji',
    size: 64,
    max_steps: 3800,
    lr: 6e-4,
    lr_schedule: 'cosine',
    warmup_steps: 100,
    min_lr_ratio: 0.05,
    rec_loss: 'l1',
    adaptive_delta: 1e-6,
    codebook: { kmeans_init: true, kmeans_steps: 20, restart_dead: true, restart_every: 200, pool: 8192 },
  },
};

/**
 * The sketch preset: a 1-channel f4 VQGAN for the 64×64 sketches of the emoji
 * ('sketch:emoji', io/sketch.ts) — the condition stage of the sketch → emoji transformer.
 * Sketches are binary strokes, so a small model with 512 codes, L1 and no discriminator.
 */
export const SKETCH_PRESET = {
  model: {
    base_learning_rate: 4.5e-6,
    target: 'taming.models.vqgan.VQModel',
    params: {
      embed_dim: 16,
      n_embed: 512,
      ema_decay: 0.99,
      ddconfig: { double_z: false, z_channels: 32, resolution: 64, in_channels: 1, out_ch: 1, ch: 32, ch_mult: [1, 2, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
      lossconfig: {
        target: 'taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator',
        params: { disc_conditional: false, disc_in_channels: 1, disc_start: 1000000, disc_weight: 0.1, codebook_weight: 1.0, perceptual_weight: 0.0, disc_num_layers: 2, disc_ndf: 32, disc_loss: 'hinge' },
      },
    },
  },
  data: { params: { batch_size: 16 } },
  latentkit: {
    data: 'sketch:emoji',
    size: 64,
    max_steps: 2000,
    lr: 6e-4,
    lr_schedule: 'cosine',
    warmup_steps: 100,
    min_lr_ratio: 0.05,
    rec_loss: 'l1',
    adaptive_delta: 1e-6,
    codebook: { kmeans_init: true, kmeans_steps: 20, restart_dead: true, restart_every: 200, pool: 8192 },
  },
};

/**
 * A tiny config for smoke runs, tests and the page's in-browser training (seconds per hundred
 * steps). Like the emoji preset: a light, late discriminator (from 75% of the steps,
 * disc_weight 0.1) and a cosine learning rate, so a short run ends near its best. With
 * disc_weight 0.8 from two thirds of the steps and a constant rate, `--max-steps 100`'s
 * validation PSNR (16 held-out emoji) fell from its 13.7 dB peak to 10.8 dB once the
 * discriminator started; now it ends at 14.0 dB, 0.07 dB under its peak (the 60-step
 * default: 13.9, 0.17 under).
 */
export const TINY_PRESET = {
  model: {
    params: {
      embed_dim: 16,
      n_embed: 64,
      ddconfig: { double_z: false, z_channels: 16, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
      lossconfig: { params: { disc_start: 45, disc_weight: 0.1, codebook_weight: 1.0, disc_num_layers: 1, disc_ndf: 16, disc_loss: 'hinge' } },
    },
  },
  data: { params: { batch_size: 8 } },
  latentkit: { data: 'emoji', size: 32, max_steps: 60, lr: 1e-3, lr_schedule: 'cosine', log_every: 10, image_every: 30, ckpt_every: 30 },
};

/**
 * taming's own training values (VQLPIPSWithDiscriminator defaults, δ = 1e-4 as in its code,
 * lr = base_learning_rate × batch, LPIPS weight 1.0, no codebook extras) on the emoji-sized
 * model. Needs --lpips-vgg/--lpips-lin, or --perceptual-weight 0.
 */
export const TAMING_PRESET = {
  model: {
    base_learning_rate: 4.5e-6,
    target: 'taming.models.vqgan.VQModel',
    params: {
      // the emoji preset's architecture, with taming's plain codebook (no EMA)
      embed_dim: EMOJI_PRESET.model.params.embed_dim,
      n_embed: EMOJI_PRESET.model.params.n_embed,
      ddconfig: EMOJI_PRESET.model.params.ddconfig,
      lossconfig: {
        target: 'taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator',
        params: { disc_conditional: false, disc_in_channels: 3, disc_start: 10000, disc_weight: 0.8, codebook_weight: 1.0, perceptual_weight: 1.0, disc_num_layers: 3, disc_ndf: 64, disc_loss: 'hinge' },
      },
    },
  },
  data: { params: { batch_size: 16 } },
  latentkit: { data: 'emoji', size: 64, max_steps: 20000, rec_loss: 'l1', adaptive_delta: 1e-4 },
};

export const PRESETS: Record<string, unknown> = { emoji: EMOJI_PRESET, sketch: SKETCH_PRESET, tiny: TINY_PRESET, taming: TAMING_PRESET };

function lossFromTaming(lp: Record<string, any>, lk: Record<string, any>): VQLossConfig {
  return {
    rec_loss: lk.rec_loss ?? 'l1',
    codebook_weight: lp.codebook_weight ?? TAMING_LOSS.codebook_weight,
    perceptual_weight: lp.perceptual_weight ?? 0,
    disc_start: lp.disc_start ?? TAMING_LOSS.disc_start,
    disc_weight: lp.disc_weight ?? TAMING_LOSS.disc_weight,
    disc_factor: lp.disc_factor ?? 1,
    disc_loss: lp.disc_loss ?? 'hinge',
    adaptive_delta: lk.adaptive_delta ?? 1e-6,
    disc: {
      in_channels: lp.disc_in_channels ?? 3,
      ndf: lp.disc_ndf ?? 64,
      n_layers: lp.disc_num_layers ?? 3,
      actnorm: lp.use_actnorm ?? false,
    },
  };
}

/** The run options of a taming/ldm-style object: `latentkit:` over the defaults, batch size and base rate from the YAML. */
export function parseRunOptions(obj: any, source = 'config'): RunOptions {
  const mp = obj?.model ?? {};
  const lk = obj?.latentkit ?? {};
  const run: RunOptions = { ...RUN_DEFAULTS, ...lk, codebook: { ...CODEBOOK_OFF, ...(lk.codebook ?? {}) } };
  run.batch_size = obj?.data?.params?.batch_size ?? lk.batch_size ?? RUN_DEFAULTS.batch_size;
  run.base_learning_rate = mp.base_learning_rate ?? RUN_DEFAULTS.base_learning_rate;
  for (const k of ['size', 'batch_size', 'max_steps', 'log_every', 'image_every', 'ckpt_every'] as const) {
    if (!Number.isInteger(run[k]) || (run[k] as number) <= 0) throw new Error(`${source}: '${k}' must be a positive integer, got ${JSON.stringify(run[k])}`);
  }
  if (run.lr_schedule !== 'constant' && run.lr_schedule !== 'cosine') throw new Error(`${source}: lr_schedule must be 'constant' or 'cosine', got ${JSON.stringify(run.lr_schedule)}`);
  if (!Number.isInteger(run.warmup_steps) || run.warmup_steps < 0) throw new Error(`${source}: 'warmup_steps' must be a non-negative integer, got ${JSON.stringify(run.warmup_steps)}`);
  if (!(run.min_lr_ratio >= 0 && run.min_lr_ratio <= 1)) throw new Error(`${source}: 'min_lr_ratio' must be in [0, 1], got ${JSON.stringify(run.min_lr_ratio)}`);
  return run;
}

/** Build a TrainConfig from a parsed taming-style object (a preset or a YAML/JSON file). */
export function parseTrainConfig(obj: any, source = 'config'): TrainConfig {
  const model = parseVQConfig(obj, source);
  const mp = obj?.model ?? {};
  const lp = mp.params?.lossconfig?.params ?? {};
  const lk = obj?.latentkit ?? {};
  if (lp.disc_conditional) throw new Error(`${source}: disc_conditional is not supported`);
  const run = parseRunOptions(obj, source);
  const loss = lossFromTaming(lp, lk);
  return { model, loss, run };
}

export function loadTrainConfig(spec: string): TrainConfig {
  if (PRESETS[spec]) return parseTrainConfig(structuredClone(PRESETS[spec]), `preset '${spec}'`);
  const obj = readConfigFile(spec, ` (presets: ${Object.keys(PRESETS).join(', ')})`);
  return parseTrainConfig(obj, spec);
}

/** Back to taming's layout (written into each run directory and checkpoint). */
export function toTamingObject(c: TrainConfig): Record<string, unknown> {
  const { ddconfig, embed_dim, n_embed, l2_codes, ema_decay } = c.model;
  return {
    model: {
      base_learning_rate: c.run.base_learning_rate,
      target: 'taming.models.vqgan.VQModel',
      params: {
        embed_dim,
        n_embed,
        // latentkit's codebook options (taming's YAML has no such keys; written only when set)
        ...(l2_codes ? { l2_codes } : {}),
        ...(ema_decay ? { ema_decay } : {}),
        ddconfig,
        lossconfig: {
          target: 'taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator',
          params: {
            disc_conditional: false,
            disc_in_channels: c.loss.disc.in_channels,
            disc_start: c.loss.disc_start,
            disc_weight: c.loss.disc_weight,
            disc_factor: c.loss.disc_factor,
            codebook_weight: c.loss.codebook_weight,
            perceptual_weight: c.loss.perceptual_weight,
            disc_num_layers: c.loss.disc.n_layers,
            disc_ndf: c.loss.disc.ndf,
            disc_loss: c.loss.disc_loss,
            use_actnorm: c.loss.disc.actnorm,
          },
        },
      },
    },
    data: { params: { batch_size: c.run.batch_size } },
    latentkit: { ...c.run, rec_loss: c.loss.rec_loss, adaptive_delta: c.loss.adaptive_delta },
  };
}

export const learningRate = (c: { run: RunOptions }): number => c.run.lr ?? c.run.base_learning_rate * c.run.batch_size;

/** The schedule of a config as plain data. */
export function scheduleSpec(c: { run: RunOptions }): ScheduleSpec {
  const lr = learningRate(c);
  const r = c.run;
  return { kind: r.lr_schedule, lr, warmup: r.warmup_steps, min_lr: lr * r.min_lr_ratio, total: r.max_steps };
}

/** The learning rate of each step (0-based), from the config's peak rate and schedule. */
export function learningRateSchedule(c: { run: RunOptions }): Schedule {
  return scheduleFromSpec(scheduleSpec(c));
}

/**
 * Run `n` steps instead of the config's max_steps, keeping the schedule's shape: warm-up and
 * the discriminator start scale with it (a start after the run stays off). Returns a note
 * saying what changed — the schedule shortened or stretched to n — or null when n is the
 * config's own.
 */
export function withMaxSteps(cfg: { run: RunOptions; loss: { disc_start: number } }, n: number): string | null {
  if (n === cfg.run.max_steps) return null;
  const k = n / cfg.run.max_steps;
  const was = { warm: cfg.run.warmup_steps, disc: cfg.loss.disc_start, max: cfg.run.max_steps };
  cfg.run.warmup_steps = Math.round(was.warm * k);
  if (was.disc < was.max) cfg.loss.disc_start = Math.round(was.disc * k);
  cfg.run.max_steps = n;
  return `--max-steps ${n} ${n < was.max ? 'shortens' : 'stretches'} the config's ${was.max}-step schedule to ${n} steps: warm-up ${cfg.run.warmup_steps} steps, ${cfg.run.lr_schedule} learning rate, discriminator from step ${cfg.loss.disc_start}${was.disc < was.max ? ` (was ${was.disc})` : ' (after the run: off)'}`;
}

/**
 * The mid-block attention's memory in a training step: the encoder's and the decoder's score
 * matrices, [batch, (h·w)²] float32 each at the lowest resolution, with their softmax and
 * gradients — about 6·batch·(h·w)²·4 bytes (measured: an f2 VAE fine-tuned at 256², batch 4,
 * 128×128 latents, peaked at 22 GB, 5.1 such matrices). It grows with the fourth power of the
 * image side. Refused with what to change when it would take more than 60% of the machine's
 * memory.
 */
export function checkAttentionMemory(ddconfig: { ch_mult: readonly number[] }, size: number, batch: number, totalBytes: number, source: string): void {
  const f = 2 ** (ddconfig.ch_mult.length - 1);
  const n = (size / f) ** 2;
  const need = 6 * batch * n * n * 4;
  if (need <= 0.6 * totalBytes) return;
  const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GB`;
  const fit = Math.floor(Math.sqrt(Math.sqrt((0.6 * totalBytes) / (24 * batch)))) * f;
  throw new Error(`${source}: at ${size}×${size} the mid-block attention runs over ${size / f}×${size / f} = ${n} latent positions (f = ${f}); one training step at batch ${batch} would hold about ${gb(need)} of attention scores, and this machine has ${gb(totalBytes)}. Train at ${fit > 0 ? `${fit}×${fit} or less` : 'a smaller size'} (latentkit.size in a --config file) or with a smaller --batch-size`);
}
