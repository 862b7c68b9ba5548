// LPIPS (VGG16) against taming's PyTorch code: fixtures from scripts/make_lpips_fixture.py
// (float64 reference, hash-derived weights, so only inputs/outputs are stored).
// Tolerance: value and d value.sum()/dy within 1e-4 relative (‖a−b‖/‖b‖). Also: the
// max-pool composite, and loadLpipsWeights on file layouts and on bad files.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { Program } from '../../src/runtime/program.ts';
import { grad } from '../../src/autodiff/grad.ts';
import * as o from '../../src/ops/core.ts';
import { maxPool2d } from '../../src/ops/pool.ts';
import { ParamView, type StateDict } from '../../src/nn/params.ts';
import { hashStateDict, hashTensor } from '../../src/nn/hashinit.ts';
import { loadLpipsWeights, lpips, lpipsLayers, lpipsShapes, lpipsWeightsFrom } from '../../src/models/lpips.ts';
import { HostTensor } from '../../src/tensor.ts';
import { randn, relErr } from '../helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const FX = path.join(here, '../fixtures/lpips');
const f32 = (t: HostTensor) => t.data as Float32Array;

function checkClose(got: HostTensor, want: HostTensor, what: string, tol = 1e-4): number {
  assert.equal(got.size, want.size, `${what}: size`);
  const e = relErr(f32(got), f32(want));
  assert.ok(e < tol, `${what}: relative error ${e.toExponential(2)} ≥ ${tol}`);
  return e;
}

/** The fixture's weights: hash values, VGG weights ×√2 (rounded to float32), biases /8, heads |·|. */
function fixtureWeights(): { vgg: StateDict; lin: StateDict } {
  const s = lpipsShapes();
  const vgg = hashStateDict(s.vgg);
  for (const [k, t] of vgg) {
    const d = f32(t);
    const w = k.endsWith('.weight');
    for (let i = 0; i < d.length; i++) d[i] = w ? d[i]! * Math.SQRT2 : d[i]! / 8;
  }
  const lin = hashStateDict(s.lin);
  for (const t of lin.values()) f32(t).forEach((v, i, a) => (a[i] = Math.abs(v)));
  return { vgg, lin };
}

const specsOf = (sd: StateDict) => Object.fromEntries([...sd].map(([k, v]) => [k, { shape: v.shape, dtype: v.dtype }]));

describe('LPIPS vs taming (PyTorch)', () => {
  it('value, per-layer terms and d lpips.sum()/dy at 64×64, batch 2', async (tc) => {
    const io = readSafetensorsFile(path.join(FX, 'lpips_io.safetensors'));
    const t = io.tensors;
    const { vgg, lin } = fixtureWeights();
    const x = t.get('x')!;
    const prog = Program.trace(
      (ins) => {
        const p = { vgg: new ParamView(ins), lin: new ParamView(ins) };
        const layers = lpipsLayers(p, ins.x!, ins.y!);
        const value = layers.reduce((a, b) => o.add(a, b));
        const [gy] = grad(o.sum(value), [ins.y!]);
        return { value, layers: o.concat(layers.map((l) => o.reshape(l, [1, -1])), 0), grad_y: gy! };
      },
      { ...specsOf(vgg), ...specsOf(lin), x: { shape: x.shape, dtype: 'float32' }, y: { shape: x.shape, dtype: 'float32' } },
    );
    const r = await (await prog.compile()).run({ ...Object.fromEntries(vgg), ...Object.fromEntries(lin), x, y: t.get('y')! });
    assert.deepEqual([...r.value!.shape], [2, 1, 1, 1]);
    const ev = checkClose(r.value!, t.get('value')!, 'value');
    checkClose(r.layers!, t.get('layers')!, 'per-layer terms');
    const eg = checkClose(r.grad_y!, t.get('grad_y')!, 'grad_y');
    tc.diagnostic(`lpips parity: value ${ev.toExponential(2)}, grad_y ${eg.toExponential(2)} (torch float32 itself: ${io.metadata.torch_float32_relerr_value}, ${io.metadata.torch_float32_relerr_grad_y})`);
  });

  it('lpips() is the sum of the layer terms and 0 for identical images', async () => {
    const { vgg, lin } = fixtureWeights();
    const x = randn([1, 3, 16, 16], 7, 0.5);
    const prog = Program.trace(
      (ins) => {
        const p = { vgg: new ParamView(ins), lin: new ParamView(ins) };
        return { same: lpips(p, ins.x!, ins.x!), diff: lpips(p, ins.x!, o.mul(ins.x!, 0.5)) };
      },
      { ...specsOf(vgg), ...specsOf(lin), x: { shape: x.shape, dtype: 'float32' } },
    );
    const r = await (await prog.compile()).run({ ...Object.fromEntries(vgg), ...Object.fromEntries(lin), x });
    assert.deepEqual([...r.same!.shape], [1, 1, 1, 1]);
    assert.equal(r.same!.data[0], 0);
    assert.ok((r.diff!.data[0] as number) > 0);
  });
});

