// Element-wise primitives (numpy broadcasting). Each entry: math, shape rule, VJP, lowering.
import type { Tensor, TensorMeta } from '../graph/ir.ts';
import * as o from '../ops/core.ts';
import { unbroadcast } from '../autodiff/unbroadcast.ts';
import { broadcastShapes, requireFloat, sameDType } from './shape.ts';
import { A, ONNX_DTYPE, type LowerCtx, type PrimDef } from './types.ts';
import type { DType } from '../tensor.ts';

type G = Tensor | null;

function binShape(op: string, out?: DType, floatOnly = false) {
  return (ins: readonly TensorMeta[]): TensorMeta[] => {
    sameDType(op, ins);
    if (floatOnly) requireFloat(op, ins[0]!);
    return [{ shape: broadcastShapes(op, ins.map((m) => m.shape)), dtype: out ?? ins[0]!.dtype }];
  };
}

function unaryShape(op: string) {
  return (ins: readonly TensorMeta[]): TensorMeta[] => {
    requireFloat(op, ins[0]!);
    return [{ shape: ins[0]!.shape, dtype: ins[0]!.dtype }];
  };
}

const lowerAs = (onnx: string) => (c: LowerCtx) => {
  c.op(onnx, Array.from({ length: c.nInputs }, (_, i) => c.input(i)), [c.output(0)]);
};

const ub = (g: Tensor, x: Tensor) => unbroadcast(g, x.shape);

/** Binary float op with VJP given per-operand. */
function binary(doc: string, name: string, onnx: string, vjp: (g: Tensor, a: Tensor, b: Tensor, y: Tensor) => [G, G]): PrimDef {
  return {
    doc,
    shape: binShape(name),
    vjp: ([g], { inputs: [a, b], outputs: [y] }) => {
      const [ga, gb] = vjp(g!, a!, b!, y!);
      return [ga && ub(ga, a!), gb && ub(gb, b!)];
    },
    lower: lowerAs(onnx),
  };
}

function unary(doc: string, name: string, onnx: string, vjp: (g: Tensor, x: Tensor, y: Tensor) => Tensor): PrimDef {
  return { doc, shape: unaryShape(name), vjp: ([g], { inputs: [x], outputs: [y] }) => [vjp(g!, x!, y!)], lower: lowerAs(onnx) };
}

function compare(doc: string, name: string, onnx: string): PrimDef {
  return { doc, shape: binShape(name, 'bool'), nondiff: 'boolean output', lower: lowerAs(onnx) };
}

const castTo = (x: Tensor) => o.cast(x, 'float32');

