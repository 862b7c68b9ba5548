// taming's Net2NetTransformer training objective over precomputed code sequences:
// logits of GPT(cat(c, a)[:, :-1])[:, len(c)−1:] — output i predicts image code z_i from the
// condition c and the (pkeep-corrupted) codes a_<i — scored by mean cross-entropy against
// the clean codes z. Condition and image tokens share the GPT's one embedding table.
import type { Tensor } from '../../graph/ir.ts';
import * as o from '../../ops/core.ts';
import type { ParamView } from '../../nn/params.ts';
import type { GPTConfig } from '../mingpt/config.ts';
import { crossEntropy, gpt, type GPTDropout } from '../mingpt/gpt.ts';

/** c [B, Lc], a [B, Lz] (int64) → logits [B, Lz, vocab] for the image positions. */
export function net2netLogits(p: ParamView, cfg: GPTConfig, c: Tensor, a: Tensor, drop?: GPTDropout): Tensor {
  const lc = c.shape[1]!;
  const lz = a.shape[1]!;
  if (lc < 1) throw new Error('Net2Net: the condition needs at least one token (an SOS token when unconditional)');
  const cz = o.concat([c, a], 1); // [B, Lc+Lz]
  const input = o.narrow(cz, 1, 0, lc + lz - 1); // drop the last code: nothing predicts past it
  const { logits } = gpt(p, cfg, input, { drop });
  return o.narrow(logits, 1, lc - 1, lc + lz - 1);
}

/** Mean cross-entropy (nats per image token) of the Net2Net logits against clean codes z. */
export function net2netLoss(p: ParamView, cfg: GPTConfig, c: Tensor, a: Tensor, z: Tensor, drop?: GPTDropout): { loss: Tensor; logits: Tensor } {
  const logits = net2netLogits(p, cfg, c, a, drop);
  return { loss: crossEntropy(logits, z), logits };
}

/**
 * MaskGIT's forward: the condition c [B, Lc] then the image codes a [B, Lz] (with [MASK] where
 * unknown), every position visible to every other (n_unmasked = block_size) → logits
 * [B, Lz, vocab] at the image positions: position Lc + i scores code i itself (not the next one).
 */
export function maskgitLogits(p: ParamView, cfg: GPTConfig, c: Tensor, a: Tensor, drop?: GPTDropout, condMode: 'prefix' | 'add' = 'prefix'): Tensor {
  const lc = c.shape[1]!;
  const lz = a.shape[1]!;
  if (condMode === 'add') {
    // the condition grid aligned with the image grid: cond_emb[c_i] added at image position i
    if (cfg.n_unmasked < lz) throw new Error(`MaskGIT needs a bidirectional transformer: n_unmasked ${cfg.n_unmasked} < ${lz} positions`);
    return gpt(p, cfg, a, { drop, condIdx: c }).logits;
  }
  if (cfg.n_unmasked < lc + lz) throw new Error(`MaskGIT needs a bidirectional transformer: n_unmasked ${cfg.n_unmasked} < ${lc + lz} positions`);
  const { logits } = gpt(p, cfg, o.concat([c, a], 1), { drop });
  return o.narrow(logits, 1, lc, lc + lz);
}
