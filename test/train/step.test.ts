// One VQGAN training step (generator + discriminator from ONE forward, adaptive λ,
// BatchNorm in train mode, Adam β = (0.5, 0.9)) against PyTorch with taming's formulas
// (fixture: scripts/make_train_fixture.py). Losses and λ within 1e-4 relative; gradients
// within 1e-4 relative; parameters after the Adam step within 1e-5 absolute = 1% of lr (the first Adam
// step is ±lr·sign(g), so this checks every gradient sign; PyTorch float32 vs float64 differ by 6.7e-6).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { parseVQConfig } from '../../src/models/vqgan/config.ts';
import { vqShapes } from '../../src/models/vqgan/vqmodel.ts';
import { discShapes } from '../../src/models/discriminator.ts';
import { vqganLoss, type VQLossConfig } from '../../src/losses/vqperceptual.ts';
import { hashStateDict } from '../../src/nn/hashinit.ts';
import { Trainer } from '../../src/train/step.ts';
import { Program } from '../../src/runtime/program.ts';
import { grad } from '../../src/autodiff/grad.ts';
import { HostTensor } from '../../src/tensor.ts';
import type { StateDict } from '../../src/nn/params.ts';
import { relErr } from '../helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const fx = readSafetensorsFile(path.join(here, '../fixtures/train/step.safetensors'));
const T = (k: string) => {
  const t = fx.tensors.get(k);
  if (!t) throw new Error(`fixture lacks ${k}`);
  return t;
};
const model = parseVQConfig(JSON.parse(fx.metadata.config!));
const loss: VQLossConfig = {
  rec_loss: 'l1',
  codebook_weight: 1,
  perceptual_weight: 0,
  disc_start: 0,
  disc_weight: 0.8,
  disc_factor: 1,
  disc_loss: 'hinge',
  adaptive_delta: 1e-6,
  disc: { in_channels: 3, ndf: 8, n_layers: 2, actnorm: false },
};
const P = 'loss.discriminator.';
const ds = discShapes(loss.disc, P);
const opt = { kind: 'adam' as const, beta1: 0.5, beta2: 0.9, eps: 1e-8 };
const x = T('x');
const f32 = (t: HostTensor) => t.data as Float32Array;
const scalar = (t: HostTensor) => Number(t.data[0]);
const close = (got: number, want: number, what: string, tol = 1e-4) => assert.ok(Math.abs(got - want) <= tol * Math.abs(want) + 1e-7, `${what}: ${got} vs ${want}`);
const maxAbs = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

function init() {
  const ae = hashStateDict(vqShapes(model));
  const disc = hashStateDict(ds.params);
  const buffers: StateDict = new Map(Object.keys(ds.buffers).map((k) => [k, T(`buffer.${k}`)]));
  return { ae, disc, buffers };
}
const stored = (prefix: string) => [...fx.tensors.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));

describe('VQGAN training step vs PyTorch (taming formulas, one forward)', () => {
  it('initial weights are the fixture hash weights', () => {
    const { ae, disc } = init();
    for (const k of stored('param.')) assert.deepEqual(Array.from(f32((ae.get(k) ?? disc.get(k))!)), Array.from(f32(T(`param.${k}`))), k);
  });

  it('losses, λ, logits, indices and gradients (shared discriminator backward)', async () => {
    const { ae, disc, buffers } = init();
    const all = new Map([...ae, ...disc]);
    const lossFn = vqganLoss({ model, loss, withDisc: true });
    const specs = Object.fromEntries([...all, ...buffers].map(([k, v]) => [k, { shape: v.shape, dtype: 'float32' as const }]));
    const prog = Program.trace((ins) => {
      const params = Object.fromEntries([...all.keys()].map((k) => [k, ins[k]!]));
      const bufs = Object.fromEntries([...buffers.keys()].map((k) => [k, ins[k]!]));
      const r = lossFn(params, { x: ins.x!, disc_factor: ins.df! }, bufs);
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
    }, { ...specs, x: { shape: x.shape, dtype: 'float32' }, df: { shape: [], dtype: 'float32' } });
    const out = await (await prog.compile()).run({ ...Object.fromEntries([...all, ...buffers]), x, df: HostTensor.scalar(1) });
    close(scalar(out['m.rec']!), scalar(T('rec')), 'rec');
    close(scalar(out['m.qloss']!), scalar(T('qloss')), 'qloss');
    close(scalar(out['m.g_loss']!), scalar(T('g_loss')), 'g_loss');
    close(scalar(out['m.lambda']!), scalar(T('lambda')), 'lambda');
    close(scalar(out.ae_loss!), scalar(T('ae_loss')), 'ae_loss');
    close(scalar(out.d_loss!), scalar(T('d_loss')), 'd_loss');
    close(scalar(out['m.logits_real']!), scalar(T('logits_real_mean')), 'logits_real');
    close(scalar(out['m.logits_fake']!), scalar(T('logits_fake_mean')), 'logits_fake');
    assert.deepEqual(out['m.indices']!.toArray(), T('indices').toArray());
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
    const tr = new Trainer({ ae: { shapes: vqShapes(model), optimizer: opt }, disc: { shapes: ds.params, optimizer: opt } }, { params: new Map([...ae, ...disc]), buffers, bufferShapes: ds.buffers });
    tr.define('gan', { batch: { x: { shape: x.shape, dtype: 'float32' }, disc_factor: { shape: [], dtype: 'float32' } }, loss: vqganLoss({ model, loss, withDisc: true }) });
    const r = await tr.run('gan', { x, disc_factor: HostTensor.scalar(1) }, { ae: 1e-3, disc: 1e-3 });
    close(scalar(r['loss.ae']!), scalar(T('ae_loss')), 'ae_loss');
    const after = new Map([...tr.params('ae'), ...tr.params('disc')]);
    for (const k of stored('after.')) {
      const d = maxAbs(f32(after.get(k)!), f32(T(`after.${k}`)));
      assert.ok(d < 1e-5, `${k}: max |Δ| ${d.toExponential(2)}`);
    }
    for (const [k, v] of tr.buffers()) assert.ok(relErr(f32(v), f32(T(`after_buffer.${k}`))) < 1e-5, k);
  });

  it('warm-up step (before disc_start): autoencoder only', async () => {
    const { ae, disc, buffers } = init();
    const tr = new Trainer({ ae: { shapes: vqShapes(model), optimizer: opt }, disc: { shapes: ds.params, optimizer: opt } }, { params: new Map([...ae, ...disc]), buffers, bufferShapes: ds.buffers });
    tr.define('warmup', { batch: { x: { shape: x.shape, dtype: 'float32' } }, loss: vqganLoss({ model, loss, withDisc: false }), train: ['ae'] });
    const r = await tr.run('warmup', { x }, { ae: 1e-3 });
    close(scalar(r['loss.ae']!), scalar(T('warmup.ae_loss')), 'warmup ae_loss');
    const after = tr.params('ae');
    for (const k of stored('warmup.after.')) {
      const d = maxAbs(f32(after.get(k)!), f32(T(`warmup.after.${k}`)));
      assert.ok(d < 1e-5, `${k}: max |Δ| ${d.toExponential(2)}`);
    }
  });
});
