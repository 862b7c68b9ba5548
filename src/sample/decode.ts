// Autoregressive decoding of a GPT, two ways that give the same tokens for the same choices:
//  • KVDecoder: a prefill program for the condition (or one step when it is a single token),
//    then one step program per token against a static KV cache held in JS. The cache is fed
//    to ONNX Runtime without copying (onnxruntime-node wraps the typed arrays) and only the
//    new token's keys/values come back ([B, nh, hs] per layer), written into slot `pos` —
//    nothing proportional to the cache crosses the JS boundary per token.
//  • RecomputeDecoder: one full forward over a fixed-length, right-padded sequence per token
//    (the causal mask makes the padding invisible), reading the logits at the current
//    position — taming's uncached loop, used as the reference and for sliding windows.
// Weights are baked into each session as initializers (so ORT pre-packs them).
import { Program, type CompiledProgram } from '../runtime/program.ts';
import type { SessionOptions } from '../runtime/backend.ts';
import { HostTensor } from '../tensor.ts';
import { ParamView, type StateDict } from '../nn/params.ts';
import * as o from '../ops/core.ts';
import type { GPTConfig } from '../models/mingpt/config.ts';
import { gpt, gptPrefill, gptStep } from '../models/mingpt/gpt.ts';
import { kvDecode, type Chooser, type DecodeStats, type KVRunner } from './kv_loop.ts';

export type { Chooser, DecodeStats } from './kv_loop.ts';

function weightSpecs(w: StateDict) {
  return Object.fromEntries([...w].map(([k, v]) => [k, { shape: v.shape, dtype: v.dtype }]));
}

/**
 * The one-step program: inputs tok [B] (int64), pos [1] (int64), cache.k.<i> [B, nh, hs, L],
 * cache.v.<i> [B, nh, L, hs] and the weights (by state-dict key); outputs logits [B, vocab],
 * k.<i> / v.<i> [B, nh, hs] — this token's keys and values, for slot `pos` of the caches.
 */
export function traceStep(c: GPTConfig, weights: StateDict, B: number, L: number): Program {
  const hs = c.n_embd / c.n_head;
  const cache: Record<string, { shape: number[]; dtype: 'float32' }> = {};
  for (let i = 0; i < c.n_layer; i++) {
    cache[`cache.k.${i}`] = { shape: [B, c.n_head, hs, L], dtype: 'float32' };
    cache[`cache.v.${i}`] = { shape: [B, c.n_head, L, hs], dtype: 'float32' };
  }
  return Program.trace((ins) => {
    const kv = Array.from({ length: c.n_layer }, (_, i) => ({ k: ins[`cache.k.${i}`]!, v: ins[`cache.v.${i}`]! }));
    const r = gptStep(new ParamView(ins), c, ins.tok!, ins.pos!, kv);
    return { logits: r.logits, ...Object.fromEntries(r.k.flatMap((k, i) => [[`k.${i}`, k], [`v.${i}`, r.v[i]!]])) };
  }, { ...weightSpecs(weights), ...cache, tok: { shape: [B], dtype: 'int64' }, pos: { shape: [1], dtype: 'int64' } });
}

/** The prefill program: idx [B, T] → logits [B, vocab] (last position), k.<i> [B, nh, hs, T], v.<i> [B, nh, T, hs]. */
export function tracePrefill(c: GPTConfig, weights: StateDict, B: number, T: number): Program {
  return Program.trace((ins) => {
    const r = gptPrefill(new ParamView(ins), c, ins.idx!);
    return { logits: r.logits, ...Object.fromEntries(r.k.flatMap((k, i) => [[`k.${i}`, k], [`v.${i}`, r.v[i]!]])) };
  }, { ...weightSpecs(weights), idx: { shape: [B, T], dtype: 'int64' } });
}

/** Compiled sessions of one GPT's weights, by size (weights baked in as initializers). */
abstract class GPTSessions {
  readonly cfg: GPTConfig;
  protected weights: StateDict;
  readonly session: SessionOptions;
  protected programs = new Map<string, Promise<CompiledProgram>>();

  constructor(cfg: GPTConfig, weights: StateDict, session: SessionOptions = {}) {
    this.cfg = cfg;
    this.weights = weights;
    this.session = session;
  }

