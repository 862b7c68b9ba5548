// 2-D convolution and its two gradient primitives.
//
// conv2dInputGrad / conv2dWeightGrad are primitives (not composites) because their best
// ONNX lowering is a choice measured per case, kept in one place, and snapshot-tested:
//  - input gradient: a Conv with the weight flipped and its in/out channels swapped when
//    stride is 1 (measured faster than ConvTranspose here), else ConvTranspose;
//  - weight gradient: one batched MatMul per kernel tap over a shifted (strided) view of
//    the padded input, summed over the batch — measured faster than one big im2col MatMul
//    and than the swap-batch-and-channel Conv trick.
import * as o from '../ops/core.ts';
import type { TensorMeta } from '../graph/ir.ts';
import { requireFloat, requireRank, sameDType } from './shape.ts';
import { A, fmtShape, type LowerCtx, type PrimDef } from './types.ts';
import { HostTensor } from '../tensor.ts';

export interface ConvAttrs {
  stride: [number, number];
  /** [top, left, bottom, right] */
  pads: [number, number, number, number];
  dilation: [number, number];
  groups: number;
}

export function convOutSize(h: number, k: number, s: number, d: number, p0: number, p1: number): number {
  return Math.floor((h + p0 + p1 - d * (k - 1) - 1) / s) + 1;
}

function checkConv(x: TensorMeta, w: TensorMeta, a: ConvAttrs): [number, number, number, number] {
  requireRank('conv2d', x, 4, 'input');
  requireRank('conv2d', w, 4, 'weight');
  requireFloat('conv2d', x);
  sameDType('conv2d', [x, w]);
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [oc, cg, kh, kw] = w.shape as [number, number, number, number];
  const g = a.groups;
  if (c % g !== 0 || oc % g !== 0 || cg !== c / g) {
    throw new Error(`conv2d: input ${fmtShape(x.shape)} and weight ${fmtShape(w.shape)} disagree on channels (groups=${g}: weight dim 1 must be ${c / g})`);
  }
  const ho = convOutSize(h, kh, a.stride[0], a.dilation[0], a.pads[0], a.pads[2]);
  const wo = convOutSize(wd, kw, a.stride[1], a.dilation[1], a.pads[1], a.pads[3]);
  if (ho <= 0 || wo <= 0) throw new Error(`conv2d: input ${fmtShape(x.shape)} too small for kernel ${kh}×${kw} (pads ${a.pads.join(',')})`);
  return [n, oc, ho, wo];
}

const convOnnxAttrs = (a: ConvAttrs) => ({
  strides: A.ints(a.stride),
  pads: A.ints(a.pads),
  dilations: A.ints(a.dilation),
  group: A.i(a.groups),
});

