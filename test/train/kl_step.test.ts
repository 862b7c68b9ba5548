// One KL-autoencoder training step (generator + discriminator from ONE forward, reparameterised
// sample with the fixture's eps, adaptive weight, BatchNorm in train mode, Adam β = (0.5, 0.9))
// against PyTorch with latent-diffusion's LPIPSWithDiscriminator formulas (fixture:
// scripts/make_kl_train_fixture.py; the perceptual term is a per-image stand-in for LPIPS).
// Losses and d_weight within 1e-4 relative; gradients within 1e-4 relative; parameters after
// the Adam step within 1e-5 absolute = 1% of lr (the first Adam step is ±lr·sign(g)).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { parseKLConfig } from '../../src/models/autoencoder_kl/config.ts';
import { klShapes } from '../../src/models/autoencoder_kl/autoencoder.ts';
import { discShapes } from '../../src/models/discriminator.ts';
import { klLoss, type KLLossConfig } from '../../src/losses/contperceptual.ts';
import { hashStateDict } from '../../src/nn/hashinit.ts';
import { Trainer } from '../../src/train/step.ts';
import { Program } from '../../src/runtime/program.ts';
import { grad } from '../../src/autodiff/grad.ts';
import * as o from '../../src/ops/core.ts';
import type { Tensor } from '../../src/graph/ir.ts';
import { HostTensor } from '../../src/tensor.ts';
import type { StateDict } from '../../src/nn/params.ts';
import { relErr } from '../helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const fx = readSafetensorsFile(path.join(here, '../fixtures/train/kl_step.safetensors'));
const T = (k: string) => {
  const t = fx.tensors.get(k);
  if (!t) throw new Error(`fixture lacks ${k}`);
  return t;
};
const model = parseKLConfig(JSON.parse(fx.metadata.config!), 'kl_step fixture');
const L = JSON.parse(fx.metadata.loss!);
const loss: KLLossConfig = {
  kl_weight: L.kl_weight,
  logvar_init: L.logvar_init,
  perceptual_weight: L.perceptual_weight,
  disc_start: 0,
  disc_weight: L.disc_weight,
  disc_factor: 1,
  disc_loss: 'hinge',
  adaptive_delta: L.adaptive_delta,
  disc: { in_channels: 3, ndf: 8, n_layers: 2, actnorm: false },
};
// the fixture's stand-in for LPIPS: mean over C,H,W of (x − y)² per image, [B,1,1,1]
const perceptual = (a: Tensor, b: Tensor) => o.mean(o.square(o.sub(a, b)), [1, 2, 3], true);
const P = 'loss.discriminator.';
const ds = discShapes(loss.disc, P);
const opt = { kind: 'adam' as const, beta1: 0.5, beta2: 0.9, eps: 1e-8 };
const x = T('x');
const eps = T('eps');
const f32 = (t: HostTensor) => t.data as Float32Array;
const scalar = (t: HostTensor) => Number(t.data[0]);
const close = (got: number, want: number, what: string, tol = 1e-4) => assert.ok(Math.abs(got - want) <= tol * Math.abs(want) + 1e-7, `${what}: ${got} vs ${want}`);
const maxAbs = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