  protected compiled(key: string, make: () => Program): Promise<CompiledProgram> {
    let p = this.programs.get(key);
    if (!p) {
      p = make().compile({ ...this.session, bake: Object.fromEntries(this.weights) });
      this.programs.set(key, p);
      p.catch(() => this.programs.delete(key));
    }
    return p;
  }

  async release(): Promise<void> {
    for (const p of this.programs.values()) await (await p).release();
    this.programs.clear();
  }
}

abstract class BaseDecoder extends GPTSessions {
  protected check(B: number, Lc: number, steps: number): void {
    if (!(Number.isInteger(B) && B > 0 && Number.isInteger(Lc) && Lc > 0 && Number.isInteger(steps) && steps > 0)) throw new Error(`decode: bad sizes B=${B}, condition ${Lc}, steps ${steps}`);
    if (Lc + steps - 1 > this.cfg.block_size) throw new Error(`decode: ${Lc} condition tokens + ${steps} steps need ${Lc + steps - 1} positions, the GPT has block_size ${this.cfg.block_size}`);
  }

  abstract decode(cond: ArrayLike<number>, B: number, steps: number, choose: Chooser, stats?: DecodeStats): Promise<Int32Array>;
}

export class KVDecoder extends BaseDecoder {
  private stepProgram(B: number, L: number) {
    return this.compiled(`step:${B}:${L}`, () => traceStep(this.cfg, this.weights, B, L));
  }

  private prefillProgram(B: number, T: number) {
    return this.compiled(`prefill:${B}:${T}`, () => tracePrefill(this.cfg, this.weights, B, T));
  }

  /** Compile the sessions a decode of this size needs (so timing excludes compilation). */
  async prepare(B: number, Lc: number, steps: number): Promise<void> {
    this.check(B, Lc, steps);
    await this.stepProgram(B, Lc + steps - 1);
    if (Lc > 1) await this.prefillProgram(B, Lc);
  }

  /** cond: B·Lc condition tokens (row-major). Returns the B·steps chosen tokens (see kvDecode). */
  async decode(cond: ArrayLike<number>, B: number, steps: number, choose: Chooser, stats?: DecodeStats): Promise<Int32Array> {
    const Lc = cond.length / B;
    this.check(B, Lc, steps);
    const c = this.cfg;
    const nh = c.n_head;
    const hs = c.n_embd / nh;
    const L = Lc + steps - 1;
    const t0 = performance.now();
    const step = await this.stepProgram(B, L);
    const prefill = Lc > 1 ? await this.prefillProgram(B, Lc) : null;
    if (stats) stats.compileMs = performance.now() - t0;
    const layers = Array.from({ length: c.n_layer }, (_, i) => i);
    const into: Record<string, HostTensor> = { logits: HostTensor.float32([B, c.vocab_size]) };
    for (const i of layers) {
      into[`k.${i}`] = HostTensor.float32([B, nh, hs]);
      into[`v.${i}`] = HostTensor.float32([B, nh, hs]);
    }
    const result = (r: Record<string, HostTensor>) => ({
      logits: r.logits!.data as Float32Array,
      k: layers.map((i) => r[`k.${i}`]!.data as Float32Array),
      v: layers.map((i) => r[`v.${i}`]!.data as Float32Array),
    });
    // the loop's cache arrays, wrapped once: onnxruntime-node reads them without copying
    let feeds: Record<string, HostTensor> | null = null;
    const tok = HostTensor.int64([B]);
    const pos = HostTensor.int64([1]);
    const runner: KVRunner = {
      nLayer: c.n_layer,
      nHead: nh,
      headDim: hs,
      step: async (tokens, p, K, V) => {
        feeds ??= { tok, pos, ...Object.fromEntries(layers.flatMap((i) => [[`cache.k.${i}`, HostTensor.float32([B, nh, hs, L], K[i] as Float32Array)], [`cache.v.${i}`, HostTensor.float32([B, nh, L, hs], V[i] as Float32Array)]])) };
        tok.data.set(tokens);
        pos.data[0] = BigInt(p);
        return result(await step.run(feeds, into));
      },
      ...(prefill ? { prefill: async (idx: BigInt64Array) => result(await prefill.run({ idx: HostTensor.int64([B, Lc], idx) })) } : {}),
    };
    return kvDecode(runner, cond, B, steps, choose, stats);
  }
}

