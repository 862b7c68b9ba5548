// Prototype lowerings for conv gradients, as raw ONNX graphs, timed against the current
// lowering (src/prims/conv.ts) in the same process. Each group compiles its variants, checks
// they agree numerically with the first one, then times them in interleaved rounds.
//
//   node --import tsx bench/engine_alt.ts [--threads 1,2] [--rounds 5] [--reps 3] [--only wgrad,igrad,...]
//
// Groups: igrad (3×3 input gradient), wgrad (3×3 weight gradient), down (stride-2 gradients),
// c1x1 (1×1 conv forward and weight gradient), nchwc (forward Conv with constant weights, which
// ORT rewrites to its NCHWc kernels), spin (ORT thread spinning with two sessions alive),
// fb (whole forward+backward: current vs proposed).
import type * as OrtNs from 'onnxruntime-common';
import { encodeModel, ATTR_TYPE, type AttrObj, type ModelObj, type NodeObj, type TensorProtoObj } from '../src/onnx/proto.ts';
import { createSession, getOrt } from '../src/runtime/backend.ts';
import { HostTensor } from '../src/tensor.ts';
import { LAYERS, feedsFor, forwardProgram, fwdBwdProgram, median, randn } from './engine_layers.ts';
import { LoadMeter, waitQuiet } from './engine_load.ts';

// ---------------------------------------------------------------- a tiny ONNX graph builder

type Attr = number | number[] | string;
const BIG = 2 ** 53 - 1;

class G {
  nodes: NodeObj[] = [];
  inits: TensorProtoObj[] = [];
  ins: { name: string; shape: number[] }[] = [];
  outs: { name: string; shape: number[] }[] = [];
  private n = 0;
  private consts = new Map<string, string>();

  input(name: string, shape: number[]): string {
    this.ins.push({ name, shape });
    return name;
  }
  /** A float32 initializer (constant weights let ORT's NCHWc transformer rewrite Conv). */
  constF(name: string, t: HostTensor): string {
    const d = t.data as Float32Array;
    this.inits.push({ name, dims: [...t.shape], dataType: 1, rawData: new Uint8Array(d.buffer, d.byteOffset, d.byteLength) });
    return name;
  }
  output(name: string, shape: number[]): void {
    this.outs.push({ name, shape });
  }
  i64(v: readonly number[]): string {
    const key = v.join(',');
    let name = this.consts.get(key);
    if (!name) {
      name = `k${this.consts.size}`;
      const d = BigInt64Array.from(v.map((x) => BigInt(x)));
      this.inits.push({ name, dims: [v.length], dataType: 7, rawData: new Uint8Array(d.buffer) });
      this.consts.set(key, name);
    }
    return name;
  }
  op(type: string, inputs: string[], attrs: Record<string, Attr> = {}, domain = ''): string {
    const out = `v${this.n++}`;
    const attribute: AttrObj[] = Object.entries(attrs).map(([name, v]) =>
      typeof v === 'string'
        ? { name, type: ATTR_TYPE.STRING, s: new TextEncoder().encode(v) }
        : Array.isArray(v)
          ? { name, type: ATTR_TYPE.INTS, ints: v }
          : { name, type: ATTR_TYPE.INT, i: v },
    );
    this.nodes.push({ opType: type, input: inputs, output: [out], name: `${type}_${this.n}`, domain, attribute });
    return out;
  }
  // conveniences
  reshape = (x: string, s: number[]) => this.op('Reshape', [x, this.i64(s)]);
  transpose = (x: string, perm: number[]) => this.op('Transpose', [x], { perm });
  slice = (x: string, starts: number[], ends: number[], axes: number[], steps: number[]) =>
    this.op('Slice', [x, this.i64(starts), this.i64(ends), this.i64(axes), this.i64(steps)]);
  pad = (x: string, pads: number[]) => (pads.every((p) => p === 0) ? x : this.op('Pad', [x, this.i64(pads)], { mode: 'constant' }));

  model(): Uint8Array {
    const vi = (name: string, shape: number[]) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: shape.map((d) => ({ dimValue: d })) } } } });
    const nodes = [...this.nodes];
    const outs = this.outs.map((o, i) => {
      nodes.push({ opType: 'Identity', input: [o.name], output: [`out${i}`], name: `out${i}`, domain: '', attribute: [] });
      return vi(`out${i}`, o.shape);
    });
    const m: ModelObj = {
      irVersion: 10,
      producerName: 'bench',
      producerVersion: '0',
      opsetImport: [{ domain: '', version: 21 }, { domain: 'com.microsoft', version: 1 }, { domain: 'com.microsoft.nchwc', version: 1 }],
      graph: { name: 'alt', node: nodes, initializer: this.inits, input: this.ins.map((i) => vi(i.name, i.shape)), output: outs },
    };
    return encodeModel(m);
  }
}

// ---------------------------------------------------------------- conv problem + lowerings

interface P {
  n: number; c: number; o: number; h: number; w: number; k: number; s: number;
  pads: [number, number, number, number]; // top, left, bottom, right
}
const outHW = (p: P): [number, number] => [
  Math.floor((p.h + p.pads[0] + p.pads[2] - p.k) / p.s) + 1,
  Math.floor((p.w + p.pads[1] + p.pads[3] - p.k) / p.s) + 1,
];

