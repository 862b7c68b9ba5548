// Reductions: sum, mean, max over axes; argmax/argmin (no gradient).
import type { Tensor, TensorMeta } from '../graph/ir.ts';
import * as o from '../ops/core.ts';
import { normAxes, requireFloat } from './shape.ts';
import { A, type LowerCtx, type PrimDef } from './types.ts';

export interface RedAttrs { axes: number[]; keepdims: boolean }

function redShape(op: string) {
  return ([m]: readonly TensorMeta[], a: RedAttrs): TensorMeta[] => {
    const axes = normAxes(op, a.axes, m!.shape.length);
    const s: number[] = [];
    m!.shape.forEach((d, i) => {
      if (!axes.includes(i)) s.push(d);
      else if (a.keepdims) s.push(1);
    });
    return [{ shape: s, dtype: m!.dtype }];
  };
}

/** g reshaped to keepdims form and broadcast back over x. */
function spread(g: Tensor, x: Tensor, axes: number[]): Tensor {
  const kd = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return o.expand(o.reshape(g, kd), x.shape);
}

function lowerReduce(onnx: string) {
  return (c: LowerCtx, a: RedAttrs) => {
    if (a.axes.length === 0) c.op('Identity', [c.input(0)], [c.output(0)]);
    else c.op(onnx, [c.input(0), c.i64(a.axes)], [c.output(0)], { keepdims: A.i(a.keepdims ? 1 : 0) });
  };
}

function argShape(op: string) {
  return ([m]: readonly TensorMeta[], a: { axis: number; keepdims: boolean }): TensorMeta[] => {
    requireFloat(op, m!);
    const ax = normAxes(op, [a.axis], m!.shape.length)[0]!;
    const s = m!.shape.flatMap((d, i) => (i !== ax ? [d] : a.keepdims ? [1] : []));
    return [{ shape: s, dtype: 'int64' }];
  };
}

function lowerArg(onnx: string) {
  return (c: LowerCtx, a: { axis: number; keepdims: boolean }) =>
    c.op(onnx, [c.input(0)], [c.output(0)], { axis: A.i(a.axis), keepdims: A.i(a.keepdims ? 1 : 0), select_last_index: A.i(0) });
}

export const reducePrims = {
  reduceSum: {
    doc: 'y = Σ_axes x',
    shape: redShape('reduceSum'),
    vjp: ([g], { inputs: [x] }, a: RedAttrs) => [spread(g!, x!, a.axes)],
    lower: lowerReduce('ReduceSum'),
  } satisfies PrimDef<RedAttrs>,
  reduceMean: {
    doc: 'y = mean_axes x',
    shape: redShape('reduceMean'),
    vjp: ([g], { inputs: [x] }, a: RedAttrs) => {
      const n = a.axes.reduce((p, ax) => p * x!.shape[ax]!, 1);
      return [o.div(spread(g!, x!, a.axes), n)];
    },
    lower: lowerReduce('ReduceMean'),
  } satisfies PrimDef<RedAttrs>,
  reduceMax: {
    doc: 'y = max_axes x (ties share the gradient equally, as torch.amax)',
    shape: redShape('reduceMax'),
    vjp: ([g], { inputs: [x], outputs: [y] }, a: RedAttrs) => {
      const mask = o.cast(o.equal(x!, spread(y!, x!, a.axes)), 'float32');
      const count = o.sum(mask, a.axes, true);
      return [o.div(o.mul(spread(g!, x!, a.axes), mask), count)];
    },
    lower: lowerReduce('ReduceMax'),
  } satisfies PrimDef<RedAttrs>,
  argmax: {
    doc: 'y = index of the first maximum along axis',
    shape: argShape('argmax'),
    nondiff: 'integer output',
    lower: lowerArg('ArgMax'),
  } satisfies PrimDef<{ axis: number; keepdims: boolean }>,
  argmin: {
    doc: 'y = index of the first minimum along axis',
    shape: argShape('argmin'),
    nondiff: 'integer output',
    lower: lowerArg('ArgMin'),
  } satisfies PrimDef<{ axis: number; keepdims: boolean }>,
} satisfies Record<string, PrimDef>;
