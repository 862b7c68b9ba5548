// Net2NetTransformer configs in taming's YAML layout (model.target
// taming.models.cond_transformer.Net2NetTransformer, model.params.{transformer_config,
// first_stage_config, cond_stage_config, pkeep, sos_token, …}); a `latentkit:` section may add
// class names. Condition stages, with taming's semantics:
//   '__is_unconditional__' / unconditional: true → one SOS token (sos_token, default 0)
//   taming.modules.util.Labelator {n_classes}   → the class index as the one token
//   taming.modules.util.SOSProvider {sos_token} → unconditional with that token
//   '__is_first_stage__'                        → the image VQGAN encodes the condition
//   a VQModel config (any channel count)        → its own VQGAN encodes the condition
import { parseVQConfig, type VQConfig } from '../vqgan/config.ts';
import { parseGPTConfig, type GPTConfig } from '../mingpt/config.ts';

export type CondStage =
  | { kind: 'sos'; token: number }
  | { kind: 'label'; n_classes: number }
  | { kind: 'first_stage' }
  | { kind: 'vqgan'; vq: VQConfig; ckpt_path?: string };

export interface Net2NetConfig {
  transformer: GPTConfig;
  first_stage: VQConfig;
  /** first_stage_config.params.ckpt_path, when the weights live in another file. */
  first_stage_ckpt?: string;
  cond_stage: CondStage;
  pkeep: number;
  sos_token: number;
  downsample_cond_size: number;
  first_stage_key: string;
  cond_stage_key: string;
  base_learning_rate: number;
  /** latentkit: class names (index = label), e.g. the emoji categories. */
  classes?: string[];
  /**
   * latentkit: trained with condition dropout, so guidance works: with a class condition, label
   * n_classes is the null class; with a MaskGIT image condition, the null condition is all [MASK].
   */
  null_class?: boolean;
  /** latentkit: the code grid the model was trained on, [h, w] (default: resolution / f). */
  grid?: [number, number];
  /** latentkit: how a condition image is prepared: 'sketch' (io/sketch normalizeDrawing) or as a plain image. */
  cond_input?: 'sketch' | 'image';
  /**
   * latentkit: a MaskGIT model (bidirectional: n_unmasked = block_size) predicting masked image
   * codes in parallel instead of the next code. `mask_token` is the [MASK] id (the first id after
   * the image codes); the sequence is the condition tokens then the image codes, all visible to
   * each other. A dropped image condition (guidance) is every condition token set to [MASK].
   */
  maskgit?: MaskGitSpec;
  /**
   * latentkit: the model's recommended sampling settings (chosen by measuring on held-out data;
   * its README says how). `sample`, the server and the page use them unless told otherwise.
   */
  sampling?: SamplingDefaults;
}

export interface MaskGitSpec {
  mask_token: number;
  /**
   * How an image condition enters: 'prefix' (taming's way: its codes before the image codes,
   * block Lc + Lz) or 'add' (its grid is aligned cell for cell with the image grid, so the
   * embedding cond_emb[c_i] is added at image position i: block Lz, half the sequence).
   */
  cond: 'prefix' | 'add';
}

export interface SamplingDefaults {
  temperature?: number;
  top_k?: number | null;
  top_p?: number | null;
  /** classifier-free guidance scale */
  guidance?: number | null;
  /** MaskGIT passes */
  steps?: number;
  /** MaskGIT's Gumbel τ */
  choice_temperature?: number;
}

function parseSampling(v: unknown, source: string): SamplingDefaults | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object') throw new Error(`${source}: latentkit.sampling must be a mapping, got ${JSON.stringify(v)}`);
  const out: SamplingDefaults = {};
  const keys = ['temperature', 'top_k', 'top_p', 'guidance', 'steps', 'choice_temperature'] as const;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (!(keys as readonly string[]).includes(k)) throw new Error(`${source}: latentkit.sampling.${k} is not a sampling setting (${keys.join(', ')})`);
    if (x !== null && (typeof x !== 'number' || !Number.isFinite(x))) throw new Error(`${source}: latentkit.sampling.${k} must be a number or null, got ${JSON.stringify(x)}`);
    (out as Record<string, number | null>)[k] = x as number | null;
  }
  return out;
}