/** dw, the lowering of src/prims/conv.ts as of 14:00 on 2026-11-24 (groups = 1): per tap a 2-D (strided) Slice, batched MatMul, ReduceSum over N. */
function wgPrev(g: G, p: P, x: string, gy: string): string {
  const [ho, wo] = outHW(p);
  const [pt, pl, pb, pr] = p.pads;
  const xp = g.pad(x, [0, 0, pt, pl, 0, 0, pb, pr]);
  const hp = p.h + pt + pb, wp = p.w + pl + pr;
  const gt = g.transpose(g.reshape(gy, [p.n, 1, p.o, ho * wo]), [0, 1, 3, 2]);
  const taps: string[] = [];
  for (let i = 0; i < p.k; i++) {
    for (let j = 0; j < p.k; j++) {
      const e0 = i + p.s * (ho - 1) + 1, e1 = j + p.s * (wo - 1) + 1;
      const v = i === 0 && j === 0 && e0 === hp && e1 === wp && p.s === 1 ? xp : g.slice(xp, [i, j], [e0, e1], [2, 3], [p.s, p.s]);
      const mm = g.op('MatMul', [g.reshape(v, [p.n, 1, p.c, ho * wo]), gt]);
      taps.push(g.op('ReduceSum', [mm, g.i64([0])], { keepdims: 0 }));
    }
  }
  const st = g.op('Concat', taps.map((t) => g.op('Unsqueeze', [t, g.i64([3])])), { axis: 3 });
  return g.reshape(g.transpose(st, [0, 2, 1, 3]), [p.o, p.c, p.k, p.k]);
}

/**
 * dw, the lowering of src/prims/conv.ts as of 14:56 (groups = 1, mirrored here so variants
 * can be compared in one graph family): stride 1 → "flat" taps (padded input flattened to
 * [N, C, Hp·Wp]; tap (i, j) = one contiguous range; g padded right to Wp), stride 2 → 2-D
 * strided Slices; then all taps Unsqueezed, Concatenated on a last axis [N, 1, C, O, K²],
 * one ReduceSum over N, Transpose. `perTapReduce` = ReduceSum each tap first (the 14:00 finish).
 */
function wgCurrentImpl(g: G, p: P, x: string, gy: string, perTapReduce: boolean): string {
  const [ho, wo] = outHW(p);
  const [pt, pl, pb, pr] = p.pads;
  const taps: string[] = [];
  if (p.s === 1) {
    const wp = p.w + pl + pr;
    const extra = p.k > 1 ? 1 : 0;
    const hp = p.h + pt + pb + extra;
    const xf = g.reshape(g.pad(x, [0, 0, pt, pl, 0, 0, pb + extra, pr]), [p.n, 1, p.c, hp * wp]);
    const L = ho * wp;
    const gp = wp !== wo ? g.pad(gy, [0, 0, 0, 0, 0, 0, 0, wp - wo]) : gy;
    const gt = g.transpose(g.reshape(gp, [p.n, 1, p.o, L]), [0, 1, 3, 2]);
    for (let i = 0; i < p.k; i++) {
      for (let j = 0; j < p.k; j++) {
        const off = i * wp + j;
        const v = off === 0 && L === hp * wp ? xf : g.slice(xf, [off], [off + L], [3], [1]);
        taps.push(g.op('MatMul', [v, gt]));
      }
    }
  } else {
    const xp = g.pad(x, [0, 0, pt, pl, 0, 0, pb, pr]);
    const gt = g.transpose(g.reshape(gy, [p.n, 1, p.o, ho * wo]), [0, 1, 3, 2]);
    for (let i = 0; i < p.k; i++) {
      for (let j = 0; j < p.k; j++) {
        const v = g.slice(xp, [i, j], [i + p.s * (ho - 1) + 1, j + p.s * (wo - 1) + 1], [2, 3], [p.s, p.s]);
        taps.push(g.op('MatMul', [g.reshape(v, [p.n, 1, p.c, ho * wo]), gt]));
      }
    }
  }
  if (perTapReduce) {
    const red = taps.map((t) => g.op('Unsqueeze', [g.op('ReduceSum', [t, g.i64([0])], { keepdims: 0 }), g.i64([3])]));
    const st = red.length === 1 ? red[0]! : g.op('Concat', red, { axis: 3 }); // [1, C, O, K²]
    return g.reshape(g.transpose(st, [0, 2, 1, 3]), [p.o, p.c, p.k, p.k]);
  }
  const unsq = taps.map((t) => g.op('Unsqueeze', [t, g.i64([4])]));
  const st = unsq.length === 1 ? unsq[0]! : g.op('Concat', unsq, { axis: 4 }); // [N, 1, C, O, K²]
  const red = g.op('ReduceSum', [st, g.i64([0])], { keepdims: 0 });
  return g.reshape(g.transpose(red, [0, 2, 1, 3]), [p.o, p.c, p.k, p.k]);
}
const wgCurrent = (g: G, p: P, x: string, gy: string) => wgCurrentImpl(g, p, x, gy, false);
/** the 14:56 flat taps with the 14:00 per-tap ReduceSum finish */
const wgFlatPerTapReduce = (g: G, p: P, x: string, gy: string) => wgCurrentImpl(g, p, x, gy, true);

