// Indexing primitives: matmul, gather (embedding lookup), its transpose scatterAdd, oneHot.
import * as o from '../ops/core.ts';
import { unbroadcast } from '../autodiff/unbroadcast.ts';
import { broadcastShapes, normAxes, requireFloat, sameDType } from './shape.ts';
import { A, fmtShape, type PrimDef } from './types.ts';
import { HostTensor } from '../tensor.ts';

const swapLast = (r: number) => [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2];

function requireIndex(op: string, dtype: string): void {
  if (dtype !== 'int64' && dtype !== 'int32') throw new Error(`${op}: indices must be int64 or int32, got ${dtype}`);
}

export const indexingPrims = {
  matmul: {
    doc: 'y = a @ b (batched over leading dims, numpy broadcasting)',
    shape: ([a, b]) => {
      sameDType('matmul', [a!, b!]);
      requireFloat('matmul', a!);
      if (a!.shape.length < 2 || b!.shape.length < 2) {
        throw new Error(`matmul: operands need rank ≥ 2, got ${fmtShape(a!.shape)} and ${fmtShape(b!.shape)}`);
      }
      const [m, k] = a!.shape.slice(-2) as [number, number];
      const [k2, n] = b!.shape.slice(-2) as [number, number];
      if (k !== k2) throw new Error(`matmul: inner dimensions differ: ${fmtShape(a!.shape)} @ ${fmtShape(b!.shape)}`);
      const batch = broadcastShapes('matmul', [a!.shape.slice(0, -2), b!.shape.slice(0, -2)]);
      return [{ shape: [...batch, m, n], dtype: a!.dtype }];
    },
    vjp: ([g], { inputs: [a, b] }) => [
      unbroadcast(o.matmul(g!, o.transpose(b!, swapLast(b!.rank))), a!.shape),
      unbroadcast(o.matmul(o.transpose(a!, swapLast(a!.rank)), g!), b!.shape),
    ],
    lower: (c) => c.op('MatMul', [c.input(0), c.input(1)], [c.output(0)]),
  } satisfies PrimDef,

  gather: {
    doc: 'y = data[..., indices, ...] along axis',
    shape: ([d, i], a: { axis: number }) => {
      requireIndex('gather', i!.dtype);
      const ax = normAxes('gather', [a.axis], d!.shape.length)[0]!;
      return [{ shape: [...d!.shape.slice(0, ax), ...i!.shape, ...d!.shape.slice(ax + 1)], dtype: d!.dtype }];
    },
    vjp: ([g], { inputs: [d, i] }, a: { axis: number }) => {
      if (a.axis !== 0) throw new Error(`gather: gradient is implemented for axis 0 only (embedding lookup), got axis ${a.axis}`);
      return [o.scatterAdd(d!.shape, i!, g!), null];
    },
    lower: (c, a: { axis: number }) => c.op('Gather', [c.input(0), c.input(1)], [c.output(0)], { axis: A.i(a.axis) }),
  } satisfies PrimDef<{ axis: number }>,

  scatterAdd: {
    doc: 'y = zeros(shape); y[indices[j]] += updates[j] (rows along axis 0)',
    shape: ([i, u], a: { shape: number[] }) => {
      requireIndex('scatterAdd', i!.dtype);
      const want = [...i!.shape, ...a.shape.slice(1)];
      if (want.length !== u!.shape.length || want.some((d, k) => d !== u!.shape[k])) {
        throw new Error(`scatterAdd: updates must have shape ${fmtShape(want)}, got ${fmtShape(u!.shape)}`);
      }
      return [{ shape: a.shape, dtype: u!.dtype }];
    },
    vjp: ([g], { inputs: [i] }) => [null, o.gather(g!, i!, 0)],
    lower: (c, a: { shape: number[] }) => {
      let idx = c.input(0);
      if (c.inMeta(0).dtype !== 'int64') idx = c.op('Cast', [idx], 1, { to: A.i(7) })[0]!;
      const idx2 = c.op('Unsqueeze', [idx, c.i64([-1])], 1)[0]!; // [..., 1]
      const zeros = c.op('ConstantOfShape', [c.i64(a.shape)], 1, { value: A.t(HostTensor.float32([1], [0])) })[0]!;
      c.op('ScatterND', [zeros, idx2, c.input(1)], [c.output(0)], { reduction: A.s('add') });
    },
  } satisfies PrimDef<{ shape: number[] }>,

  oneHot: {
    doc: 'y[..., k] = (indices[...] == k) as float32',
    shape: ([i], a: { depth: number }) => {
      requireIndex('oneHot', i!.dtype);
      return [{ shape: [...i!.shape, a.depth], dtype: 'float32' }];
    },
    nondiff: 'integer input',
    lower: (c, a: { depth: number }) =>
      c.op('OneHot', [c.input(0), c.i64([a.depth]), c.constant(HostTensor.float32([2], [0, 1]))], [c.output(0)], { axis: A.i(-1) }),
  } satisfies PrimDef<{ depth: number }>,
} satisfies Record<string, PrimDef>;
