// MaskGIT's parallel decoding (Chang et al. 2022) over a grid of codes: all masked positions
// are predicted at once; each pass keeps the most confident new codes and re-masks the rest,
// so that after pass t of T only ⌊n·γ((t+1)/T)⌋ of the n positions that started masked are
// still masked, with the cosine schedule γ(r) = cos(πr/2) — and none after the last pass.
// Confidence is the sampled code's log-probability plus annealed Gumbel noise,
// τ·(1 − (t+1)/T)·g, as in MaskGIT's reference decoder. Codes given (not masked) are never
// touched: that is editing (inpainting, outpainting). The model is a callback from the codes
// (mask id where unknown) to logits, so the same loop drives onnxruntime-node and -web, and
// per-sample uniform streams make a seed reproduce a sample whatever the batch size.
import { pickToken, type SamplingOptions } from './filtering.ts';

/** γ(r) = cos(πr/2): the fraction of positions still masked at progress r ∈ [0, 1]. */
export const gammaCosine = (r: number): number => Math.cos((Math.PI / 2) * r);

/**
 * How many of `n` initially masked positions are still masked after each of `steps` passes:
 * ⌊n·γ((t+1)/T)⌋, but at least one fewer than before the pass while any is left, and 0 after
 * the last pass.
 */
export function maskSchedule(n: number, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`steps must be a whole number ≥ 1, got ${steps}`);
  const out: number[] = [];
  let prev = n;
  for (let t = 0; t < steps; t++) {
    const m = t === steps - 1 ? 0 : Math.min(Math.floor(n * gammaCosine((t + 1) / steps)), Math.max(prev - 1, 0));
    out.push(m);
    prev = m;
  }
  return out;
}

/** A stream of uniforms in [0, 1) for one sample (io/rng.ts Rng). */
export interface Uniforms {
  next(): number;
}

export interface MaskGitOptions extends SamplingOptions {
  /** passes T */
  steps: number;
  /** τ, the Gumbel noise on the confidences at the first pass, annealed to 0 (default 4.5, MaskGIT's) */
  choiceTemperature?: number;
}

export interface MaskGitRequest {
  /** per sample, the code grid (row-major) with `maskId` where codes are to be generated */
  codes: readonly Int32Array[];
  maskId: number;
  /** codes are 0 … vocab−1; a logit row may be longer (the mask token's own logit is never chosen) */
  vocab: number;
  /** per-sample uniform streams (sampleStreams(seed, n)) */
  streams: readonly Uniforms[];
}

/** Logits for the current codes: one Float32Array per sample, [N · rowLength] (rowLength ≥ vocab). */
export type MaskGitModel = (codes: readonly Int32Array[]) => Promise<Float32Array[]>;

export interface MaskGitPass {
  pass: number;
  /** per sample: the positions whose codes this pass fixed */
  fixed: number[][];
  /** per sample: still masked after the pass */
  masked: number[];
}

export interface MaskGitResult {
  codes: Int32Array[];
  /** model calls made (passes where some sample had masked positions) */
  passes: number;
}

/** log softmax(row[0 … vocab))[k] */
function logProb(row: Float32Array, vocab: number, k: number): number {
  let max = -Infinity;
  for (let j = 0; j < vocab; j++) if (row[j]! > max) max = row[j]!;
  let z = 0;
  for (let j = 0; j < vocab; j++) z += Math.exp(row[j]! - max);
  return row[k]! - max - Math.log(z);
}

export async function maskgitDecode(model: MaskGitModel, req: MaskGitRequest, o: MaskGitOptions, onPass?: (p: MaskGitPass) => void): Promise<MaskGitResult> {
  const T = o.steps;
  const tau = o.choiceTemperature ?? 4.5;
  const { maskId, vocab } = req;
  if (req.streams.length !== req.codes.length) throw new Error(`maskgit: ${req.codes.length} samples but ${req.streams.length} random streams`);
  const codes = req.codes.map((c) => Int32Array.from(c));
  const N = codes[0]?.length ?? 0;
  for (const c of codes) {
    if (c.length !== N) throw new Error('maskgit: every sample needs the same number of positions');
    for (const v of c) if (v !== maskId && (v < 0 || v >= vocab)) throw new Error(`maskgit: code ${v} is neither a code in [0, ${vocab}) nor the mask ${maskId}`);
  }
  const schedules = codes.map((c) => maskSchedule(c.reduce((a, v) => a + (v === maskId ? 1 : 0), 0), T));
  let passes = 0;
  for (let t = 0; t < T; t++) {
    const open = codes.map((c) => c.reduce<number[]>((a, v, i) => (v === maskId ? (a.push(i), a) : a), []));
    if (open.every((m) => m.length === 0)) break;
    const logits = await model(codes);
    passes++;
    const anneal = tau * (1 - (t + 1) / T);
    const fixed: number[][] = [];
    codes.forEach((c, b) => {
      const masked = open[b]!;
      const rowLen = logits[b]!.length / N;
      const cand = masked.map((i) => {
        const row = logits[b]!.subarray(i * rowLen, i * rowLen + vocab);
        const code = pickToken(row, o, req.streams[b]!.next());
        const g = -Math.log(-Math.log(Math.max(req.streams[b]!.next(), 1e-300)));
        return { i, code, conf: logProb(row, vocab, code) + anneal * g };
      });
      const keep = masked.length - schedules[b]![t]!;
      cand.sort((x, y) => y.conf - x.conf || x.i - y.i);
      const now = cand.slice(0, Math.max(0, keep));
      for (const { i, code } of now) c[i] = code;
      fixed.push(now.map((x) => x.i).sort((x, y) => x - y));
    });
    onPass?.({ pass: t, fixed, masked: codes.map((c) => c.reduce((a, v) => a + (v === maskId ? 1 : 0), 0)) });
  }
  return { codes, passes };
}
