// Reconstruction quality over batches of images: PSNR, SSIM, and for a VQGAN its codebook
// usage and perplexity. Shared by `latentkit eval`, the training runs' samples and their final
// evaluations.
import type { VQGAN } from '../models/vqgan/load.ts';
import type { AutoencoderKL } from '../models/autoencoder_kl/load.ts';
import { codeUsage } from '../models/vqgan/quantize.ts';
import type { HostTensor } from '../tensor.ts';
import { mean, psnr, ssim } from './metrics.ts';

export interface EvalResult {
  images: number;
  psnr: number;
  ssim: number;
  usage: number;
  used: number;
  perplexity: number;
  /** Reconstruction of the last batch (for sample grids). */
  last: HostTensor<'float32'> | null;
}

export async function evaluateBatches(model: VQGAN, batches: Iterable<HostTensor<'float32'>>): Promise<EvalResult> {
  const ps: number[] = [];
  const ss: number[] = [];
  const codes: bigint[] = [];
  let last: HostTensor<'float32'> | null = null;
  for (const x of batches) {
    const r = await model.reconstruct(x);
    ps.push(...psnr(x, r.image));
    ss.push(...ssim(x, r.image));
    codes.push(...(r.indices.data as BigInt64Array));
    last = r.image;
  }
  const u = codeUsage(codes, model.codebookSize);
  return { images: ps.length, psnr: mean(ps), ssim: mean(ss), usage: u.usage, used: u.used, perplexity: u.perplexity, last };
}

/** `n` batches from a loader, as an iterable. */
/** PSNR / SSIM of a KL autoencoder's reconstructions (the posterior's mode, decoded), averaged per image. */
export async function evaluateKL(model: AutoencoderKL, batches: Iterable<HostTensor<'float32'>>): Promise<{ images: number; psnr: number; ssim: number; last: HostTensor<'float32'> | null }> {
  const ps: number[] = [];
  const ss: number[] = [];
  let last: HostTensor<'float32'> | null = null;
  for (const x of batches) {
    const r = await model.reconstruct(x);
    ps.push(...psnr(x, r.image));
    ss.push(...ssim(x, r.image));
    last = r.image;
  }
  return { images: ps.length, psnr: mean(ps), ssim: mean(ss), last };
}

export function* take<T>(next: () => { x: T }, n: number): Generator<T> {
  for (let i = 0; i < n; i++) yield next().x;
}
