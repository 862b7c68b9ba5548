// Training checkpoints: one directory per checkpoint (model.safetensors with taming keys,
// optim.safetensors with flat optimizer state, state.json), built under a temporary name and
// renamed into place; `last.json` (written atomically) names the newest. A crash at any
// point leaves the previous checkpoint intact.
import fs from 'node:fs';
import path from 'node:path';
import { readSafetensorsFile, writeSafetensorsFile } from '../io/formats/safetensors.ts';
import { writeJsonAtomicSync } from '../io/atomic.ts';
import type { HostTensor } from '../tensor.ts';
import type { StateDict } from '../nn/params.ts';

export interface CheckpointData {
  step: number;
  model: StateDict;
  optim: Record<string, HostTensor>;
  state: Record<string, unknown>;
  metadata: Record<string, string>;
}

const dirName = (step: number) => `step-${String(step).padStart(7, '0')}`;

export function saveCheckpoint(root: string, c: CheckpointData, keep = 2): string {
  fs.mkdirSync(root, { recursive: true });
  const final = path.join(root, dirName(c.step));
  const tmp = `${final}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  writeSafetensorsFile(path.join(tmp, 'model.safetensors'), c.model, c.metadata);
  writeSafetensorsFile(path.join(tmp, 'optim.safetensors'), new Map(Object.entries(c.optim)));
  writeJsonAtomicSync(path.join(tmp, 'state.json'), { step: c.step, ...c.state });
  fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(tmp, final);
  writeJsonAtomicSync(path.join(root, 'last.json'), { dir: path.basename(final), step: c.step });
  // prune older checkpoints (and leftovers of interrupted saves)
  const dirs = fs.readdirSync(root).filter((d) => d.startsWith('step-')).sort();
  for (const d of dirs) if (d.includes('.tmp-')) fs.rmSync(path.join(root, d), { recursive: true, force: true });
  const done = dirs.filter((d) => !d.includes('.tmp-'));
  for (const d of done.slice(0, Math.max(0, done.length - keep))) fs.rmSync(path.join(root, d), { recursive: true, force: true });
  return final;
}

export function loadLastCheckpoint(root: string): CheckpointData | null {
  const lastFile = path.join(root, 'last.json');
  if (!fs.existsSync(lastFile)) return null;
  const last = JSON.parse(fs.readFileSync(lastFile, 'utf8')) as { dir: string; step: number };
  const dir = path.join(root, last.dir);
  const model = readSafetensorsFile(path.join(dir, 'model.safetensors'));
  const optim = readSafetensorsFile(path.join(dir, 'optim.safetensors')).tensors;
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as Record<string, unknown> & { step: number };
  return { step: state.step, model: model.tensors, optim: Object.fromEntries(optim), state, metadata: model.metadata };
}
