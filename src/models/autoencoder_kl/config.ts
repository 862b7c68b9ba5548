// AutoencoderKL configs: latent-diffusion's YAML (model.params.{embed_dim, ddconfig}, also a
// full SD config's model.params.first_stage_config with its scale_factor), diffusers'
// AutoencoderKL config.json, and inference from ldm checkpoint keys. Latent scaling by family.
import type { StateDict } from '../../nn/params.ts';
import { inferEncoderLayout, type DDConfig } from '../vqgan/config.ts';

export interface KLConfig {
  embed_dim: number;
  ddconfig: DDConfig;
  /** false for SD3 / FLUX: the encoder's moments are the posterior's parameters directly */
  use_quant_conv: boolean;
  use_post_quant_conv: boolean;
  /** latent scaling from the file's own config, when it says (diffusers scaling_factor, SD's scale_factor) */
  scaling_factor?: number;
  shift_factor?: number;
  /** anything else from the source config, kept verbatim */
  [extra: string]: unknown;
}

export type KLFamily = 'sd' | 'sdxl' | 'sd3' | 'flux';

/** z' = (z − shift) · scale on encode; z = z' / scale + shift on decode. */
export interface LatentScaling {
  scale: number;
  shift: number;
  /** where the numbers came from, for the note line */
  source: string;
}

/** The pipelines' latent scaling per model family. */
export const FAMILY_SCALING: Record<KLFamily, { scale: number; shift: number; name: string }> = {
  sd: { scale: 0.18215, shift: 0, name: 'SD 1.x/2.x' },
  sdxl: { scale: 0.13025, shift: 0, name: 'SDXL' },
  sd3: { scale: 1.5305, shift: 0.0609, name: 'SD3' },
  flux: { scale: 0.3611, shift: 0.1159, name: 'FLUX' },
};

function num(v: unknown, key: string, file: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${file}: '${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function checkDD(dd: DDConfig, file: string): void {
  for (const k of ['z_channels', 'resolution', 'in_channels', 'out_ch', 'ch', 'num_res_blocks'] as const) num(dd[k], `ddconfig.${k}`, file);
  if (!Array.isArray(dd.ch_mult) || dd.ch_mult.length === 0) throw new Error(`${file}: 'ddconfig.ch_mult' must be a non-empty list`);
  if (!Array.isArray(dd.attn_resolutions)) throw new Error(`${file}: 'ddconfig.attn_resolutions' must be a list`);
  if (!dd.double_z) throw new Error(`${file}: ddconfig.double_z is false; an AutoencoderKL needs double_z: true (mean and log-variance)`);
  const g = dd.norm_num_groups ?? 32;
  for (const c of dd.ch_mult.map((m) => m * dd.ch)) {
    if (c % g !== 0) throw new Error(`${file}: channel count ${c} (ch·ch_mult) is not a multiple of the ${g} GroupNorm groups`);
  }
}

/**
 * latent-diffusion config: {model: {params}}, {params} or the params; a full Stable Diffusion
 * config (LatentDiffusion with first_stage_config) gives its first stage and scale_factor.
 */
export function parseKLConfig(obj: unknown, file = 'config'): KLConfig {
  let p = obj as Record<string, any>;
  if (p && typeof p === 'object' && p.model) p = p.model;
  if (p && typeof p === 'object' && p.params && !p.ddconfig) p = p.params;
  let scale: number | undefined;
  if (p && typeof p === 'object' && p.first_stage_config) {
    if (typeof p.scale_factor === 'number') scale = p.scale_factor;
    p = p.first_stage_config.params ?? p.first_stage_config;
  }
  if (!p || typeof p !== 'object' || !p.ddconfig) throw new Error(`${file}: no model.params.ddconfig found (is this a latent-diffusion AutoencoderKL config?)`);
  if (p.n_embed !== undefined) throw new Error(`${file}: has n_embed: this is a VQ autoencoder config, not a KL one`);
  const dd = { double_z: true, in_channels: 3, out_ch: 3, dropout: 0, attn_resolutions: [], ...p.ddconfig } as DDConfig;
  checkDD(dd, file);
  const cfg: KLConfig = {
    ...p,
    embed_dim: num(p.embed_dim, 'embed_dim', file),
    ddconfig: dd,
    use_quant_conv: p.use_quant_conv ?? true,
    use_post_quant_conv: p.use_post_quant_conv ?? true,
  };
  if (scale !== undefined) cfg.scaling_factor = scale;
  if (!cfg.use_quant_conv && cfg.embed_dim !== dd.z_channels) throw new Error(`${file}: without quant_conv embed_dim (${cfg.embed_dim}) must equal z_channels (${dd.z_channels})`);
  return cfg;
}

