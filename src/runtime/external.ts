// Weights held once: baked values whose bytes sit verbatim in a file (F32/I64/I32 tensors of a
// safetensors file, or contiguous ones in a torch .ckpt's STORED entries; see HostTensor.origin)
// become ONNX external data, so ONNX Runtime reads them from the checkpoint itself instead of
// from a serialised copy in the model bytes, and the JS side never loads them. ORT (1.30, CPU)
// needs no particular offset alignment (probed at offsets 1–4097); the readers only hand out
// element-aligned regions. Measured on taming's f16/16384 VQGAN (bench/README.md, "Weights
// once", "A taming .ckpt held once").
//
// ORT reads external data only from inside the model file's directory, checked after
// resolving symlinks, and its graph optimizer needs a model path (a model given as bytes
// fails). So the model is written to a private temporary directory beside hard links to the
// checkpoints, and the directory is removed once the session exists. Files that cannot be
// hard-linked (another filesystem), files changed on disk since they were read, and values
// without an origin are embedded in the model bytes as before.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ExternalRef } from '../onnx/lower.ts';
import type { FileOrigin, HostTensor } from '../tensor.ts';

export interface ExternalPlan {
  ref: (name: string, t: HostTensor) => ExternalRef | undefined;
  /** Writes the model beside the links and returns its path (what ORT is given). */
  modelSource: (model: Uint8Array) => string;
  cleanup: () => void;
}

function unchanged(o: FileOrigin): boolean {
  try {
    const st = fs.statSync(o.file);
    return st.ino === o.ino && st.size === o.size && st.mtimeMs === o.mtimeMs;
  } catch {
    return false;
  }
}

/** null when no baked value can be read from a file (then everything is embedded). */
export function planExternalData(bake: ReadonlyMap<string, HostTensor>): ExternalPlan | null {
  const files = new Map<string, boolean>(); // file → usable
  for (const t of bake.values()) {
    const o = t.origin;
    if (o && !files.has(o.file)) files.set(o.file, unchanged(o));
  }
  const usable = [...files].filter(([, ok]) => ok).map(([f]) => f);
  if (!usable.length) return null;

  const location = new Map<string, string>();
  let dir: string | null = fs.mkdtempSync(path.join(os.tmpdir(), 'latentkit-'));
  usable.forEach((f, i) => {
    const link = `w${i}${path.extname(f)}`;
    try {
      fs.linkSync(f, path.join(dir!, link));
      location.set(f, link);
    } catch {
      // another filesystem or no permission: these weights are embedded
    }
  });
  const cleanup = () => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = null;
  };
  if (!location.size) {
    cleanup();
    return null;
  }
  return {
    ref: (_name, t) => {
      const o = t.origin;
      const loc = o && location.get(o.file);
      return loc ? { location: loc, offset: o.offset, length: o.length } : undefined;
    },
    modelSource: (model) => {
      const file = path.join(dir!, 'model.onnx');
      fs.writeFileSync(file, model);
      return file;
    },
    cleanup,
  };
}
