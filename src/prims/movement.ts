// Data-movement primitives: constant, reshape, transpose, expand, slice, concat, pad.
import type { Tensor } from '../graph/ir.ts';
import * as o from '../ops/core.ts';
import { unbroadcast } from '../autodiff/unbroadcast.ts';
import { broadcastShapes, normAxes, prod, sameDType } from './shape.ts';
import { A, fmtShape, type PrimDef } from './types.ts';
import type { HostTensor } from '../tensor.ts';

const I64_MIN = -9007199254740991;

/** Resolve python/ONNX slice bounds on an axis of length d: first index and element count. */
export function resolveSlice(d: number, start: number, end: number, step: number): { start: number; count: number } {
  if (!Number.isInteger(step) || step === 0) throw new Error(`slice: step must be a non-zero integer, got ${step}`);
  const norm = (v: number) => (v < 0 ? v + d : v);
  let s = norm(start);
  let e = norm(end);
  if (step > 0) {
    s = Math.min(Math.max(s, 0), d);
    e = Math.min(Math.max(e, 0), d);
    return { start: s, count: Math.max(0, Math.ceil((e - s) / step)) };
  }
  s = Math.min(Math.max(s, 0), d - 1);
  e = Math.min(Math.max(e, -1), d - 1);
  return { start: s, count: Math.max(0, Math.ceil((e - s) / step)) };
}

export interface SliceAttrs { starts: number[]; ends: number[]; axes: number[]; steps: number[] }

/** Transpose of slice on one axis: place g (count elements) back into a zero tensor of length d. */
function unsliceAxis(g: Tensor, axis: number, d: number, start: number, count: number, step: number): Tensor {
  const padAxis = (t: Tensor, before: number, after: number) => {
    const pads = new Array(2 * t.rank).fill(0);
    pads[axis] = before;
    pads[t.rank + axis] = after;
    return o.pad(t, pads);
  };
  if (count === 0) return o.zeros(g.shape.map((x, i) => (i === axis ? d : x)));
  if (step === 1) return padAxis(g, start, d - start - count);
  if (step === -1) {
    const flipped = o.slice(g, [-1], [I64_MIN], [axis], [-1]);
    return padAxis(flipped, start - count + 1, d - 1 - start);
  }
  if (step > 1) {
    // interleave step−1 zeros after each element: [.., m, ..] → [.., m, step, ..] → [.., m·step, ..]
    let t = o.unsqueeze(g, axis + 1);
    const pads = new Array(2 * t.rank).fill(0);
    pads[t.rank + axis + 1] = step - 1;
    t = o.pad(t, pads);
    const s = [...g.shape];
    s[axis] = count * step;
    t = o.narrow(o.reshape(t, s), axis, 0, (count - 1) * step + 1);
    return padAxis(t, start, d - (start + (count - 1) * step + 1));
  }
  throw new Error(`slice: gradient for step ${step} is not supported (only 1, −1 and positive steps)`);
}

function permInverse(p: readonly number[]): number[] {
  const inv = new Array(p.length);
  p.forEach((v, i) => (inv[v] = i));
  return inv;
}

