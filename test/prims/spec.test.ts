// One spec row per primitive. For each row the runner checks (1) the shape rule against
// ONNX Runtime's actual output, (2) the VJP by the dot-product test
//   ⟨t, vjp(c)⟩ ≈ ⟨(f(x+εt) − f(x−εt)) / 2ε, c⟩
// with random directions t and cotangents c, and (3) where given, values against a JS reference.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Program } from '../../src/runtime/program.ts';
import * as o from '../../src/ops/core.ts';
import { grad } from '../../src/autodiff/grad.ts';
import { PRIMS } from '../../src/prims/index.ts';
import { HostTensor, type DType } from '../../src/tensor.ts';
import type { Tensor } from '../../src/graph/ir.ts';
import * as nn from '../../src/ops/nn.ts';
import { assertClose, dot, randn, rng } from '../helpers.ts';

type Domain = 'normal' | 'positive' | 'awayFromZero' | 'spread' | { int: number } | 'bool';
interface In { shape: number[]; domain?: Domain; dtype?: DType }
interface Row {
  name: string;
  prims: string[];
  ins: In[];
  f: (...xs: Tensor[]) => Tensor;
  /** reference values of the output from the host inputs */
  ref?: (...xs: HostTensor[]) => number[];
  /** compare with `ref` to this relative/absolute tolerance (default: exactly) */
  refTol?: number;
  rtol?: number;
  /** function whose finite differences the VJP must match, when f stops gradients on purpose */
  fdOf?: (...xs: Tensor[]) => Tensor;
}

const f32 = (shape: number[], domain: Domain = 'normal'): In => ({ shape, domain });
const i64 = (shape: number[], n: number): In => ({ shape, domain: { int: n }, dtype: 'int64' });

