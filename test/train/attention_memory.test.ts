// Training refuses sizes whose mid-block attention would not fit in memory, before loading
// anything, and says what fits (found when an f2 VAE fine-tuned at 256² was OOM-killed at 22 GB).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { checkAttentionMemory } from '../../src/train/config.ts';

const GB = 2 ** 30;

it('an f2 model at 256² (128×128 latents) is refused on a 24 GB machine, with the size that fits; SD kl-f8 at 256² and the emoji presets pass', () => {
  assert.throws(
    () => checkAttentionMemory({ ch_mult: [1, 2] }, 256, 4, 24 * GB, 'fine-tuning tiny'),
    /^Error: fine-tuning tiny: at 256×256 the mid-block attention runs over 128×128 = 16384 latent positions \(f = 2\); one training step at batch 4 would hold about 24\.0 GB of attention scores, and this machine has 24\.0 GB\. Train at 224×224 or less/,
  );
  checkAttentionMemory({ ch_mult: [1, 2] }, 224, 4, 24 * GB, 'x'); // the size it names fits
  checkAttentionMemory({ ch_mult: [1, 2, 4, 4] }, 256, 4, 24 * GB, 'x'); // SD's kl-f8: 32×32 latents
  checkAttentionMemory({ ch_mult: [1, 2, 4] }, 64, 16, 24 * GB, 'x'); // the emoji presets
});
