// VQGAN configs with taming's keys (model.params.{embed_dim, n_embed, ddconfig}); YAML or
// JSON with the same keys load unchanged. Also: inferring a config from checkpoint keys.
import fs from 'node:fs';
import YAML from 'yaml';
import type { StateDict } from '../../nn/params.ts';

export interface DDConfig {
  double_z: boolean;
  z_channels: number;
  resolution: number;
  in_channels: number;
  out_ch: number;
  ch: number;
  ch_mult: number[];
  num_res_blocks: number;
  attn_resolutions: number[];
  dropout: number;
  /** GroupNorm groups (diffusers' norm_num_groups); ldm and taming always use 32. */
  norm_num_groups?: number;
}

export interface VQConfig {
  embed_dim: number;
  n_embed: number;
  ddconfig: DDConfig;
  /** VectorQuantizer2 options */
  beta?: number;
  legacy?: boolean;
  sane_index_shape?: boolean;
  remap?: string | null;
  unknown_index?: 'random' | 'extra' | number;
  /** latentkit extension: l2-normalized (cosine) codes (ViT-VQGAN); off in taming. */
  l2_codes?: boolean;
  /** latentkit extension: EMA codebook decay (taming's EMAVectorQuantizer uses 0.99); unset = gradient-trained codes. */
  ema_decay?: number;
  /** anything else under model.params (lossconfig, base_learning_rate, …) kept verbatim */
  [extra: string]: unknown;
}

const DD_DEFAULTS: Partial<DDConfig> = { double_z: false, in_channels: 3, out_ch: 3, dropout: 0, attn_resolutions: [] };

function num(v: unknown, key: string, file: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${file}: '${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** Normalize a parsed config object: accepts {model: {params}}, {params} or the params themselves. */
export function parseVQConfig(obj: unknown, file = 'config'): VQConfig {
  let p = obj as Record<string, any>;
  if (p && typeof p === 'object' && p.model) p = p.model;
  if (p && typeof p === 'object' && p.params && !p.ddconfig) p = p.params;
  if (!p || typeof p !== 'object' || !p.ddconfig) throw new Error(`${file}: no model.params.ddconfig found (is this a taming VQGAN config?)`);
  const dd = { ...DD_DEFAULTS, ...p.ddconfig } as DDConfig;
  for (const k of ['z_channels', 'resolution', 'in_channels', 'out_ch', 'ch', 'num_res_blocks'] as const) num(dd[k], `ddconfig.${k}`, file);
  if (!Array.isArray(dd.ch_mult) || dd.ch_mult.length === 0) throw new Error(`${file}: 'ddconfig.ch_mult' must be a non-empty list`);
  if (!Array.isArray(dd.attn_resolutions)) throw new Error(`${file}: 'ddconfig.attn_resolutions' must be a list`);
  const cfg: VQConfig = { ...p, embed_dim: num(p.embed_dim, 'embed_dim', file), n_embed: num(p.n_embed, 'n_embed', file), ddconfig: dd };
  for (const c of dd.ch_mult.map((m) => m * dd.ch)) {
    if (c % 32 !== 0) throw new Error(`${file}: channel count ${c} (ch·ch_mult) is not a multiple of 32 (GroupNorm uses 32 groups)`);
  }
  return cfg;
}

/** Read a YAML (or .json) config file into a plain object, with one-line errors. */
export function readConfigFile(file: string, hint = ''): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read config ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}${hint}`, { cause: e });
  }
  try {
    return file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new Error(`cannot parse config ${file}: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
}

export function loadVQConfig(file: string): VQConfig {
  return parseVQConfig(readConfigFile(file), file);
}

/** Downsampling factor f = 2^(levels−1). */
export const downFactor = (c: VQConfig): number => 2 ** (c.ddconfig.ch_mult.length - 1);

/**
 * Infer a config from a state dict's keys and shapes (taming key names). Returns the config
 * and human-readable notes on what was inferred.
 */
/**
 * The layout of taming's / ldm's Encoder read from its keys, shared by the VQGAN and the KL
 * autoencoder: ch and in_channels (conv_in), levels and ch_mult (encoder.down.{i}.block.0),
 * num_res_blocks, attention levels as attn_resolutions for resolution 256 (what matters is
 * the level), z_out (conv_out's channels) and out_ch. `what` names the model in errors.
 */
export function inferEncoderLayout(sd: StateDict, what: string) {
  const shape = (k: string) => {
    const t = sd.get(k);
    if (!t) throw new Error(`${what}: key '${k}' is missing`);
    return t.shape;
  };
  const [ch, inCh] = shape('encoder.conv_in.weight') as [number, number];
  const levels = new Set<number>();
  const blocks = new Set<number>();
  const attnLevels = new Set<number>();
  for (const k of sd.keys()) {
    let m = /^encoder\.down\.(\d+)\.block\.(\d+)\./.exec(k);
    if (m) {
      levels.add(Number(m[1]));
      blocks.add(Number(m[2]));
    }
    m = /^encoder\.down\.(\d+)\.attn\.\d+\./.exec(k);
    if (m) attnLevels.add(Number(m[1]));
  }
  if (levels.size === 0) throw new Error(`${what}: no encoder.down.* blocks`);
  const chMult = Array.from({ length: levels.size }, (_, i) => shape(`encoder.down.${i}.block.0.conv1.weight`)[0]! / ch);
  const resolution = 256;
  const levelsWithAttn = [...attnLevels].sort((a, b) => a - b);
  return {
    shape,
    ch,
    inCh,
    chMult,
    numResBlocks: blocks.size,
    attnLevels: levelsWithAttn,
    resolution,
    attnResolutions: levelsWithAttn.map((l) => resolution / 2 ** l),
    zOut: shape('encoder.conv_out.weight')[0]!,
    outCh: shape('decoder.conv_out.weight')[0]!,
  };
}

export function inferVQConfig(sd: StateDict): { config: VQConfig; notes: string[] } {
  const e = inferEncoderLayout(sd, 'cannot infer a VQGAN config (not a taming VQGAN checkpoint?)');
  const { shape, ch, inCh, chMult, zOut, outCh, resolution } = e;
  const [nEmbed, embedDim] = shape('quantize.embedding.weight') as [number, number];
  const [zCh] = shape('quant_conv.weight').slice(1) as [number];
  const hasMidAttn = sd.has('encoder.mid.attn_1.q.weight');
  const attn = e.attnResolutions;
  const config: VQConfig = {
    embed_dim: embedDim,
    n_embed: nEmbed,
    ddconfig: {
      double_z: zOut === 2 * zCh,
      z_channels: zCh,
      resolution,
      in_channels: inCh,
      out_ch: outCh,
      ch,
      ch_mult: chMult,
      num_res_blocks: e.numResBlocks,
      attn_resolutions: attn,
      dropout: 0,
    },
  };
  const notes = [
    `inferred from checkpoint keys: ch=${ch}, ch_mult=[${chMult.join(',')}], num_res_blocks=${e.numResBlocks}, z_channels=${zCh}, embed_dim=${embedDim}, n_embed=${nEmbed}`,
    `attention at levels [${e.attnLevels.join(',')}] (written as attn_resolutions=[${attn.join(',')}] with resolution=${resolution})${hasMidAttn ? '' : '; no mid attention found'}`,
  ];
  return { config, notes };
}