/** diffusers AutoencoderKL config.json → KLConfig (ldm's ddconfig keys). */
export function parseDiffusersVaeConfig(obj: unknown, file = 'config.json'): KLConfig {
  const c = obj as Record<string, any>;
  if (!c || typeof c !== 'object') throw new Error(`${file}: not a JSON object`);
  const cls = c._class_name;
  if (cls !== undefined && cls !== 'AutoencoderKL') {
    const what = /UNet/.test(cls) ? ' (a diffusion UNet, not a VAE)' : /AutoencoderTiny/.test(cls) ? ' (a TAESD tiny autoencoder)' : '';
    throw new Error(`${file}: _class_name is '${cls}'${what}; expected 'AutoencoderKL'`);
  }
  const boc = c.block_out_channels ?? [64];
  if (!Array.isArray(boc) || boc.length === 0 || !boc.every((x) => Number.isInteger(x) && x > 0)) throw new Error(`${file}: 'block_out_channels' must be a list of positive integers`);
  const ch = boc[0] as number;
  const chMult = boc.map((x: number) => x / ch);
  if (!chMult.every(Number.isInteger)) throw new Error(`${file}: block_out_channels [${boc.join(', ')}] are not integer multiples of the first`);
  for (const [k, want] of [['down_block_types', 'DownEncoderBlock2D'], ['up_block_types', 'UpDecoderBlock2D']] as const) {
    const t = c[k];
    if (t !== undefined && (!Array.isArray(t) || t.length !== boc.length || t.some((x) => x !== want))) {
      throw new Error(`${file}: '${k}' must be ${boc.length} × '${want}', got ${JSON.stringify(t)}`);
    }
  }
  if (c.act_fn !== undefined && c.act_fn !== 'silu') throw new Error(`${file}: act_fn '${c.act_fn}' is not supported (SD's VAEs use silu)`);
  if (c.mid_block_add_attention === false) throw new Error(`${file}: mid_block_add_attention: false is not supported (SD's VAEs have mid-block attention)`);
  const z = num(c.latent_channels ?? 4, 'latent_channels', file);
  const dd: DDConfig = {
    double_z: true,
    z_channels: z,
    resolution: num(c.sample_size ?? 32, 'sample_size', file),
    in_channels: num(c.in_channels ?? 3, 'in_channels', file),
    out_ch: num(c.out_channels ?? 3, 'out_channels', file),
    ch,
    ch_mult: chMult,
    num_res_blocks: num(c.layers_per_block ?? 1, 'layers_per_block', file),
    attn_resolutions: [],
    dropout: 0,
  };
  const groups = num(c.norm_num_groups ?? 32, 'norm_num_groups', file);
  if (groups !== 32) dd.norm_num_groups = groups;
  checkDD(dd, file);
  const cfg: KLConfig = { embed_dim: z, ddconfig: dd, use_quant_conv: c.use_quant_conv ?? true, use_post_quant_conv: c.use_post_quant_conv ?? true };
  if (typeof c.scaling_factor === 'number') cfg.scaling_factor = c.scaling_factor;
  if (typeof c.shift_factor === 'number') cfg.shift_factor = c.shift_factor;
  return cfg;
}

