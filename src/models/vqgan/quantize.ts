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
  /** l2-normalized (cosine) codes: latents and codes are unit vectors before matching. */
  l2?: boolean;
  /** EMA codebook (taming's EMAVectorQuantizer): codes follow running means of their latents. */
  ema?: { decay: number; eps: number };
}

/** Rows scaled to unit length along `axis`. */
export function l2normalize(x: Tensor, axis: number): Tensor {
  return o.div(x, o.add(o.sqrt(o.sum(o.square(x), axis, true)), 1e-6));
}

export interface QuantizeResult {
  /** z + sg(zq − z): quantized values with the straight-through gradient, NCHW. */
  zq: Tensor;
  loss: Tensor;
  /** [B, h, w] int64 (remapped if `used` is set). */
  indices: Tensor;
  /** Distances [B·h·w, K] (for usage statistics / k-means restarts). */
  distances: Tensor;
  /** EMA mode: new values of embedding.{weight, cluster_size, embed_avg} (keys relative to the quantizer). */
  emaUpdate?: Record<string, Tensor>;
}

/** Squared distances ‖z‖² + ‖e‖² − 2 z·eᵀ between rows of z [M, D] and codes e [K, D]. */
export function codeDistances(zf: Tensor, e: Tensor): Tensor {
  const zz = o.sum(o.square(zf), 1, true); // [M, 1]
  const ee = o.sum(o.square(e), 1); // [K]
  return o.sub(o.add(zz, ee), o.mul(o.matmul(zf, o.transpose(e, [1, 0])), 2));
}

export function quantize(p: ParamView, z: Tensor, opt: QuantizerOptions): QuantizeResult {
  const [b, c, h, w] = z.shape as [number, number, number, number];
  let e = p.get('embedding.weight'); // [K, D]
  if (e.shape[1] !== c) throw new Error(`quantize: codebook dim ${e.shape[1]} ≠ latent channels ${c}`);
  if (opt.l2) {
    z = l2normalize(z, 1);
    e = l2normalize(e, 1);
  }
  const zf = o.reshape(o.transpose(z, [0, 2, 3, 1]), [b * h * w, c]); // [M, D]
  const d = codeDistances(zf, e);
  const idx = o.argmin(d, 1); // [M]
  const zq = o.transpose(o.reshape(o.gather(e, idx, 0), [b, h, w, c]), [0, 3, 1, 2]);
  const commit = nn.mse(o.stopGradient(zq), z);
  let loss: Tensor;
  let emaUpdate: Record<string, Tensor> | undefined;
  if (opt.ema) {
    // taming EMAVectorQuantizer: only the commitment term; codes move by running means
    loss = o.mul(commit, opt.beta);
    const { decay, eps } = opt.ema;
    const K = e.shape[0]!;
    const onehot = o.stopGradient(o.oneHot(idx, K)); // [M, K]
    const n = o.sum(onehot, 0); // [K]
    const sums = o.matmul(o.transpose(onehot, [1, 0]), o.stopGradient(zf)); // [K, D]
    const cs = o.add(o.mul(p.get('embedding.cluster_size'), decay), o.mul(n, 1 - decay));
    const ea = o.add(o.mul(p.get('embedding.embed_avg'), decay), o.mul(sums, 1 - decay));
    const total = o.sum(cs);
    const smoothed = o.mul(o.div(o.add(cs, eps), o.add(total, K * eps)), total);
    emaUpdate = { 'embedding.cluster_size': cs, 'embedding.embed_avg': ea, 'embedding.weight': o.div(ea, o.unsqueeze(smoothed, 1)) };
  } else {
    const codebook = nn.mse(zq, o.stopGradient(z));
    loss = opt.legacy ? o.add(commit, o.mul(codebook, opt.beta)) : o.add(o.mul(commit, opt.beta), codebook);
  }
  const st = o.add(z, o.stopGradient(o.sub(zq, z)));
  let indices = idx;
  if (opt.used) indices = remapToUsed(idx, opt.used, opt.unknownIndex ?? 'random');
  return { zq: st, loss, indices: o.reshape(indices, [b, h, w]), distances: d, emaUpdate };
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
export function embedCode(p: ParamView, indices: Tensor, used?: BigInt64Array, l2 = false): Tensor {
  let e = p.get('embedding.weight');
  if (l2) e = l2normalize(e, 1);
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