const rows: Row[] = [
  { name: 'add (broadcast)', prims: ['add'], ins: [f32([2, 3, 4]), f32([3, 1])], f: o.add },
  { name: 'sub (broadcast)', prims: ['sub'], ins: [f32([4]), f32([2, 3, 4])], f: o.sub },
  { name: 'mul', prims: ['mul'], ins: [f32([2, 3]), f32([2, 3])], f: o.mul },
  { name: 'div', prims: ['div'], ins: [f32([2, 3]), f32([1, 3], 'positive')], f: o.div },
  { name: 'maximum', prims: ['maximum'], ins: [f32([3, 4], 'spread'), f32([4], 'spread')], f: o.maximum },
  { name: 'minimum', prims: ['minimum'], ins: [f32([3, 4], 'spread'), f32([3, 4], 'spread')], f: o.minimum },
  { name: 'neg', prims: ['neg'], ins: [f32([5])], f: o.neg },
  { name: 'exp', prims: ['exp'], ins: [f32([2, 5])], f: o.exp },
  { name: 'log', prims: ['log'], ins: [f32([2, 5], 'positive')], f: o.log },
  { name: 'sqrt', prims: ['sqrt'], ins: [f32([2, 5], 'positive')], f: o.sqrt },
  { name: 'abs', prims: ['abs', 'sign'], ins: [f32([2, 5], 'awayFromZero')], f: o.abs },
  { name: 'sigmoid', prims: ['sigmoid'], ins: [f32([7])], f: o.sigmoid },
  { name: 'tanh', prims: ['tanh'], ins: [f32([7])], f: o.tanh },
  { name: 'relu', prims: ['relu'], ins: [f32([7], 'awayFromZero')], f: o.relu },
  { name: 'leakyRelu', prims: ['leakyRelu'], ins: [f32([7], 'awayFromZero')], f: (x) => o.leakyRelu(x, 0.2) },
  { name: 'erf', prims: ['erf'], ins: [f32([7])], f: o.erf },
  { name: 'softplus', prims: ['softplus'], ins: [f32([7])], f: o.softplus },
  { name: 'pow 3', prims: ['pow'], ins: [f32([6])], f: (x) => o.pow(x, 3) },
  { name: 'pow −0.5', prims: ['pow'], ins: [f32([6], 'positive')], f: (x) => o.pow(x, -0.5) },
  { name: 'pow 2', prims: ['pow'], ins: [f32([6])], f: (x) => o.pow(x, 2) },
  { name: 'where', prims: ['where', 'greater'], ins: [f32([3, 4]), f32([3, 4]), f32([4])], f: (c, a, b) => o.where(o.greater(c!, 0), a!, b!) },
  { name: 'cast f32→i64→f32 (no grad path)', prims: ['cast'], ins: [f32([5], 'spread')], f: (x) => o.cast(o.cast(o.mul(x, 3), 'int64'), 'float32'),
    ref: (x) => Array.from(x.data as Float32Array, (v) => Math.trunc(Math.fround(v * 3)) + 0) },
  { name: 'cast (float identity path)', prims: ['cast'], ins: [f32([5])], f: (x) => o.mul(o.cast(x, 'float32'), 2) },
  { name: 'stopGradient', prims: ['stopGradient'], ins: [f32([4]), f32([4])], f: (x, y) => o.add(o.mul(x!, x!), o.stopGradient(o.mul(y!, x!))),
    fdOf: (x, y) => o.add(o.mul(x!, x!), o.mul(o.mul(y!, x!), 0)) },
  { name: 'equal/less/greater/lessEqual/greaterEqual/and/not', prims: ['equal', 'less', 'greater', 'lessEqual', 'greaterEqual', 'logicalAnd', 'logicalNot'],
    ins: [i64([6], 3), i64([6], 3)],
    f: (a, b) => o.cast(o.logicalAnd(o.logicalNot(o.equal(a!, b!)), o.logicalAnd(o.lessEqual(a!, 1), o.greaterEqual(b!, 1))), 'int64'),
    ref: (a, b) => a.toArray().map((x, i) => Number(x !== b.toArray()[i] && x <= 1 && b.toArray()[i]! >= 1)) },
  { name: 'less (values)', prims: ['less'], ins: [i64([6], 4), i64([6], 4)], f: (a, b) => o.cast(o.less(a!, b!), 'int64'),
    ref: (a, b) => a.toArray().map((x, i) => Number(x < b.toArray()[i]!)) },
  { name: 'matmul (batched, broadcast)', prims: ['matmul', 'transpose'], ins: [f32([2, 3, 4, 5]), f32([3, 5, 2])], f: o.matmul },
  { name: 'matmul 2-D', prims: ['matmul'], ins: [f32([4, 6]), f32([6, 3])], f: o.matmul },
  { name: 'reshape', prims: ['reshape'], ins: [f32([2, 3, 4])], f: (x) => o.reshape(x, [4, 6]) },
  { name: 'transpose', prims: ['transpose'], ins: [f32([2, 3, 4])], f: (x) => o.transpose(x, [2, 0, 1]) },
  { name: 'expand', prims: ['expand'], ins: [f32([3, 1])], f: (x) => o.expand(x, [2, 3, 4]) },
  { name: 'slice step 1', prims: ['slice', 'pad'], ins: [f32([5, 6])], f: (x) => o.slice(x, [1, -4], [4, 100], [0, 1]) },
  { name: 'slice step 2', prims: ['slice'], ins: [f32([7, 6])], f: (x) => o.slice(x, [1, 0], [7, 5], [0, 1], [2, 3]) },
  { name: 'slice flip', prims: ['slice'], ins: [f32([4, 5])], f: (x) => o.slice(x, [3], [-100], [1], [-1]) },
  { name: 'concat', prims: ['concat'], ins: [f32([2, 3]), f32([2, 1]), f32([2, 2])], f: (a, b, c) => o.concat([a!, b!, c!], 1) },
  { name: 'pad', prims: ['pad'], ins: [f32([2, 3])], f: (x) => o.pad(x, [1, 0, 0, 2], 0.5) },
  { name: 'constant', prims: ['constant'], ins: [f32([3])], f: (x) => o.mul(x, o.constant(HostTensor.float32([3], [1, 2, 3]))) },
  { name: 'reduceSum', prims: ['reduceSum'], ins: [f32([2, 3, 4])], f: (x) => o.sum(x, [0, 2]) },
  { name: 'reduceSum keepdims', prims: ['reduceSum'], ins: [f32([2, 3, 4])], f: (x) => o.sum(x, [1], true) },
  { name: 'reduceMean', prims: ['reduceMean'], ins: [f32([2, 3, 4])], f: (x) => o.mean(x, [-1]) },
  { name: 'reduceMax', prims: ['reduceMax'], ins: [f32([3, 5], 'spread')], f: (x) => o.max(x, [1], true) },
  { name: 'argmax/argmin', prims: ['argmax', 'argmin'], ins: [f32([3, 5], 'spread')], f: (x) => o.add(o.argmax(x, 1), o.mul(o.argmin(x, 1), 10)),
    ref: (x) => {
      const d = x.data as Float32Array;
      return [0, 1, 2].map((r) => {
        const row = Array.from(d.slice(r * 5, r * 5 + 5));
        return row.indexOf(Math.max(...row)) + 10 * row.indexOf(Math.min(...row));
      });
    } },
  { name: 'gather (embedding)', prims: ['gather', 'scatterAdd'], ins: [f32([5, 3]), i64([2, 4], 5)], f: (d, i) => o.gather(d!, i!, 0) },
  { name: 'gather axis 1 (forward)', prims: ['gather'], ins: [f32([2, 4]), i64([3], 4)], f: (d, i) => o.stopGradient(o.gather(d!, i!, 1)),
    fdOf: (d, i) => o.mul(o.gather(d!, i!, 1), 0) },
  { name: 'scatterAdd', prims: ['scatterAdd', 'gather'], ins: [i64([6], 3), f32([6, 2])], f: (i, u) => o.scatterAdd([3, 2], i!, u!) },
  { name: 'oneHot', prims: ['oneHot'], ins: [i64([4], 3), f32([4, 3])], f: (i, x) => o.mul(o.oneHot(i!, 3), x!) },
  { name: 'conv2d 3×3 pad 1 + bias', prims: ['conv2d', 'conv2dInputGrad', 'conv2dWeightGrad'], ins: [f32([2, 3, 6, 5]), f32([4, 3, 3, 3]), f32([4])],
    f: (x, w, b) => o.conv2d(x!, w!, b, { padding: 1 }) },
  { name: 'conv2d stride 2, pads (0,0,1,1)', prims: ['conv2d', 'conv2dInputGrad', 'conv2dWeightGrad'], ins: [f32([2, 3, 8, 8]), f32([4, 3, 3, 3]), f32([4])],
    f: (x, w, b) => o.conv2d(x!, w!, b, { stride: 2, padding: [0, 0, 1, 1] }) },
  { name: 'conv2d 1×1', prims: ['conv2d'], ins: [f32([2, 5, 4, 4]), f32([3, 5, 1, 1]), f32([3])], f: (x, w, b) => o.conv2d(x!, w!, b) },
  { name: 'conv2d dilation 2, groups 2', prims: ['conv2d'], ins: [f32([1, 4, 9, 9]), f32([6, 2, 3, 3])], f: (x, w) => o.conv2d(x!, w!, null, { dilation: 2, groups: 2, padding: 1 }) },
  { name: 'conv2d k4 s2 p1 (PatchGAN)', prims: ['conv2d'], ins: [f32([2, 3, 8, 8]), f32([4, 3, 4, 4])], f: (x, w) => o.conv2d(x!, w!, null, { stride: 2, padding: 1 }) },
  // forward values of silu/groupNorm are also checked against PyTorch in test/engine/parity.test.ts
  { name: 'silu', prims: ['silu'], ins: [f32([3, 4])], f: nn.silu },
  { name: 'groupNorm primitive', prims: ['groupNorm'], ins: [f32([2, 4, 3, 3]), f32([4]), f32([4])], f: (x, w, b) => nn.groupNorm(x!, 2, w!, b!, 1e-6) },
  { name: 'softmax primitive (middle axis)', prims: ['softmax'], ins: [f32([2, 5, 3], 'spread')], f: (x) => nn.softmax(x, 1),
    ref: (x) => {
      const d = x.data as Float32Array;
      const out = new Array<number>(d.length);
      for (let b = 0; b < 2; b++) for (let j = 0; j < 3; j++) {
        const ix = [0, 1, 2, 3, 4].map((i) => (b * 5 + i) * 3 + j);
        const m = Math.max(...ix.map((i) => d[i]!));
        const s = ix.reduce((a, i) => a + Math.exp(d[i]! - m), 0);
        for (const i of ix) out[i] = Math.exp(d[i]! - m) / s;
      }
      return out;
    }, refTol: 1e-6 },
  { name: 'layerNorm primitive', prims: ['layerNorm'], ins: [f32([2, 3, 6]), f32([6]), f32([6])], f: (x, w, b) => nn.layerNorm(x!, w!, b!, 1e-5),
    ref: (x, w, b) => {
      const d = x.data as Float32Array;
      const out: number[] = [];
      for (let r = 0; r < 6; r++) {
        const row = Array.from(d.subarray(r * 6, r * 6 + 6));
        const mu = row.reduce((a, v) => a + v, 0) / 6;
        const v = row.reduce((a, u) => a + (u - mu) ** 2, 0) / 6;
        row.forEach((u, i) => out.push(((u - mu) / Math.sqrt(v + 1e-5)) * (w.data[i] as number) + (b.data[i] as number)));
      }
      return out;
    }, refTol: 1e-5 },
  { name: 'conv2d stride 3 odd size, big pad', prims: ['conv2d'], ins: [f32([1, 2, 7, 8]), f32([2, 2, 2, 3])], f: (x, w) => o.conv2d(x!, w!, null, { stride: [3, 2], padding: [2, 0, 1, 3] }) },
];

