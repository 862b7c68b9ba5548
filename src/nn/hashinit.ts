// "Hash weights": deterministic parameters computable identically in TypeScript and in
// numpy (scripts/hashinit.py), so parity fixtures for big architectures need no weights on
// disk. value = f(key, flat index) through an integer hash; see scripts/hashinit.py.
import { HostTensor } from '../tensor.ts';
import type { ShapeTree, StateDict } from './params.ts';

function fnv1a(s: string): number {
  let h = 2166136261;
  for (const b of new TextEncoder().encode(s)) {
    h ^= b;
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h >>> 0;
}

export function hashTensor(key: string, shape: readonly number[]): HostTensor<'float32'> {
  const t = HostTensor.float32(shape);
  const seed = fnv1a(key);
  const n = t.size;
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  let scale: number;
  let center = 0;
  if (key.endsWith('.bias')) scale = 0.1;
  else if (key.endsWith('.weight') && shape.length === 1) {
    scale = 0.2;
    center = 1;
  } else if (key.endsWith('embedding.weight')) scale = 1;
  else scale = Math.sqrt(3 / fanIn);
  for (let i = 0; i < n; i++) {
    let x = (Math.imul(i, 0x9e3779b1) + seed) >>> 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x85ebca6b) >>> 0;
    x ^= x >>> 13;
    x = Math.imul(x, 0xc2b2ae35) >>> 0;
    x ^= x >>> 16;
    const u = (x >>> 8) / 16777216;
    t.data[i] = center + scale * (2 * u - 1);
  }
  return t;
}

export function hashStateDict(shapes: ShapeTree): StateDict {
  return new Map(Object.entries(shapes).map(([k, s]) => [k, hashTensor(k, s)]));
}
