// MaskGIT's training loss (src/losses/maskgit.ts) against PyTorch's
// F.cross_entropy(logits[..., :V][mask], target[mask], label_smoothing=0.1) and its gradient
// (fixture: scripts/make_maskgit_fixture.py), and the training masks: ⌈cos(πr/2)·N⌉ positions,
// at least one, distinct, reproducible from the stream.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { maskedTokenLoss, sampleTrainingMask } from '../../src/losses/maskgit.ts';
import { grad } from '../../src/autodiff/grad.ts';
import { Program } from '../../src/runtime/program.ts';
import { Rng } from '../../src/io/rng.ts';
import { relErr } from '../helpers.ts';

const fx = readSafetensorsFile(path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/maskgit/loss_io.safetensors')).tensors;

it("the masked-token loss with label smoothing 0.1 and its gradient match PyTorch's cross_entropy within 1e-5", async () => {
  const L = fx.get('in.logits')!;
  const prog = Program.trace((ins) => {
    const loss = maskedTokenLoss(ins.logits!, ins.target!, ins.mask!, 7, 0.1);
    return { loss, grad: grad(loss, [ins.logits!])[0]! };
  }, { logits: { shape: L.shape, dtype: 'float32' }, target: { shape: [2, 10], dtype: 'int64' }, mask: { shape: [2, 10], dtype: 'float32' } });
  const out = await (await prog.compile()).run({ logits: L, target: fx.get('in.target')!, mask: fx.get('in.mask')! });
  assert.ok(Math.abs((out.loss!.data as Float32Array)[0]! - (fx.get('out.loss')!.data as Float32Array)[0]!) < 1e-5);
  assert.ok(relErr(out.grad!.data as Float32Array, fx.get('out.grad')!.data as Float32Array) < 1e-5);
  // the [MASK] logit (index 7) and unmasked positions get no gradient
  const g = out.grad!.data as Float32Array;
  const m = fx.get('in.mask')!.data as Float32Array;
  for (let p = 0; p < 20; p++) {
    assert.equal(g[p * 8 + 7], 0);
    if (!m[p]) for (let k = 0; k < 8; k++) assert.equal(g[p * 8 + k], 0);
  }
});

it('training masks: ⌈cos(πr/2)·N⌉ distinct positions (at least one), the same for the same stream', () => {
  const counts: number[] = [];
  for (let s = 0; s < 200; s++) {
    const a = sampleTrainingMask(new Rng(`m${s}`), 256);
    const b = sampleTrainingMask(new Rng(`m${s}`), 256);
    assert.deepEqual(a, b);
    const r = new Rng(`m${s}`).next();
    const n = a.reduce((x, v) => x + v, 0);
    assert.equal(n, Math.max(1, Math.ceil(Math.cos((Math.PI / 2) * r) * 256)));
    counts.push(n);
  }
  // r ~ U(0, 1) through the cosine: the mean masked fraction is 2/π ≈ 0.64
  const mean = counts.reduce((x, v) => x + v, 0) / counts.length / 256;
  assert.ok(Math.abs(mean - 2 / Math.PI) < 0.06, String(mean));
});
