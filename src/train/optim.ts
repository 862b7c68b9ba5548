// Optimizers as graph ops: each update is a handful of element-wise nodes inside the
// training program, so forward, backward and update run in one ONNX Runtime call.
// Semantics follow torch.optim (bias correction, eps placement, decoupled decay).
import type { Tensor } from '../graph/ir.ts';
import * as o from '../ops/core.ts';

export interface AdamOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** L2 penalty (Adam) or decoupled decay (AdamW). */
  weightDecay?: number;
  /** true = AdamW (decoupled weight decay). */
  decoupled?: boolean;
}

export interface SgdOptions {
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

export type OptimizerSpec = ({ kind: 'adam' } & AdamOptions) | ({ kind: 'adamw' } & AdamOptions) | ({ kind: 'sgd' } & SgdOptions);

/** Number of state slots (moment buffers) each optimizer keeps per parameter. */
export function stateSlots(spec: OptimizerSpec): number {
  if (spec.kind === 'sgd') return spec.momentum ? 1 : 0;
  return 2;
}

/**
 * One update. `step` is the 1-based step count (float32 scalar), `lr` a float32 scalar,
 * `decay` multiplies the weight decay (a per-element 0/1 mask or 1).
 * Returns the new parameter and state slots.
 */
export function optimizerUpdate(
  spec: OptimizerSpec,
  p: Tensor,
  g: Tensor,
  state: Tensor[],
  step: Tensor,
  lr: Tensor,
  decay: Tensor | number = 1,
): { p: Tensor; state: Tensor[] } {
  if (spec.kind === 'sgd') return sgd(spec, p, g, state, step, lr, decay);
  return adam(spec, spec.kind === 'adamw' || spec.decoupled === true, p, g, state, step, lr, decay);
}

function adam(o2: AdamOptions, decoupled: boolean, p: Tensor, g: Tensor, [m, v]: Tensor[], step: Tensor, lr: Tensor, decay: Tensor | number) {
  const b1 = o2.beta1 ?? 0.9;
  const b2 = o2.beta2 ?? 0.999;
  const eps = o2.eps ?? 1e-8;
  const wd = o2.weightDecay ?? (decoupled ? 0.01 : 0);
  let param = p;
  let grad = g;
  const wdTerm = (x: Tensor) => (typeof decay === 'number' ? o.mul(x, wd * decay) : o.mul(o.mul(x, decay), wd));
  if (wd !== 0 && decay !== 0) {
    if (decoupled) param = o.sub(param, o.mul(wdTerm(param), lr)); // p ← p − lr·wd·p
    else grad = o.add(grad, wdTerm(param)); // g ← g + wd·p
  }
  const m1 = o.add(o.mul(m!, b1), o.mul(grad, 1 - b1)); // m ← β1 m + (1−β1) g
  const v1 = o.add(o.mul(v!, b2), o.mul(o.mul(grad, grad), 1 - b2)); // v ← β2 v + (1−β2) g²
  const bc1 = o.sub(1, powScalar(b1, step)); // 1 − β1ᵗ
  const bc2 = o.sub(1, powScalar(b2, step)); // 1 − β2ᵗ
  // p ← p − (lr/bc1) · m / (√v/√bc2 + eps)
  const denom = o.add(o.div(o.sqrt(v1), o.sqrt(bc2)), eps);
  const upd = o.mul(o.div(m1, denom), o.div(lr, bc1));
  return { p: o.sub(param, upd), state: [m1, v1] };
}

/** βᵗ for a float32 scalar tensor t, as exp(t·ln β). */
function powScalar(beta: number, t: Tensor): Tensor {
  return o.exp(o.mul(t, Math.log(beta)));
}

function sgd(o2: SgdOptions, p: Tensor, g: Tensor, state: Tensor[], step: Tensor, lr: Tensor, decay: Tensor | number) {
  const wd = o2.weightDecay ?? 0;
  let grad = g;
  if (wd !== 0 && decay !== 0) grad = o.add(grad, typeof decay === 'number' ? o.mul(p, wd * decay) : o.mul(o.mul(p, decay), wd));
  const mom = o2.momentum ?? 0;
  if (!mom) return { p: o.sub(p, o.mul(grad, lr)), state: [] };
  const damp = o2.dampening ?? 0;
  // torch: buf ← g on the first step, then buf ← μ·buf + (1−dampening)·g
  const blended = o.add(o.mul(state[0]!, mom), o.mul(grad, 1 - damp));
  const buf = o.where(o.lessEqual(step, 1), grad, blended);
  const dir = o2.nesterov ? o.add(grad, o.mul(buf, mom)) : buf;
  return { p: o.sub(p, o.mul(dir, lr)), state: [buf] };
}
