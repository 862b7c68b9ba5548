// Sliding-window sampling for code grids larger than the training grid (taming's
// scripts/sample_conditional.py placement): code (i, j) of an H×W canvas is predicted from
// the window whose top-left is (clip(i − wh/2, 0, H − wh), clip(j − ww/2, 0, W − ww)), with
// the same crop of the condition grid in front (or the one class/SOS token). Each position
// is one full forward over the window (the causal mask hides the window's later codes).
import { HostTensor } from '../tensor.ts';
import type { RecomputeDecoder } from './decode.ts';

export interface WindowedRequest {
  decoder: RecomputeDecoder;
  n: number;
  grid: [number, number];
  window: [number, number];
  /** n·Lc condition tokens: one token per sample, or n condition grids (condGrid given). */
  cond: Int32Array;
  condLength: number;
  condGrid: [number, number] | null;
  choose: (logits: Float32Array) => Int32Array;
  onProgress?: (t: number, total: number) => void;
}

const clip = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);

/** Top-left of the window for code i of an axis of length H with window size wh. */
export const windowStart = (i: number, H: number, wh: number): number => clip(i - Math.floor(wh / 2), 0, H - wh);

export async function windowedSample(r: WindowedRequest): Promise<Int32Array> {
  const [H, W] = r.grid;
  const [wh, ww] = r.window;
  const n = r.n;
  const image = r.condGrid !== null;
  if (image && (r.condGrid![0] !== H || r.condGrid![1] !== W)) {
    throw new Error(`sliding window: the condition grid ${r.condGrid![0]}×${r.condGrid![1]} must match the canvas ${H}×${W} (encode the condition at the output size)`);
  }
  const Lc = image ? wh * ww : r.condLength;
  const T = Lc + wh * ww - 1;
  const prog = await r.decoder.program(n, T);
  const codes = new Int32Array(n * H * W);
  const seq = HostTensor.int64([n, T]);
  const at = HostTensor.int64([1]);
  let done = 0;
  for (let i = 0; i < H; i++) {
    const top = windowStart(i, H, wh);
    for (let j = 0; j < W; j++) {
      const left = windowStart(j, W, ww);
      for (let b = 0; b < n; b++) {
        const row = b * T;
        if (image) {
          for (let y = 0; y < wh; y++) for (let x = 0; x < ww; x++) seq.data[row + y * ww + x] = BigInt(r.cond[b * H * W + (top + y) * W + left + x]!);
        } else {
          for (let k = 0; k < Lc; k++) seq.data[row + k] = BigInt(r.cond[b * Lc + k]!);
        }
        // window codes in window-local raster order; those at or after (i, j) are masked anyway
        for (let y = 0; y < wh; y++) for (let x = 0; x < ww; x++) {
          const p = Lc + y * ww + x;
          if (p < T) seq.data[row + p] = BigInt(codes[b * H * W + (top + y) * W + left + x]!);
        }
      }
      at.data[0] = BigInt(Lc - 1 + (i - top) * ww + (j - left));
      const logits = (await prog.run({ idx: seq, at })).logits!.data as Float32Array;
      const chosen = r.choose(logits);
      for (let b = 0; b < n; b++) codes[b * H * W + i * W + j] = chosen[b]!;
      r.onProgress?.(++done, H * W);
    }
  }
  return codes;
}
