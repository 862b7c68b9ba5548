// Parameter trees keyed exactly like PyTorch state dicts ('encoder.down.0.block.1.norm1.weight').
// A ParamView is a prefix into such a flat tree; model code reads weights through it.
import type { Tensor } from '../graph/ir.ts';
import { HostTensor } from '../tensor.ts';

export type StateDict = Map<string, HostTensor>;
export type TensorTree = Record<string, Tensor>;

export class ParamView {
  readonly tree: TensorTree;
  readonly prefix: string;

  constructor(tree: TensorTree, prefix = '') {
    this.tree = tree;
    this.prefix = prefix;
  }

  key(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  has(name: string): boolean {
    return this.key(name) in this.tree;
  }

  get(name: string): Tensor {
    const k = this.key(name);
    const t = this.tree[k];
    if (!t) throw new Error(`missing parameter '${k}'`);
    return t;
  }

  /** Optional parameter (e.g. a bias that a config may omit). */
  opt(name: string): Tensor | null {
    return this.tree[this.key(name)] ?? null;
  }

  sub(name: string | number): ParamView {
    return new ParamView(this.tree, this.key(String(name)));
  }
}

/** Names and shapes of a parameter set, e.g. from an init function. */
export type ShapeTree = Record<string, readonly number[]>;

export function shapesOf(sd: StateDict | Record<string, HostTensor>): ShapeTree {
  const entries = sd instanceof Map ? [...sd.entries()] : Object.entries(sd);
  return Object.fromEntries(entries.map(([k, v]) => [k, v.shape]));
}

export function countParams(shapes: ShapeTree): number {
  return Object.values(shapes).reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
}

/**
 * Compare a state dict against the expected shapes; names every missing, unexpected and
 * wrong-shaped key. `ignore` filters keys (e.g. /^loss\./ for inference).
 */
export function checkStateDict(sd: StateDict, expected: ShapeTree, opts: { ignore?: RegExp; source?: string } = {}): void {
  const problems: string[] = [];
  const list = (ks: string[], n = 6) => `${ks.slice(0, n).join(', ')}${ks.length > n ? ', …' : ''}`;
  const keys = [...sd.keys()].filter((k) => !opts.ignore?.test(k));
  const have = new Set(keys);
  const missing = Object.keys(expected).filter((k) => !have.has(k));
  const unexpected = keys.filter((k) => !(k in expected));
  if (missing.length) problems.push(`missing keys (${missing.length}): ${list(missing)}`);
  if (unexpected.length) problems.push(`unexpected keys (${unexpected.length}): ${list(unexpected)}`);
  const wrong: string[] = [];
  for (const [k, s] of Object.entries(expected)) {
    const t = sd.get(k);
    if (t && (t.shape.length !== s.length || t.shape.some((d, i) => d !== s[i]))) {
      wrong.push(`'${k}': expected [${s.join(', ')}], got [${t.shape.join(', ')}]`);
    }
  }
  if (wrong.length) problems.push(`wrong shapes (${wrong.length}): ${list(wrong, 3)}`);
  if (problems.length) throw new Error(`${opts.source ? opts.source + ': ' : ''}state dict does not match the model: ${problems.join('; ')}`);
}

/** Deterministic float32 RNG for initializers (mulberry32 + Box-Muller). */
export class InitRng {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  uniform(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = Math.max(this.uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }
}

/** U(±bound); with rng = null, zeros (used to get shapes cheaply: untouched pages cost nothing). */
export function uniformTensor(rng: InitRng | null, shape: readonly number[], bound: number): HostTensor<'float32'> {
  const t = HostTensor.float32(shape);
  if (!rng) return t;
  for (let i = 0; i < t.size; i++) t.data[i] = (rng.uniform() * 2 - 1) * bound;
  return t;
}

export function normalTensor(rng: InitRng | null, shape: readonly number[], std: number, mean = 0): HostTensor<'float32'> {
  const t = HostTensor.float32(shape);
  if (!rng) return t;
  for (let i = 0; i < t.size; i++) t.data[i] = mean + rng.normal() * std;
  return t;
}

export const fill = (shape: readonly number[], v: number): HostTensor<'float32'> => {
  const t = HostTensor.float32(shape);
  t.data.fill(v);
  return t;
};

/** PyTorch's default Conv2d/Linear init: U(±1/√fan_in) for weight and bias. */
export function initConv(sd: StateDict, rng: InitRng | null, name: string, out: number, inp: number, kh: number, kw: number, bias = true): void {
  const bound = 1 / Math.sqrt(inp * kh * kw);
  sd.set(`${name}.weight`, uniformTensor(rng, [out, inp, kh, kw], bound));
  if (bias) sd.set(`${name}.bias`, uniformTensor(rng, [out], bound));
}

export function initLinear(sd: StateDict, rng: InitRng | null, name: string, out: number, inp: number, bias = true): void {
  const bound = 1 / Math.sqrt(inp);
  sd.set(`${name}.weight`, uniformTensor(rng, [out, inp], bound));
  if (bias) sd.set(`${name}.bias`, uniformTensor(rng, [out], bound));
}

export function initNorm(sd: StateDict, name: string, c: number): void {
  sd.set(`${name}.weight`, fill([c], 1));
  sd.set(`${name}.bias`, fill([c], 0));
}
