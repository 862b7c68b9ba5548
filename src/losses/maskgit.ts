// MaskGIT's training objective (Chang et al. 2022): per sample r ~ U(0, 1), ⌈γ(r)·N⌉ of the N
// codes are replaced by [MASK] (γ the cosine schedule the decoder also uses), and the loss is
// the cross-entropy of the codebook's logits at the masked positions only, with label
// smoothing ε: (1 − ε)·(−log p_target) + ε·mean_k(−log p_k), averaged over masked positions —
// PyTorch's F.cross_entropy(logits[mask], target[mask], label_smoothing=ε). The masks are drawn
// on the host and fed in, so the training graph stays random-free.
import type { Tensor } from '../graph/ir.ts';
import * as o from '../ops/core.ts';
import * as nn from '../ops/nn.ts';
import { gammaCosine } from '../sample/maskgit.ts';
import type { Uniforms } from '../sample/maskgit.ts';

/**
 * Loss of logits [B, N, K] (K ≥ V: the head may also score [MASK] and condition tokens; only
 * the V code logits compete) against int64 targets [B, N], over the positions where
 * `masked` [B, N] (float, 1 = masked) is 1.
 */
export function maskedTokenLoss(logits: Tensor, targets: Tensor, masked: Tensor, V: number, eps = 0.1): Tensor {
  const [B, N] = targets.shape as [number, number];
  const lp = nn.logSoftmax(o.reshape(o.narrow(logits, 2, 0, V), [B * N, V]), -1); // [B·N, V]
  const nll = o.neg(o.sum(o.mul(lp, o.oneHot(o.reshape(targets, [-1]), V)), [1])); // [B·N]
  const smooth = o.neg(o.mean(lp, [1])); // [B·N]
  const per = o.add(o.mul(nll, 1 - eps), o.mul(smooth, eps));
  const m = o.reshape(masked, [-1]);
  return o.div(o.sum(o.mul(per, m)), o.sum(m));
}

/**
 * Which of N positions a training sample masks: r from the stream, ⌈γ(r)·N⌉ positions (at
 * least one) chosen uniformly without replacement. Returns 1 at masked positions.
 */
export function sampleTrainingMask(rng: Uniforms, N: number): Float32Array {
  const r = rng.next();
  const n = Math.min(N, Math.max(1, Math.ceil(gammaCosine(r) * N)));
  const idx = Int32Array.from({ length: N }, (_, i) => i);
  const out = new Float32Array(N);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rng.next() * (N - i));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    out[idx[i]!] = 1;
  }
  return out;
}