describe('maxPool2d composite', () => {
  it('matches a direct loop (floor mode) and routes the gradient to each window maximum', async () => {
    const [n, c, h, w] = [2, 3, 5, 7];
    const x = randn([n, c, h, w], 3);
    const g = randn([n, c, 2, 3], 4);
    const prog = Program.trace(
      (ins) => {
        const y = maxPool2d(ins.x!, 2);
        const [gx] = grad(y, [ins.x!], [ins.g!]);
        return { y, gx: gx! };
      },
      { x: { shape: x.shape, dtype: 'float32' }, g: { shape: g.shape, dtype: 'float32' } },
    );
    const r = await (await prog.compile()).run({ x, g });
    assert.deepEqual([...r.y!.shape], [n, c, 2, 3]);
    const xd = f32(x);
    const wantGx = new Float32Array(xd.length);
    const at = (b: number, ch: number, i: number, j: number) => ((b * c + ch) * h + i) * w + j;
    for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) {
      let best = -1;
      for (const [di, dj] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) {
        const k = at(b, ch, 2 * i + di, 2 * j + dj);
        if (best < 0 || xd[k]! > xd[best]!) best = k;
      }
      const oi = ((b * c + ch) * 2 + i) * 3 + j;
      assert.equal(r.y!.data[oi], xd[best]);
      wantGx[best] = f32(g)[oi]!;
    }
    assert.deepEqual(Array.from(f32(r.gx!), (v) => v + 0), Array.from(wantGx)); // (+0: no -0)
  });
});

