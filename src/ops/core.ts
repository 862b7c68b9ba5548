// Typed wrappers over the primitives: the API model code and VJP rules are written in.
// Numbers are lifted to 0-D constants of the other operand's dtype.
import { Tensor } from '../graph/ir.ts';
import { emit1, emit } from '../graph/trace.ts';
import { HostTensor, type DType } from '../tensor.ts';
import { normAxes } from '../prims/shape.ts';

export type TensorLike = Tensor | number;

/** A constant tensor baked into the graph. */
export function constant(value: HostTensor | number, dtype: DType = 'float32'): Tensor {
  const v = typeof value === 'number' ? scalarHost(value, dtype) : value;
  return emit1('constant', [], { value: v });
}

function scalarHost(x: number, dtype: DType): HostTensor {
  if (dtype === 'int64') return HostTensor.int64([], [x]);
  if (dtype === 'float32') return HostTensor.scalar(x);
  if (dtype === 'int32') return new HostTensor('int32', [], Int32Array.of(x));
  if (dtype === 'uint8') return new HostTensor('uint8', [], Uint8Array.of(x));
  return new HostTensor('bool', [], Uint8Array.of(x ? 1 : 0));
}

function lift(x: TensorLike, like: TensorLike): Tensor {
  if (x instanceof Tensor) return x;
  const dtype = like instanceof Tensor ? like.dtype : 'float32';
  return constant(x, dtype);
}

function bin(prim: string, a: TensorLike, b: TensorLike): Tensor {
  if (!(a instanceof Tensor) && !(b instanceof Tensor)) throw new Error(`${prim}: at least one operand must be a Tensor`);
  return emit1(prim, [lift(a, b), lift(b, a)]);
}

export const add = (a: TensorLike, b: TensorLike): Tensor => bin('add', a, b);
export const sub = (a: TensorLike, b: TensorLike): Tensor => bin('sub', a, b);
export const mul = (a: TensorLike, b: TensorLike): Tensor => bin('mul', a, b);
export const div = (a: TensorLike, b: TensorLike): Tensor => bin('div', a, b);
export const maximum = (a: TensorLike, b: TensorLike): Tensor => bin('maximum', a, b);
export const minimum = (a: TensorLike, b: TensorLike): Tensor => bin('minimum', a, b);
export const equal = (a: TensorLike, b: TensorLike): Tensor => bin('equal', a, b);
export const less = (a: TensorLike, b: TensorLike): Tensor => bin('less', a, b);
export const greater = (a: TensorLike, b: TensorLike): Tensor => bin('greater', a, b);
export const lessEqual = (a: TensorLike, b: TensorLike): Tensor => bin('lessEqual', a, b);
export const greaterEqual = (a: TensorLike, b: TensorLike): Tensor => bin('greaterEqual', a, b);
export const logicalAnd = (a: Tensor, b: Tensor): Tensor => emit1('logicalAnd', [a, b]);
export const logicalNot = (a: Tensor): Tensor => emit1('logicalNot', [a]);

export const neg = (x: Tensor): Tensor => emit1('neg', [x]);
export const exp = (x: Tensor): Tensor => emit1('exp', [x]);
export const log = (x: Tensor): Tensor => emit1('log', [x]);
export const sqrt = (x: Tensor): Tensor => emit1('sqrt', [x]);
export const abs = (x: Tensor): Tensor => emit1('abs', [x]);
export const sign = (x: Tensor): Tensor => emit1('sign', [x]);
export const sigmoid = (x: Tensor): Tensor => emit1('sigmoid', [x]);
export const tanh = (x: Tensor): Tensor => emit1('tanh', [x]);
export const relu = (x: Tensor): Tensor => emit1('relu', [x]);
export const erf = (x: Tensor): Tensor => emit1('erf', [x]);
export const softplus = (x: Tensor): Tensor => emit1('softplus', [x]);
export const leakyRelu = (x: Tensor, alpha = 0.01): Tensor => emit1('leakyRelu', [x], { alpha });
/** x^p for a constant exponent p. */
export const pow = (x: Tensor, p: number): Tensor => emit1('pow', [x], { p });
export const square = (x: Tensor): Tensor => mul(x, x);
export const reciprocal = (x: Tensor): Tensor => div(1, x);
export const cast = (x: Tensor, to: DType): Tensor => (x.dtype === to ? x : emit1('cast', [x], { to }));
export const stopGradient = (x: Tensor): Tensor => emit1('stopGradient', [x]);

export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const like = a instanceof Tensor ? a : b;
  return emit1('where', [cond, lift(a, like), lift(b, like)]);
}

/** Batched matrix product with numpy broadcasting over leading dims (rank ≥ 2). */
export const matmul = (a: Tensor, b: Tensor): Tensor => emit1('matmul', [a, b]);

export interface Conv2dOptions {
  stride?: number | [number, number];
  /** number, [ph, pw], or [top, left, bottom, right] */
  padding?: number | [number, number] | [number, number, number, number];
  dilation?: number | [number, number];
  groups?: number;
}

function pair(v: number | [number, number] | undefined, dflt: number): [number, number] {
  if (v === undefined) return [dflt, dflt];
  return typeof v === 'number' ? [v, v] : v;
}