/** KLConfig → diffusers AutoencoderKL config.json fields. */
export function toDiffusersVaeConfig(cfg: KLConfig): Record<string, unknown> {
  const dd = cfg.ddconfig;
  if (dd.attn_resolutions.length) throw new Error('diffusers AutoencoderKL has no attention outside the mid block (attn_resolutions must be empty)');
  if (cfg.embed_dim !== dd.z_channels) throw new Error(`diffusers AutoencoderKL needs embed_dim (${cfg.embed_dim}) = z_channels (${dd.z_channels})`);
  const L = dd.ch_mult.length;
  return {
    _class_name: 'AutoencoderKL',
    act_fn: 'silu',
    block_out_channels: dd.ch_mult.map((m) => m * dd.ch),
    down_block_types: Array(L).fill('DownEncoderBlock2D'),
    up_block_types: Array(L).fill('UpDecoderBlock2D'),
    in_channels: dd.in_channels,
    out_channels: dd.out_ch,
    latent_channels: dd.z_channels,
    layers_per_block: dd.num_res_blocks,
    norm_num_groups: dd.norm_num_groups ?? 32,
    sample_size: dd.resolution,
    ...(cfg.scaling_factor !== undefined ? { scaling_factor: cfg.scaling_factor } : {}),
    ...(cfg.shift_factor !== undefined ? { shift_factor: cfg.shift_factor } : {}),
    use_quant_conv: cfg.use_quant_conv,
    use_post_quant_conv: cfg.use_post_quant_conv,
  };
}

/** Infer a config from ldm-named weights (GroupNorm groups cannot be seen in keys: ldm's 32). */
export function inferKLConfig(sd: StateDict, source = 'checkpoint'): { config: KLConfig; notes: string[] } {
  const e = inferEncoderLayout(sd, `${source}: cannot infer an AutoencoderKL config`);
  const { shape, ch, inCh, chMult, zOut, outCh, resolution } = e;
  const [zCh] = shape('decoder.conv_in.weight').slice(1) as [number];
  const useQ = sd.has('quant_conv.weight');
  const usePQ = sd.has('post_quant_conv.weight');
  const embedDim = useQ ? shape('quant_conv.weight')[0]! / 2 : usePQ ? shape('post_quant_conv.weight')[1]! : zCh;
  if (zOut !== 2 * zCh) throw new Error(`${source}: encoder.conv_out has ${zOut} output channels, expected 2 × ${zCh} (mean and log-variance): not a KL autoencoder`);
  const attn = e.attnResolutions;
  const config: KLConfig = {
    embed_dim: embedDim,
    ddconfig: { double_z: true, z_channels: zCh, resolution, in_channels: inCh, out_ch: outCh, ch, ch_mult: chMult, num_res_blocks: e.numResBlocks, attn_resolutions: attn, dropout: 0 },
    use_quant_conv: useQ,
    use_post_quant_conv: usePQ,
  };
  const notes = [
    `config inferred from the keys: ch=${ch}, ch_mult=[${chMult.join(',')}], num_res_blocks=${e.numResBlocks}, z_channels=${zCh}, embed_dim=${embedDim}${useQ ? '' : ', no quant_conv'}${usePQ ? '' : ', no post_quant_conv'}`,
  ];
  return { config, notes };
}

/** Family guess from the architecture and, for full checkpoints, the keys beside the VAE. */
export function guessFamily(cfg: KLConfig, otherKeys: readonly string[] = []): { family: KLFamily; why: string } {
  const has = (re: RegExp) => otherKeys.some((k) => re.test(k));
  if (cfg.embed_dim === 16) {
    if (has(/^model\.diffusion_model\.joint_blocks\./)) return { family: 'sd3', why: 'SD3, from the checkpoint (MMDiT joint_blocks beside the VAE)' };
    if (has(/^(model\.diffusion_model\.)?double_blocks\./)) return { family: 'flux', why: 'FLUX, from the checkpoint (double_blocks beside the VAE)' };
    return { family: 'flux', why: "FLUX assumed: 16 latent channels and no scale in the config; SD3's VAE has the same layout (family sd3)" };
  }
  if (has(/^conditioner\.embedders\.1\./)) return { family: 'sdxl', why: 'SDXL, from the checkpoint (conditioner.embedders.1 beside the VAE)' };
  return { family: 'sd', why: `SD 1.x/2.x assumed: ${cfg.embed_dim} latent channels and no scale in the config; SDXL's VAE has the same layout (family sdxl)` };
}

/** Downsampling factor f = 2^(levels−1). */
export const klFactor = (c: KLConfig): number => 2 ** (c.ddconfig.ch_mult.length - 1);
