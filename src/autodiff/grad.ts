// Reverse-mode autodiff over the traced graph. `grad` walks the active graph backwards
// from the loss, calling each primitive's VJP (which emits more nodes into the same
// graph) and summing cotangents per tensor. Several grad() calls may share one graph:
// taming's adaptive weight takes two gradients with respect to the same weight.
import { Tensor, type Node } from '../graph/ir.ts';
import { currentGraph } from '../graph/trace.ts';
import { primDef } from '../prims/index.ts';
import * as o from '../ops/core.ts';
import { fmtShape } from '../prims/types.ts';

const isFloat = (t: Tensor) => t.dtype === 'float32';

/**
 * Gradients of Σ_k ⟨seeds_k, outputs_k⟩ with respect to `wrt` (seeds default to 1 for
 * scalar outputs). Returns one tensor per `wrt` entry (zeros where no path exists).
 */
export function grad(outputs: Tensor | readonly Tensor[], wrt: readonly Tensor[], seeds?: readonly Tensor[]): Tensor[] {
  const outs = Array.isArray(outputs) ? (outputs as readonly Tensor[]) : [outputs as Tensor];
  const g = currentGraph();
  for (const t of [...outs, ...wrt]) {
    if (!(t instanceof Tensor)) throw new Error('grad: expected Tensors');
    if (t.graph !== g) throw new Error(`grad: ${t} belongs to another trace`);
  }
  outs.forEach((t, k) => {
    if (!isFloat(t)) throw new Error(`grad: output ${t} is not float32`);
    if (!seeds && t.size !== 1) throw new Error(`grad: output ${k} has shape ${fmtShape(t.shape)}; pass seeds for non-scalar outputs`);
  });
  for (const t of wrt) if (!isFloat(t)) throw new Error(`grad: cannot differentiate with respect to ${t} (dtype ${t.dtype})`);

  // Tensors that depend (through float values) on some wrt tensor.
  const active = new Set<Tensor>(wrt);
  const nodes = [...g.nodes];
  const outIds = new Set(outs.map((t) => t.producer?.id ?? -1));
  const maxNode = Math.max(-1, ...outIds);
  for (const n of nodes) {
    if (n.id > maxNode) break;
    if (n.prim === 'stopGradient') continue;
    if (n.inputs.some((i) => active.has(i))) for (const t of n.outputs) if (isFloat(t)) active.add(t);
  }

  const ct = new Map<Tensor, Tensor>();
  const accum = (t: Tensor, c: Tensor) => {
    if (c.dtype !== t.dtype || c.shape.length !== t.shape.length || c.shape.some((d, i) => d !== t.shape[i])) {
      throw new Error(`grad: internal VJP shape error for ${t}: cotangent ${c}`);
    }
    const prev = ct.get(t);
    ct.set(t, prev ? o.add(prev, c) : c);
  };
  outs.forEach((t, k) => {
    if (!active.has(t)) return;
    accum(t, seeds ? seeds[k]! : o.reshape(o.constant(1), t.shape));
  });

  for (let idx = nodes.length - 1; idx >= 0; idx--) {
    const n: Node = nodes[idx]!;
    if (n.id > maxNode) continue;
    const cts = n.outputs.map((t) => ct.get(t) ?? null);
    if (cts.every((c) => c === null)) continue;
    if (!n.inputs.some((i) => active.has(i))) continue;
    const def = primDef(n.prim);
    if (!def.vjp) {
      const scope = g.scopeOf.get(n);
      throw new Error(
        `grad: gradient requested through non-differentiable op '${n.prim}' (node #${n.id}${scope ? ` in ${scope}` : ''}: ${def.nondiff ?? 'no VJP'}); wrap its input in stopGradient() if that is intended`,
      );
    }
    const ins = def.vjp(cts, { node: n, inputs: n.inputs, outputs: n.outputs }, n.attrs);
    n.inputs.forEach((t, i) => {
      const c = ins[i];
      if (c && active.has(t)) accum(t, c);
    });
  }
  return wrt.map((t) => ct.get(t) ?? o.zerosLike(t));
}

export type ParamTree = Record<string, Tensor>;

/** Gradient of a scalar loss with respect to every tensor of a (flat, state-dict-keyed) tree. */
export function gradTree(loss: Tensor, params: ParamTree): ParamTree {
  const keys = Object.keys(params);
  const gs = grad(loss, keys.map((k) => params[k]!));
  return Object.fromEntries(keys.map((k, i) => [k, gs[i]!]));
}

/**
 * `valueAndGrad(f)(params, ...rest)` → { value, aux, grads }, where f returns a scalar loss or
 * { loss, ...aux }. Runs inside an active trace; gradients are graph tensors.
 */
export function valueAndGrad<A extends unknown[], R extends Tensor | ({ loss: Tensor } & Record<string, unknown>)>(
  f: (params: ParamTree, ...rest: A) => R,
): (params: ParamTree, ...rest: A) => { value: Tensor; aux: R; grads: ParamTree } {
  return (params, ...rest) => {
    const r = f(params, ...rest);
    const value = r instanceof Tensor ? r : r.loss;
    return { value, aux: r, grads: gradTree(value, params) };
  };
}
