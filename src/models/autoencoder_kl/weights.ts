// Finding an AutoencoderKL in the files people have, by content: an SD / latent-diffusion
// .ckpt (standalone, or first_stage_model.* inside a full checkpoint — the other tensors are
// left unread), an ldm-named .safetensors, or a diffusers vae/ folder (config.json +
// diffusion_pytorch_model.*), given as the folder or its weights file. Everything comes back
// under ldm keys (io/formats/kl_keymap.ts), with a note saying what the file was.
import fs from 'node:fs';
import path from 'node:path';
import { loadStateDict } from '../../io/formats/checkpoint.ts';
import { diffusersToLdm, isDiffusersVaeKey } from '../../io/formats/kl_keymap.ts';
import type { StateDict } from '../../nn/params.ts';
import { parseDiffusersVaeConfig, type KLConfig } from './config.ts';

/** Keys beside the VAE in ldm training checkpoints: the loss (LPIPS, discriminator) and EMA state. */
export const KL_IGNORED_KEYS = /^loss\.|^model_ema\./;

export interface KLWeights {
  /** ldm-keyed weights (lazy where the file allows) */
  stateDict: StateDict;
  /** from a diffusers config.json, when there was one */
  config?: KLConfig;
  /** 'SD checkpoint', 'ldm VAE', 'diffusers vae/ folder' … for the note */
  kind: string;
  /** keys of a full checkpoint outside first_stage_model.* (used to tell the family) */
  otherKeys: string[];
  /** their tensors, left unread (lazy: a full SD checkpoint's UNet is never loaded) */
  others: StateDict;
  /** the weights file actually read */
  file: string;
  /** safetensors metadata / torch top-level scalars */
  metadata: Record<string, string>;
  notes: string[];
}

const DIFFUSERS_WEIGHTS = ['diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.fp16.safetensors', 'diffusion_pytorch_model.bin', 'diffusion_pytorch_model.fp16.bin'];

/** What a state dict that is not a KL autoencoder looks like, for the error. */
export function describeWeights(keys: readonly string[]): string {
  const has = (re: RegExp) => keys.some((k) => re.test(k));
  if (has(/^model\.diffusion_model\./)) return 'a Stable Diffusion UNet checkpoint without a VAE (model.diffusion_model.*, no first_stage_model.*)';
  if (has(/^(time_embedding|time_embed)\./) || has(/^down_blocks\.\d+\.attentions\./) || has(/^input_blocks\.\d+\./)) return 'a diffusion UNet (time embedding, down_blocks/input_blocks)';
  if (has(/^(double_blocks|joint_blocks)\./)) return 'a FLUX / SD3 transformer (double_blocks / joint_blocks)';
  if (has(/(^|\.)text_model\./) || has(/^cond_stage_model\./)) return 'a text encoder (text_model.* / cond_stage_model.*)';
  if (has(/^quantize\.embedding\.weight$/)) return 'a VQGAN (quantize.embedding.weight): load it as a VQGAN';
  if (has(/^(encoder|decoder)\.layers\.\d+\./) || has(/^\d+\.conv\.\d+\.weight$/)) return 'a TAESD tiny autoencoder';
  if (has(/lora_(up|down|A|B)\b/)) return 'a LoRA';
  return 'something else';
}

function firstWeights(dir: string): string | undefined {
  return DIFFUSERS_WEIGHTS.map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: cannot read the diffusers config: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
}

function fromDiffusers(weightsFile: string, configFile: string, kind: string): KLWeights {
  const config = parseDiffusersVaeConfig(readJson(configFile), configFile);
  const { stateDict, metadata } = loadStateDict(weightsFile);
  const { stateDict: sd, unknown } = diffusersToLdm(stateDict, config.ddconfig.ch_mult.length);
  if (unknown.length) {
    throw new Error(`${weightsFile}: ${unknown.length} keys are not diffusers AutoencoderKL keys (${unknown.slice(0, 4).join(', ')}${unknown.length > 4 ? ', …' : ''}); it looks like ${describeWeights(unknown)}`);
  }
  return { stateDict: sd, config, kind, otherKeys: [], others: new Map(), file: weightsFile, metadata, notes: [`config from ${configFile}`] };
}

/** Read the AutoencoderKL weights at `p` (file or folder), whatever the format. */
export function readKLWeights(p: string): KLWeights {
  if (!fs.existsSync(p)) throw new Error(`model not found: ${p}`);
  if (fs.statSync(p).isDirectory()) {
    // a pipeline folder holds the VAE in vae/
    const dir = !fs.existsSync(path.join(p, 'config.json')) && fs.existsSync(path.join(p, 'vae')) ? path.join(p, 'vae') : p;
    const cfg = path.join(dir, 'config.json');
    const w = firstWeights(dir);
    if (!fs.existsSync(cfg)) throw new Error(`${dir}: a diffusers VAE folder needs config.json, which is missing${w ? ` (weights ${path.basename(w)} found)` : ''}`);
    if (!w) throw new Error(`${dir}: no diffusers weights (${DIFFUSERS_WEIGHTS.join(', ')}) beside config.json`);
    return fromDiffusers(w, cfg, `diffusers VAE folder ${dir}`);
  }
  const { stateDict, format, metadata } = loadStateDict(p);
  const keys = [...stateDict.keys()];
  const fmt = format === 'torch' ? 'torch checkpoint' : 'safetensors';
  const PREFIX = 'first_stage_model.';
  if (keys.some((k) => k.startsWith(PREFIX))) {
    const sd: StateDict = new Map();
    const others: StateDict = new Map();
    for (const [k, t] of stateDict) {
      if (k.startsWith(PREFIX)) sd.set(k.slice(PREFIX.length), t);
      else others.set(k, t);
    }
    const otherKeys = [...others.keys()];
    const note = `Stable Diffusion ${fmt}: the VAE from first_stage_model.* (${sd.size} tensors; ${otherKeys.length} other tensors left unread)`;
    return { stateDict: sd, kind: 'SD checkpoint', otherKeys, others, file: p, metadata, notes: [note] };
  }
  if (keys.some(isDiffusersVaeKey)) {
    const cfg = path.join(path.dirname(p), 'config.json');
    if (!fs.existsSync(cfg)) throw new Error(`${p}: diffusers-named VAE weights, but there is no config.json beside them in ${path.dirname(p)} (a diffusers vae/ folder holds both)`);
    return fromDiffusers(p, cfg, `diffusers VAE folder ${path.dirname(p)}`);
  }
  if (keys.some((k) => /^encoder\.down\.\d+\.block\./.test(k)) && keys.some((k) => /^decoder\.up\.\d+\.block\./.test(k))) {
    return { stateDict, kind: 'ldm VAE', otherKeys: [], others: new Map(), file: p, metadata, notes: [`latent-diffusion VAE ${fmt} (ldm key names)`] };
  }
  throw new Error(`${p}: not a KL autoencoder (VAE): it looks like ${describeWeights(keys)} (${keys.length} tensors, e.g. ${keys.slice(0, 3).join(', ')})`);
}
