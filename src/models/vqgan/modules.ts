// taming's Encoder / Decoder building blocks as functions over state-dict-keyed params.
// Shapes: activations NCHW; GroupNorm(groups, eps 1e-6) with ldm's 32 groups unless
// ddconfig.norm_num_groups says otherwise (diffusers' norm_num_groups); swish = x·σ(x).
import type { Tensor } from '../../graph/ir.ts';
import * as o from '../../ops/core.ts';
import * as nn from '../../ops/nn.ts';
import { scoped } from '../../graph/trace.ts';
import { ParamView, initConv, initNorm, type InitRng, type StateDict } from '../../nn/params.ts';
import type { DDConfig } from './config.ts';

export const conv = (p: ParamView, x: Tensor, opts: o.Conv2dOptions = {}): Tensor => o.conv2d(x, p.get('weight'), p.opt('bias'), opts);
const norm = (p: ParamView, x: Tensor, groups: number): Tensor => nn.groupNorm(x, groups, p.get('weight'), p.get('bias'), 1e-6);
/** GroupNorm group count of a config: ldm's Normalize uses 32. */
export const normGroups = (dd: DDConfig): number => dd.norm_num_groups ?? 32;

/** ResnetBlock (no time embedding): x + conv2(swish(norm2(conv1(swish(norm1(x)))))). */
export function resnetBlock(p: ParamView, x: Tensor, groups = 32): Tensor {
  let h = conv(p.sub('conv1'), nn.silu(norm(p.sub('norm1'), x, groups)), { padding: 1 });
  h = conv(p.sub('conv2'), nn.silu(norm(p.sub('norm2'), h, groups)), { padding: 1 });
  let s = x;
  if (p.has('nin_shortcut.weight')) s = conv(p.sub('nin_shortcut'), x);
  else if (p.has('conv_shortcut.weight')) s = conv(p.sub('conv_shortcut'), x, { padding: 1 });
  return o.add(s, h);
}

/**
 * AttnBlock: single-head self-attention over the H·W positions, 1×1 conv projections.
 * `queryChunk` computes the [HW, HW] scores in blocks of that many query rows, so the whole
 * matrix never exists at once (each row's softmax is independent: same result).
 */
export function attnBlock(p: ParamView, x: Tensor, groups = 32, queryChunk = 0): Tensor {
  const h = norm(p.sub('norm'), x, groups);
  const [b, c, hh, ww] = x.shape as [number, number, number, number];
  const flat = (t: Tensor) => o.transpose(o.reshape(t, [b, c, hh * ww]), [0, 2, 1]); // [B, HW, C]
  const q = flat(conv(p.sub('q'), h));
  const k = flat(conv(p.sub('k'), h));
  const v = flat(conv(p.sub('v'), h));
  const n = hh * ww;
  const step = queryChunk > 0 && queryChunk < n ? queryChunk : n;
  const parts: Tensor[] = [];
  for (let s = 0; s < n; s += step) parts.push(nn.attention(step === n ? q : o.narrow(q, 1, s, Math.min(n, s + step)), k, v, { scale: c ** -0.5 }));
  const a = parts.length === 1 ? parts[0]! : o.concat(parts, 1); // [B, HW, C]
  const back = o.reshape(o.transpose(a, [0, 2, 1]), [b, c, hh, ww]);
  return o.add(x, conv(p.sub('proj_out'), back));
}

/** taming Downsample: pad (right 1, bottom 1) then 3×3 stride-2 conv. */
export const downsample = (p: ParamView, x: Tensor): Tensor => conv(p.sub('conv'), x, { stride: 2, padding: [0, 0, 1, 1] });
/** taming Upsample: nearest 2× then 3×3 conv. */
export const upsample = (p: ParamView, x: Tensor): Tensor => conv(p.sub('conv'), nn.upsampleNearest2x(x), { padding: 1 });

/** Middle block: resnet, attention (optionally query-chunked), resnet. */
export function midBlock(p: ParamView, h: Tensor, g: number, queryChunk = 0): Tensor {
  h = resnetBlock(p.sub('block_1'), h, g);
  h = attnBlock(p.sub('attn_1'), h, g, queryChunk);
  return resnetBlock(p.sub('block_2'), h, g);
}

/** Which levels carry attention: curr_res (from the config resolution) ∈ attn_resolutions. */
export function attnLevels(dd: DDConfig): boolean[] {
  return dd.ch_mult.map((_, i) => dd.attn_resolutions.includes(dd.resolution / 2 ** i));
}

export function encoder(p: ParamView, dd: DDConfig, x: Tensor): Tensor {
  const L = dd.ch_mult.length;
  const attn = attnLevels(dd);
  const g = normGroups(dd);
  let h = conv(p.sub('conv_in'), x, { padding: 1 });
  for (let i = 0; i < L; i++) {
    h = scoped(`encoder.down.${i}`, () => {
      let t = h;
      for (let j = 0; j < dd.num_res_blocks; j++) {
        t = resnetBlock(p.sub(`down.${i}.block.${j}`), t, g);
        if (attn[i]) t = attnBlock(p.sub(`down.${i}.attn.${j}`), t, g);
      }
      return i !== L - 1 ? downsample(p.sub(`down.${i}.downsample`), t) : t;
    });
  }
  h = scoped('encoder.mid', () => midBlock(p.sub('mid'), h, g));
  return conv(p.sub('conv_out'), nn.silu(norm(p.sub('norm_out'), h, g)), { padding: 1 });
}

