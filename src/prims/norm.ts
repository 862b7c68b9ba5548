// GroupNorm as a primitive. Why: the composite costs ~8 full passes over the activation in
// the forward pass (mean, centre, square, mean, add, sqrt, divide, affine) and autodiff
// of it ~15 more; ORT's InstanceNormalization over the grouped view does the normalization
// in one kernel, and the hand-written VJP below needs ~10 passes (bench/train_step.ts).
import type { Tensor } from '../graph/ir.ts';
import * as o from '../ops/core.ts';
import { requireFloat } from './shape.ts';
import { A, fmtShape, type PrimDef } from './types.ts';
import { HostTensor } from '../tensor.ts';

export interface GNAttrs { groups: number; eps: number }

/** x̂ and 1/σ of x [N, C, …] grouped as [N, G, C/G·…]. */
function normalized(x: Tensor, a: GNAttrs): { xhat: Tensor; rstd: Tensor } {
  const [n] = x.shape as [number];
  const g = o.reshape(x, [n, a.groups, -1]);
  const mu = o.mean(g, 2, true);
  const d = o.sub(g, mu);
  const rstd = o.div(1, o.sqrt(o.add(o.mean(o.square(d), 2, true), a.eps)));
  return { xhat: o.mul(d, rstd), rstd };
}

export const normPrims = {
  groupNorm: {
    doc: 'y = γ·(x − μ_g)/√(σ²_g + ε) + β, statistics per (sample, group of channels)',
    shape: ([x, w, b], a: GNAttrs) => {
      requireFloat('groupNorm', x!);
      const c = x!.shape[1]!;
      if (x!.shape.length < 3 || c % a.groups !== 0) throw new Error(`groupNorm: input ${fmtShape(x!.shape)} cannot be split into ${a.groups} groups`);
      for (const p of [w, b]) if (p!.shape.length !== 1 || p!.shape[0] !== c) throw new Error(`groupNorm: scale/bias must have shape [${c}], got ${fmtShape(p!.shape)}`);
      return [{ shape: x!.shape, dtype: x!.dtype }];
    },
    vjp: ([gy], { inputs: [x, w] }, a: GNAttrs) => {
      const [n, c] = x!.shape as [number, number];
      const cshape = [c, ...x!.shape.slice(2).map(() => 1)];
      const axes = [0, ...x!.shape.slice(2).map((_, i) => i + 2)];
      const { xhat, rstd } = normalized(x!, a); // [N, G, M]
      const xh = o.reshape(xhat, x!.shape);
      const dbeta = o.sum(gy!, axes);
      const dgamma = o.sum(o.mul(gy!, xh), axes);
      const dxh = o.reshape(o.mul(gy!, o.reshape(w!, cshape)), [n, a.groups, -1]);
      // dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂))
      const m1 = o.mean(dxh, 2, true);
      const m2 = o.mean(o.mul(dxh, xhat), 2, true);
      const dx = o.mul(o.sub(o.sub(dxh, m1), o.mul(xhat, m2)), rstd);
      return [o.reshape(dx, x!.shape), dgamma, dbeta];
    },
    // ORT runs GroupNormalization-21 as its function body (with full-size Casts); its native
    // InstanceNormalization over the [N, G, C/G·…] view is faster, then the per-channel affine.
    lower: (c, a: GNAttrs) => {
      const x = c.inMeta(0).shape;
      const [n, ch] = x as [number, number];
      const ones = c.constant(HostTensor.float32([a.groups], new Array(a.groups).fill(1)));
      const zeros = c.constant(HostTensor.float32([a.groups]));
      const g = c.op('Reshape', [c.input(0), c.i64([n, a.groups, -1])], 1)[0]!;
      const nrm = c.op('InstanceNormalization', [g, ones, zeros], 1, { epsilon: A.f(a.eps) })[0]!;
      const back = c.op('Reshape', [nrm, c.i64(x)], 1)[0]!;
      const cs = [ch, ...x.slice(2).map(() => 1)];
      const sc = c.op('Reshape', [c.input(1), c.i64(cs)], 1)[0]!;
      const bi = c.op('Reshape', [c.input(2), c.i64(cs)], 1)[0]!;
      c.op('Add', [c.op('Mul', [back, sc], 1)[0]!, bi], [c.output(0)]);
    },
  } satisfies PrimDef<GNAttrs>,
} satisfies Record<string, PrimDef>;