describe('loadLpipsWeights', () => {
  let dir = '';
  const shapes = lpipsShapes();
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lpips-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const sameValues = (a: StateDict, keys: string[]) => {
    for (const k of keys) assert.deepEqual(f32(a.get(k)!), f32(hashTensor(k, a.get(k)!.shape)), k);
  };

  it('torchvision vgg16 state dict (classifier ignored) + the LPIPS vgg.pth layout', () => {
    const vgg = hashStateDict(shapes.vgg);
    const file: StateDict = new Map([...vgg, ['classifier.0.weight', HostTensor.float32([4, 2])], ['classifier.0.bias', HostTensor.float32([4])]]);
    const vggPath = path.join(dir, 'vgg16.safetensors');
    writeSafetensorsFile(vggPath, file);
    const w = loadLpipsWeights(vggPath, path.join(FX, 'lin.pth'));
    assert.deepEqual([...w.vgg.keys()], Object.keys(shapes.vgg));
    assert.deepEqual([...w.lin.keys()], ['lin0.model.1.weight', 'lin1.model.1.weight', 'lin2.model.1.weight', 'lin3.model.1.weight', 'lin4.model.1.weight']);
    sameValues(w.vgg, ['features.0.weight', 'features.0.bias', 'features.28.weight', 'features.28.bias']);
    sameValues(w.lin, [...w.lin.keys()]);
  });

  it('one file holding a whole LPIPS module under a prefix (taming checkpoint layout)', () => {
    const vgg = hashStateDict(shapes.vgg);
    const file: StateDict = new Map();
    const sliceOf = (i: number) => [4, 9, 16, 23, 30].findIndex((e) => i < e) + 1;
    for (const [k, v] of vgg) {
      const i = Number(k.split('.')[1]);
      file.set(`loss.perceptual_loss.net.slice${sliceOf(i)}.${k.slice('features.'.length)}`, v);
    }
    for (const [k, s] of Object.entries(shapes.lin)) file.set(`loss.perceptual_loss.${k}`, hashTensor(k, s));
    // lpips' LPIPS module also lists its heads as lins.{k}: the same tensors
    for (const [k, s] of Object.entries(shapes.lin)) file.set(`loss.perceptual_loss.lins.${k.slice(3)}`, hashTensor(k, s));
    file.set('loss.perceptual_loss.scaling_layer.shift', HostTensor.float32([1, 3, 1, 1]));
    file.set('encoder.conv_in.weight', HostTensor.float32([8, 3, 3, 3]));
    file.set('loss.discriminator.main.0.weight', HostTensor.float32([8, 3, 4, 4]));
    const p = path.join(dir, 'taming.safetensors');
    writeSafetensorsFile(p, file);
    const w = loadLpipsWeights(p);
    sameValues(w.vgg, ['features.5.weight', 'features.24.bias']);
    sameValues(w.lin, [...w.lin.keys()]);
    assert.ok(w.notes.some((n) => n.includes("'loss.perceptual_loss.net.'") && n.includes('renamed')), w.notes.join('; '));
  });

  it('names wrong shapes, missing and unexpected keys, and files with no LPIPS weights', () => {
    const vgg = hashStateDict(shapes.vgg);
    const lin = hashStateDict(shapes.lin);
    // a safetensors file with the right keys but wrong shapes
    const bad: StateDict = new Map([...lin].map(([k]) => [k, HostTensor.float32(k === 'lin2.model.1.weight' ? [1, 128, 1, 1] : shapes.lin[k]!)]));
    const badPath = path.join(dir, 'bad_lin.safetensors');
    writeSafetensorsFile(badPath, bad);
    const smallVgg = path.join(dir, 'small_vgg.safetensors');
    writeSafetensorsFile(smallVgg, new Map(Object.keys(shapes.vgg).map((k) => [k, HostTensor.float32(k.endsWith('bias') ? [8] : [8, 3, 3, 3])])));
    assert.throws(
      () => loadLpipsWeights(smallVgg, badPath),
      (e: Error) => /small_vgg\.safetensors \(VGG16 features\): state dict does not match the model: wrong shapes \(26\): 'features\.0\.weight': expected \[64, 3, 3, 3\], got \[8, 3, 3, 3\]/.test(e.message),
    );
    assert.throws(
      () => lpipsWeightsFrom(vgg, bad, { lin: badPath }),
      /bad_lin\.safetensors \(LPIPS linear heads\): state dict does not match the model: wrong shapes \(1\): 'lin2\.model\.1\.weight': expected \[1, 256, 1, 1\], got \[1, 128, 1, 1\]/,
    );
    const noConv = new Map([...vgg].filter(([k]) => k !== 'features.26.weight'));
    assert.throws(() => lpipsWeightsFrom(noConv, lin), /missing keys \(1\): features\.26\.weight/);
    // vgg16_bn numbers its layers differently: BatchNorm keys are unexpected, convs missing
    const bn = new Map([...vgg, ['features.1.running_mean', HostTensor.float32([64])]]);
    assert.throws(() => lpipsWeightsFrom(bn, lin), /unexpected keys \(1\): features\.1\.running_mean/);
    assert.throws(() => lpipsWeightsFrom(lin, lin, { vgg: 'heads.pth' }), /heads\.pth: no VGG16 features weights found \(expected keys like 'features\.0\.weight'; the file has 5 keys: lin0\.model\.1\.weight/);
    assert.throws(() => lpipsWeightsFrom(vgg, vgg, { lin: 'vgg16.pth' }), /vgg16\.pth: no LPIPS linear heads weights found/);
    const twice = new Map([...lin, ...[...lin].map(([k, v]) => [`ema.${k}`, v] as const)]);
    assert.throws(() => lpipsWeightsFrom(vgg, twice), /LPIPS linear heads weights found under several prefixes \('\(none\)', 'ema\.'\)/);
    assert.throws(() => loadLpipsWeights(path.join(dir, 'nope.pth')), /nope\.pth: cannot read checkpoint/);
  });
});