/** Channel-major views shared by the folded variants: xT [C, N, Hp, Wp] padded, gT [O, N·Ho·Wo]. */
function folded(g: G, p: P, x: string, gy: string): { xT: string; gT: string; K: number } {
  const [ho, wo] = outHW(p);
  const [pt, pl, pb, pr] = p.pads;
  const xT = g.pad(g.transpose(x, [1, 0, 2, 3]), [0, 0, pt, pl, 0, 0, pb, pr]);
  const gT = g.reshape(g.transpose(gy, [1, 0, 2, 3]), [p.o, p.n * ho * wo]);
  return { xT, gT, K: p.n * ho * wo };
}

/** tap (i, j) of the channel-major padded input: [C, N·Ho·Wo] */
function tapT(g: G, p: P, xT: string, i: number, j: number): string {
  const [ho, wo] = outHW(p);
  const v = g.slice(xT, [i, j], [i + p.s * (ho - 1) + 1, j + p.s * (wo - 1) + 1], [2, 3], [p.s, p.s]);
  return g.reshape(v, [p.c, p.n * ho * wo]);
}

/** dw: batch folded into the contraction: per tap one Gemm gT[O,K]·tapᵀ[K,C] → [O, C]; stacked on a last axis. */
function wgFoldTaps(g: G, p: P, x: string, gy: string): string {
  const { xT, gT } = folded(g, p, x, gy);
  const taps: string[] = [];
  for (let i = 0; i < p.k; i++) for (let j = 0; j < p.k; j++) taps.push(g.op('Unsqueeze', [g.op('Gemm', [gT, tapT(g, p, xT, i, j)], { transB: 1 }), g.i64([2])]));
  const st = taps.length === 1 ? taps[0]! : g.op('Concat', taps, { axis: 2 }); // [O, C, K²]
  return g.reshape(st, [p.o, p.c, p.k, p.k]);
}

/** dw: explicit im2col [C·K², N·Ho·Wo] (taps concatenated), one Gemm → [O, C·K²] = [O, C, kh, kw]. */
function wgIm2col(g: G, p: P, x: string, gy: string): string {
  const { xT, gT, K } = folded(g, p, x, gy);
  const taps: string[] = [];
  for (let i = 0; i < p.k; i++) for (let j = 0; j < p.k; j++) taps.push(g.reshape(tapT(g, p, xT, i, j), [p.c, 1, K]));
  const cols = g.reshape(g.op('Concat', taps, { axis: 1 }), [p.c * p.k * p.k, K]);
  return g.reshape(g.op('Gemm', [gT, cols], { transB: 1 }), [p.o, p.c, p.k, p.k]);
}

/** dw: im2col of the *untransposed* input, per image; batched MatMul then ReduceSum over N. */
function wgIm2colBatched(g: G, p: P, x: string, gy: string): string {
  const [ho, wo] = outHW(p);
  const [pt, pl, pb, pr] = p.pads;
  const xp = g.pad(x, [0, 0, pt, pl, 0, 0, pb, pr]);
  const taps: string[] = [];
  for (let i = 0; i < p.k; i++) {
    for (let j = 0; j < p.k; j++) {
      const v = g.slice(xp, [i, j], [i + p.s * (ho - 1) + 1, j + p.s * (wo - 1) + 1], [2, 3], [p.s, p.s]);
      taps.push(g.reshape(v, [p.n, p.c, 1, ho * wo]));
    }
  }
  const cols = g.reshape(g.op('Concat', taps, { axis: 2 }), [p.n, p.c * p.k * p.k, ho * wo]); // [N, C·K², HoWo]
  const gm = g.reshape(gy, [p.n, p.o, ho * wo]);
  const mm = g.op('FusedMatMul', [gm, cols], { transB: 1 }, 'com.microsoft'); // [N, O, C·K²]
  return g.reshape(g.op('ReduceSum', [mm, g.i64([0])], { keepdims: 0 }), [p.o, p.c, p.k, p.k]);
}

/**
 * dw: im2col done by ORT's (multi-threaded) Conv itself: a grouped Conv with a constant
 * one-hot filter [C·K², 1, kh, kw] (group C) gives cols [N, C·K², Ho, Wo]; then one batched
 * FusedMatMul g[N,O,HoWo]·colsᵀ → [N, O, C·K²] and ReduceSum over N → [O, C, kh, kw].
 */
function wgConvIm2col(g: G, p: P, x: string, gy: string): string {
  const [ho, wo] = outHW(p);
  const kk = p.k * p.k;
  const eye = HostTensor.float32([p.c * kk, 1, p.k, p.k]);
  for (let c = 0; c < p.c; c++) for (let t = 0; t < kk; t++) eye.data[(c * kk + t) * kk + t] = 1;
  const cols = g.op('Conv', [x, g.constF(`eye${g.nodes.length}`, eye)], { group: p.c, strides: [p.s, p.s], pads: p.pads });
  const mm = g.op('FusedMatMul', [g.reshape(gy, [p.n, p.o, ho * wo]), g.reshape(cols, [p.n, p.c * kk, ho * wo])], { transB: 1 }, 'com.microsoft');
  return g.reshape(g.op('ReduceSum', [mm, g.i64([0])], { keepdims: 0 }), [p.o, p.c, p.k, p.k]);
}

