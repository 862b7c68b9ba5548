// taming's VectorQuantizer2: nearest codebook entry by squared distance, codebook +
// commitment loss (β placement `legacy` or fixed), straight-through estimator, optional
// index remapping to a subset of used codes.
import type { Tensor } from '../../graph/ir.ts';
import * as o from '../../ops/core.ts';
import * as nn from '../../ops/nn.ts';
import type { ParamView } from '../../nn/params.ts';
import { HostTensor } from '../../tensor.ts';

export interface QuantizerOptions {
  beta: number;
  /** taming default true: loss = ‖sg(zq)−z‖² + β‖zq−sg(z)‖²; false swaps where β sits. */
  legacy: boolean;
  /** Used-code table (taming `remap`): indices are reported in 0..used.length−1. */
  used?: BigInt64Array;
  unknownIndex?: 'random' | 'extra' | number;
}

export interface QuantizeResult {
  /** z + sg(zq − z): quantized values with the straight-through gradient, NCHW. */
  zq: Tensor;
  loss: Tensor;
  /** [B, h, w] int64 (remapped if `used` is set). */
  indices: Tensor;
  /** Distances [B·h·w, K] (for usage statistics / k-means restarts). */
  distances: Tensor;
}

/** Squared distances ‖z‖² + ‖e‖² − 2 z·eᵀ between rows of z [M, D] and codes e [K, D]. */
export function codeDistances(zf: Tensor, e: Tensor): Tensor {
  const zz = o.sum(o.square(zf), 1, true); // [M, 1]
  const ee = o.sum(o.square(e), 1); // [K]
  return o.sub(o.add(zz, ee), o.mul(o.matmul(zf, o.transpose(e, [1, 0])), 2));
}

export function quantize(p: ParamView, z: Tensor, opt: QuantizerOptions): QuantizeResult {
  const [b, c, h, w] = z.shape as [number, number, number, number];
  const e = p.get('embedding.weight'); // [K, D]
  if (e.shape[1] !== c) throw new Error(`quantize: codebook dim ${e.shape[1]} ≠ latent channels ${c}`);
  const zf = o.reshape(o.transpose(z, [0, 2, 3, 1]), [b * h * w, c]); // [M, D]
  const d = codeDistances(zf, e);
  const idx = o.argmin(d, 1); // [M]
  const zq = o.transpose(o.reshape(o.gather(e, idx, 0), [b, h, w, c]), [0, 3, 1, 2]);
  const commit = nn.mse(o.stopGradient(zq), z);
  const codebook = nn.mse(zq, o.stopGradient(z));
  const loss = opt.legacy ? o.add(commit, o.mul(codebook, opt.beta)) : o.add(o.mul(commit, opt.beta), codebook);
  const st = o.add(z, o.stopGradient(o.sub(zq, z)));
  let indices = idx;
  if (opt.used) indices = remapToUsed(idx, opt.used, opt.unknownIndex ?? 'random');
  return { zq: st, loss, indices: o.reshape(indices, [b, h, w]), distances: d };
}

/** Map full-codebook indices to positions in `used`; unknown ones per taming's unknown_index. */
export function remapToUsed(idx: Tensor, used: BigInt64Array, unknown: 'random' | 'extra' | number): Tensor {
  const u = o.constant(new HostTensor('int64', [1, used.length], used));
  const match = o.equal(o.unsqueeze(idx, 1), u); // [M, U]
  const pos = o.argmax(o.cast(match, 'float32'), 1);
  const known = o.greater(o.sum(o.cast(match, 'float32'), 1), 0.5);
  let fallback: Tensor;
  if (unknown === 'extra') fallback = o.constant(used.length, 'int64');
  else if (typeof unknown === 'number') fallback = o.constant(unknown, 'int64');
  else {
    // taming draws torch.randint here; we use a fixed position hash so outputs are reproducible
    const m = idx.shape[0]!;
    const r = HostTensor.int64([m], Array.from({ length: m }, (_, i) => Number((BigInt(i) * 2654435761n) % BigInt(used.length))));
    fallback = o.constant(r);
  }
  return o.where(known, pos, fallback);
}

/** Inverse of remapToUsed; 'extra' indices (≥ used.length) map to 0 as in taming. */
export function unmapToAll(idx: Tensor, used: BigInt64Array): Tensor {
  const safe = o.where(o.less(idx, used.length), idx, 0);
  return o.gather(o.constant(new HostTensor('int64', [used.length], used)), safe, 0);
}

/** Codebook rows for indices [B, h, w] → NCHW latents (taming get_codebook_entry). */
export function embedCode(p: ParamView, indices: Tensor, used?: BigInt64Array): Tensor {
  const e = p.get('embedding.weight');
  const [b, h, w] = indices.shape as [number, number, number];
  let idx = o.reshape(indices, [b * h * w]);
  if (used) idx = unmapToAll(idx, used);
  return o.transpose(o.reshape(o.gather(e, idx, 0), [b, h, w, e.shape[1]!]), [0, 3, 1, 2]);
}

/** Codebook usage statistics from a batch of indices: fraction of codes used and perplexity. */
export function codeUsage(indices: ArrayLike<number | bigint>, nCodes: number): { used: number; usage: number; perplexity: number; counts: Uint32Array } {
  const counts = new Uint32Array(nCodes);
  for (let i = 0; i < indices.length; i++) counts[Number(indices[i])]!++;
  let used = 0;
  let ent = 0;
  for (const c of counts) {
    if (!c) continue;
    used++;
    const p = c / indices.length;
    ent -= p * Math.log(p);
  }
  return { used, usage: used / nCodes, perplexity: Math.exp(ent), counts };
}