const VQ_TARGETS = /^taming\.models\.vqgan\.(VQModel|VQSegmentationModel|VQNoDiscModel|EMAVQ|GumbelVQ)$/;

function parseCondStage(c: unknown, params: Record<string, any>, source: string): CondStage {
  if (params.unconditional === true || c === '__is_unconditional__') return { kind: 'sos', token: params.sos_token ?? 0 };
  if (c === '__is_first_stage__') return { kind: 'first_stage' };
  if (!c || typeof c !== 'object') throw new Error(`${source}: cond_stage_config must be a config, '__is_first_stage__' or '__is_unconditional__', got ${JSON.stringify(c)}`);
  const t = (c as { target?: string }).target ?? '';
  const p = ((c as { params?: Record<string, any> }).params ?? {}) as Record<string, any>;
  if (t === 'taming.modules.util.Labelator') {
    if (!Number.isInteger(p.n_classes) || p.n_classes <= 0) throw new Error(`${source}: Labelator needs a positive integer n_classes, got ${JSON.stringify(p.n_classes)}`);
    return { kind: 'label', n_classes: p.n_classes };
  }
  if (t === 'taming.modules.util.SOSProvider') return { kind: 'sos', token: p.sos_token ?? 0 };
  if (VQ_TARGETS.test(t) || p.ddconfig) return { kind: 'vqgan', vq: parseVQConfig(p, `${source} (cond_stage_config)`), ckpt_path: p.ckpt_path ?? undefined };
  throw new Error(`${source}: cond stage '${t}' is not supported (supported: Labelator, SOSProvider, a VQModel, '__is_first_stage__', '__is_unconditional__')`);
}

/** Parse a Net2NetTransformer config object (the whole YAML, or model / model.params). */
export function parseNet2NetConfig(obj: unknown, source = 'config'): Net2NetConfig {
  const root = obj as Record<string, any>;
  const m = root?.model ?? root;
  if (m?.target && !String(m.target).endsWith('Net2NetTransformer')) {
    throw new Error(`${source}: model.target is ${m.target}, not a taming.models.cond_transformer.Net2NetTransformer (a VQGAN config? use reconstruct/encode/decode)`);
  }
  const params = (m?.params ?? m) as Record<string, any>;
  if (!params || typeof params !== 'object' || !params.transformer_config) {
    throw new Error(`${source}: no model.params.transformer_config (is this a taming Net2NetTransformer config?)`);
  }
  const perm = params.permuter_config?.target;
  if (perm && perm !== 'taming.modules.transformer.permuter.Identity') throw new Error(`${source}: permuter ${perm} is not supported (only the Identity permuter)`);
  const fs = params.first_stage_config;
  if (!fs?.params) throw new Error(`${source}: first_stage_config.params is missing`);
  const lk = (root?.latentkit ?? {}) as Record<string, any>;
  const cfg: Net2NetConfig = {
    transformer: parseGPTConfig(params.transformer_config, `${source} (transformer_config)`),
    first_stage: parseVQConfig(fs.params, `${source} (first_stage_config)`),
    first_stage_ckpt: fs.params.ckpt_path ?? undefined,
    cond_stage: parseCondStage(params.cond_stage_config, params, source),
    pkeep: params.pkeep ?? 1.0,
    sos_token: params.sos_token ?? 0,
    downsample_cond_size: params.downsample_cond_size ?? -1,
    first_stage_key: params.first_stage_key ?? 'image',
    cond_stage_key: params.cond_stage_key ?? 'depth',
    base_learning_rate: m?.base_learning_rate ?? 4.5e-6,
    classes: lk.classes,
    null_class: lk.null_class ?? false,
    grid: lk.grid,
    cond_input: lk.cond_input,
    ...(lk.maskgit ? { maskgit: { mask_token: lk.maskgit.mask_token, cond: lk.maskgit.cond ?? 'prefix' } } : {}),
    ...(lk.sampling ? { sampling: parseSampling(lk.sampling, source) } : {}),
  };
  if (!(cfg.pkeep >= 0 && cfg.pkeep <= 1)) throw new Error(`${source}: pkeep must be in [0, 1], got ${JSON.stringify(params.pkeep)}`);
  const V = cfg.transformer.vocab_size;
  const n = cfg.first_stage.n_embed;
  if (V < n) throw new Error(`${source}: vocab_size ${V} is smaller than the first stage's ${n} codes`);
  if (cfg.cond_stage.kind === 'label' && V < cfg.cond_stage.n_classes + (cfg.null_class ? 1 : 0)) {
    throw new Error(`${source}: vocab_size ${V} cannot hold ${cfg.cond_stage.n_classes} class tokens${cfg.null_class ? ' + the null class' : ''}`);
  }
  if (cfg.cond_stage.kind === 'vqgan' && V < cfg.cond_stage.vq.n_embed) throw new Error(`${source}: vocab_size ${V} is smaller than the cond stage's ${cfg.cond_stage.vq.n_embed} codes`);
  if (cfg.maskgit) {
    const t = cfg.transformer;
    const mt = cfg.maskgit.mask_token;
    if (!Number.isInteger(mt) || mt < n || mt >= V) throw new Error(`${source}: latentkit.maskgit.mask_token must be an id in [${n}, ${V}) (after the ${n} image codes), got ${JSON.stringify(mt)}`);
    if (t.n_unmasked !== t.block_size) throw new Error(`${source}: a MaskGIT transformer is bidirectional: n_unmasked must equal block_size (${t.block_size}), got ${t.n_unmasked}`);
    if (cfg.maskgit.cond !== 'prefix' && cfg.maskgit.cond !== 'add') throw new Error(`${source}: latentkit.maskgit.cond must be 'prefix' or 'add', got ${JSON.stringify(cfg.maskgit.cond)}`);
    if (cfg.maskgit.cond === 'add' && cfg.cond_stage.kind !== 'vqgan' && cfg.cond_stage.kind !== 'first_stage') throw new Error(`${source}: latentkit.maskgit.cond 'add' needs an image condition (a class or SOS token is a prefix)`);
  }
  if (cfg.classes && cfg.cond_stage.kind === 'label' && cfg.classes.length !== cfg.cond_stage.n_classes) {
    throw new Error(`${source}: latentkit.classes has ${cfg.classes.length} names for ${cfg.cond_stage.n_classes} classes`);
  }
  return cfg;
}