export class RecomputeDecoder extends BaseDecoder {
  /** Full forward over [B, T] tokens returning the logits at position `at` ([B, vocab]). */
  program(B: number, T: number): Promise<CompiledProgram> {
    const c = this.cfg;
    return this.compiled(`full:${B}:${T}`, () =>
      Program.trace((ins) => {
        const { logits } = gpt(new ParamView(ins), c, ins.idx!);
        return { logits: o.reshape(o.gather(logits, ins.at!, 1), [B, c.vocab_size]) };
      }, { ...weightSpecs(this.weights), idx: { shape: [B, T], dtype: 'int64' }, at: { shape: [1], dtype: 'int64' } }),
    );
  }

  async prepare(B: number, Lc: number, steps: number): Promise<void> {
    this.check(B, Lc, steps);
    await this.program(B, Lc + steps - 1);
  }

  async decode(cond: ArrayLike<number>, B: number, steps: number, choose: Chooser, stats?: DecodeStats): Promise<Int32Array> {
    const Lc = cond.length / B;
    this.check(B, Lc, steps);
    const T = Lc + steps - 1;
    const t0 = performance.now();
    const prog = await this.program(B, T);
    if (stats) stats.compileMs = performance.now() - t0;
    const seq = HostTensor.int64([B, T]);
    for (let b = 0; b < B; b++) for (let j = 0; j < Lc; j++) seq.data[b * T + j] = BigInt(cond[b * Lc + j]!);
    const at = HostTensor.int64([1]);
    const out = new Int32Array(B * steps);
    for (let t = 0; t < steps; t++) {
      at.data[0] = BigInt(Lc + t - 1);
      const t1 = performance.now();
      const logits = (await prog.run({ idx: seq, at })).logits!.data as Float32Array;
      if (stats && t === 0) stats.prefillMs = performance.now() - t1;
      else if (stats) stats.stepMs.push(performance.now() - t1);
      const chosen = choose(logits, t);
      for (let b = 0; b < B; b++) {
        out[b * steps + t] = chosen[b]!;
        if (Lc + t < T) seq.data[b * T + Lc + t] = BigInt(chosen[b]!);
      }
    }
    return out;
  }
}

/**
 * A bidirectional (MaskGIT) transformer's forward for parallel decoding: tokens [B, Lc + Lz]
 * (condition, then image codes with [MASK] where unknown) → logits [B, Lz, vocab] at the image
 * positions. One session per (B, Lc, Lz), weights baked in; each MaskGIT pass is one call.
 */
/**
 * The bidirectional forward: idx [B, Lc + Lz] (a prefix condition, then the image codes with
 * [MASK] where unknown) and, when `aligned`, cond [B, Lz] → logits [B, Lz, vocab] at the image
 * positions.
 */
export function traceBidirectional(c: GPTConfig, weights: StateDict, B: number, Lc: number, Lz: number, aligned: boolean): Program {
  if (Lc + Lz > c.block_size) throw new Error(`MaskGIT: ${Lc} condition + ${Lz} image tokens exceed block_size ${c.block_size}`);
  const specs = { ...weightSpecs(weights), idx: { shape: [B, Lc + Lz], dtype: 'int64' as const }, ...(aligned ? { cond: { shape: [B, Lz], dtype: 'int64' as const } } : {}) };
  return Program.trace((ins) => {
    const { logits } = gpt(new ParamView(ins), c, ins.idx!, { condIdx: ins.cond });
    return { logits: Lc ? o.narrow(logits, 1, Lc, Lc + Lz) : logits };
  }, specs);
}

export class BidirectionalRunner extends GPTSessions {
  /** With `aligned`, the program also takes cond [B, Lz]: cond_emb rows added position by position (Lc = 0). */
  program(B: number, Lc: number, Lz: number, aligned = false): Promise<CompiledProgram> {
    return this.compiled(`bidir:${B}:${Lc}:${Lz}:${aligned}`, () => traceBidirectional(this.cfg, this.weights, B, Lc, Lz, aligned));
  }

  /** Logits [B·Lz·vocab] for tokens idx [B, Lc + Lz] (and an aligned condition [B, Lz]). */
  async logits(idx: HostTensor<'int64'>, Lc: number, cond: HostTensor<'int64'> | null = null): Promise<Float32Array> {
    const [B, T] = idx.shape as [number, number];
    const prog = await this.program(B, Lc, T - Lc, !!cond);
    return (await prog.run({ idx, ...(cond ? { cond } : {}) })).logits!.data as Float32Array;
  }
}
