// taming's GPT (taming/modules/transformer/mingpt.py) as graph functions over state-dict-keyed
// parameters: tok_emb → + pos_emb → pre-LN blocks (causal self-attention, GELU MLP) → ln_f →
// head (no bias). Three programs share the block code:
//   gpt()        the full forward over [B, T] tokens (training, full recompute), optional
//                dropout masks fed as inputs (graphs stay random-free);
//   gptPrefill() the same, returning the last position's logits and every layer's keys/values;
//   gptStep()    one token against a static KV cache (keys stored transposed, [B, nh, hs, L],
//                so q·Kᵀ reads the cache without a copy), returning only the new keys/values.
import type { Tensor } from '../../graph/ir.ts';
import * as o from '../../ops/core.ts';
import * as nn from '../../ops/nn.ts';
import { scoped } from '../../graph/trace.ts';
import { HostTensor } from '../../tensor.ts';
import { InitRng, ParamView, fill, normalTensor, shapesOf, type ShapeTree, type StateDict } from '../../nn/params.ts';
import type { GPTConfig } from './config.ts';

/** taming's _init_weights: N(0, 0.02) for Linear/Embedding weights, zero biases, LayerNorm 1/0; pos_emb zeros. */
export function initGPT(cfg: GPTConfig, rng: InitRng | null): StateDict {
  const C = cfg.n_embd;
  const sd: StateDict = new Map();
  const lin = (name: string, out: number, inp: number, bias = true) => {
    sd.set(`${name}.weight`, normalTensor(rng, [out, inp], 0.02));
    if (bias) sd.set(`${name}.bias`, HostTensor.float32([out]));
  };
  const ln = (name: string) => {
    sd.set(`${name}.weight`, fill([C], 1));
    sd.set(`${name}.bias`, HostTensor.float32([C]));
  };
  sd.set('tok_emb.weight', normalTensor(rng, [cfg.vocab_size, C], 0.02));
  sd.set('pos_emb', HostTensor.float32([1, cfg.block_size, C]));
  for (let i = 0; i < cfg.n_layer; i++) {
    const b = `blocks.${i}`;
    ln(`${b}.ln1`);
    ln(`${b}.ln2`);
    for (const k of ['key', 'query', 'value', 'proj']) lin(`${b}.attn.${k}`, C, C);
    lin(`${b}.mlp.0`, 4 * C, C);
    lin(`${b}.mlp.2`, C, 4 * C);
  }
  ln('ln_f');
  lin('head', cfg.vocab_size, C, false);
  return sd;
}

export const gptShapes = (cfg: GPTConfig): ShapeTree => shapesOf(initGPT(cfg, null));

/** taming's registered causal-mask buffer `blocks.N.attn.mask` [1, 1, block, block] (tril, first n_unmasked open). */
export function causalMaskBuffer(cfg: GPTConfig): HostTensor<'float32'> {
  const n = cfg.block_size;
  const t = HostTensor.float32([1, 1, n, n]);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (j <= i || (i < cfg.n_unmasked && j < cfg.n_unmasked)) t.data[i * n + j] = 1;
  return t;
}

/** AdamW weight decay applies to Linear weights only (taming's configure_optimizers). */
export const gptDecays = (key: string): boolean => /^(blocks\.\d+\.(attn\.(key|query|value|proj)|mlp\.[02])|head)\.weight$/.test(key);

/** Keep masks (bool, true = keep) for the dropout sites; a missing mask means no dropout there. */
export interface GPTDropout {
  embd?: Tensor; // [B, T, C]
  attn?: Tensor[]; // per layer [B, nh, T, T]
  residAttn?: Tensor[]; // per layer [B, T, C]
  residMlp?: Tensor[]; // per layer [B, T, C]
}

/** Inverted dropout with a fed keep mask: keep ? x/(1−p) : 0. */
function drop(x: Tensor, keep: Tensor | undefined, p: number): Tensor {
  if (!keep || p <= 0) return x;
  return o.where(keep, o.mul(x, 1 / (1 - p)), 0);
}

/** Linear over the last axis; flattens leading axes so the weight gradient is one MatMul. */
function linear(p: ParamView, x: Tensor): Tensor {
  const lead = x.shape.slice(0, -1);
  const w = p.get('weight');
  const y = nn.linear(o.reshape(x, [-1, x.shape[x.rank - 1]!]), w, p.opt('bias')); // [N, out]
  return o.reshape(y, [...lead, w.shape[0]!]);
}

const layerNorm = (p: ParamView, x: Tensor): Tensor => nn.layerNorm(x, p.get('weight'), p.get('bias'), 1e-5);