export const convPrims = {
  conv2d: {
    doc: 'y[n,o] = b[o] + Σ_c,i,j w[o,c,i,j] · xpad[n,c,s·y+d·i,s·x+d·j]',
    shape: ([x, w, b], a: ConvAttrs) => {
      const out = checkConv(x!, w!, a);
      if (b && (b.shape.length !== 1 || b.shape[0] !== out[1])) {
        throw new Error(`conv2d: bias must have shape [${out[1]}], got ${fmtShape(b.shape)}`);
      }
      return [{ shape: out, dtype: x!.dtype }];
    },
    vjp: ([g], { inputs: [x, w, b] }, a: ConvAttrs) => [
      o.emit('conv2dInputGrad', [g!, w!], { ...a, inputShape: x!.shape })[0]!,
      o.emit('conv2dWeightGrad', [x!, g!], { ...a, kernel: w!.shape.slice(2) })[0]!,
      ...(b ? [o.sum(g!, [0, 2, 3])] : []),
    ],
    lower: (c, a: ConvAttrs) =>
      c.op('Conv', Array.from({ length: c.nInputs }, (_, i) => c.input(i)), [c.output(0)], convOnnxAttrs(a)),
  } satisfies PrimDef<ConvAttrs>,

  conv2dInputGrad: {
    doc: 'dx = conv2dᵀ(g, w): the VJP of conv2d with respect to its input',
    shape: ([g, w], a: ConvAttrs & { inputShape: number[] }) => {
      requireRank('conv2dInputGrad', g!, 4);
      if (g!.shape[1] !== w!.shape[0]) throw new Error(`conv2dInputGrad: g ${fmtShape(g!.shape)} vs weight ${fmtShape(w!.shape)}`);
      return [{ shape: a.inputShape, dtype: g!.dtype }];
    },
    nondiff: 'second-order gradients of conv2d are not implemented',
    lower: (c, a: ConvAttrs & { inputShape: number[] }) => lowerInputGrad(c, a),
  } satisfies PrimDef<ConvAttrs & { inputShape: number[] }>,

  conv2dWeightGrad: {
    doc: 'dw[o,c,i,j] = Σ_n,y,x g[n,o,y,x] · xpad[n,c,s·y+d·i,s·x+d·j]',
    shape: ([x, g], a: ConvAttrs & { kernel: [number, number] }) => {
      requireRank('conv2dWeightGrad', x!, 4);
      requireRank('conv2dWeightGrad', g!, 4);
      return [{ shape: [g!.shape[1]!, x!.shape[1]! / a.groups, a.kernel[0], a.kernel[1]], dtype: x!.dtype }];
    },
    nondiff: 'second-order gradients of conv2d are not implemented',
    lower: (c, a: ConvAttrs & { kernel: [number, number] }) => lowerWeightGrad(c, a),
  } satisfies PrimDef<ConvAttrs & { kernel: [number, number] }>,
} satisfies Record<string, PrimDef>;

function lowerInputGrad(c: LowerCtx, a: ConvAttrs & { inputShape: number[] }): void {
  const w = c.inMeta(1).shape as [number, number, number, number];
  const [oc, cg, kh, kw] = w;
  const [, ci, h, wd] = a.inputShape as [number, number, number, number];
  const g = a.groups;
  const [dh, dw] = a.dilation;
  const [pt, pl, pb, pr] = a.pads;
  const flipPads = [(kh - 1) * dh - pt, (kw - 1) * dw - pl, (kh - 1) * dh - pb, (kw - 1) * dw - pr];
  if (a.stride[0] === 1 && a.stride[1] === 1 && flipPads.every((p) => p >= 0)) {
    // w [O, C/g, kh, kw] → [g, O/g, C/g, kh, kw] → [g, C/g, O/g, kh, kw] → [C, O/g, kh, kw], flipped
    let wt = c.input(1);
    if (g === 1) {
      wt = c.op('Transpose', [wt], 1, { perm: A.ints([1, 0, 2, 3]) })[0]!;
    } else {
      wt = c.op('Reshape', [wt, c.i64([g, oc / g, cg, kh, kw])], 1)[0]!;
      wt = c.op('Transpose', [wt], 1, { perm: A.ints([0, 2, 1, 3, 4]) })[0]!;
      wt = c.op('Reshape', [wt, c.i64([ci, oc / g, kh, kw])], 1)[0]!;
    }
    if (kh > 1 || kw > 1) {
      const big = -9007199254740991;
      wt = c.op('Slice', [wt, c.i64([-1, -1]), c.i64([big, big]), c.i64([2, 3]), c.i64([-1, -1])], 1)[0]!;
    }
    c.op('Conv', [c.input(0), wt], [c.output(0)], { strides: A.ints([1, 1]), pads: A.ints(flipPads), dilations: A.ints(a.dilation), group: A.i(g) });
    return;
  }
  const [, , ho, wo] = c.inMeta(0).shape as [number, number, number, number];
  const outPad = [
    h - ((ho - 1) * a.stride[0] + (kh - 1) * dh + 1 - pt - pb),
    wd - ((wo - 1) * a.stride[1] + (kw - 1) * dw + 1 - pl - pr),
  ];
  c.op('ConvTranspose', [c.input(0), c.input(1)], [c.output(0)], { ...convOnnxAttrs(a), output_padding: A.ints(outPad) });
}