/** dw: the swap-batch-and-channel Conv: Conv(xT [C, N, H, W], gT [O, N, Ho, Wo]) = [C, O, kh, kw]. */
function wgConvTrick(g: G, p: P, x: string, gy: string): string {
  const xT = g.transpose(x, [1, 0, 2, 3]);
  const gT = g.transpose(gy, [1, 0, 2, 3]);
  const r = g.op('Conv', [xT, gT], { pads: p.pads, dilations: [p.s, p.s], strides: [1, 1] });
  return g.transpose(r, [1, 0, 2, 3]);
}

/**
 * dw for stride 2 by polyphase split: pad xT to even size, [C,N,2H',2W'] → [2,2,C,N,H',W'] in
 * one Transpose, then every tap is a stride-1 slice of one phase.
 */
function wgPolyphase(g: G, p: P, x: string, gy: string): string {
  if (p.s !== 2) throw new Error('polyphase: stride 2 only');
  const [ho, wo] = outHW(p);
  const [pt, pl] = p.pads;
  const hp = p.h + pt + p.pads[2], wp = p.w + pl + p.pads[3];
  const he = hp + (hp % 2), we = wp + (wp % 2);
  const xT = g.pad(g.transpose(x, [1, 0, 2, 3]), [0, 0, pt, pl, 0, 0, he - p.h - pt, we - p.w - pl]);
  const ph = g.transpose(g.reshape(xT, [p.c, p.n, he / 2, 2, we / 2, 2]), [3, 5, 0, 1, 2, 4]); // [2, 2, C, N, H', W']
  const gT = g.reshape(g.transpose(gy, [1, 0, 2, 3]), [p.o, p.n * ho * wo]);
  const taps: string[] = [];
  for (let i = 0; i < p.k; i++) {
    for (let j = 0; j < p.k; j++) {
      const v = g.slice(ph, [i % 2, j % 2, i >> 1, j >> 1], [(i % 2) + 1, (j % 2) + 1, (i >> 1) + ho, (j >> 1) + wo], [0, 1, 4, 5], [1, 1, 1, 1]);
      taps.push(g.op('Unsqueeze', [g.op('Gemm', [gT, g.reshape(v, [p.c, p.n * ho * wo])], { transB: 1 }), g.i64([2])]));
    }
  }
  return g.reshape(g.op('Concat', taps, { axis: 2 }), [p.o, p.c, p.k, p.k]);
}

/** dx, current lowering: stride 1 → Conv with transposed + flipped (negative-step Slice) weight; else ConvTranspose. */
function igCurrent(g: G, p: P, w: string, gy: string): string {
  const fp = p.pads.map((q) => p.k - 1 - q);
  if (p.s === 1) {
    let wt = g.transpose(w, [1, 0, 2, 3]);
    if (p.k > 1) wt = g.slice(wt, [-1, -1], [-BIG, -BIG], [2, 3], [-1, -1]);
    return g.op('Conv', [gy, wt], { strides: [1, 1], pads: fp });
  }
  return igConvTranspose(g, p, w, gy);
}

function igConvTranspose(g: G, p: P, w: string, gy: string): string {
  const [ho, wo] = outHW(p);
  const outPad = [p.h - ((ho - 1) * p.s + p.k - p.pads[0] - p.pads[2]), p.w - ((wo - 1) * p.s + p.k - p.pads[1] - p.pads[3])];
  return g.op('ConvTranspose', [gy, w], { strides: [p.s, p.s], pads: p.pads, output_padding: outPad });
}

/** dx: Conv with a flip done as one Gather over the flattened K² taps (reversed order). */
function igGatherFlip(g: G, p: P, w: string, gy: string): string {
  const fp = p.pads.map((q) => p.k - 1 - q);
  const kk = p.k * p.k;
  const idx = g.i64(Array.from({ length: kk }, (_, i) => kk - 1 - i));
  let wt = g.reshape(g.op('Gather', [g.reshape(w, [p.o, p.c, kk]), idx], { axis: 2 }), [p.o, p.c, p.k, p.k]);
  wt = g.transpose(wt, [1, 0, 2, 3]);
  return g.op('Conv', [gy, wt], { strides: [1, 1], pads: fp });
}

/** dx: Conv with the flip as a one-axis negative-step Slice over the flattened K² taps. */
function igSlice1Flip(g: G, p: P, w: string, gy: string): string {
  const fp = p.pads.map((q) => p.k - 1 - q);
  const kk = p.k * p.k;
  const t = g.transpose(g.reshape(w, [p.o, p.c, kk]), [1, 0, 2]);
  const wt = g.reshape(g.slice(t, [-1], [-BIG], [2], [-1]), [p.c, p.o, p.k, p.k]);
  return g.op('Conv', [gy, wt], { strides: [1, 1], pads: fp });
}