// Composites get the same dot-product check (their VJPs are assembled from the rows above).
const compositeRows: Row[] = [
  { name: 'gelu', prims: [], ins: [f32([3, 4])], f: nn.gelu },
  { name: 'softmax (composite)', prims: [], ins: [f32([3, 5])], f: (x) => nn.softmaxComposite(x, -1) },
  { name: 'logSoftmax', prims: [], ins: [f32([3, 5])], f: (x) => nn.logSoftmax(x, 0) },
  { name: 'linear', prims: [], ins: [f32([2, 3, 4]), f32([5, 4]), f32([5])], f: (x, w, b) => nn.linear(x!, w!, b) },
  { name: 'groupNorm (composite)', prims: [], ins: [f32([2, 4, 3, 3]), f32([4]), f32([4])], f: (x, w, b) => nn.groupNormComposite(x!, 2, w!, b!, 1e-6) },
  { name: 'layerNorm (composite)', prims: [], ins: [f32([2, 3, 6]), f32([6]), f32([6])], f: (x, w, b) => nn.layerNormComposite(x!, w!, b!) },
  { name: 'batchNorm (train)', prims: [], ins: [f32([4, 3, 2, 2]), f32([3]), f32([3]), f32([3]), f32([3], 'positive')],
    f: (x, w, b, rm, rv) => nn.batchNorm(x!, { weight: w!, bias: b!, runningMean: rm!, runningVar: rv! }, { training: true }).y },
  { name: 'batchNorm (eval)', prims: [], ins: [f32([4, 3, 2, 2]), f32([3]), f32([3]), f32([3]), f32([3], 'positive')],
    f: (x, w, b, rm, rv) => nn.batchNorm(x!, { weight: w!, bias: b!, runningMean: rm!, runningVar: rv! }, { training: false }).y },
  { name: 'upsampleNearest2x', prims: [], ins: [f32([1, 2, 3, 2])], f: nn.upsampleNearest2x },
  { name: 'attention (masked)', prims: [], ins: [f32([2, 4, 3]), f32([2, 5, 3]), f32([2, 5, 2])],
    f: (q, k, v) => nn.attention(q!, k!, v!, { mask: o.greater(o.constant(HostTensor.float32([4, 5], Array.from({ length: 20 }, (_, i) => (i % 5) - (i % 4)))), -1) }) },
];

