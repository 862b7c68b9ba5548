// Where a model's weights and config are: one rule for every command and loader (VQGAN.load,
// Net2Net.load, the CLI, the server).
//
//   a directory  → its model.safetensors; config: --config, else its config.yaml, else the
//                  file's metadata, else a config beside the file
//   a file       → itself;                config: --config, else the file's metadata, else a
//                  config beside it (<name>.yaml, config.yaml, model.yaml, taming's
//                  ../configs/model.yaml and ../configs/*-project.yaml)
//
// What kind of model it is comes from the weights' keys: transformer.* → a Net2Net
// transformer, otherwise a VQGAN.
import fs from 'node:fs';
import path from 'node:path';

export const MODEL_FILE = 'model.safetensors';
export const CONFIG_FILE = 'config.yaml';

export interface ModelPath {
  /** The path as given. */
  given: string;
  /** `given` is a model directory. */
  directory: boolean;
  /** The weights file. */
  weights: string;
  /** A config that comes before the file's metadata: the one passed, or the directory's config.yaml. */
  config: string | null;
  /** Existing config files beside the weights, in the order they are tried (after the metadata). */
  beside: string[];
}

export type ModelKind = 'vqgan' | 'transformer';

/** --model's help, the same for every command. */
export const MODEL_PATH_HELP = 'a model directory (model.safetensors + config.yaml) or a checkpoint file: taming .ckpt, PyTorch state dict, .safetensors';

/** Config files beside a weights file that exist, in the order they are tried. */
export function configsBeside(weights: string): string[] {
  const dir = path.dirname(weights);
  const base = path.basename(weights).replace(/\.[^.]+$/, '');
  const cands = [`${base}.yaml`, CONFIG_FILE, 'model.yaml'].map((f) => path.join(dir, f));
  // taming's logs/<run>/{checkpoints,configs} layout and its releases' ../configs/model.yaml
  const cfgDir = path.join(dir, '..', 'configs');
  if (fs.existsSync(cfgDir) && fs.statSync(cfgDir).isDirectory()) {
    cands.push(path.join(cfgDir, 'model.yaml'));
    for (const f of fs.readdirSync(cfgDir).sort()) if (f.endsWith('project.yaml')) cands.push(path.join(cfgDir, f));
  }
  return [...new Set(cands)].filter((f) => fs.existsSync(f) && fs.statSync(f).isFile());
}

/** Resolve a model directory or file (and an optional --config) to the files to read; one-line errors. */
export function resolveModelPath(given: string, config?: string): ModelPath {
  let st: fs.Stats;
  try {
    st = fs.statSync(given);
  } catch {
    throw new Error(`model not found: ${given}`);
  }
  if (config !== undefined && !(fs.existsSync(config) && fs.statSync(config).isFile())) throw new Error(`config not found: ${config}`);
  if (st.isDirectory()) {
    const weights = path.join(given, MODEL_FILE);
    if (!fs.existsSync(weights)) {
      const has = fs.readdirSync(given).filter((f) => /\.(safetensors|ckpt|pt|pth)$/.test(f));
      throw new Error(`${given}: a model directory holds ${MODEL_FILE} (and ${CONFIG_FILE}); this one has no ${MODEL_FILE}${has.length ? ` — pass one of its files: ${has.slice(0, 4).join(', ')}` : ''}`);
    }
    const own = path.join(given, CONFIG_FILE);
    return { given, directory: true, weights, config: config ?? (fs.existsSync(own) ? own : null), beside: configsBeside(weights) };
  }
  return { given, directory: false, weights: given, config: config ?? null, beside: configsBeside(given) };
}

/** The kind of model a state dict holds: transformer.* keys → a Net2Net transformer, else a VQGAN. */
export function kindFromKeys(keys: Iterable<string>): ModelKind {
  for (const k of keys) if (k.startsWith('transformer.')) return 'transformer';
  return 'vqgan';
}
