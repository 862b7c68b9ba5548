// Load whatever model a path holds — a VQGAN or a Net2Net transformer — by the one rule of
// io/model_path.ts; the weights are read once and the kind comes from their keys.
import fs from 'node:fs';
import path from 'node:path';
import { loadStateDict, type LoadedStateDict } from '../io/formats/checkpoint.ts';
import { kindFromKeys, resolveModelPath, type ModelPath } from '../io/model_path.ts';
import type { SessionOptions } from '../runtime/backend.ts';
import { VQGAN } from './vqgan/load.ts';
import { Net2Net } from './cond_transformer/load.ts';

export type AnyModel = { kind: 'vqgan'; model: VQGAN } | { kind: 'transformer'; model: Net2Net };

export interface LoadedModel {
  /** Where it was read from. */
  where: ModelPath;
  /** The weights file's state dict as stored (every key, loss.* included). */
  stored: LoadedStateDict;
}

/** A model directory or a checkpoint file (and an optional config) → a VQGAN or a Net2Net. */
export function loadAnyModel(modelPath: string, opts: { config?: string; session?: SessionOptions } = {}): AnyModel & LoadedModel {
  const where = resolveModelPath(modelPath, opts.config);
  const stored = loadStateDict(where.weights);
  if (kindFromKeys(stored.stateDict.keys()) === 'transformer') return { kind: 'transformer', model: Net2Net.fromFiles(where, stored, opts), where, stored };
  return { kind: 'vqgan', model: VQGAN.fromFiles(where, stored, opts), where, stored };
}

/** A Stable Diffusion-style latent autoencoder: a KL VAE, or a TAESD preview model. */
export type LatentModelKind = 'kl' | 'taesd';

const TAESD_PART = /_(encoder|decoder)\.(pth|pt|safetensors)$/;
const DIFFUSERS_WEIGHTS = /^diffusion_pytorch_model(\.fp16)?\.(safetensors|bin)$/;

function diffusersClass(dir: string): LatentModelKind | null {
  const cfg = path.join(dir, 'config.json');
  if (!fs.existsSync(cfg)) return null;
  let cls: unknown;
  try {
    cls = (JSON.parse(fs.readFileSync(cfg, 'utf8')) as { _class_name?: unknown })._class_name;
  } catch {
    return null;
  }
  return cls === 'AutoencoderTiny' ? 'taesd' : cls === 'AutoencoderKL' ? 'kl' : null;
}

/**
 * Whether a path holds a KL VAE or a TAESD (so the VQGAN commands hand it to their KL
 * branch), by folder layout (diffusers config.json's _class_name, *_encoder/_decoder files)
 * or by the weights' keys: an ldm or diffusers autoencoder without a codebook → 'kl'
 * (SD checkpoints' first_stage_model.* too); Sequential-indexed convs → 'taesd'. Null for
 * VQGANs and transformers (and anything unknown: their loaders name the problem).
 */
export function latentModelKind(given: string): LatentModelKind | null {
  if (!fs.existsSync(given)) return null;
  let file = given;
  if (fs.statSync(given).isDirectory()) {
    const byConfig = diffusersClass(given);
    if (byConfig) return byConfig;
    const names = fs.readdirSync(given);
    if (!names.includes('model.safetensors') && names.some((f) => TAESD_PART.test(f))) return 'taesd';
    if (!names.includes('model.safetensors')) return null;
    file = path.join(given, 'model.safetensors');
  } else if (DIFFUSERS_WEIGHTS.test(path.basename(given))) {
    const byConfig = diffusersClass(path.dirname(given));
    if (byConfig) return byConfig;
  }
  let keys: string[];
  try {
    keys = [...loadStateDict(file).stateDict.keys()];
  } catch {
    return null; // the model's own loader reports it
  }
  if (keys.some((k) => k.startsWith('transformer.') || /(^|\.)quantize\./.test(k))) return null;
  if (keys.some((k) => /^(first_stage_model\.)?(encoder|decoder)\.(conv_in|down\.|up\.|mid\.|down_blocks|up_blocks|mid_block)/.test(k))) return 'kl';
  if (keys.some((k) => /^((encoder|decoder)\.(layers\.)?)?\d+\.conv\.0\.weight$/.test(k))) return 'taesd';
  return null;
}
