// TS twin of scripts/make_engine_fixture.py: a small taming-style net used for parity.
import type { Tensor } from '../../src/graph/ir.ts';
import * as o from '../../src/ops/core.ts';
import * as nn from '../../src/ops/nn.ts';
import { ParamView } from '../../src/nn/params.ts';

const C = 8;
const G = 4;
const K = 16;
const BETA = 0.25;

const conv = (p: ParamView, x: Tensor, opts: o.Conv2dOptions = {}) => o.conv2d(x, p.get('weight'), p.opt('bias'), opts);
const gn = (p: ParamView, x: Tensor) => nn.groupNorm(x, G, p.get('weight'), p.get('bias'), 1e-6);

function attn(p: ParamView, x: Tensor): Tensor {
  const h = gn(p.sub('norm'), x);
  const [b, c, hh, ww] = x.shape as [number, number, number, number];
  const q = o.transpose(o.reshape(conv(p.sub('q'), h), [b, c, hh * ww]), [0, 2, 1]); // [B, HW, C]
  const k = o.transpose(o.reshape(conv(p.sub('k'), h), [b, c, hh * ww]), [0, 2, 1]);
  const v = o.transpose(o.reshape(conv(p.sub('v'), h), [b, c, hh * ww]), [0, 2, 1]);
  const a = nn.attention(q, k, v, { scale: c ** -0.5 }); // [B, HW, C]
  const hr = o.reshape(o.transpose(a, [0, 2, 1]), [b, c, hh, ww]);
  return o.add(x, conv(p.sub('proj_out'), hr));
}

export function smallnet(tree: Record<string, Tensor>, x: Tensor): { loss: Tensor; xrec: Tensor; indices: Tensor } {
  const p = new ParamView(tree);
  let h = conv(p.sub('conv_in'), x, { padding: 1 });
  h = nn.silu(gn(p.sub('norm1'), h));
  h = conv(p.sub('down.conv'), h, { stride: 2, padding: [0, 0, 1, 1] });
  const z = attn(p.sub('attn'), h);
  const [b, c, hh, ww] = z.shape as [number, number, number, number];
  const zf = o.reshape(o.transpose(z, [0, 2, 3, 1]), [-1, C]); // [B·H·W, C]
  const e = p.get('quantize.embedding.weight'); // [K, C]
  const d = o.sub(o.add(o.sum(o.square(zf), 1, true), o.sum(o.square(e), 1)), o.mul(o.matmul(zf, o.transpose(e, [1, 0])), 2));
  const idx = o.argmin(d, 1);
  const zq = o.transpose(o.reshape(o.gather(e, idx, 0), [b, hh, ww, c]), [0, 3, 1, 2]);
  const qloss = o.add(nn.mse(o.stopGradient(zq), z), o.mul(nn.mse(zq, o.stopGradient(z)), BETA));
  const zst = o.add(z, o.stopGradient(o.sub(zq, z)));
  h = conv(p.sub('up.conv'), nn.upsampleNearest2x(zst), { padding: 1 });
  h = nn.silu(gn(p.sub('norm_out'), h));
  const xrec = conv(p.sub('conv_out'), h, { padding: 1 });
  const loss = o.add(o.add(nn.l1(x, xrec), nn.mse(x, xrec)), qloss);
  void K;
  return { loss, xrec, indices: idx };
}