function fill(spec: In, seed: number): HostTensor {
  const dom = spec.domain ?? 'normal';
  if (typeof dom === 'object') {
    const r = rng(seed);
    return HostTensor.int64(spec.shape, Array.from({ length: spec.shape.reduce((a, b) => a * b, 1) }, () => Math.floor(r() * dom.int)));
  }
  if (dom === 'bool') {
    const r = rng(seed);
    return new HostTensor('bool', spec.shape, Uint8Array.from({ length: spec.shape.reduce((a, b) => a * b, 1) }, () => (r() < 0.5 ? 1 : 0)));
  }
  const t = randn(spec.shape, seed);
  const d = t.data;
  if (dom === 'spread') {
    // distinct values ≥ 0.05 apart, shuffled: keeps max/min/argmax away from ties
    const r = rng(seed + 1);
    const vals = Array.from(d, (_, i) => (i - d.length / 2) * 0.37);
    for (let i = vals.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [vals[i], vals[j]] = [vals[j]!, vals[i]!]; }
    vals.forEach((v, i) => (d[i] = v));
  }
  for (let i = 0; i < d.length; i++) {
    if (dom === 'positive') d[i] = 0.5 + Math.abs(d[i]!);
    if (dom === 'awayFromZero') d[i] = Math.sign(d[i]! || 1) * (0.2 + Math.abs(d[i]!));
  }
  return t;
}

