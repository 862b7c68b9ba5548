// Choosing the next token from one row of logits: temperature, top-k, top-p (nucleus) and
// greedy, driven by a uniform number u ∈ [0, 1) given by the caller — so two decoders fed
// the same u's and (nearly) the same logits pick the same tokens, and a seed reproduces a
// sample exactly. Semantics follow the filter taming calls (transformers'
// top_k_top_p_filtering): top-k keeps the k largest logits (ties with the k-th kept), then
// top-p keeps the smallest prefix of the sorted distribution whose mass reaches p — always at
// least one token. Unlike taming's sample_with_past, top-p applies without top-k too.

export interface SamplingOptions {
  /** Logits are divided by this (default 1). Must be > 0. */
  temperature?: number;
  /** Keep only the k most likely tokens (default: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (default 1: all). */
  topP?: number;
  /** Take the most likely token (ignores temperature, top-k, top-p and u). */
  greedy?: boolean;
}

export function checkSamplingOptions(o: SamplingOptions, vocab: number): void {
  if (o.temperature !== undefined && !(o.temperature > 0 && Number.isFinite(o.temperature))) throw new Error(`temperature must be a positive number, got ${o.temperature}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 1)) throw new Error(`top-k must be a positive integer, got ${o.topK}`);
  if (o.topK !== undefined && o.topK > vocab) throw new Error(`top-k ${o.topK} exceeds the vocabulary size ${vocab}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new Error(`top-p must be in (0, 1], got ${o.topP}`);
}

/** Index of the largest value (first on ties). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/**
 * The value that would sit at index k if `a` were sorted ascending (Hoare's quickselect,
 * median-of-three pivots; reorders `a`). Linear on average: MaskGIT asks for the k-th logit
 * of ~1,000 rows per pass, where a full sort per row cost more than the model.
 */
export function kthSmallest(a: Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const [x, y, z] = [a[lo]!, a[mid]!, a[hi]!];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i++] = a[j]!;
        a[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

/**
 * Probabilities after temperature, top-k and top-p, as parallel arrays of kept token ids
 * (most likely first) and their renormalised probabilities.
 */
export function filteredDistribution(row: ArrayLike<number>, o: SamplingOptions = {}): { ids: Int32Array; probs: Float64Array } {
  const V = row.length;
  const t = o.temperature ?? 1;
  const byLogit = (a: number, b: number) => row[b]! - row[a]! || a - b; // most likely first, then lower id
  let order: Int32Array;
  let n = V;
  if (o.topK !== undefined && o.topK < V) {
    // the k-th largest logit by quickselect on a copy; then only the kept ids are ordered. Ties with the k-th survive (logits < kth are removed).
    const copy = new Float64Array(V);
    copy.set(row);
    const kth = kthSmallest(copy, V - o.topK);
    order = new Int32Array(V);
    n = 0;
    for (let i = 0; i < V; i++) if (row[i]! >= kth) order[n++] = i;
    order = order.subarray(0, n).sort(byLogit);
  } else order = Int32Array.from({ length: V }, (_, i) => i).sort(byLogit);
  const max = row[order[0]!]! / t;
  const p = new Float64Array(n);
  let z = 0;
  for (let i = 0; i < n; i++) z += p[i] = Math.exp(row[order[i]!]! / t - max);
  for (let i = 0; i < n; i++) p[i]! /= z;
  if (o.topP !== undefined && o.topP < 1) {
    // keep token i while the mass before it is ≤ p (the first token always stays)
    let cum = 0;
    let m = 0;
    while (m < n && (m === 0 || cum <= o.topP)) cum += p[m++]!;
    if (m < n) {
      let z2 = 0;
      for (let i = 0; i < m; i++) z2 += p[i]!;
      const q = new Float64Array(m);
      for (let i = 0; i < m; i++) q[i] = p[i]! / z2;
      return { ids: order.slice(0, m), probs: q };
    }
  }
  return { ids: order.slice(0, n), probs: p };
}

/** The token for uniform u: inverse CDF over the filtered distribution (most likely first). */
export function pickToken(row: ArrayLike<number>, o: SamplingOptions, u: number): number {
  if (o.greedy) return argmax(row);
  const { ids, probs } = filteredDistribution(row, o);
  let cum = 0;
  for (let i = 0; i < ids.length; i++) {
    cum += probs[i]!;
    if (u < cum) return ids[i]!;
  }
  return ids[ids.length - 1]!;
}

/** Classifier-free guidance: l_u + s·(l_c − l_u), written into `out`. */
export function guide(cond: ArrayLike<number>, uncond: ArrayLike<number>, scale: number, out: Float32Array): Float32Array {
  for (let i = 0; i < out.length; i++) out[i] = uncond[i]! + scale * (cond[i]! - uncond[i]!);
  return out;
}

/** A source of uniforms for one sample: sample i of seed s always draws the same stream. */
export interface UniformSource {
  next(): number;
}

/**
 * The per-step chooser of a decode: row b of the logits (or, with guidance, rows b and b+B
 * of a doubled batch: conditional, then unconditional) → one token per sample, from that
 * sample's own uniform stream. With guidance the chosen tokens are returned for both halves.
 */
export function makeChooser(o: SamplingOptions & { guidance?: number }, vocab: number, streams: readonly UniformSource[]) {
  checkSamplingOptions(o, vocab);
  const B = streams.length;
  const g = o.guidance;
  const mixed = new Float32Array(vocab);
  return (logits: Float32Array): Int32Array => {
    const out = new Int32Array(g !== undefined ? 2 * B : B);
    for (let b = 0; b < B; b++) {
      let row: Float32Array = logits.subarray(b * vocab, (b + 1) * vocab);
      if (g !== undefined) row = guide(row, logits.subarray((B + b) * vocab, (B + b + 1) * vocab), g, mixed);
      const u = streams[b]!.next(); // drawn even when greedy, so streams stay aligned
      out[b] = pickToken(row, o, u);
      if (g !== undefined) out[B + b] = out[b]!;
    }
    return out;
  };
}
