// Transformer training configs: taming's Net2NetTransformer YAML layout (transformer_config,
// cond_stage_config, pkeep, base_learning_rate, data.params.batch_size) plus a `latentkit:`
// section for what taming's YAML does not say (steps, schedule, class dropout, logging,
// sampling for the grids). The first stage always comes from the code set being trained on
// (the VQGAN that made the codes), and so does an image condition's VQGAN.
import { readConfigFile } from '../models/vqgan/config.ts';
import { parseGPTConfig, type GPTConfig } from '../models/mingpt/config.ts';

export type CondKind = 'class' | 'image' | 'none';
/** 'ar': taming's next-code objective; 'maskgit': predict randomly masked codes (bidirectional). */
export type Objective = 'ar' | 'maskgit';

export interface GPTRunOptions {
  batch_size: number;
  max_steps: number;
  /** Absolute learning rate; default base_learning_rate × batch_size (taming's rule). */
  lr: number | null;
  base_learning_rate: number;
  lr_schedule: 'constant' | 'cosine';
  warmup_steps: number;
  min_lr_ratio: number;
  beta1: number;
  beta2: number;
  weight_decay: number;
  /** Probability of replacing the class token by the null class (classifier-free guidance); 0 = off. */
  class_dropout: number;
  /** The training objective (default 'ar'). */
  objective: Objective;
  /** MaskGIT: label smoothing of the masked-code cross-entropy (MaskGIT: 0.1). */
  label_smoothing: number;
  /** MaskGIT with an image condition: probability of masking the whole condition (guidance); 0 = off. */
  cond_dropout: number;
  /** MaskGIT with an image condition on the image's grid: 'prefix' (its codes first) or 'add' (cond_emb added cell by cell). */
  maskgit_cond: 'prefix' | 'add';
  /** Use the flipped views the code set holds (default true when present). */
  flip: boolean;
  log_every: number;
  val_every: number;
  sample_every: number;
  ckpt_every: number;
  seed: number;
  /**
   * pos_emb initialisation: 'zeros' (taming) or 'aligned' — for image conditions on the same
   * grid as the image, random N(0, 0.02) vectors shared cell by cell between the condition's
   * positions and the image positions that predict the same cell; 'aligned_head' also starts
   * head 0 of block 0 attending to the aligned condition cell (see initialWeights in gpt_run.ts).
   */
  pos_init: 'zeros' | 'aligned' | 'aligned_head';
  /** Sampling for the grids written during training. */
  sample: { temperature: number; top_k: number | null; top_p: number | null; per_class: number; steps: number; choice_temperature: number; guidance: number | null };
}

export interface GPTTrainConfig {
  transformer: GPTConfig;
  cond: CondKind;
  pkeep: number;
  sos_token: number;
  run: GPTRunOptions;
}

const RUN_DEFAULTS: GPTRunOptions = {
  batch_size: 16,
  max_steps: 10000,
  lr: null,
  base_learning_rate: 4.5e-6,
  lr_schedule: 'constant',
  warmup_steps: 0,
  min_lr_ratio: 0.05,
  beta1: 0.9,
  beta2: 0.95,
  weight_decay: 0.01,
  class_dropout: 0,
  objective: 'ar',
  label_smoothing: 0.1,
  cond_dropout: 0,
  maskgit_cond: 'prefix',
  flip: true,
  log_every: 25,
  val_every: 500,
  sample_every: 500,
  ckpt_every: 500,
  seed: 0,
  pos_init: 'zeros',
  sample: { temperature: 1.0, top_k: null, top_p: null, per_class: 4, steps: 12, choice_temperature: 4.5, guidance: null },
};

const TRANSFORMER = (n_layer: number, n_embd: number, n_head: number, block_size: number, pdrop: number) => ({
  target: 'taming.modules.transformer.mingpt.GPT',
  params: { vocab_size: 1024, block_size, n_layer, n_head, n_embd, embd_pdrop: pdrop, resid_pdrop: pdrop, attn_pdrop: 0.0 },
});