export const movementPrims = {
  constant: {
    doc: 'y = the stored value',
    shape: (_ins, a: { value: HostTensor }) => [{ shape: a.value.shape, dtype: a.value.dtype }],
    vjp: () => [],
    lower: (c, a: { value: HostTensor }) => {
      c.op('Identity', [c.constant(a.value)], [c.output(0)]);
    },
  } satisfies PrimDef<{ value: HostTensor }>,

  reshape: {
    doc: 'y = x viewed with a new shape (row-major)',
    shape: ([m], a: { shape: number[] }) => {
      if (prod(a.shape) !== prod(m!.shape)) throw new Error(`reshape: cannot reshape ${fmtShape(m!.shape)} (${prod(m!.shape)} elements) to ${fmtShape(a.shape)}`);
      return [{ shape: a.shape, dtype: m!.dtype }];
    },
    vjp: ([g], { inputs: [x] }) => [o.reshape(g!, x!.shape)],
    lower: (c, a: { shape: number[] }) => c.op('Reshape', [c.input(0), c.i64(a.shape)], [c.output(0)]),
  } satisfies PrimDef<{ shape: number[] }>,

  transpose: {
    doc: 'y[i_p0, …] = x[i_0, …] (axes permuted by perm)',
    shape: ([m], a: { perm: number[] }) => {
      const r = m!.shape.length;
      if (a.perm.length !== r || [...a.perm].sort((x, y) => x - y).some((v, i) => v !== i)) {
        throw new Error(`transpose: perm [${a.perm.join(', ')}] is not a permutation of ${r} axes (input ${fmtShape(m!.shape)})`);
      }
      return [{ shape: a.perm.map((p) => m!.shape[p]!), dtype: m!.dtype }];
    },
    vjp: ([g], _c, a: { perm: number[] }) => [o.transpose(g!, permInverse(a.perm))],
    lower: (c, a: { perm: number[] }) => c.op('Transpose', [c.input(0)], [c.output(0)], { perm: A.ints(a.perm) }),
  } satisfies PrimDef<{ perm: number[] }>,

  expand: {
    doc: 'y = x broadcast to shape',
    shape: ([m], a: { shape: number[] }) => {
      const b = broadcastShapes('expand', [m!.shape, a.shape]);
      if (b.length !== a.shape.length || b.some((d, i) => d !== a.shape[i])) {
        throw new Error(`expand: ${fmtShape(m!.shape)} cannot be broadcast to ${fmtShape(a.shape)}`);
      }
      return [{ shape: a.shape, dtype: m!.dtype }];
    },
    vjp: ([g], { inputs: [x] }) => [unbroadcast(g!, x!.shape)],
    lower: (c, a: { shape: number[] }) => c.op('Expand', [c.input(0), c.i64(a.shape)], [c.output(0)]),
  } satisfies PrimDef<{ shape: number[] }>,

  slice: {
    doc: 'y = x[start:end:step] along axes',
    shape: ([m], a: SliceAttrs) => {
      const r = m!.shape.length;
      const axes = normAxes('slice', a.axes, r);
      if (a.starts.length !== axes.length || a.ends.length !== axes.length || a.steps.length !== axes.length) {
        throw new Error('slice: starts, ends, axes and steps must have equal lengths');
      }
      const s = [...m!.shape];
      axes.forEach((ax, i) => (s[ax] = resolveSlice(m!.shape[ax]!, a.starts[i]!, a.ends[i]!, a.steps[i]!).count));
      return [{ shape: s, dtype: m!.dtype }];
    },
    vjp: ([g], { inputs: [x] }, a: SliceAttrs) => {
      let t = g!;
      normAxes('slice', a.axes, x!.rank).forEach((ax, i) => {
        const d = x!.shape[ax]!;
        const r = resolveSlice(d, a.starts[i]!, a.ends[i]!, a.steps[i]!);
        t = unsliceAxis(t, ax, d, r.start, r.count, a.steps[i]!);
      });
      return [t];
    },
    lower: (c, a: SliceAttrs) => {
      const m = c.inMeta(0);
      const axes = normAxes('slice', a.axes, m.shape.length);
      const starts: number[] = [];
      const ends: number[] = [];
      axes.forEach((ax, i) => {
        const r = resolveSlice(m.shape[ax]!, a.starts[i]!, a.ends[i]!, a.steps[i]!);
        const e = r.start + r.count * a.steps[i]!;
        starts.push(r.start);
        ends.push(e < 0 ? I64_MIN : e);
      });
      c.op('Slice', [c.input(0), c.i64(starts), c.i64(ends), c.i64(axes), c.i64(a.steps)], [c.output(0)]);
    },
  } satisfies PrimDef<SliceAttrs>,

  concat: {
    doc: 'y = [x_0; x_1; …] along axis',
    shape: (ins, a: { axis: number }) => {
      sameDType('concat', ins);
      const r = ins[0]!.shape.length;
      const ax = normAxes('concat', [a.axis], r)[0]!;
      const s = [...ins[0]!.shape];
      s[ax] = 0;
      for (const m of ins) {
        if (m.shape.length !== r || m.shape.some((d, i) => i !== ax && d !== ins[0]!.shape[i])) {
          throw new Error(`concat: shapes ${ins.map((x) => fmtShape(x.shape)).join(', ')} differ outside axis ${a.axis}`);
        }
        s[ax] += m.shape[ax]!;
      }
      return [{ shape: s, dtype: ins[0]!.dtype }];
    },
    vjp: ([g], { inputs }, a: { axis: number }) => {
      const ax = normAxes('concat', [a.axis], g!.rank)[0]!;
      let off = 0;
      return inputs.map((x) => {
        const n = x.shape[ax]!;
        const r = o.narrow(g!, ax, off, off + n);
        off += n;
        return r;
      });
    },
    lower: (c, a: { axis: number }) =>
      c.op('Concat', Array.from({ length: c.nInputs }, (_, i) => c.input(i)), [c.output(0)], { axis: A.i(a.axis) }),
  } satisfies PrimDef<{ axis: number }>,

  pad: {
    doc: 'y = x surrounded by `value` (pads: all begins, then all ends)',
    shape: ([m], a: { pads: number[]; value: number }) => {
      const r = m!.shape.length;
      if (a.pads.length !== 2 * r || a.pads.some((p) => !Number.isInteger(p) || p < 0)) {
        throw new Error(`pad: need ${2 * r} non-negative pads for input ${fmtShape(m!.shape)}, got [${a.pads.join(', ')}]`);
      }
      return [{ shape: m!.shape.map((d, i) => d + a.pads[i]! + a.pads[r + i]!), dtype: m!.dtype }];
    },
    vjp: ([g], { inputs: [x] }, a: { pads: number[] }) => {
      const axes = x!.shape.map((_, i) => i);
      return [o.slice(g!, axes.map((i) => a.pads[i]!), axes.map((i) => a.pads[i]! + x!.shape[i]!), axes)];
    },
    lower: (c, a: { pads: number[]; value: number }) =>
      c.op('Pad', [c.input(0), c.i64(a.pads), c.scalar(a.value, c.inMeta(0).dtype)], [c.output(0)], { mode: A.s('constant') }),
  } satisfies PrimDef<{ pads: number[]; value: number }>,
} satisfies Record<string, PrimDef>;