/**
 * Forward Conv through ORT's NCHWc kernels with the weights still a graph *input*: the
 * filter is reordered in-graph to OIHWBiBo ([O/B, C/B, kh, kw, Bi, Bo], B = MLAS block size,
 * 16 with AVX-512) by Reshape + Transpose, x by nchwc.ReorderInput, y back by ReorderOutput.
 * (The NchwcTransformer does this only for constant weights.) Needs C, O multiples of B.
 */
function convNchwc(g: G, p: P, x: string, w: string, b: string | null, B = 16): string {
  const wr = g.reshape(g.transpose(g.reshape(w, [p.o / B, B, p.c / B, B, p.k, p.k]), [0, 2, 4, 5, 3, 1]), [p.o, p.c, p.k, p.k]);
  const xr = g.op('ReorderInput', [x], {}, 'com.microsoft.nchwc');
  const y = g.op('Conv', b ? [xr, wr, b] : [xr, wr], { strides: [p.s, p.s], pads: p.pads, dilations: [1, 1], group: 1 }, 'com.microsoft.nchwc');
  return g.op('ReorderOutput', [y], { channels: p.o }, 'com.microsoft.nchwc');
}

/** dx through NCHWc: Conv of g with the transposed, flipped weight (stride 1). */
function igNchwc(g: G, p: P, w: string, gy: string): string {
  const kk = p.k * p.k;
  const t = g.transpose(g.reshape(w, [p.o, p.c, kk]), [1, 0, 2]);
  const wt = g.reshape(g.slice(t, [-1], [-BIG], [2], [-1]), [p.c, p.o, p.k, p.k]);
  const fp = p.pads.map((q) => p.k - 1 - q) as P['pads'];
  return convNchwc(g, { ...p, c: p.o, o: p.c, pads: fp }, gy, wt, null);
}

// ---------------------------------------------------------------- 1×1 conv as MatMul

function c1Conv(g: G, _p: P, x: string, w: string): string {
  return g.op('Conv', [x, w]);
}
function c1MatMul(g: G, p: P, x: string, w: string): string {
  const y = g.op('MatMul', [g.reshape(w, [p.o, p.c]), g.reshape(x, [p.n, p.c, p.h * p.w])]); // [N, O, HW]
  return g.reshape(y, [p.n, p.o, p.h, p.w]);
}
function wg1Current(g: G, p: P, x: string, gy: string): string {
  return wgCurrent(g, p, x, gy);
}
function wg1Prev(g: G, p: P, x: string, gy: string): string {
  return wgPrev(g, p, x, gy);
}
/** dw 1×1: FusedMatMul g[N,O,HW]·x[N,C,HW]ᵀ → [N,O,C], ReduceSum over N: already [O, C] order. */
function wg1NoTranspose(g: G, p: P, x: string, gy: string): string {
  const mm = g.op('FusedMatMul', [g.reshape(gy, [p.n, p.o, p.h * p.w]), g.reshape(x, [p.n, p.c, p.h * p.w])], { transB: 1 }, 'com.microsoft');
  return g.reshape(g.op('ReduceSum', [mm, g.i64([0])], { keepdims: 0 }), [p.o, p.c, 1, 1]);
}

// ---------------------------------------------------------------- whole forward+backward

/** Proposed dw: Gemm over a channel-major im2col for small maps (Ho·Wo ≤ 256, and 1×1), else im2col by one-hot grouped Conv. */
function wgHybrid(g: G, p: P, x: string, gy: string): string {
  const [ho, wo] = outHW(p);
  return ho * wo <= 256 || p.k === 1 ? wgIm2col(g, p, x, gy) : wgConvIm2col(g, p, x, gy);
}
/** Proposed dx: stride 1 → Conv with the 1-axis flipped weight, else ConvTranspose. */
function igProposed(g: G, p: P, w: string, gy: string): string {
  return p.s === 1 ? igSlice1Flip(g, p, w, gy) : igConvTranspose(g, p, w, gy);
}
/** Proposed dx through NCHWc (stride 1, channels multiple of 16). */
function igProposedNchwc(g: G, p: P, w: string, gy: string): string {
  return p.s === 1 ? igNchwc(g, p, w, gy) : igConvTranspose(g, p, w, gy);
}

interface Lowering {
  ig: (g: G, p: P, w: string, gy: string) => string;
  wg: (g: G, p: P, x: string, gy: string) => string;
  /** forward Conv through in-graph NCHWc reorders */
  nchwcFwd?: boolean;
}
/** y = conv(x, w, b); loss = Σ y·c; dx, dw, db (dy = c). */
function fwdBwd(g: G, p: P, L: Lowering): void {
  const [ho, wo] = outHW(p);
  const x = g.input('x', [p.n, p.c, p.h, p.w]);
  const w = g.input('w', [p.o, p.c, p.k, p.k]);
  const b = g.input('b', [p.o]);
  const c = g.input('c', [p.n, p.o, ho, wo]);
  const y = L.nchwcFwd ? convNchwc(g, p, x, w, b) : g.op('Conv', [x, w, b], { strides: [p.s, p.s], pads: p.pads });
  const loss = g.op('ReduceSum', [g.op('Mul', [y, c])], { keepdims: 0 });
  g.output(loss, []);
  g.output(L.ig(g, p, w, c), [p.n, p.c, p.h, p.w]);
  g.output(L.wg(g, p, x, c), [p.o, p.c, p.k, p.k]);
  g.output(g.op('ReduceSum', [c, g.i64([0, 2, 3])], { keepdims: 0 }), [p.o]);
}