/**
 * SiLU as a primitive. Why: autodiff of the composite x·σ(x) costs 6 full passes in the
 * backward pass (two Mul from the product rule, then σ' = σ(1−σ) and a sum); the VJP below
 * uses the forward output y: dy/dx = σ·(1 + x − y), 4 passes (bench: bench/silu.ts).
 */
export const siluPrims = {
  silu: {
    doc: 'y = x·σ(x)',
    shape: ([x]) => {
      requireFloat('silu', x!);
      return [{ shape: x!.shape, dtype: x!.dtype }];
    },
    vjp: ([g], { inputs: [x], outputs: [y] }) => {
      const s = o.sigmoid(x!);
      return [o.mul(g!, o.mul(s, o.add(o.sub(x!, y!), 1)))];
    },
    lower: (c) => {
      const s = c.op('Sigmoid', [c.input(0)], 1)[0]!;
      c.op('Mul', [c.input(0), s], [c.output(0)]);
    },
  } satisfies PrimDef,
} satisfies Record<string, PrimDef>;

/**
 * Softmax and LayerNorm as primitives. Why: attention's softmax runs over [B, nh, T, T] —
 * the largest tensors of a GPT step (8.4 M elements per layer at B 16, T 256) — and the
 * composite (max, subtract, exp, sum, divide) costs 5 passes forward and ~8 backward; ONNX
 * Softmax is one kernel and the VJP below is 3 passes. LayerNorm likewise becomes ONNX
 * LayerNormalization-17 (one kernel, which also returns the mean and 1/σ the VJP reuses).
 * Measured on the emoji GPT's training step: bench/README.md ("GPT training step").
 */
export const fusedNormPrims = {
  softmax: {
    doc: 'y = exp(x − max) / Σ exp(x − max) along axis',
    shape: ([x], a: { axis: number }) => {
      requireFloat('softmax', x!);
      if (a.axis < -x!.shape.length || a.axis >= x!.shape.length) throw new Error(`softmax: axis ${a.axis} out of range for ${fmtShape(x!.shape)}`);
      return [{ shape: x!.shape, dtype: x!.dtype }];
    },
    // dx = y ⊙ (g − Σ_axis g ⊙ y)
    vjp: ([g], { outputs: [y] }, a: { axis: number }) => [o.mul(y!, o.sub(g!, o.sum(o.mul(g!, y!), [a.axis], true)))],
    lower: (c, a: { axis: number }) => c.op('Softmax', [c.input(0)], [c.output(0)], { axis: A.i(a.axis) }),
  } satisfies PrimDef<{ axis: number }>,

  layerNorm: {
    doc: 'y = γ·(x − μ)/√(σ² + ε) + β over the last axis; also outputs μ and 1/√(σ² + ε) ([..., 1])',
    shape: ([x, w, b]) => {
      requireFloat('layerNorm', x!);
      const c = x!.shape[x!.shape.length - 1]!;
      for (const p of [w, b]) if (p!.shape.length !== 1 || p!.shape[0] !== c) throw new Error(`layerNorm: scale/bias must have shape [${c}], got ${fmtShape(p!.shape)}`);
      const stat = [...x!.shape.slice(0, -1), 1];
      return [{ shape: x!.shape, dtype: x!.dtype }, { shape: stat, dtype: x!.dtype }, { shape: stat, dtype: x!.dtype }];
    },
    vjp: ([gy], { inputs: [x, w], outputs: [, mean, rstd] }) => {
      if (!gy) return [null, null, null];
      const r = x!.rank;
      const lead = Array.from({ length: r - 1 }, (_, i) => i);
      const xhat = o.mul(o.sub(x!, mean!), rstd!);
      const dgamma = o.sum(o.mul(gy, xhat), lead);
      const dbeta = o.sum(gy, lead);
      const dxh = o.mul(gy, w!);
      // dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂))
      const m1 = o.mean(dxh, [r - 1], true);
      const m2 = o.mean(o.mul(dxh, xhat), [r - 1], true);
      return [o.mul(o.sub(o.sub(dxh, m1), o.mul(xhat, m2)), rstd!), dgamma, dbeta];
    },
    lower: (c, a: { eps: number }) =>
      c.op('LayerNormalization', [c.input(0), c.input(1), c.input(2)], [c.output(0), c.output(1), c.output(2)], { axis: A.i(-1), epsilon: A.f(a.eps) }),
  } satisfies PrimDef<{ eps: number }>,
} satisfies Record<string, PrimDef>;
