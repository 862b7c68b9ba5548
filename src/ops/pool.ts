// Pooling as composites over reshape + reductions (no pooling primitive): the gradient
// comes from reduceMax / reduceMean's VJPs. Only kernel == stride (non-overlapping
// windows) is supported; trailing rows/columns that do not fill a window are dropped,
// as PyTorch's default floor mode does.
import type { Tensor } from '../graph/ir.ts';
import * as o from './core.ts';

function windows(x: Tensor, k: number, op: string): Tensor {
  if (x.rank !== 4) throw new Error(`${op}: expected NCHW input, got rank ${x.rank}`);
  if (!Number.isInteger(k) || k < 1) throw new Error(`${op}: kernel size must be a positive integer, got ${k}`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const ho = Math.floor(h / k);
  const wo = Math.floor(w / k);
  if (ho === 0 || wo === 0) throw new Error(`${op}: input ${h}×${w} is smaller than the ${k}×${k} window`);
  if (ho * k !== h || wo * k !== w) x = o.slice(x, [0, 0], [ho * k, wo * k], [2, 3]); // floor mode
  return o.reshape(x, [n, c, ho, k, wo, k]); // [N, C, H/k, k, W/k, k]
}

/**
 * k×k max pooling with stride k (F.max_pool2d(x, k)): y = max over each window. Ties share
 * the gradient equally (PyTorch routes it to one element; after a ReLU the usual tie is
 * at 0, where both give 0 upstream of the ReLU).
 */
export function maxPool2d(x: Tensor, k = 2): Tensor {
  return o.max(windows(x, k, 'maxPool2d'), [3, 5]); // [N, C, H/k, W/k]
}

/** k×k average pooling with stride k (F.avg_pool2d(x, k)). */
export function avgPool2d(x: Tensor, k = 2): Tensor {
  return o.mean(windows(x, k, 'avgPool2d'), [3, 5]); // [N, C, H/k, W/k]
}