export function convAttrs(o: Conv2dOptions = {}): { stride: [number, number]; pads: [number, number, number, number]; dilation: [number, number]; groups: number } {
  const p = o.padding ?? 0;
  const pads: [number, number, number, number] =
    typeof p === 'number' ? [p, p, p, p] : p.length === 2 ? [p[0], p[1], p[0], p[1]] : p;
  return { stride: pair(o.stride, 1), pads, dilation: pair(o.dilation, 1), groups: o.groups ?? 1 };
}

/** 2-D convolution, NCHW input, OIHW weight, optional bias [O]. */
export function conv2d(x: Tensor, w: Tensor, bias?: Tensor | null, o: Conv2dOptions = {}): Tensor {
  return emit1('conv2d', bias ? [x, w, bias] : [x, w], convAttrs(o));
}

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  // one -1 is inferred
  const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const s = shape.map((d) => (d === -1 ? (known === 0 ? 0 : x.size / known) : d));
  if (shape.filter((d) => d === -1).length > 1) throw new Error(`reshape: at most one -1 in [${shape.join(', ')}]`);
  if (s.every((d, i) => d === x.shape[i]) && s.length === x.rank) return x;
  return emit1('reshape', [x], { shape: s });
}

export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  const p = perm ?? x.shape.map((_, i) => x.rank - 1 - i);
  if (p.every((v, i) => v === i)) return x;
  return emit1('transpose', [x], { perm: [...p] });
}

export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (shape.length === x.rank && shape.every((d, i) => d === x.shape[i])) return x;
  return emit1('expand', [x], { shape: [...shape] });
}

export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  return expand(x, shape);
}

/** Slice along `axes` with python semantics per axis (start, end, step; ends clamp). */
export function slice(x: Tensor, starts: readonly number[], ends: readonly number[], axes?: readonly number[], steps?: readonly number[]): Tensor {
  return emit1('slice', [x], {
    starts: [...starts],
    ends: [...ends],
    axes: axes ? [...axes] : starts.map((_, i) => i),
    steps: steps ? [...steps] : starts.map(() => 1),
  });
}

/** Take [start, end) along one axis. */
export function narrow(x: Tensor, axis: number, start: number, end: number): Tensor {
  return slice(x, [start], [end], [axis]);
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 1) return xs[0]!;
  return emit1('concat', xs, { axis });
}

/** Constant padding; pads = [begin_0, …, begin_{r-1}, end_0, …, end_{r-1}] (ONNX order). */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  if (pads.every((p) => p === 0)) return x;
  return emit1('pad', [x], { pads: [...pads], value });
}

function axesOf(x: Tensor, axes?: number | readonly number[]): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  return normAxes('reduce', typeof axes === 'number' ? [axes] : axes, x.rank);
}

export const sum = (x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor =>
  emit1('reduceSum', [x], { axes: axesOf(x, axes), keepdims });
export const mean = (x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor =>
  emit1('reduceMean', [x], { axes: axesOf(x, axes), keepdims });
export const max = (x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor =>
  emit1('reduceMax', [x], { axes: axesOf(x, axes), keepdims });
export const argmax = (x: Tensor, axis: number, keepdims = false): Tensor =>
  emit1('argmax', [x], { axis: normAxes('argmax', [axis], x.rank)[0], keepdims });
export const argmin = (x: Tensor, axis: number, keepdims = false): Tensor =>
  emit1('argmin', [x], { axis: normAxes('argmin', [axis], x.rank)[0], keepdims });

/** Rows of `data` picked by integer `indices` along `axis` (ONNX Gather). */
export const gather = (data: Tensor, indices: Tensor, axis = 0): Tensor =>
  emit1('gather', [data, indices], { axis: normAxes('gather', [axis], data.rank)[0] });

/** zeros(shape) with `updates` added at rows `indices` (axis 0): the transpose of gather. */
export const scatterAdd = (shape: readonly number[], indices: Tensor, updates: Tensor): Tensor =>
  emit1('scatterAdd', [indices, updates], { shape: [...shape] });

/** float32 one-hot encoding along a new last axis. */
export const oneHot = (indices: Tensor, depth: number): Tensor => emit1('oneHot', [indices], { depth });

export function full(shape: readonly number[], value: number, dtype: DType = 'float32'): Tensor {
  return expand(reshape(constant(value, dtype), shape.map(() => 1)), shape);
}
export const zeros = (shape: readonly number[], dtype: DType = 'float32'): Tensor => full(shape, 0, dtype);
export const ones = (shape: readonly number[], dtype: DType = 'float32'): Tensor => full(shape, 1, dtype);
export const zerosLike = (x: Tensor): Tensor => zeros(x.shape, x.dtype);
export const onesLike = (x: Tensor): Tensor => ones(x.shape, x.dtype);

/** Insert a size-1 axis. */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = axis < 0 ? axis + x.rank + 1 : axis;
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
}

export function flatten(x: Tensor, fromAxis = 1): Tensor {
  const lead = x.shape.slice(0, fromAxis);
  return reshape(x, [...lead, -1]);
}

/** Several outputs of one primitive (rarely needed by model code). */
export { emit };
