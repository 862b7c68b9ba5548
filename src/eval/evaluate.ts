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

/** PSNR / SSIM per image over the batches, with each batch's reconstruction also handed to `each`. */
async function reconstructionQuality<R extends { image: HostTensor<'float32'> }>(batches: Iterable<HostTensor<'float32'>>, reconstruct: (x: HostTensor<'float32'>) => Promise<R>, each: (r: R) => void = () => {}) {
  const ps: number[] = [];
  const ss: number[] = [];
  let last: HostTensor<'float32'> | null = null;
  for (const x of batches) {
    const r = await reconstruct(x);
    ps.push(...psnr(x, r.image));
    ss.push(...ssim(x, r.image));
    each(r);
    last = r.image;
  }
  return { images: ps.length, psnr: mean(ps), ssim: mean(ss), last };
}

export async function evaluateBatches(model: VQGAN, batches: Iterable<HostTensor<'float32'>>): Promise<EvalResult> {
  const codes: bigint[] = [];
  const q = await reconstructionQuality(batches, (x) => model.reconstruct(x), (r) => codes.push(...(r.indices.data as BigInt64Array)));
  const u = codeUsage(codes, model.codebookSize);
  return { ...q, usage: u.usage, used: u.used, perplexity: u.perplexity };
}

/** PSNR / SSIM of a KL autoencoder's reconstructions (the posterior's mode, decoded), averaged per image. */
export function evaluateKL(model: AutoencoderKL, batches: Iterable<HostTensor<'float32'>>): Promise<{ images: number; psnr: number; ssim: number; last: HostTensor<'float32'> | null }> {
  return reconstructionQuality(batches, (x) => model.reconstruct(x));
}

/** `n` batches from a loader, as an iterable. */
export function* take<T>(next: () => { x: T }, n: number): Generator<T> {
  for (let i = 0; i < n; i++) yield next().x;
}