function init() {
  const ae = hashStateDict(klShapes(model));
  const disc = hashStateDict(ds.params);
  const buffers: StateDict = new Map(Object.keys(ds.buffers).map((k) => [k, T(`buffer.${k}`)]));
  return { ae, disc, buffers };
}
const stored = (prefix: string) => [...fx.tensors.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
const batchSpec = { x: { shape: x.shape, dtype: 'float32' as const }, eps: { shape: eps.shape, dtype: 'float32' as const } };

describe('KL autoencoder training step vs PyTorch (ldm LPIPSWithDiscriminator, one forward)', () => {
  it('the model keys are ldm AutoencoderKL keys; initial D weights are the fixture hash weights', () => {
    const { ae, disc } = init();
    for (const k of stored('after.').filter((k) => !k.startsWith(P))) assert.ok(ae.has(k), k);
    for (const k of stored('param.')) assert.deepEqual(Array.from(f32(disc.get(k)!)), Array.from(f32(T(`param.${k}`))), k);
  });

  it('nll, kl, g_loss, d_weight, disc_loss, logits and gradients (shared discriminator backward)', async () => {
    const { ae, disc, buffers } = init();
    const all = new Map([...ae, ...disc]);
    const lossFn = klLoss({ model, loss, withDisc: true, perceptual });
    const specs = Object.fromEntries([...all, ...buffers].map(([k, v]) => [k, { shape: v.shape, dtype: 'float32' as const }]));
    const prog = Program.trace((ins) => {
      const params = Object.fromEntries([...all.keys()].map((k) => [k, ins[k]!]));
      const bufs = Object.fromEntries([...buffers.keys()].map((k) => [k, ins[k]!]));
      const r = lossFn(params, { x: ins.x!, eps: ins.eps!, disc_factor: ins.df! }, bufs);
      const aeKeys = [...ae.keys()];
      const dKeys = [...disc.keys()];
      const bw = r.backward!.ae!;
      const gAe = grad(bw.outputs, aeKeys.map((k) => params[k]!), bw.seeds);
      const gD = grad(r.losses.disc!, dKeys.map((k) => params[k]!));
      return {
        ae_loss: r.losses.ae!,
        d_loss: r.losses.disc!,
        ...Object.fromEntries(Object.entries(r.metrics!).map(([k, v]) => [`m.${k}`, v])),
        ...Object.fromEntries(Object.entries(r.buffers!).map(([k, v]) => [`buf.${k}`, v])),
        ...Object.fromEntries(aeKeys.map((k, i) => [`grad.${k}`, gAe[i]!])),
        ...Object.fromEntries(dKeys.map((k, i) => [`grad.${k}`, gD[i]!])),
      };
    }, { ...specs, ...batchSpec, df: { shape: [], dtype: 'float32' } });
    const out = await (await prog.compile()).run({ ...Object.fromEntries([...all, ...buffers]), x, eps, df: HostTensor.scalar(1) });
    for (const k of ['nll', 'kl', 'rec_loss', 'g_loss', 'd_weight', 'disc_loss']) close(scalar(out[`m.${k}`]!), scalar(T(k)), k);
    // tighter on d_weight so that ldm's δ = 1e-4 is checked (δ = 0 would move it by 6e-5 here)
    close(scalar(out['m.d_weight']!), scalar(T('d_weight')), 'd_weight (1e-5)', 1e-5);
    close(scalar(out.ae_loss!), scalar(T('loss')), 'loss');
    close(scalar(out.d_loss!), scalar(T('disc_loss')), 'd_loss');
    close(scalar(out['m.logits_real']!), scalar(T('logits_real_mean')), 'logits_real');
    close(scalar(out['m.logits_fake']!), scalar(T('logits_fake_mean')), 'logits_fake');
    for (const k of stored('grad.')) {
      const e = relErr(f32(out[`grad.${k}`]!), f32(T(`grad.${k}`)));
      assert.ok(e < 1e-4, `grad ${k}: relative error ${e.toExponential(2)}`);
    }
    for (const k of Object.keys(ds.buffers)) {
      const e = relErr(f32(out[`buf.${k}`]!), f32(T(`after_buffer.${k}`)));
      assert.ok(e < 1e-5, `running stat ${k}: ${e.toExponential(2)}`);
    }
  });

  it('one Adam step of both optimizers (Trainer, fused program)', async () => {
    const { ae, disc, buffers } = init();
    const tr = new Trainer({ ae: { shapes: klShapes(model), optimizer: opt }, disc: { shapes: ds.params, optimizer: opt } }, { params: new Map([...ae, ...disc]), buffers, bufferShapes: ds.buffers });
    tr.define('gan', { batch: { ...batchSpec, disc_factor: { shape: [], dtype: 'float32' } }, loss: klLoss({ model, loss, withDisc: true, perceptual }) });
    const r = await tr.run('gan', { x, eps, disc_factor: HostTensor.scalar(1) }, { ae: 1e-3, disc: 1e-3 });
    close(scalar(r['loss.ae']!), scalar(T('loss')), 'loss');
    close(scalar(r['loss.disc']!), scalar(T('disc_loss')), 'disc_loss');
    close(scalar(r['metric.d_weight']!), scalar(T('d_weight')), 'd_weight');
    const after = new Map([...tr.params('ae'), ...tr.params('disc')]);
    for (const k of stored('after.')) {
      const d = maxAbs(f32(after.get(k)!), f32(T(`after.${k}`)));
      assert.ok(d < 1e-5, `${k}: max |Δ| ${d.toExponential(2)}`);
    }
    for (const [k, v] of tr.buffers()) assert.ok(relErr(f32(v), f32(T(`after_buffer.${k}`))) < 1e-5, k);
  });

  it('warm-up step (before disc_start): nll + kl_weight·kl, autoencoder only', async () => {
    const { ae, disc, buffers } = init();
    const tr = new Trainer({ ae: { shapes: klShapes(model), optimizer: opt }, disc: { shapes: ds.params, optimizer: opt } }, { params: new Map([...ae, ...disc]), buffers, bufferShapes: ds.buffers });
    tr.define('warmup', { batch: batchSpec, loss: klLoss({ model, loss, withDisc: false, perceptual }), train: ['ae'] });
    const r = await tr.run('warmup', { x, eps }, { ae: 1e-3 });
    close(scalar(r['loss.ae']!), scalar(T('warmup.loss')), 'warmup loss');
    close(scalar(r['metric.nll']!), scalar(T('warmup.nll')), 'warmup nll');
    close(scalar(r['metric.kl']!), scalar(T('warmup.kl')), 'warmup kl');
    const after = tr.params('ae');
    for (const k of stored('warmup.after.')) {
      const d = maxAbs(f32(after.get(k)!), f32(T(`warmup.after.${k}`)));
      assert.ok(d < 1e-5, `${k}: max |Δ| ${d.toExponential(2)}`);
    }
  });

  it('a wrongly shaped eps is a one-line error', () => {
    const lossFn = klLoss({ model, loss, withDisc: false });
    const { ae } = init();
    assert.throws(
      () =>
        Program.trace(
          (ins) => klLossOut(lossFn, ae, ins),
          { ...Object.fromEntries([...ae].map(([k, v]) => [k, { shape: v.shape, dtype: 'float32' as const }])), x: batchSpec.x, eps: { shape: [4, 4, 4, 4], dtype: 'float32' } },
        ),
      /eps has shape \[4, 4, 4, 4\], expected \[4, 4, 8, 8\]/,
    );
  });
});

function klLossOut(lossFn: ReturnType<typeof klLoss>, ae: StateDict, ins: Record<string, Tensor>) {
  const r = lossFn(Object.fromEntries([...ae.keys()].map((k) => [k, ins[k]!])), { x: ins.x!, eps: ins.eps! }, {});
  return { loss: r.losses.ae! };
}