// ---------------------------------------------------------------- timing harness

let ort: typeof OrtNs;
const toOrt = (t: HostTensor) => new ort.Tensor('float32', t.data as Float32Array, [...t.shape]);

interface Variant {
  name: string;
  run: () => Promise<Record<string, OrtNs.Tensor>>;
  release: () => Promise<void>;
}

async function rawVariant(name: string, build: (g: G) => void, feeds: Record<string, HostTensor>, threads: number): Promise<Variant> {
  const g = new G();
  build(g);
  const s = await createSession(g.model(), { threads });
  const f = Object.fromEntries(g.ins.map((i) => [i.name, toOrt(feeds[i.name]!)]));
  return {
    name,
    run: async () => {
      const r = await s.run(f);
      return Object.fromEntries(s.outputNames.map((k) => [k, r[k] as OrtNs.Tensor]));
    },
    release: () => s.release(),
  };
}

/** Throws unless `b` computes the same outputs as `a` (relative tolerance 1e-3 of the largest value). */
async function checkSame(title: string, a: Variant, b: Variant): Promise<void> {
  const ref = await a.run();
  const r = await b.run();
  for (const [k, t] of Object.entries(ref)) {
    const x = t.data as Float32Array, y = r[k]!.data as Float32Array;
    let err = 0, mag = 0;
    for (let i = 0; i < x.length; i++) {
      err = Math.max(err, Math.abs(x[i]! - y[i]!));
      mag = Math.max(mag, Math.abs(x[i]!));
    }
    if (x.length !== y.length || err > 1e-3 * mag + 1e-4) throw new Error(`${title}/${b.name}: output ${k} differs (max err ${err}, max |ref| ${mag})`);
  }
}

/** Check outputs agree with the first variant (unless check = false), then time in interleaved rounds. */
async function compare(title: string, vs: Variant[], rounds: number, reps: number, check = true): Promise<string[]> {
  if (check) for (const v of vs.slice(1)) await checkSame(title, vs[0]!, v);
  let times: number[][] = [];
  let other: number | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    await waitQuiet(10, 20_000);
    for (const v of vs) await v.run(); // warm-up
    times = vs.map(() => [] as number[]);
    const meter = new LoadMeter();
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < vs.length; i++) {
        // let the previous session's ORT workers stop spinning (they would steal a core)
        await new Promise((res) => setTimeout(res, 50));
        await vs[i]!.run();
        for (let k = 0; k < reps; k++) {
          const t = performance.now();
          await vs[i]!.run();
          times[i]!.push(performance.now() - t);
        }
      }
    }
    other = meter.foreignPct();
    if (other === null || other < 10) break;
  }
  for (const v of vs) await v.release();
  const base = median(times[0]!);
  const lines = [`${title}  (other load ${other === null ? '?' : other.toFixed(0)}%)`];
  vs.forEach((v, i) => {
    const m = median(times[i]!);
    lines.push(`   ${v.name.padEnd(46)} ${m.toFixed(2).padStart(8)} ms  ${(base / m).toFixed(2)}× vs first`);
  });
  console.log(lines.join('\n'));
  return lines;
}

// ---------------------------------------------------------------- groups

const P3 = (n: number, c: number, hw: number): P => ({ n, c, o: c, h: hw, w: hw, k: 3, s: 1, pads: [1, 1, 1, 1] });
const PDOWN: P = { n: 8, c: 128, o: 128, h: 64, w: 64, k: 3, s: 2, pads: [0, 0, 1, 1] };
const P1: P = { n: 8, c: 512, o: 512, h: 16, w: 16, k: 1, s: 1, pads: [0, 0, 0, 0] };

function dataFor(p: P): Record<string, HostTensor> {
  const [ho, wo] = outHW(p);
  return {
    x: randn([p.n, p.c, p.h, p.w], 1),
    w: randn([p.o, p.c, p.k, p.k], 2, 1 / Math.sqrt(p.c * p.k * p.k)),
    b: randn([p.o], 3, 0.1),
    c: randn([p.n, p.o, ho, wo], 4),
    gy: randn([p.n, p.o, ho, wo], 4),
  };
}

const wgBuild = (p: P, f: (g: G, p: P, x: string, gy: string) => string) => (g: G) => {
  const [ho, wo] = outHW(p);
  g.output(f(g, p, g.input('x', [p.n, p.c, p.h, p.w]), g.input('gy', [p.n, p.o, ho, wo])), [p.o, p.c, p.k, p.k]);
};
const igBuild = (p: P, f: (g: G, p: P, w: string, gy: string) => string) => (g: G) => {
  const [ho, wo] = outHW(p);
  g.output(f(g, p, g.input('w', [p.o, p.c, p.k, p.k]), g.input('gy', [p.n, p.o, ho, wo])), [p.n, p.c, p.h, p.w]);
};
const fwBuild = (p: P, f: (g: G, p: P, x: string, w: string) => string) => (g: G) => {
  g.output(f(g, p, g.input('x', [p.n, p.c, p.h, p.w]), g.input('w', [p.o, p.c, p.k, p.k])), [p.n, p.o, ...outHW(p)]);
};

