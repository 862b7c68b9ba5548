// Composite neural-network ops built from primitives; their gradients come for free.
import type { Tensor } from '../graph/ir.ts';
import * as o from './core.ts';
import { emit, emit1 } from '../graph/trace.ts';

/** silu(x) = x·σ(x) (taming's `nonlinearity` / swish); a primitive for its cheaper VJP. */
export const silu = (x: Tensor): Tensor => emit1('silu', [x]);

/** gelu(x) = x·Φ(x), exact (erf) form. */
export const gelu = (x: Tensor): Tensor => o.mul(o.mul(x, 0.5), o.add(o.erf(o.mul(x, Math.SQRT1_2)), 1));

/** Softmax along `axis`: one `softmax` primitive (ONNX Softmax). */
export function softmax(x: Tensor, axis = -1): Tensor {
  return emit1('softmax', [x], { axis: axis < 0 ? axis + x.rank : axis });
}

/** The composite softmax (max-subtracted; the max carries no gradient): the primitive's reference. */
export function softmaxComposite(x: Tensor, axis = -1): Tensor {
  const m = o.stopGradient(o.max(x, axis, true));
  const e = o.exp(o.sub(x, m));
  return o.div(e, o.sum(e, axis, true));
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const m = o.stopGradient(o.max(x, axis, true));
  const s = o.sub(x, m);
  return o.sub(s, o.log(o.sum(o.exp(s), axis, true)));
}

/** x·Wᵀ + b with a PyTorch Linear weight [out, in]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const y = o.matmul(x, o.transpose(weight, [1, 0]));
  return bias ? o.add(y, bias) : y;
}

/** Biased variance and mean over axes (keepdims). */
function moments(x: Tensor, axes: number[]): [Tensor, Tensor] {
  const mu = o.mean(x, axes, true);
  const d = o.sub(x, mu);
  return [mu, o.mean(o.mul(d, d), axes, true)];
}

/**
 * GroupNorm over NC… input; weight/bias [C] (torch.nn.GroupNorm semantics). With both
 * weight and bias it is one `groupNorm` primitive (ONNX GroupNormalization); otherwise the
 * composite below (also the reference the primitive is tested against).
 */
export function groupNorm(x: Tensor, numGroups: number, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  if (weight && bias && process.env.LATENTKIT_GN_COMPOSITE !== '1') {
    return emit1('groupNorm', [x, weight, bias], { groups: numGroups, eps });
  }
  return groupNormComposite(x, numGroups, weight, bias, eps);
}

export function groupNormComposite(x: Tensor, numGroups: number, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  const [n, c] = x.shape as [number, number];
  if (c % numGroups !== 0) throw new Error(`groupNorm: ${c} channels not divisible by ${numGroups} groups`);
  const g = o.reshape(x, [n, numGroups, -1]); // [N, G, C/G·H·W]
  const [mu, v] = moments(g, [2]);
  let y = o.reshape(o.div(o.sub(g, mu), o.sqrt(o.add(v, eps))), x.shape);
  const cshape = [c, ...x.shape.slice(2).map(() => 1)];
  if (weight) y = o.mul(y, o.reshape(weight, cshape));
  if (bias) y = o.add(y, o.reshape(bias, cshape));
  return y;
}

/**
 * LayerNorm over the trailing `normDims` axes. Over the last axis with weight and bias it is
 * one `layerNorm` primitive (ONNX LayerNormalization); otherwise the composite.
 */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5, normDims = 1): Tensor {
  if (normDims === 1 && weight && bias) return emit('layerNorm', [x, weight, bias], { eps })[0]!;
  return layerNormComposite(x, weight, bias, eps, normDims);
}

/** The composite LayerNorm (reference for the primitive). */
export function layerNormComposite(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5, normDims = 1): Tensor {
  const axes = Array.from({ length: normDims }, (_, i) => x.rank - normDims + i);
  const [mu, v] = moments(x, axes);
  let y = o.div(o.sub(x, mu), o.sqrt(o.add(v, eps)));
  if (weight) y = o.mul(y, weight);
  if (bias) y = o.add(y, bias);
  return y;
}

export interface BatchNormResult {
  y: Tensor;
  /** Updated running statistics (train mode only), as torch: momentum-blended, unbiased var. */
  runningMean?: Tensor;
  runningVar?: Tensor;
}

/** BatchNorm2d/1d over N and spatial dims; channels on axis 1. */
export function batchNorm(
  x: Tensor,
  p: { weight: Tensor | null; bias: Tensor | null; runningMean: Tensor; runningVar: Tensor },
  o2: { training: boolean; momentum?: number; eps?: number },
): BatchNormResult {
  const eps = o2.eps ?? 1e-5;
  const c = x.shape[1]!;
  const cshape = x.shape.map((d, i) => (i === 1 ? c : 1));
  const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
  let y: Tensor;
  const res: BatchNormResult = { y: x };
  if (o2.training) {
    const [mu, v] = moments(x, axes);
    y = o.div(o.sub(x, mu), o.sqrt(o.add(v, eps)));
    const m = o2.momentum ?? 0.1;
    const count = axes.reduce((a, ax) => a * x.shape[ax]!, 1);
    const unbiased = o.mul(o.reshape(v, [c]), count / Math.max(count - 1, 1));
    res.runningMean = o.stopGradient(o.add(o.mul(p.runningMean, 1 - m), o.mul(o.reshape(mu, [c]), m)));
    res.runningVar = o.stopGradient(o.add(o.mul(p.runningVar, 1 - m), o.mul(unbiased, m)));
  } else {
    y = o.div(o.sub(x, o.reshape(p.runningMean, cshape)), o.sqrt(o.add(o.reshape(p.runningVar, cshape), eps)));
  }
  if (p.weight) y = o.mul(y, o.reshape(p.weight, cshape));
  if (p.bias) y = o.add(y, o.reshape(p.bias, cshape));
  res.y = y;
  return res;
}

/** Nearest-neighbour 2× upsampling of NCHW (F.interpolate(scale_factor=2, mode='nearest')). */
export function upsampleNearest2x(x: Tensor): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const t = o.reshape(x, [n, c, h, 1, w, 1]);
  return o.reshape(o.expand(t, [n, c, h, 2, w, 2]), [n, c, 2 * h, 2 * w]);
}

/**
 * Scaled dot-product attention: softmax(q·kᵀ·scale + mask)·v over [..., L, D] inputs.
 * `mask` (bool, broadcastable to [..., Lq, Lk]) keeps positions where true.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: { scale?: number; mask?: Tensor } = {}): Tensor {
  const d = q.shape[q.rank - 1]!;
  const perm = [...q.shape.slice(0, -2).map((_, i) => i), k.rank - 1, k.rank - 2];
  let s = o.mul(o.matmul(q, o.transpose(k, perm)), opts.scale ?? 1 / Math.sqrt(d));
  if (opts.mask) s = o.where(opts.mask, s, -1e30);
  return o.matmul(softmax(s, -1), v);
}

/** Inverted dropout with a mask given as input (1 = keep), so graphs stay random-free. */
export function dropout(x: Tensor, keepMask: Tensor, p: number): Tensor {
  if (p <= 0) return x;
  return o.mul(o.mul(x, keepMask), 1 / (1 - p));
}

/** Mean squared error and mean absolute error. */
export const mse = (a: Tensor, b: Tensor): Tensor => o.mean(o.square(o.sub(a, b)));
export const l1 = (a: Tensor, b: Tensor): Tensor => o.mean(o.abs(o.sub(a, b)));
