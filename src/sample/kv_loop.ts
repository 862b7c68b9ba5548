// The KV-cache decoding loop, independent of how a step runs: the library's compiled
// programs (sample/decode.ts) and the exported standalone ONNX files run through any ONNX
// Runtime build (runtime/standalone.ts, the browser's path) share it, so both choose the
// same tokens from the same logits. Pure JavaScript: no Node modules.

/** Given logits [B, vocab] for step t, returns the B chosen tokens. */
export type Chooser = (logits: Float32Array, t: number) => ArrayLike<number>;

export interface DecodeStats {
  /** Milliseconds in the first ONNX Runtime call (prefill or first step), and per later step. */
  prefillMs: number;
  stepMs: number[];
  compileMs: number;
}

/** What one run returns: logits [B, vocab] and, per layer, the new keys and values. */
export interface KVResult {
  logits: Float32Array;
  /** step: [B, nh, hs] each; prefill: k [B, nh, hs, Lc], v [B, nh, Lc, hs]. */
  k: readonly Float32Array[];
  v: readonly Float32Array[];
}

export interface KVRunner {
  nLayer: number;
  nHead: number;
  headDim: number;
  /**
   * One token per sample at position `pos`, attending over the caches (the same arrays on
   * every call: K [B, nh, hs, L] transposed so the step reads it without a copy, V [B, nh, L, hs]).
   */
  step(tok: BigInt64Array, pos: number, cacheK: readonly Float32Array[], cacheV: readonly Float32Array[]): Promise<KVResult>;
  /** All Lc condition tokens at once ([B, Lc]); absent when the condition is one token. */
  prefill?(idx: BigInt64Array): Promise<KVResult>;
}

/**
 * cond: B·Lc condition tokens (row-major). Returns the B·steps chosen tokens [B, steps]. Cache
 * slots hold positions 0 … Lc+steps−2 (the last chosen token is never fed back).
 */
export async function kvDecode(m: KVRunner, cond: ArrayLike<number>, B: number, steps: number, choose: Chooser, stats?: DecodeStats): Promise<Int32Array> {
  const Lc = cond.length / B;
  const { nLayer, nHead: nh, headDim: hs } = m;
  const L = Lc + steps - 1;
  const rows = B * nh;
  const K = Array.from({ length: nLayer }, () => new Float32Array(rows * hs * L));
  const V = Array.from({ length: nLayer }, () => new Float32Array(rows * L * hs));
  // one token's keys/values ([B, nh, hs]) into slot pos of every layer's cache
  const writeSlot = (r: KVResult, pos: number) => {
    for (let i = 0; i < nLayer; i++) {
      const [k, v, Ki, Vi] = [r.k[i]!, r.v[i]!, K[i]!, V[i]!];
      for (let row = 0; row < rows; row++) {
        for (let d = 0; d < hs; d++) Ki[(row * hs + d) * L + pos] = k[row * hs + d]!;
        Vi.set(v.subarray(row * hs, row * hs + hs), (row * L + pos) * hs);
      }
    }
  };
  const tok = new BigInt64Array(B);
  const runStep = async (tokens: ArrayLike<number>, pos: number) => {
    for (let b = 0; b < B; b++) tok[b] = BigInt(tokens[b]!);
    const r = await m.step(tok, pos, K, V);
    writeSlot(r, pos);
    return r.logits;
  };
  let t1 = performance.now();
  let logits: Float32Array;
  if (Lc > 1) {
    if (!m.prefill) throw new Error(`decode: a ${Lc}-token condition needs a prefill`);
    const r = await m.prefill(BigInt64Array.from(Array.from(cond, (x) => BigInt(x))));
    for (let i = 0; i < nLayer; i++) {
      const [k, v, Ki, Vi] = [r.k[i]!, r.v[i]!, K[i]!, V[i]!]; // k [B, nh, hs, Lc], v [B, nh, Lc, hs]
      for (let row = 0; row < rows; row++) {
        for (let d = 0; d < hs; d++) Ki.set(k.subarray((row * hs + d) * Lc, (row * hs + d + 1) * Lc), (row * hs + d) * L);
        Vi.set(v.subarray(row * Lc * hs, (row + 1) * Lc * hs), row * L * hs);
      }
    }
    logits = r.logits;
  } else {
    logits = await runStep(Array.from({ length: B }, (_, b) => cond[b]!), 0);
  }
  if (stats) stats.prefillMs = performance.now() - t1;
  const out = new Int32Array(B * steps);
  for (let t = 0; t < steps; t++) {
    const chosen = choose(logits, t);
    for (let b = 0; b < B; b++) out[b * steps + t] = chosen[b]!;
    if (t === steps - 1) break;
    t1 = performance.now();
    logits = await runStep(chosen, Lc + t);
    stats?.stepMs.push(performance.now() - t1);
  }
  return out;
}
