// VQGAN-like layers shared by the engine benchmarks (bench/engine.ts, bench/engine_profile.ts,
// bench/engine_alt.ts). Names and shapes must match LAYERS in bench/engine_torch.py.
import type { Tensor, TensorMeta } from '../src/graph/ir.ts';
import * as o from '../src/ops/core.ts';
import { softmax } from '../src/ops/nn.ts';
import { grad } from '../src/autodiff/grad.ts';
import { Program } from '../src/runtime/program.ts';
import { HostTensor } from '../src/tensor.ts';

export interface Layer {
  name: string;
  /** Shapes in words, for the table ("N=8 128→128 64²→64²"). */
  shape: string;
  /** Inputs other than the cotangent: x first, then parameters. */
  inputs: Record<string, TensorMeta & { scale: number }>;
  /** Output shape (for the cotangent c). */
  outShape: number[];
  /** y = f(inputs) */
  f: (t: Record<string, Tensor>) => Tensor;
  /** Forward FLOPs counted (convolutions, plus the two attention matmuls). */
  flops: number;
}

const f32 = (shape: number[], scale = 1) => ({ shape, dtype: 'float32' as const, scale });

/** 2·N·O·C/g·kh·kw·Ho·Wo */
export const convFlops = (n: number, o_: number, c: number, kh: number, kw: number, ho: number, wo: number, g = 1) =>
  2 * n * o_ * (c / g) * kh * kw * ho * wo;

function convLayer(name: string, n: number, c: number, oc: number, hw: number, k: number, opts: o.Conv2dOptions, taming = ''): Layer {
  const a = o.convAttrs(opts);
  const ho = Math.floor((hw + a.pads[0] + a.pads[2] - k) / a.stride[0]) + 1;
  const wo = Math.floor((hw + a.pads[1] + a.pads[3] - k) / a.stride[1]) + 1;
  return {
    name,
    shape: `N=${n} ${c}→${oc} ${hw}²→${ho}²${taming}`,
    inputs: { x: f32([n, c, hw, hw]), w: f32([oc, c, k, k], 1 / Math.sqrt(c * k * k)), b: f32([oc], 0.1) },
    outShape: [n, oc, ho, wo],
    f: (t) => o.conv2d(t.x!, t.w!, t.b!, opts),
    flops: convFlops(n, oc, c, k, k, ho, wo),
  };
}

function attnLayer(n: number, c: number, hw: number): Layer {
  const inputs: Layer['inputs'] = { x: f32([n, c, hw, hw]) };
  for (const p of ['q', 'k', 'v', 'proj_out']) {
    inputs[`${p}.weight`] = f32([c, c, 1, 1], 1 / Math.sqrt(c));
    inputs[`${p}.bias`] = f32([c], 0.1);
  }
  const l = hw * hw;
  return {
    name: 'attn C512 16²',
    shape: `N=${n} C=${c} ${hw}² (q,k,v,proj 1×1 + softmax(qkᵀ/√C)v)`,
    inputs,
    outShape: [n, c, hw, hw],
    f: (t) => {
      // taming AttnBlock without norm and residual
      const conv = (p: string, x: Tensor) => o.conv2d(x, t[`${p}.weight`]!, t[`${p}.bias`]!);
      const x = t.x!;
      const q = o.transpose(o.reshape(conv('q', x), [n, c, l]), [0, 2, 1]); // [B, HW, C]
      const k = o.reshape(conv('k', x), [n, c, l]); // [B, C, HW]
      const v = o.reshape(conv('v', x), [n, c, l]); // [B, C, HW]
      const w = softmax(o.mul(o.matmul(q, k), 1 / Math.sqrt(c)), 2); // [B, HWq, HWk]
      const h = o.matmul(v, o.transpose(w, [0, 2, 1])); // [B, C, HWq]
      return conv('proj_out', o.reshape(h, [n, c, hw, hw]));
    },
    flops: 4 * convFlops(n, c, c, 1, 1, hw, hw) + 2 * (2 * n * l * l * c),
  };
}

export const LAYERS: Layer[] = [
  convLayer('conv3x3 C128 64²', 8, 128, 128, 64, 3, { padding: 1 }),
  convLayer('conv3x3 C256 32²', 8, 256, 256, 32, 3, { padding: 1 }),
  convLayer('conv3x3 C512 16²', 8, 512, 512, 16, 3, { padding: 1 }),
  // taming Downsample: F.pad(x, (0,1,0,1)) then 3×3 stride 2; here the pad is the conv's own
  convLayer('down s2 C128 64²', 8, 128, 128, 64, 3, { stride: 2, padding: [0, 0, 1, 1] }, ' pad(0,1,0,1) s2'),
  convLayer('conv1x1 C512 16²', 8, 512, 512, 16, 1, {}),
  attnLayer(8, 512, 16),
];

/** mulberry32 + Box–Muller: deterministic normal data. */
export function randn(shape: readonly number[], seed: number, scale = 1): HostTensor<'float32'> {
  let a = seed >>> 0;
  const r = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = HostTensor.float32(shape);
  for (let i = 0; i < out.size; i++) out.data[i] = Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r()) * scale;
  return out;
}

export function feedsFor(layer: Layer, withCotangent: boolean): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  let seed = 1;
  for (const [k, m] of Object.entries(layer.inputs)) feeds[k] = randn(m.shape, seed++, m.scale);
  if (withCotangent) feeds.c = randn(layer.outShape, 999);
  return feeds;
}

/** y = f(x, params) */
export function forwardProgram(layer: Layer): Program {
  return Program.trace((t) => ({ y: layer.f(t) }), layer.inputs);
}

/** loss = Σ y·c and its gradients with respect to x and every parameter. */
export function fwdBwdProgram(layer: Layer): Program {
  const specs = { ...layer.inputs, c: { shape: layer.outShape, dtype: 'float32' as const } };
  return Program.trace((t) => {
    const y = layer.f(t);
    const loss = o.sum(o.mul(y, t.c!));
    const keys = Object.keys(layer.inputs);
    const gs = grad(loss, keys.map((k) => t[k]!));
    return { loss, ...Object.fromEntries(keys.map((k, i) => [`d_${k}`, gs[i]!])) };
  }, specs);
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median milliseconds of `reps` calls after `warmup` calls. */
export async function timeIt(fn: () => Promise<unknown>, warmup: number, reps: number): Promise<{ ms: number; all: number[] }> {
  for (let i = 0; i < warmup; i++) await fn();
  const all: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    all.push(performance.now() - t0);
  }
  return { ms: median(all), all };
}
