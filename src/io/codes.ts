// Code sets: a dataset encoded once by a VQGAN, so transformer training never reruns the
// encoder. One safetensors file:
//   codes       int32 [N, V, h, w]   image codes; V views per image (1, or 2 with the
//                                    horizontal flip encoded too)
//   cond        int32 [N, V, hc, wc] condition codes (the condition images encoded by their
//                                    own VQGAN, flipped with the image), when present
//   labels      int32 [N]            class index into metadata.classes
//   val         uint8 [N]            1 for the validation split (the VQGAN's split)
// metadata: format 'latentkit-codes', classes, keys, data, model, cond_model, cond, size,
// n_codes, cond_n_codes (JSON strings).
import { HostTensor } from '../tensor.ts';
import { readSafetensorsFile, writeSafetensorsFile } from './formats/safetensors.ts';

export interface CodeSet {
  codes: HostTensor<'int32'>;
  cond: HostTensor<'int32'> | null;
  labels: Int32Array;
  val: Uint8Array;
  classes: string[];
  keys: string[];
  /** Codebook sizes of the image and condition VQGANs. */
  nCodes: number;
  condCodes: number;
  /** Where the codes came from (paths as given to extract-codes). */
  info: { data: string; model: string; condModel?: string; cond?: string; size: number };
}

export const CODES_FORMAT = 'latentkit-codes';

export function writeCodeSet(file: string, s: CodeSet): void {
  const t: Record<string, HostTensor> = {
    codes: s.codes,
    labels: new HostTensor('int32', [s.labels.length], s.labels),
    val: new HostTensor('uint8', [s.val.length], s.val),
  };
  if (s.cond) t.cond = s.cond;
  writeSafetensorsFile(file, t, {
    format: CODES_FORMAT,
    classes: JSON.stringify(s.classes),
    keys: JSON.stringify(s.keys),
    n_codes: String(s.nCodes),
    cond_n_codes: String(s.condCodes),
    info: JSON.stringify(s.info),
  });
}

export function readCodeSet(file: string): CodeSet {
  const { tensors, metadata } = readSafetensorsFile(file);
  if (metadata.format !== CODES_FORMAT) {
    throw new Error(`${file}: not a code set (metadata format is ${JSON.stringify(metadata.format ?? null)}, expected '${CODES_FORMAT}'; make one with \`latentkit extract-codes\`)`);
  }
  const need = (k: string) => {
    const v = tensors.get(k);
    if (!v) throw new Error(`${file}: code set has no '${k}' tensor`);
    return v;
  };
  const codes = need('codes');
  const labels = need('labels');
  const val = need('val');
  const cond = tensors.get('cond') ?? null;
  const n = codes.shape[0]!;
  if (codes.shape.length !== 4 || codes.dtype !== 'int32') throw new Error(`${file}: 'codes' must be int32 [N, views, h, w], got ${codes.dtype}[${codes.shape.join(', ')}]`);
  if (labels.size !== n || val.size !== n) throw new Error(`${file}: ${n} code grids but ${labels.size} labels and ${val.size} split flags`);
  if (cond && (cond.shape.length !== 4 || cond.shape[0] !== n || cond.shape[1] !== codes.shape[1])) {
    throw new Error(`${file}: 'cond' must be int32 [${n}, ${codes.shape[1]}, hc, wc], got [${cond.shape.join(', ')}]`);
  }
  const toI32 = (t: HostTensor) => (t.dtype === 'int32' ? (t as HostTensor<'int32'>) : new HostTensor('int32', t.shape, Int32Array.from(t.toArray())));
  return {
    codes: toI32(codes),
    cond: cond ? toI32(cond) : null,
    labels: Int32Array.from(labels.toArray()),
    val: Uint8Array.from(val.toArray()),
    classes: JSON.parse(metadata.classes ?? '[]') as string[],
    keys: JSON.parse(metadata.keys ?? '[]') as string[],
    nCodes: Number(metadata.n_codes),
    condCodes: Number(metadata.cond_n_codes ?? 0),
    info: JSON.parse(metadata.info ?? '{}') as CodeSet['info'],
  };
}
