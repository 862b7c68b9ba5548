// Image quality metrics on [−1, 1] images (clamped, as saved): PSNR and SSIM (Wang et al.
// 2004: 11×11 Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03, on [0, 1], channel mean).
import type { HostTensor } from '../tensor.ts';

function to01(v: number): number {
  return Math.min(1, Math.max(0, (v + 1) / 2));
}

/** Per-image PSNR (dB) of [B,C,H,W] batches. */
export function psnr(x: HostTensor, y: HostTensor): number[] {
  const [b] = x.shape as [number];
  const n = x.size / b;
  const a = x.data as Float32Array;
  const c = y.data as Float32Array;
  const out: number[] = [];
  for (let i = 0; i < b; i++) {
    let s = 0;
    for (let j = i * n; j < (i + 1) * n; j++) s += (to01(a[j]!) - to01(c[j]!)) ** 2;
    const mse = s / n;
    out.push(mse === 0 ? 100 : 10 * Math.log10(1 / mse));
  }
  return out;
}

const WIN = (() => {
  const g = Array.from({ length: 11 }, (_, i) => Math.exp(-((i - 5) ** 2) / (2 * 1.5 * 1.5)));
  const s = g.reduce((a, b) => a + b, 0);
  return g.map((v) => v / s);
})();

/** Separable Gaussian filter, 'valid' region. */
function blur(img: Float64Array, h: number, w: number): { data: Float64Array; h: number; w: number } {
  const ow = w - 10;
  const oh = h - 10;
  const tmp = new Float64Array(h * ow);
  for (let y = 0; y < h; y++) for (let x = 0; x < ow; x++) {
    let s = 0;
    for (let k = 0; k < 11; k++) s += WIN[k]! * img[y * w + x + k]!;
    tmp[y * ow + x] = s;
  }
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) for (let x = 0; x < ow; x++) {
    let s = 0;
    for (let k = 0; k < 11; k++) s += WIN[k]! * tmp[(y + k) * ow + x]!;
    out[y * ow + x] = s;
  }
  return { data: out, h: oh, w: ow };
}

/** Per-image SSIM of [B,C,H,W] batches (H, W ≥ 11). */
export function ssim(x: HostTensor, y: HostTensor): number[] {
  const [b, ch, h, w] = x.shape as [number, number, number, number];
  if (h < 11 || w < 11) throw new Error(`ssim: images must be at least 11×11, got ${w}×${h}`);
  const C1 = 0.01 ** 2;
  const C2 = 0.03 ** 2;
  const a = x.data as Float32Array;
  const c = y.data as Float32Array;
  const out: number[] = [];
  const plane = h * w;
  for (let i = 0; i < b; i++) {
    let total = 0;
    for (let k = 0; k < ch; k++) {
      const off = (i * ch + k) * plane;
      const p = new Float64Array(plane);
      const q = new Float64Array(plane);
      for (let j = 0; j < plane; j++) {
        p[j] = to01(a[off + j]!);
        q[j] = to01(c[off + j]!);
      }
      const mul = (u: Float64Array, v: Float64Array) => u.map((z, j) => z * v[j]!);
      const mp = blur(p, h, w).data;
      const mq = blur(q, h, w).data;
      const pp = blur(mul(p, p), h, w).data;
      const qq = blur(mul(q, q), h, w).data;
      const pq = blur(mul(p, q), h, w).data;
      let s = 0;
      for (let j = 0; j < mp.length; j++) {
        const vp = pp[j]! - mp[j]! ** 2;
        const vq = qq[j]! - mq[j]! ** 2;
        const cov = pq[j]! - mp[j]! * mq[j]!;
        s += ((2 * mp[j]! * mq[j]! + C1) * (2 * cov + C2)) / ((mp[j]! ** 2 + mq[j]! ** 2 + C1) * (vp + vq + C2));
      }
      total += s / mp.length;
    }
    out.push(total / ch);
  }
  return out;
}

export const mean = (v: readonly number[]): number => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