function mlp(p: ParamView, x: Tensor, keep: Tensor | undefined, pdrop: number): Tensor {
  return drop(linear(p.sub('2'), nn.gelu(linear(p.sub('0'), x))), keep, pdrop);
}

/**
 * Additive causal mask [T, T]: 0 where position i may attend to j (j ≤ i, or both among the
 * first n_unmasked), −1e30 elsewhere. Additive rather than a Where: its VJP is the identity,
 * so the backward pass skips a pass over [B, nh, T, T].
 */
function causalMask(T: number, nUnmasked: number): Tensor {
  const m = HostTensor.float32([T, T]);
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) if (!(j <= i || (i < nUnmasked && j < nUnmasked))) m.data[i * T + j] = -1e30;
  return o.constant(m);
}

interface BlockOut {
  x: Tensor;
  k: Tensor; // [B, nh, T, hs]
  v: Tensor; // [B, nh, T, hs]
}

/** One block over the full sequence x [B, T, C]. */
function block(p: ParamView, cfg: GPTConfig, x: Tensor, mask: Tensor, d: { attn?: Tensor; residAttn?: Tensor; residMlp?: Tensor }): BlockOut {
  const [B, T, C] = x.shape as [number, number, number];
  const nh = cfg.n_head;
  const hs = C / nh;
  const a = p.sub('attn');
  const h = layerNorm(p.sub('ln1'), x);
  const heads = (t: Tensor) => o.transpose(o.reshape(t, [B, T, nh, hs]), [0, 2, 1, 3]); // [B, nh, T, hs]
  const k = heads(linear(a.sub('key'), h));
  const q = heads(linear(a.sub('query'), h));
  const v = heads(linear(a.sub('value'), h));
  let att = o.mul(o.matmul(q, o.transpose(k, [0, 1, 3, 2])), 1 / Math.sqrt(hs)); // [B, nh, T, T]
  att = nn.softmax(o.add(att, mask), -1);
  att = drop(att, d.attn, cfg.attn_pdrop);
  const y = o.reshape(o.transpose(o.matmul(att, v), [0, 2, 1, 3]), [B, T, C]); // [B, T, C]
  let out = o.add(x, drop(linear(a.sub('proj'), y), d.residAttn, cfg.resid_pdrop));
  out = o.add(out, mlp(p.sub('mlp'), layerNorm(p.sub('ln2'), out), d.residMlp, cfg.resid_pdrop));
  return { x: out, k, v };
}

function embed(p: ParamView, cfg: GPTConfig, idx: Tensor, condIdx?: Tensor): Tensor {
  const [, T] = idx.shape as [number, number];
  if (T > cfg.block_size) throw new Error(`GPT: sequence of ${T} tokens exceeds block_size ${cfg.block_size}`);
  const tok = o.gather(p.get('tok_emb.weight'), idx, 0); // [B, T, C]
  const pos = o.narrow(p.get('pos_emb'), 1, 0, T); // [1, T, C]
  const x = o.add(tok, pos);
  if (!condIdx) return x;
  if (condIdx.shape.join() !== idx.shape.join()) throw new Error(`GPT: condition tokens [${condIdx.shape.join(', ')}] must align with the tokens [${idx.shape.join(', ')}]`);
  return o.add(x, o.gather(p.get('cond_emb.weight'), condIdx, 0));
}

/** The aligned-condition embedding table (latentkit, MaskGIT 'add' conditions): one row per token id, N(0, 0.02) like tok_emb. */
export function initCondEmbedding(cfg: GPTConfig, rng: InitRng | null): HostTensor<'float32'> {
  return normalTensor(rng, [cfg.vocab_size, cfg.n_embd], 0.02);
}

/**
 * Full forward: tokens [B, T] (int64) → logits [B, T, vocab]; keys/values per layer when asked.
 * `condIdx` [B, T] adds cond_emb[condIdx] to each position's embedding (a condition aligned
 * cell for cell with the tokens, instead of a prefix).
 */
export function gpt(p: ParamView, cfg: GPTConfig, idx: Tensor, opts: { drop?: GPTDropout; condIdx?: Tensor } = {}): { logits: Tensor; kv: { k: Tensor; v: Tensor }[] } {
  const d = opts.drop ?? {};
  const T = idx.shape[1]!;
  let x = drop(embed(p, cfg, idx, opts.condIdx), d.embd, cfg.embd_pdrop);
  const mask = causalMask(T, cfg.n_unmasked);
  const kv: { k: Tensor; v: Tensor }[] = [];
  for (let i = 0; i < cfg.n_layer; i++) {
    const r = scoped(`blocks.${i}`, () => block(p.sub(`blocks.${i}`), cfg, x, mask, { attn: d.attn?.[i], residAttn: d.residAttn?.[i], residMlp: d.residMlp?.[i] }));
    x = r.x;
    kv.push({ k: r.k, v: r.v });
  }
  const logits = scoped('head', () => linear(p.sub('head'), layerNorm(p.sub('ln_f'), x)));
  return { logits, kv };
}

