// Reverse of numpy broadcasting: sum a cotangent back down to an operand's shape.
import type { Tensor } from '../graph/ir.ts';
import { reshape, sum } from '../ops/core.ts';

export function unbroadcast(g: Tensor, shape: readonly number[]): Tensor {
  if (g.rank === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead) axes.push(i);
    else if (shape[i - lead] === 1 && g.shape[i] !== 1) axes.push(i);
  }
  const r = axes.length ? sum(g, axes, true) : g;
  return reshape(r, shape);
}