const EPS = 1e-3;

describe('primitive spec rows', () => {
  it('every primitive has a spec row', () => {
    const covered = new Set(rows.flatMap((r) => r.prims));
    const missing = Object.keys(PRIMS).filter((p) => !covered.has(p));
    assert.deepEqual(missing, [], `primitives without a spec row: ${missing.join(', ')}`);
  });

  for (const row of [...rows, ...compositeRows]) {
    it(row.name, async () => {
      const specs: Record<string, { shape: number[]; dtype: DType }> = {};
      row.ins.forEach((s, i) => (specs[`x${i}`] = { shape: s.shape, dtype: s.dtype ?? 'float32' }));
      let outMeta: Tensor | undefined;
      let diffIdx: number[] = [];
      const probe = Program.trace((ins) => {
        const y = row.f(...row.ins.map((_, i) => ins[`x${i}`]!));
        outMeta = y;
        return { y };
      }, specs);
      const y0 = outMeta!;
      const differentiable = y0.dtype === 'float32';
      if (differentiable) specs.c = { shape: [...y0.shape], dtype: 'float32' };
      const prog = differentiable
        ? Program.trace((ins) => {
            const xs = row.ins.map((_, i) => ins[`x${i}`]!);
            const y = row.f(...xs);
            diffIdx = xs.map((x, i) => (x.dtype === 'float32' ? i : -1)).filter((i) => i >= 0);
            const s = o.sum(o.mul(y, ins.c!));
            const gs = grad(s, diffIdx.map((i) => xs[i]!));
            return { y, ...Object.fromEntries(gs.map((g, k) => [`g${k}`, g])) };
          }, specs)
        : probe;
      const sess = await prog.compile({ threads: 1 });
      const fdSess = row.fdOf
        ? await Program.trace((ins) => ({ y: row.fdOf!(...row.ins.map((_, i) => ins[`x${i}`]!)) }), Object.fromEntries(Object.entries(specs).filter(([k]) => k !== 'c'))).compile({ threads: 1 })
        : sess;
      const xs = row.ins.map((s, i) => fill(s, 1000 + i * 17 + row.name.length));
      const feeds: Record<string, HostTensor> = Object.fromEntries(xs.map((x, i) => [`x${i}`, x]));
      const c = randn(y0.shape, 77);
      if (differentiable) feeds.c = c;
      const out = await sess.run(feeds);
      // (1) shape rule vs runtime
      assert.deepEqual([...out.y!.shape], [...y0.shape], 'shape rule disagrees with ONNX Runtime');
      assert.equal(out.y!.dtype, y0.dtype);
      if (row.ref) {
        const want = row.ref(...xs);
        if (row.refTol) assertClose(out.y!.toArray(), want, row.refTol, row.refTol, row.name);
        else assert.deepEqual(out.y!.toArray(), want);
      }
      if (!differentiable || diffIdx.length === 0) return;
      // (2) dot-product test
      const ts = diffIdx.map((i, k) => randn(xs[i]!.shape, 5000 + k));
      const shifted = (sgn: number) => {
        const f: Record<string, HostTensor> = { ...feeds };
        diffIdx.forEach((i, k) => {
          const x = xs[i]!.clone() as HostTensor<'float32'>;
          const t = ts[k]!.data;
          for (let j = 0; j < x.size; j++) x.data[j] = x.data[j]! + sgn * EPS * t[j]!;
          f[`x${i}`] = x;
        });
        if (fdSess !== sess) delete f.c;
        return fdSess.run(f);
      };
      const yp = (await shifted(1)).y!.data as Float32Array;
      const ym = (await shifted(-1)).y!.data as Float32Array;
      const fd = Array.from(yp, (v, j) => (v - ym[j]!) / (2 * EPS));
      const rhs = dot(fd, c.data);
      const lhs = diffIdx.reduce((s, _i, k) => s + dot(ts[k]!.data, out[`g${k}`]!.data as Float32Array), 0);
      const scale = Math.sqrt(dot(fd, fd) * dot(c.data, c.data)) + 1e-6;
      const err = Math.abs(lhs - rhs) / scale;
      assert.ok(err < (row.rtol ?? 2e-3), `VJP dot-product test: ⟨t, vjp(c)⟩=${lhs} vs ⟨fd, c⟩=${rhs} (relative to scale ${scale.toFixed(4)}: ${err.toExponential(2)})`);
    });
  }
});
