// Codebook care beyond taming (host side, between steps): k-means initialization from the
// first batches' encoder outputs, and restarting dead codes from recent encoder outputs.
// Both are deterministic given their RNG state, which is checkpointed for exact resume.
import { Rng } from '../io/datasets.ts';
import type { HostTensor } from '../tensor.ts';

export interface CodebookOptions {
  kmeans_init: boolean;
  /** Steps of encoder outputs collected before k-means runs. */
  kmeans_steps: number;
  restart_dead: boolean;
  restart_every: number;
  /** Recent encoder output vectors kept for restarts. */
  pool: number;
}

export const CODEBOOK_OFF: CodebookOptions = { kmeans_init: false, kmeans_steps: 20, restart_dead: false, restart_every: 200, pool: 8192 };

/** Latents [B, D, h, w] → rows [B·h·w][D]. */
export function latentRows(h: HostTensor): Float32Array[] {
  const [b, d, hh, ww] = h.shape as [number, number, number, number];
  const src = h.data as Float32Array;
  const rows: Float32Array[] = [];
  for (let n = 0; n < b; n++) {
    for (let p = 0; p < hh * ww; p++) {
      const r = new Float32Array(d);
      for (let c = 0; c < d; c++) r[c] = src[(n * d + c) * hh * ww + p]!;
      rows.push(r);
    }
  }
  return rows;
}

/** A bounded FIFO of latent vectors (flat storage so it can be checkpointed). */
export class LatentPool {
  readonly dim: number;
  readonly cap: number;
  data: Float32Array;
  size = 0;
  head = 0;
  constructor(dim: number, cap: number) {
    this.dim = dim;
    this.cap = cap;
    this.data = new Float32Array(dim * cap);
  }
  push(rows: Float32Array[]): void {
    for (const r of rows) {
      this.data.set(r, this.head * this.dim);
      this.head = (this.head + 1) % this.cap;
      this.size = Math.min(this.cap, this.size + 1);
    }
  }
  row(i: number): Float32Array {
    return this.data.subarray(i * this.dim, (i + 1) * this.dim);
  }
}

function dist2(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s;
}

/** k-means++ seeding and Lloyd iterations; returns k centroids. */
export function kmeans(points: Float32Array[], k: number, rng: Rng, iters = 10): Float32Array[] {
  const n = points.length;
  const cent: Float32Array[] = [points[rng.int(n)]!.slice()];
  const d = new Float64Array(n).fill(Infinity);
  while (cent.length < k) {
    const last = cent[cent.length - 1]!;
    let total = 0;
    for (let i = 0; i < n; i++) {
      d[i] = Math.min(d[i]!, dist2(points[i]!, last));
      total += d[i]!;
    }
    let r = rng.next() * total;
    let pick = n - 1;
    for (let i = 0; i < n; i++) {
      r -= d[i]!;
      if (r <= 0) {
        pick = i;
        break;
      }
    }
    cent.push(points[pick]!.slice());
  }
  const dim = points[0]!.length;
  for (let it = 0; it < iters; it++) {
    const sums = Array.from({ length: k }, () => new Float64Array(dim));
    const counts = new Uint32Array(k);
    for (const p of points) {
      let best = 0;
      let bd = Infinity;
      for (let j = 0; j < k; j++) {
        const dd = dist2(p, cent[j]!);
        if (dd < bd) {
          bd = dd;
          best = j;
        }
      }
      counts[best]!++;
      const s = sums[best]!;
      for (let c = 0; c < dim; c++) s[c] = s[c]! + p[c]!;
    }
    for (let j = 0; j < k; j++) {
      if (counts[j]) for (let c = 0; c < dim; c++) cent[j]![c] = sums[j]![c]! / counts[j]!;
      else cent[j] = points[rng.int(n)]!.slice(); // empty cluster: reseed
    }
  }
  return cent;
}

/** Write rows into an embedding [K, D] (and zero their Adam moments). */
export function setCodes(embedding: HostTensor, slots: HostTensor[], codes: number[], rows: Float32Array[]): void {
  const d = embedding.shape[1]!;
  codes.forEach((k, i) => {
    (embedding.data as Float32Array).set(rows[i]!, k * d);
    for (const s of slots) (s.data as Float32Array).fill(0, k * d, (k + 1) * d);
  });
}