/**
 * Largest patch tensor (N·C·kh·kw·Ho·Wo elements) for which the weight gradient is lowered
 * as im2col (one depthwise Conv + one batched MatMul, ~8 ONNX nodes) instead of per-tap
 * products (~4 nodes per tap). Small layers are dominated by per-node cost, large ones by the
 * patch tensor's memory traffic. Measured in bench/README.md ("Small-graph training").
 */
export const convLowering = { im2colMaxPatch: 1 << 22 };

function lowerWeightGrad(c: LowerCtx, a: ConvAttrs & { kernel: [number, number] }): void {
  const [n, ci] = c.inMeta(0).shape as [number, number];
  const [, , ho, wo] = c.inMeta(1).shape as [number, number, number, number];
  const taps = a.kernel[0] * a.kernel[1];
  if (taps > 1 && n * ci * taps * ho * wo <= convLowering.im2colMaxPatch) lowerWeightGradIm2col(c, a);
  else if (a.stride[0] === 1 && a.stride[1] === 1 && a.groups === 1) lowerWeightGradFolded(c, a);
  else if (a.stride[0] === 1 && a.stride[1] === 1) lowerWeightGradFlat(c, a);
  else lowerWeightGradStrided(c, a);
}

/**
 * im2col: patches[n, c·K + t, y, x] = xpad[n, c, s·y + d·i, s·x + d·j] (tap t = i·kw + j) by
 * a depthwise Conv with a constant one-hot kernel (stride, pads and dilation as the forward),
 * then dw[g] = Σ_n patches[n, g]ᵀ-contracted with g[n, g] over Ho·Wo, in one batched MatMul.
 */
function lowerWeightGradIm2col(c: LowerCtx, a: ConvAttrs & { kernel: [number, number] }): void {
  const [n, ci] = c.inMeta(0).shape as [number, number];
  const [, oc, ho, wo] = c.inMeta(1).shape as [number, number, number, number];
  const [kh, kw] = a.kernel;
  const K = kh * kw;
  const g = a.groups;
  const onehot = new HostTensor('float32', [ci * K, 1, kh, kw]);
  for (let ch = 0; ch < ci; ch++) for (let t = 0; t < K; t++) onehot.data[(ch * K + t) * K + t] = 1;
  const patches = c.op('Conv', [c.input(0), c.constant(onehot)], 1, { ...convOnnxAttrs({ ...a, groups: ci }), kernel_shape: A.ints([kh, kw]) })[0]!; // [N, C·K, Ho, Wo]
  const pm = c.op('Reshape', [patches, c.i64([n, g, (ci / g) * K, ho * wo])], 1)[0]!;
  const gm = c.op('Reshape', [c.input(1), c.i64([n, g, oc / g, ho * wo])], 1)[0]!;
  const gt = c.op('Transpose', [gm], 1, { perm: A.ints([0, 1, 3, 2]) })[0]!; // [N, G, HoWo, O/G]
  const p = c.op('MatMul', [pm, gt], 1)[0]!; // [N, G, C/G·K, O/G]
  const r = n > 1 ? c.op('ReduceSum', [p, c.i64([0])], 1, { keepdims: A.i(0) })[0]! : c.op('Reshape', [p, c.i64([g, (ci / g) * K, oc / g])], 1)[0]!;
  const tr = c.op('Transpose', [r], 1, { perm: A.ints([0, 2, 1]) })[0]!; // [G, O/G, C/G·K]
  c.op('Reshape', [tr, c.i64([oc, ci / g, kh, kw])], [c.output(0)]);
}

/**
 * Shared set-up of the stride-1 weight-gradient lowerings: the input padded (plus one extra
 * bottom row so the last tap's flat range stays inside) and g padded on the right to width
 * Wp. Returns their names, Hp·Wp and L = Ho·Wp.
 */