async function main(): Promise<void> {
  ort = (await getOrt()) as typeof OrtNs;
  const argv = process.argv.slice(2);
  let threadsList = [1, 2], rounds = 5, reps = 3;
  let only: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--threads') threadsList = argv[++i]!.split(',').map(Number);
    else if (argv[i] === '--rounds') rounds = Number(argv[++i]);
    else if (argv[i] === '--reps') reps = Number(argv[++i]);
    else if (argv[i] === '--only') only = argv[++i]!.split(',');
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  const want = (g: string) => !only.length || only.includes(g);
  const convs: [string, P][] = [['C128 64²', P3(8, 128, 64)], ['C256 32²', P3(8, 256, 32)], ['C512 16²', P3(8, 512, 16)]];

  for (const t of threadsList) {
    console.log(`\n==== ${t} thread(s)`);
    if (want('igrad')) {
      for (const [name, p] of convs) {
        const d = dataFor(p);
        await compare(`3×3 input grad ${name}`, [
          await rawVariant('current: Transpose + 2-axis flip Slice + Conv', igBuild(p, igCurrent), d, t),
          await rawVariant('1-axis flip Slice on [C,O,9] + Conv', igBuild(p, igSlice1Flip), d, t),
          await rawVariant('Gather flip + Transpose + Conv', igBuild(p, igGatherFlip), d, t),
          await rawVariant('ConvTranspose', igBuild(p, igConvTranspose), d, t),
          await rawVariant('1-axis flip + in-graph NCHWc Conv', igBuild(p, igNchwc), d, t),
        ], rounds, reps);
      }
    }
    if (want('wgrad')) {
      for (const [name, p] of convs) {
        const d = dataFor(p);
        await compare(`3×3 weight grad ${name}`, [
          await rawVariant('current: flat taps, Concat, then ReduceSum(N)', wgBuild(p, wgCurrent), d, t),
          await rawVariant('flat taps + per-tap ReduceSum(N)', wgBuild(p, wgFlatPerTapReduce), d, t),
          await rawVariant('previous: 2-D Slice taps + per-tap ReduceSum(N)', wgBuild(p, wgPrev), d, t),
          await rawVariant('N folded into K: per-tap Gemm [O,NHW]·[C,NHW]ᵀ', wgBuild(p, wgFoldTaps), d, t),
          await rawVariant('im2col [C·9, NHW] + one Gemm', wgBuild(p, wgIm2col), d, t),
          await rawVariant('per-image im2col + batched MatMul + ReduceSum', wgBuild(p, wgIm2colBatched), d, t),
          await rawVariant('im2col by one-hot grouped Conv + MatMul', wgBuild(p, wgConvIm2col), d, t),
          await rawVariant('Conv trick (swap batch/channels)', wgBuild(p, wgConvTrick), d, t),
        ], rounds, reps);
      }
    }
    if (want('down')) {
      const d = dataFor(PDOWN);
      await compare('stride-2 weight grad C128 64²→32²', [
        await rawVariant('current: strided Slices, Concat, then ReduceSum(N)', wgBuild(PDOWN, wgCurrent), d, t),
        await rawVariant('previous: strided Slices + per-tap ReduceSum(N)', wgBuild(PDOWN, wgPrev), d, t),
        await rawVariant('N folded into K (strided Slice) + Gemm', wgBuild(PDOWN, wgFoldTaps), d, t),
        await rawVariant('polyphase Transpose + stride-1 Slices + Gemm', wgBuild(PDOWN, wgPolyphase), d, t),
        await rawVariant('im2col by one-hot grouped Conv + MatMul', wgBuild(PDOWN, wgConvIm2col), d, t),
      ], rounds, reps);
      await compare('stride-2 input grad C128 32²→64²', [
        await rawVariant('current: ConvTranspose', igBuild(PDOWN, igConvTranspose), d, t),
      ], rounds, reps);
    }
    if (want('c1x1')) {
      const d = dataFor(P1);
      await compare('1×1 forward C512 16²', [
        await rawVariant('current: Conv', fwBuild(P1, c1Conv), d, t),
        await rawVariant('MatMul W[O,C]·x[N,C,HW]', fwBuild(P1, c1MatMul), d, t),
      ], rounds, reps);
      await compare('1×1 weight grad C512 16²', [
        await rawVariant('current: MatMul + ReduceSum(N) + Transpose', wgBuild(P1, wg1Current), d, t),
        await rawVariant('previous (14:00)', wgBuild(P1, wg1Prev), d, t),
        await rawVariant('FusedMatMul g·xᵀ + ReduceSum(N), no Transpose', wgBuild(P1, wg1NoTranspose), d, t),
        await rawVariant('N folded into K: Transposes + one Gemm', wgBuild(P1, wgFoldTaps), d, t),
      ], rounds, reps);
    }
    if (want('nchwc')) {
      for (const [name, p] of [...convs, ['down s2 C128 64²', PDOWN], ['1×1 C512 16²', P1]] as [string, P][]) {
        const d = dataFor(p);
        await compare(`forward conv ${name}: weights as input vs as initializer`, [
          await rawVariant('weights + bias as graph inputs (training graphs)', (g) => {
            g.output(g.op('Conv', [g.input('x', [p.n, p.c, p.h, p.w]), g.input('w', [p.o, p.c, p.k, p.k]), g.input('b', [p.o])], { strides: [p.s, p.s], pads: p.pads }), [p.n, p.o, ...outHW(p)]);
          }, d, t),
          await rawVariant('weights + bias as initializers (NCHWc)', (g) => {
            g.output(g.op('Conv', [g.input('x', [p.n, p.c, p.h, p.w]), g.constF('w', d.w!), g.constF('b', d.b!)], { strides: [p.s, p.s], pads: p.pads }), [p.n, p.o, ...outHW(p)]);
          }, d, t),
          await rawVariant('weights as inputs, in-graph NCHWc reorders', (g) => {
            g.output(convNchwc(g, p, g.input('x', [p.n, p.c, p.h, p.w]), g.input('w', [p.o, p.c, p.k, p.k]), g.input('b', [p.o])), [p.n, p.o, ...outHW(p)]);
          }, d, t),
        ], rounds, reps);
      }
    }
    if (want('spin')) {
      // ORT's intra-op workers spin after each run; a second session's spinning workers
      // steal a core from the first. allow_spinning = 0 makes them block instead.
      for (const [name, fb] of [['conv3x3 C256 32²', false], ['conv3x3 C128 64²', true], ['attn C512 16²', true]] as [string, boolean][]) {
        const layer = LAYERS.find((l) => l.name === name)!;
        const prog = fb ? fwdBwdProgram(layer) : forwardProgram(layer);
        const feeds = Object.fromEntries(Object.entries(feedsFor(layer, fb)).map(([k, v]) => [k, toOrt(v)]));
        const line: string[] = [];
        for (const spin of ['1', '0']) {
          const mk = () => ort.InferenceSession.create(prog.toOnnx(), {
            intraOpNumThreads: t, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all', executionProviders: ['cpu'],
            extra: { session: { intra_op: { allow_spinning: spin } } },
          });
          const a = await mk(), b = await mk();
          await waitQuiet(10, 20_000);
          const one: number[] = [], alt: number[] = [];
          for (let i = 0; i < 2; i++) await a.run(feeds);
          for (let i = 0; i < 2 * reps + 3; i++) {
            const t0 = performance.now();
            await a.run(feeds);
            one.push(performance.now() - t0);
          }
          for (let i = 0; i < 2 * reps + 3; i++) {
            for (const s of [b, a]) {
              const t0 = performance.now();
              await s.run(feeds);
              alt.push(performance.now() - t0);
            }
          }
          await a.release();
          await b.release();
          line.push(`allow_spinning=${spin}: one session ${median(one).toFixed(1)} ms, two alternating ${median(alt).toFixed(1)} ms`);
        }
        console.log(`${name} ${fb ? 'f+b' : 'fwd'}\n   ${line.join('\n   ')}`);
      }
    }
    if (want('fb')) {
      const cases: [string, P][] = [...convs.map(([n, p]) => [`conv3x3 ${n}`, p] as [string, P]), ['down s2 C128 64²', PDOWN], ['conv1x1 C512 16²', P1]];
      for (const [name, p] of cases) {
        const layer = LAYERS.find((l) => l.name === name)!;
        const d = dataFor(p);
        const prog = fwdBwdProgram(layer);
        const lkFeeds = feedsFor(layer, true);
        const sess = await createSession(prog.toOnnx(), { threads: t });
        const lkOrt = Object.fromEntries(Object.entries(lkFeeds).map(([k, v]) => [k, toOrt(v)]));
        const lk: Variant = {
          name: 'latentkit program (current lowering)',
          run: async () => {
            await sess.run(lkOrt);
            return {};
          },
          release: () => sess.release(),
        };
        const vs = [
          await rawVariant('raw graph, current lowering (14:56)', (g) => fwdBwd(g, p, { ig: igCurrent, wg: wgCurrent }), d, t),
          await rawVariant('raw graph, previous lowering (14:00)', (g) => fwdBwd(g, p, { ig: igCurrent, wg: wgPrev }), d, t),
          await rawVariant('proposed: igProposed + wgHybrid', (g) => fwdBwd(g, p, { ig: igProposed, wg: wgHybrid }), d, t),
          await rawVariant('proposed + NCHWc fwd and dx Convs', (g) => fwdBwd(g, p, { ig: igProposedNchwc, wg: wgHybrid, nchwcFwd: true }), d, t),
        ];
        for (const v of vs.slice(1)) await checkSame(name, vs[0]!, v);
        await compare(`forward+backward ${name}`, [lk, ...vs], rounds, reps, false);
      }
    }
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