/**
 * Prefill: tokens [B, T] → logits of the last position [B, vocab] and, per layer, keys
 * [B, nh, hs, T] (transposed, the cache layout) and values [B, nh, T, hs].
 */
export function gptPrefill(p: ParamView, cfg: GPTConfig, idx: Tensor): { logits: Tensor; k: Tensor[]; v: Tensor[] } {
  const T = idx.shape[1]!;
  const r = gpt(p, cfg, idx);
  const last = o.reshape(o.narrow(r.logits, 1, T - 1, T), [idx.shape[0]!, cfg.vocab_size]);
  return { logits: last, k: r.kv.map((t) => o.transpose(t.k, [0, 1, 3, 2])), v: r.kv.map((t) => t.v) };
}

/**
 * One decoding step against a static cache of capacity L: token [B] at position `pos`
 * ([1] int64; cache slots ≥ pos are ignored) → logits [B, vocab] and this token's keys and
 * values per layer, [B, nh, hs] each, for the caller to write into slot `pos`.
 */
export function gptStep(
  p: ParamView,
  cfg: GPTConfig,
  tok: Tensor,
  pos: Tensor,
  cache: readonly { k: Tensor; v: Tensor }[],
): { logits: Tensor; k: Tensor[]; v: Tensor[] } {
  const B = tok.shape[0]!;
  const C = cfg.n_embd;
  const nh = cfg.n_head;
  const hs = C / nh;
  const L = cache[0]!.k.shape[3]!;
  const posEmb = o.reshape(p.get('pos_emb'), [cfg.block_size, C]);
  let x = o.add(o.gather(p.get('tok_emb.weight'), tok, 0), o.gather(posEmb, pos, 0)); // [B, C]
  const slots = o.constant(HostTensor.int64([L], Array.from({ length: L }, (_, i) => i)));
  const valid = o.less(slots, pos); // [L]: slots already written
  const ks: Tensor[] = [];
  const vs: Tensor[] = [];
  for (let i = 0; i < cfg.n_layer; i++) {
    x = scoped(`blocks.${i}`, () => {
      const bp = p.sub(`blocks.${i}`);
      const a = bp.sub('attn');
      const h = layerNorm(bp.sub('ln1'), x);
      const k = o.reshape(linear(a.sub('key'), h), [B, nh, 1, hs]);
      const q = o.reshape(o.mul(linear(a.sub('query'), h), 1 / Math.sqrt(hs)), [B, nh, 1, hs]);
      const v = o.reshape(linear(a.sub('value'), h), [B, nh, 1, hs]);
      const past = o.where(valid, o.matmul(q, cache[i]!.k), -1e30); // [B, nh, 1, L]
      const self = o.sum(o.mul(q, k), [3], true); // [B, nh, 1, 1]
      const att = nn.softmax(o.concat([past, self], 3), -1); // [B, nh, 1, L+1]
      const y = o.add(o.matmul(o.narrow(att, 3, 0, L), cache[i]!.v), o.mul(o.narrow(att, 3, L, L + 1), v)); // [B, nh, 1, hs]
      ks.push(o.reshape(k, [B, nh, hs]));
      vs.push(o.reshape(v, [B, nh, hs]));
      const out = o.add(x, linear(a.sub('proj'), o.reshape(y, [B, C])));
      return o.add(out, mlp(bp.sub('mlp'), layerNorm(bp.sub('ln2'), out), undefined, 0));
    });
  }
  const logits = scoped('head', () => linear(p.sub('head'), layerNorm(p.sub('ln_f'), x)));
  return { logits, k: ks, v: vs };
}

/** Per-token negative log-likelihood of logits [..., V] for int64 targets [...] → [...] (nats). */
export function tokenNLL(logits: Tensor, targets: Tensor): Tensor {
  const V = logits.shape[logits.rank - 1]!;
  const lp = nn.logSoftmax(o.reshape(logits, [-1, V]), -1); // [N, V]
  const picked = o.sum(o.mul(lp, o.oneHot(o.reshape(targets, [-1]), V)), [1]); // [N]
  return o.reshape(o.neg(picked), targets.shape);
}

/** Mean cross-entropy of logits [..., V] against int64 targets [...], in nats. */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  return o.mean(tokenNLL(logits, targets));
}
