// Shape-rule helpers shared by the primitive families.
import type { TensorMeta } from '../graph/ir.ts';
import { fmtShape } from './types.ts';

/** Numpy broadcasting of several shapes; throws naming the op and every shape. */
export function broadcastShapes(op: string, shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const k = s.length - rank + i;
      const v = k >= 0 ? s[k]! : 1;
      if (v === 1) continue;
      if (d === 1) d = v;
      else if (d !== v) throw new Error(`${op}: shapes ${shapes.map(fmtShape).join(' and ')} do not broadcast`);
    }
    out.push(d);
  }
  return out;
}

export function sameDType(op: string, metas: readonly TensorMeta[]): void {
  const d = metas[0]!.dtype;
  for (const m of metas) {
    if (m.dtype !== d) {
      throw new Error(`${op}: dtype mismatch (${metas.map((x) => `${x.dtype}${fmtShape(x.shape)}`).join(' vs ')}); cast explicitly`);
    }
  }
}

export function requireFloat(op: string, m: TensorMeta, what = 'input'): void {
  if (m.dtype !== 'float32') throw new Error(`${op}: ${what} must be float32, got ${m.dtype}${fmtShape(m.shape)}`);
}

export function requireRank(op: string, m: TensorMeta, rank: number, what = 'input'): void {
  if (m.shape.length !== rank) throw new Error(`${op}: ${what} must have rank ${rank}, got shape ${fmtShape(m.shape)}`);
}

/** Normalize possibly-negative axes against a rank, checking range and duplicates. */
export function normAxes(op: string, axes: readonly number[], rank: number): number[] {
  const out = axes.map((a) => {
    if (!Number.isInteger(a) || a < -rank || a >= rank) throw new Error(`${op}: axis ${a} out of range for rank ${rank}`);
    return a < 0 ? a + rank : a;
  });
  if (new Set(out).size !== out.length) throw new Error(`${op}: duplicate axes [${axes.join(', ')}]`);
  return out;
}

export function prod(s: readonly number[]): number {
  let n = 1;
  for (const d of s) n *= d;
  return n;
}