function flatPadded(c: LowerCtx, a: ConvAttrs & { kernel: [number, number] }) {
  const [, , h, wd] = c.inMeta(0).shape as [number, number, number, number];
  const [, , ho, wo] = c.inMeta(1).shape as [number, number, number, number];
  const [pt, pl, pb, pr] = a.pads;
  const wp = wd + pl + pr;
  const extra = a.kernel[1] > 1 ? 1 : 0;
  const hp = h + pt + pb + extra;
  let xp = c.input(0);
  if (pt || pl || pb + extra || pr) xp = c.op('Pad', [xp, c.i64([0, 0, pt, pl, 0, 0, pb + extra, pr])], 1, { mode: A.s('constant') })[0]!;
  let gp = c.input(1);
  if (wp !== wo) gp = c.op('Pad', [gp, c.i64([0, 0, 0, 0, 0, 0, 0, wp - wo])], 1, { mode: A.s('constant') })[0]!;
  return { xp, gp, wp, flat: hp * wp, L: ho * wp };
}

/**
 * Stride 1, groups 1: as the flat variant below, but with the batch folded into the
 * contraction — x is transposed once to [C, N, Hp·Wp], each tap is one contiguous Slice and
 * ONE [C, N·L] × [N·L, O] MatMul, so no per-tap sum over the batch and no [N, C, O] products
 * (measured 1.7× faster than per-sample products at C = 512, 16², equal at 64²).
 */
function lowerWeightGradFolded(c: LowerCtx, a: ConvAttrs & { kernel: [number, number] }): void {
  const [n, ci] = c.inMeta(0).shape as [number, number];
  const oc = c.inMeta(1).shape[1]!;
  const [kh, kw] = a.kernel;
  const [dh, dw] = a.dilation;
  const { xp, gp, wp, flat, L } = flatPadded(c, a);
  const xf = c.op('Reshape', [xp, c.i64([n, ci, flat])], 1)[0]!;
  const xt = c.op('Transpose', [xf], 1, { perm: A.ints([1, 0, 2]) })[0]!; // [C, N, Hp·Wp]
  const gm = c.op('Reshape', [gp, c.i64([n, oc, L])], 1)[0]!;
  const gt = c.op('Reshape', [c.op('Transpose', [gm], 1, { perm: A.ints([0, 2, 1]) })[0]!, c.i64([n * L, oc])], 1)[0]!; // [N·L, O]
  const taps: string[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const off = i * dh * wp + j * dw;
      const v = off === 0 && L === flat ? xt : c.op('Slice', [xt, c.i64([off]), c.i64([off + L]), c.i64([2])], 1)[0]!;
      const vm = c.op('Reshape', [v, c.i64([ci, n * L])], 1)[0]!;
      const p = c.op('MatMul', [vm, gt], 1)[0]!; // [C, O]
      taps.push(c.op('Unsqueeze', [p, c.i64([2])], 1)[0]!);
    }
  }
  const st = taps.length === 1 ? taps[0]! : c.op('Concat', taps, 1, { axis: A.i(2) })[0]!; // [C, O, K]
  const tr = c.op('Transpose', [st], 1, { perm: A.ints([1, 0, 2]) })[0]!;
  c.op('Reshape', [tr, c.i64([oc, ci, kh, kw])], [c.output(0)]);
}

/**
 * Stride 1: with the padded input flattened to [N, C, Hp·Wp], the view of tap (i, j) is ONE
 * contiguous range starting at i·d·Wp + j·d, if g is padded on the right to width Wp (the
 * extra columns meet zeros). So each tap is a cheap contiguous Slice and a MatMul with
 * K = Ho·Wp — measured ~5× faster than 2-D strided Slices, which ORT copies row by row.
 */