/** Back to taming's layout (for config.yaml files and `convert`). */
export function toTamingNet2Net(c: Net2NetConfig, paths: { firstStage?: string; condStage?: string } = {}): Record<string, unknown> {
  const vq = (v: VQConfig, ckpt?: string) => {
    const { ddconfig, embed_dim, n_embed } = v;
    return { target: 'taming.models.vqgan.VQModel', params: { ...(ckpt ? { ckpt_path: ckpt } : {}), embed_dim, n_embed, ddconfig, lossconfig: { target: 'taming.modules.losses.DummyLoss' } } };
  };
  const cs = c.cond_stage;
  const cond =
    cs.kind === 'label' ? { target: 'taming.modules.util.Labelator', params: { n_classes: cs.n_classes } }
      : cs.kind === 'sos' ? '__is_unconditional__'
        : cs.kind === 'first_stage' ? '__is_first_stage__'
          : vq(cs.vq, paths.condStage ?? cs.ckpt_path);
  const lk: Record<string, unknown> = {};
  if (c.classes) lk.classes = c.classes;
  if (c.null_class) lk.null_class = true;
  if (c.grid) lk.grid = c.grid;
  if (c.cond_input) lk.cond_input = c.cond_input;
  if (c.maskgit) lk.maskgit = c.maskgit;
  if (c.sampling) lk.sampling = c.sampling;
  return {
    model: {
      base_learning_rate: c.base_learning_rate,
      target: 'taming.models.cond_transformer.Net2NetTransformer',
      params: {
        first_stage_key: c.first_stage_key,
        cond_stage_key: c.cond_stage_key,
        ...(c.pkeep !== 1 ? { pkeep: c.pkeep } : {}),
        ...(cs.kind === 'sos' ? { sos_token: cs.token } : {}),
        ...(c.downsample_cond_size !== -1 ? { downsample_cond_size: c.downsample_cond_size } : {}),
        transformer_config: { target: 'taming.modules.transformer.mingpt.GPT', params: { ...c.transformer } },
        first_stage_config: vq(c.first_stage, paths.firstStage ?? c.first_stage_ckpt),
        cond_stage_config: cond,
      },
    },
    ...(Object.keys(lk).length ? { latentkit: lk } : {}),
  };
}