const EMOJI_RUN = {
  max_steps: 3300,
  lr: 6e-4,
  lr_schedule: 'cosine',
  warmup_steps: 200,
  min_lr_ratio: 0.05,
  log_every: 25,
  val_every: 500,
  sample_every: 500,
  ckpt_every: 250,
  sample: { temperature: 1.0, top_k: 100, top_p: null, per_class: 4 },
};

/**
 * class: emoji category → emoji over emoji-f4's 16×16 codes (1 class token + 256 codes),
 * an 8-layer, 256-wide GPT (6.8 M parameters), dropout 0.1, class dropout 10% for guidance;
 * 3,300 steps of batch 16 (~1.5 s each on 2 cores: the 90-minute budget).
 */
export const CLASS_PRESET = {
  model: {
    base_learning_rate: 4.5e-6,
    target: 'taming.models.cond_transformer.Net2NetTransformer',
    params: { cond_stage_config: { target: 'taming.modules.util.Labelator', params: { n_classes: 10 } }, transformer_config: TRANSFORMER(8, 256, 8, 257, 0.1) },
  },
  data: { params: { batch_size: 16 } },
  latentkit: { ...EMOJI_RUN, class_dropout: 0.1 },
};

/**
 * sketch: the sketch's 16×16 codes (its own VQGAN, models/sketch-f4) → the emoji's 16×16
 * codes (block 512: 256 condition + 255 image tokens in). Six layers rather than eight: the
 * 511-token sequences make a step ~3 s at batch 16 (eight layers: 3.8 s); 1,650 steps fit
 * the 90-minute budget, and more passes over the data matter more than depth.
 */
export const SKETCH_GPT_PRESET = {
  model: {
    base_learning_rate: 4.5e-6,
    target: 'taming.models.cond_transformer.Net2NetTransformer',
    params: { cond_stage_config: '__cond_from_codes__', transformer_config: TRANSFORMER(6, 256, 8, 512, 0.1) },
  },
  data: { params: { batch_size: 16 } },
  latentkit: { ...EMOJI_RUN, pos_init: 'aligned_head', max_steps: 1650, warmup_steps: 100, val_every: 330, sample_every: 330, ckpt_every: 165, sample: { ...EMOJI_RUN.sample, per_class: 1 } },
};

const MASKGIT_TRANSFORMER = (n_layer: number, n_embd: number, n_head: number, block_size: number, pdrop: number) => {
  const t = TRANSFORMER(n_layer, n_embd, n_head, block_size, pdrop);
  // the 1,024 codes + [MASK]; every position sees every other (taming's GPT with n_unmasked = block_size)
  return { ...t, params: { ...t.params, vocab_size: 1025, n_unmasked: block_size } };
};

/**
 * maskgit-class: MaskGIT (Chang et al. 2022) over emoji-f4's codes, conditioned on the emoji
 * category: the class preset's transformer made bidirectional (1 class token + 256 codes, all
 * visible), [MASK] = 1024, cosine masking, loss on masked codes with label smoothing 0.1, 10%
 * class dropout for guidance; the class preset's schedule (≈ 90 minutes on 2 cores).
 */
export const MASKGIT_CLASS_PRESET = {
  model: {
    base_learning_rate: 4.5e-6,
    target: 'taming.models.cond_transformer.Net2NetTransformer',
    params: { cond_stage_config: { target: 'taming.modules.util.Labelator', params: { n_classes: 10 } }, transformer_config: MASKGIT_TRANSFORMER(8, 256, 8, 257, 0.1) },
  },
  data: { params: { batch_size: 16 } },
  latentkit: { ...EMOJI_RUN, objective: 'maskgit', class_dropout: 0.1, sample: { ...EMOJI_RUN.sample, steps: 12 } },
};

/**
 * maskgit-sketch: the sketch's 16×16 code grid is aligned cell for cell with the emoji's, so it
 * enters as an embedding added at the image position it belongs to (maskgit_cond 'add':
 * cond_emb[c_i] + tok_emb[a_i] + pos_emb[i]) — 256 positions instead of a 512-token prefix
 * sequence. The whole condition is [MASK] 10% of the time for guidance. Six layers × 256 as the
 * autoregressive sketch model; a step takes 0.95 s on 2 cores against the prefix form's 2.3 s,
 * so 4,500 steps fit the 90-minute budget (the prefix form: 2,000). `maskgit-sketch-prefix` is the same model with taming's prefix, for the
 * comparison in models/emoji-sketch-maskgit/README.md.
 */