export function decoder(p: ParamView, dd: DDConfig, z: Tensor): Tensor {
  const L = dd.ch_mult.length;
  const attn = attnLevels(dd);
  const g = normGroups(dd);
  let h = conv(p.sub('conv_in'), z, { padding: 1 });
  h = scoped('decoder.mid', () => midBlock(p.sub('mid'), h, g));
  for (let i = L - 1; i >= 0; i--) {
    h = scoped(`decoder.up.${i}`, () => {
      let t = h;
      for (let j = 0; j < dd.num_res_blocks + 1; j++) {
        t = resnetBlock(p.sub(`up.${i}.block.${j}`), t, g);
        if (attn[i]) t = attnBlock(p.sub(`up.${i}.attn.${j}`), t, g);
      }
      return i !== 0 ? upsample(p.sub(`up.${i}.upsample`), t) : t;
    });
  }
  return conv(p.sub('conv_out'), nn.silu(norm(p.sub('norm_out'), h, g)), { padding: 1 });
}

// ---- parameter shapes / initialization (PyTorch default init) ----

function initResnet(sd: StateDict, rng: InitRng | null, k: string, cin: number, cout: number): void {
  initNorm(sd, `${k}.norm1`, cin);
  initConv(sd, rng, `${k}.conv1`, cout, cin, 3, 3);
  initNorm(sd, `${k}.norm2`, cout);
  initConv(sd, rng, `${k}.conv2`, cout, cout, 3, 3);
  if (cin !== cout) initConv(sd, rng, `${k}.nin_shortcut`, cout, cin, 1, 1);
}

function initAttn(sd: StateDict, rng: InitRng | null, k: string, c: number): void {
  initNorm(sd, `${k}.norm`, c);
  for (const n of ['q', 'k', 'v', 'proj_out']) initConv(sd, rng, `${k}.${n}`, c, c, 1, 1);
}

function initMid(sd: StateDict, rng: InitRng | null, k: string, c: number): void {
  initResnet(sd, rng, `${k}.block_1`, c, c);
  initAttn(sd, rng, `${k}.attn_1`, c);
  initResnet(sd, rng, `${k}.block_2`, c, c);
}

export function initEncoder(sd: StateDict, rng: InitRng | null, k: string, dd: DDConfig): void {
  const attn = attnLevels(dd);
  initConv(sd, rng, `${k}.conv_in`, dd.ch, dd.in_channels, 3, 3);
  let cin = dd.ch;
  dd.ch_mult.forEach((m, i) => {
    const cout = dd.ch * m;
    for (let j = 0; j < dd.num_res_blocks; j++) {
      initResnet(sd, rng, `${k}.down.${i}.block.${j}`, cin, cout);
      cin = cout;
    }
    for (let j = 0; attn[i] && j < dd.num_res_blocks; j++) initAttn(sd, rng, `${k}.down.${i}.attn.${j}`, cin);
    if (i !== dd.ch_mult.length - 1) initConv(sd, rng, `${k}.down.${i}.downsample.conv`, cin, cin, 3, 3);
  });
  initMid(sd, rng, `${k}.mid`, cin);
  initNorm(sd, `${k}.norm_out`, cin);
  initConv(sd, rng, `${k}.conv_out`, dd.double_z ? 2 * dd.z_channels : dd.z_channels, cin, 3, 3);
}

export function initDecoder(sd: StateDict, rng: InitRng | null, k: string, dd: DDConfig): void {
  const attn = attnLevels(dd);
  const L = dd.ch_mult.length;
  let cin = dd.ch * dd.ch_mult[L - 1]!;
  initConv(sd, rng, `${k}.conv_in`, cin, dd.z_channels, 3, 3);
  initMid(sd, rng, `${k}.mid`, cin);
  // checkpoint order: up.0 … up.{L-1}; build order is reversed but keys are by level
  const levels: StateDict[] = [];
  for (let i = L - 1; i >= 0; i--) {
    const lv: StateDict = new Map();
    const cout = dd.ch * dd.ch_mult[i]!;
    for (let j = 0; j < dd.num_res_blocks + 1; j++) {
      initResnet(lv, rng, `${k}.up.${i}.block.${j}`, cin, cout);
      cin = cout;
    }
    for (let j = 0; attn[i] && j < dd.num_res_blocks + 1; j++) initAttn(lv, rng, `${k}.up.${i}.attn.${j}`, cin);
    if (i !== 0) initConv(lv, rng, `${k}.up.${i}.upsample.conv`, cin, cin, 3, 3);
    levels[i] = lv;
  }
  for (const lv of levels) for (const [key, v] of lv) sd.set(key, v);
  initNorm(sd, `${k}.norm_out`, cin);
  initConv(sd, rng, `${k}.conv_out`, dd.out_ch, cin, 3, 3);
}
