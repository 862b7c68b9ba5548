// Load whatever model a path holds — a VQGAN or a Net2Net transformer — by the one rule of
// io/model_path.ts; the weights are read once and the kind comes from their keys.
import { loadStateDict, type LoadedStateDict } from '../io/checkpoint.ts';
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