export const MASKGIT_SKETCH_PRESET = {
  model: {
    base_learning_rate: 4.5e-6,
    target: 'taming.models.cond_transformer.Net2NetTransformer',
    params: { cond_stage_config: '__cond_from_codes__', transformer_config: MASKGIT_TRANSFORMER(6, 256, 8, 256, 0.1) },
  },
  data: { params: { batch_size: 16 } },
  latentkit: { ...SKETCH_GPT_PRESET.latentkit, objective: 'maskgit', maskgit_cond: 'add', pos_init: 'zeros', cond_dropout: 0.1, max_steps: 4500, val_every: 500, sample_every: 500, ckpt_every: 250, sample: { ...SKETCH_GPT_PRESET.latentkit.sample, steps: 12 } },
};

/** maskgit-sketch with taming's prefix (block 512: 256 sketch codes, then 256 image codes), pos_init 'aligned_head' as the sketch preset. */
export const MASKGIT_SKETCH_PREFIX_PRESET = {
  model: {
    ...MASKGIT_SKETCH_PRESET.model,
    params: { ...MASKGIT_SKETCH_PRESET.model.params, transformer_config: MASKGIT_TRANSFORMER(6, 256, 8, 512, 0.1) },
  },
  data: { params: { batch_size: 16 } },
  latentkit: { ...MASKGIT_SKETCH_PRESET.latentkit, maskgit_cond: 'prefix', pos_init: 'aligned_head', max_steps: 2000, val_every: 500, sample_every: 500 },
};

/** tiny-maskgit: the tiny preset, bidirectional, for tests and smoke runs. */
export const TINY_MASKGIT_PRESET = {
  model: {
    params: { cond_stage_config: { target: 'taming.modules.util.Labelator', params: { n_classes: 10 } }, transformer_config: MASKGIT_TRANSFORMER(2, 32, 2, 257, 0.1) },
  },
  data: { params: { batch_size: 4 } },
  latentkit: { max_steps: 20, lr: 1e-3, log_every: 5, val_every: 10, sample_every: 10, ckpt_every: 10, class_dropout: 0.1, objective: 'maskgit', sample: { temperature: 1.0, top_k: 50, top_p: null, per_class: 1, steps: 4 } },
};

/** tiny: seconds per hundred steps (tests, smoke runs). */
export const TINY_GPT_PRESET = {
  model: {
    params: { cond_stage_config: { target: 'taming.modules.util.Labelator', params: { n_classes: 10 } }, transformer_config: TRANSFORMER(2, 32, 2, 257, 0.1) },
  },
  data: { params: { batch_size: 4 } },
  latentkit: { max_steps: 20, lr: 1e-3, log_every: 5, val_every: 10, sample_every: 10, ckpt_every: 10, class_dropout: 0.1, sample: { temperature: 1.0, top_k: 50, top_p: null, per_class: 1 } },
};

export const GPT_PRESETS: Record<string, unknown> = {
  class: CLASS_PRESET,
  sketch: SKETCH_GPT_PRESET,
  tiny: TINY_GPT_PRESET,
  'maskgit-class': MASKGIT_CLASS_PRESET,
  'maskgit-sketch': MASKGIT_SKETCH_PRESET,
  'maskgit-sketch-prefix': MASKGIT_SKETCH_PREFIX_PRESET,
  'tiny-maskgit': TINY_MASKGIT_PRESET,
};

function condKind(c: unknown, params: Record<string, any>, source: string): CondKind {
  if (params.unconditional === true || c === '__is_unconditional__') return 'none';
  if (c === '__is_first_stage__' || c === '__cond_from_codes__') return 'image';
  const t = (c as { target?: string } | undefined)?.target ?? '';
  if (t === 'taming.modules.util.Labelator') return 'class';
  if (t === 'taming.modules.util.SOSProvider') return 'none';
  if (/VQModel|VQSegmentationModel|GumbelVQ|EMAVQ/.test(t) || (c as { params?: { ddconfig?: unknown } })?.params?.ddconfig) return 'image';
  if (c === undefined) return 'none';
  throw new Error(`${source}: cond_stage_config '${t || JSON.stringify(c)}' is not supported for training (Labelator, SOSProvider, a VQModel, '__is_first_stage__', '__is_unconditional__')`);
}