function lowerWeightGradFlat(c: LowerCtx, a: ConvAttrs & { kernel: [number, number] }): void {
  const [n, ci] = c.inMeta(0).shape as [number, number];
  const oc = c.inMeta(1).shape[1]!;
  const [kh, kw] = a.kernel;
  const g = a.groups;
  const [dh, dw] = a.dilation;
  const { xp, gp, wp, flat, L } = flatPadded(c, a);
  const xf = c.op('Reshape', [xp, c.i64([n, g, ci / g, flat])], 1)[0]!; // [N, G, C/G, Hp·Wp]
  // g → [N, G, O/G, Ho·Wp] → [N, G, Ho·Wp, O/G]
  const gm = c.op('Reshape', [gp, c.i64([n, g, oc / g, L])], 1)[0]!;
  const gt = c.op('Transpose', [gm], 1, { perm: A.ints([0, 1, 3, 2]) })[0]!;
  const taps: string[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const off = i * dh * wp + j * dw;
      const v = off === 0 && L === flat ? xf : c.op('Slice', [xf, c.i64([off]), c.i64([off + L]), c.i64([3])], 1)[0]!;
      const p = c.op('MatMul', [v, gt], 1)[0]!; // [N, G, C/G, O/G]
      taps.push(p);
    }
  }
  finishTaps(c, taps, g, ci, oc, kh, kw);
}

/** Sum each tap's [N, G, C/G, O/G] product over N, stack taps, reorder to [O, C/G, kh, kw]. */
function finishTaps(c: LowerCtx, taps: string[], g: number, ci: number, oc: number, kh: number, kw: number): void {
  const red = taps.map((t) => c.op('ReduceSum', [t, c.i64([0])], 1, { keepdims: A.i(0) })[0]!); // [G, C/G, O/G]
  const unsq = red.map((t) => c.op('Unsqueeze', [t, c.i64([3])], 1)[0]!);
  const st = unsq.length === 1 ? unsq[0]! : c.op('Concat', unsq, 1, { axis: A.i(3) })[0]!; // [G, C/G, O/G, K]
  const tr = c.op('Transpose', [st], 1, { perm: A.ints([0, 2, 1, 3]) })[0]!;
  c.op('Reshape', [tr, c.i64([oc, ci / g, kh, kw])], [c.output(0)]);
}

/** General stride: per-tap strided views of the padded input. */
function lowerWeightGradStrided(c: LowerCtx, a: ConvAttrs & { kernel: [number, number] }): void {
  const [n, ci, h, wd] = c.inMeta(0).shape as [number, number, number, number];
  const [, oc, ho, wo] = c.inMeta(1).shape as [number, number, number, number];
  const [kh, kw] = a.kernel;
  const g = a.groups;
  const [sh, sw] = a.stride;
  const [dh, dw] = a.dilation;
  const [pt, pl, pb, pr] = a.pads;
  let xp = c.input(0);
  if (a.pads.some((p) => p !== 0)) xp = c.op('Pad', [xp, c.i64([0, 0, pt, pl, 0, 0, pb, pr])], 1, { mode: A.s('constant') })[0]!;
  const hp = h + pt + pb;
  const wp = wd + pl + pr;
  // g [N, O, Ho, Wo] → [N, G, O/G, HoWo] → [N, G, HoWo, O/G]  (one transpose, shared by all taps)
  const gm = c.op('Reshape', [c.input(1), c.i64([n, g, oc / g, ho * wo])], 1)[0]!;
  const gt = c.op('Transpose', [gm], 1, { perm: A.ints([0, 1, 3, 2]) })[0]!;
  const taps: string[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      let v = xp;
      const e0 = i * dh + sh * (ho - 1) + 1;
      const e1 = j * dw + sw * (wo - 1) + 1;
      if (!(i * dh === 0 && j * dw === 0 && e0 === hp && e1 === wp && sh === 1 && sw === 1)) {
        v = c.op('Slice', [xp, c.i64([i * dh, j * dw]), c.i64([e0, e1]), c.i64([2, 3]), c.i64([sh, sw])], 1)[0]!;
      }
      const vm = c.op('Reshape', [v, c.i64([n, g, ci / g, ho * wo])], 1)[0]!; // [N, G, C/G, HoWo]
      taps.push(c.op('MatMul', [vm, gt], 1)[0]!); // [N, G, C/G, O/G]
    }
  }
  finishTaps(c, taps, g, ci, oc, kh, kw);
}