export const elementwisePrims = {
  add: binary('y = a + b', 'add', 'Add', (g) => [g, g]),
  sub: binary('y = a − b', 'sub', 'Sub', (g) => [g, o.neg(g)]),
  mul: binary('y = a · b', 'mul', 'Mul', (g, a, b) => [o.mul(g, b), o.mul(g, a)]),
  div: binary('y = a / b', 'div', 'Div', (g, _a, b, y) => [o.div(g, b), o.neg(o.div(o.mul(g, y), b))]),
  // ties split the gradient in half, as torch.maximum/minimum do
  maximum: binary('y = max(a, b)', 'maximum', 'Max', (g, a, b) => {
    const w = o.add(castTo(o.greater(a, b)), o.mul(castTo(o.equal(a, b)), 0.5));
    return [o.mul(g, w), o.sub(g, o.mul(g, w))];
  }),
  minimum: binary('y = min(a, b)', 'minimum', 'Min', (g, a, b) => {
    const w = o.add(castTo(o.less(a, b)), o.mul(castTo(o.equal(a, b)), 0.5));
    return [o.mul(g, w), o.sub(g, o.mul(g, w))];
  }),

  equal: compare('y = (a == b)', 'equal', 'Equal'),
  less: compare('y = (a < b)', 'less', 'Less'),
  greater: compare('y = (a > b)', 'greater', 'Greater'),
  lessEqual: compare('y = (a ≤ b)', 'lessEqual', 'LessOrEqual'),
  greaterEqual: compare('y = (a ≥ b)', 'greaterEqual', 'GreaterOrEqual'),
  logicalAnd: {
    doc: 'y = a ∧ b',
    shape: (ins) => {
      for (const m of ins) if (m.dtype !== 'bool') throw new Error(`logicalAnd: inputs must be bool, got ${m.dtype}`);
      return [{ shape: broadcastShapes('logicalAnd', ins.map((m) => m.shape)), dtype: 'bool' }];
    },
    nondiff: 'boolean output',
    lower: lowerAs('And'),
  } satisfies PrimDef,
  logicalNot: {
    doc: 'y = ¬a',
    shape: ([m]) => {
      if (m!.dtype !== 'bool') throw new Error(`logicalNot: input must be bool, got ${m!.dtype}`);
      return [{ shape: m!.shape, dtype: 'bool' }];
    },
    nondiff: 'boolean output',
    lower: lowerAs('Not'),
  } satisfies PrimDef,

  neg: {
    doc: 'y = −x',
    shape: ([m]) => [{ ...m! }],
    vjp: ([g]) => [o.neg(g!)],
    lower: lowerAs('Neg'),
  } satisfies PrimDef,
  exp: unary('y = eˣ', 'exp', 'Exp', (g, _x, y) => o.mul(g, y)),
  log: unary('y = ln x', 'log', 'Log', (g, x) => o.div(g, x)),
  sqrt: unary('y = √x', 'sqrt', 'Sqrt', (g, _x, y) => o.div(g, o.mul(y, 2))),
  abs: unary('y = |x|', 'abs', 'Abs', (g, x) => o.mul(g, o.sign(x))),
  sign: { doc: 'y = sign(x)', shape: unaryShape('sign'), nondiff: 'piecewise constant', lower: lowerAs('Sign') } satisfies PrimDef,
  sigmoid: unary('y = 1/(1+e⁻ˣ)', 'sigmoid', 'Sigmoid', (g, _x, y) => o.mul(g, o.mul(y, o.sub(1, y)))),
  tanh: unary('y = tanh x', 'tanh', 'Tanh', (g, _x, y) => o.mul(g, o.sub(1, o.mul(y, y)))),
  relu: unary('y = max(x, 0)', 'relu', 'Relu', (g, x) => o.where(o.greater(x, 0), g, 0)),
  erf: unary('y = erf x', 'erf', 'Erf', (g, x) => o.mul(g, o.mul(o.exp(o.neg(o.mul(x, x))), 2 / Math.sqrt(Math.PI)))),
  softplus: unary('y = ln(1 + eˣ)', 'softplus', 'Softplus', (g, x) => o.mul(g, o.sigmoid(x))),
  leakyRelu: {
    doc: 'y = x if x > 0 else αx',
    shape: unaryShape('leakyRelu'),
    vjp: ([g], { inputs: [x] }, a: { alpha: number }) => [o.where(o.greater(x!, 0), g!, o.mul(g!, a.alpha))],
    lower: (c, a: { alpha: number }) => c.op('LeakyRelu', [c.input(0)], [c.output(0)], { alpha: A.f(a.alpha) }),
  } satisfies PrimDef<{ alpha: number }>,
  pow: {
    doc: 'y = xᵖ (constant p)',
    shape: unaryShape('pow'),
    vjp: ([g], { inputs: [x] }, a: { p: number }) => [o.mul(g!, o.mul(o.pow(x!, a.p - 1), a.p))],
    lower: (c, a: { p: number }) => {
      if (a.p === 2) c.op('Mul', [c.input(0), c.input(0)], [c.output(0)]);
      else c.op('Pow', [c.input(0), c.scalar(a.p, 'float32')], [c.output(0)]);
    },
  } satisfies PrimDef<{ p: number }>,

  cast: {
    doc: 'y = x converted to dtype `to`',
    shape: ([m], a: { to: DType }) => [{ shape: m!.shape, dtype: a.to }],
    vjp: ([g], { inputs: [x] }) => [x!.dtype === 'float32' && g!.dtype === 'float32' ? g : null],
    lower: (c, a: { to: DType }) => c.op('Cast', [c.input(0)], [c.output(0)], { to: A.i(ONNX_DTYPE[a.to]) }),
  } satisfies PrimDef<{ to: DType }>,

  stopGradient: {
    doc: 'y = x, with ∂y/∂x = 0',
    shape: ([m]) => [{ ...m! }],
    vjp: () => [null],
    lower: lowerAs('Identity'),
  } satisfies PrimDef,

  where: {
    doc: 'y = c ? a : b',
    shape: ([c, a, b]) => {
      if (c!.dtype !== 'bool') throw new Error(`where: condition must be bool, got ${c!.dtype}`);
      sameDType('where', [a!, b!]);
      return [{ shape: broadcastShapes('where', [c!.shape, a!.shape, b!.shape]), dtype: a!.dtype }];
    },
    vjp: ([g], { inputs: [c, a, b] }) => [null, ub(o.where(c!, g!, 0), a!), ub(o.where(c!, 0, g!), b!)],
    lower: lowerAs('Where'),
  } satisfies PrimDef,
} satisfies Record<string, PrimDef>;