export function parseGPTTrainConfig(obj: any, source = 'config'): GPTTrainConfig {
  const mp = obj?.model?.params ?? obj?.params;
  if (!mp?.transformer_config) throw new Error(`${source}: no model.params.transformer_config (is this a taming Net2NetTransformer config?)`);
  const lk = obj?.latentkit ?? {};
  const run: GPTRunOptions = { ...RUN_DEFAULTS, ...lk, sample: { ...RUN_DEFAULTS.sample, ...(lk.sample ?? {}) } };
  run.batch_size = obj?.data?.params?.batch_size ?? lk.batch_size ?? RUN_DEFAULTS.batch_size;
  run.base_learning_rate = obj?.model?.base_learning_rate ?? RUN_DEFAULTS.base_learning_rate;
  for (const k of ['batch_size', 'max_steps', 'log_every', 'val_every', 'sample_every', 'ckpt_every'] as const) {
    if (!Number.isInteger(run[k]) || (run[k] as number) <= 0) throw new Error(`${source}: '${k}' must be a positive integer, got ${JSON.stringify(run[k])}`);
  }
  if (run.lr_schedule !== 'constant' && run.lr_schedule !== 'cosine') throw new Error(`${source}: lr_schedule must be 'constant' or 'cosine', got ${JSON.stringify(run.lr_schedule)}`);
  if (!['zeros', 'aligned', 'aligned_head'].includes(run.pos_init)) throw new Error(`${source}: pos_init must be 'zeros', 'aligned' or 'aligned_head', got ${JSON.stringify(run.pos_init)}`);
  if (run.objective !== 'ar' && run.objective !== 'maskgit') throw new Error(`${source}: objective must be 'ar' or 'maskgit', got ${JSON.stringify(run.objective)}`);
  if (!(run.label_smoothing >= 0 && run.label_smoothing < 1)) throw new Error(`${source}: label_smoothing must be in [0, 1), got ${JSON.stringify(run.label_smoothing)}`);
  if (run.maskgit_cond !== 'prefix' && run.maskgit_cond !== 'add') throw new Error(`${source}: maskgit_cond must be 'prefix' or 'add', got ${JSON.stringify(run.maskgit_cond)}`);
  if (!(run.cond_dropout >= 0 && run.cond_dropout < 1)) throw new Error(`${source}: cond_dropout must be in [0, 1), got ${JSON.stringify(run.cond_dropout)}`);
  if (!Number.isInteger(run.sample.steps) || run.sample.steps < 1) throw new Error(`${source}: sample.steps must be a whole number ≥ 1, got ${JSON.stringify(run.sample.steps)}`);
  if (!(run.class_dropout >= 0 && run.class_dropout < 1)) throw new Error(`${source}: class_dropout must be in [0, 1), got ${JSON.stringify(run.class_dropout)}`);
  const pkeep = mp.pkeep ?? 1.0;
  if (!(pkeep >= 0 && pkeep <= 1)) throw new Error(`${source}: pkeep must be in [0, 1], got ${JSON.stringify(pkeep)}`);
  return {
    transformer: parseGPTConfig(mp.transformer_config, `${source} (transformer_config)`),
    cond: condKind(mp.cond_stage_config, mp, source),
    pkeep,
    sos_token: mp.sos_token ?? 0,
    run,
  };
}

export function loadGPTTrainConfig(spec: string): GPTTrainConfig {
  if (GPT_PRESETS[spec]) return parseGPTTrainConfig(structuredClone(GPT_PRESETS[spec]), `preset '${spec}'`);
  const obj = readConfigFile(spec, ` (presets: ${Object.keys(GPT_PRESETS).join(', ')})`);
  return parseGPTTrainConfig(obj, spec);
}

export const gptLearningRate = (c: GPTTrainConfig): number => c.run.lr ?? c.run.base_learning_rate * c.run.batch_size;
