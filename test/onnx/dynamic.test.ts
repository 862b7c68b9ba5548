// Shape-polymorphic export (src/onnx/dynamic.ts): a graph traced at three sizes becomes one
// ONNX model with free batch / height / width. Checked against PyTorch on a 16-channel VAE
// without quant convs (SD3 / FLUX layout, bfloat16 file) on both ONNX Runtime builds, and the
// refusals: a float constant that depends on the size, a shape entry that is not a·B·H·W.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { readSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl/load.ts';
import { klOnnx } from '../../src/models/export_onnx.ts';
import { makeDynamic } from '../../src/onnx/dynamic.ts';
import { lowerToModel } from '../../src/onnx/lower.ts';
import { encodeModel } from '../../src/onnx/proto.ts';
import { Program } from '../../src/runtime/program.ts';
import * as o from '../../src/ops/core.ts';
import { relErr } from '../helpers.ts';

const FX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/kl');

for (const [name, ort] of [['onnxruntime-node', ortNode], ['wasm', ortWeb]] as const) {
  it(`a 16-channel VAE without quant convs exports with free sizes and matches PyTorch on ${name}`, async () => {
    if (name === 'wasm') ortWeb.env.wasm.numThreads = 1;
    const m = AutoencoderKL.load(path.join(FX, 'flux16.safetensors'), { config: path.join(FX, 'flux16.yaml') });
    const e = klOnnx(m);
    const opts = { executionProviders: [name === 'wasm' ? 'wasm' : 'cpu'] };
    const enc = await ort.InferenceSession.create(e.files.get('encoder.onnx')!, opts);
    const dec = await ort.InferenceSession.create(e.files.get('decoder.onnx')!, opts);
    const io = readSafetensorsFile(path.join(FX, 'io.safetensors')).tensors;
    const x = io.get('x')!; // [1, 3, 16, 12]
    const lat = (await enc.run({ sample: new ort.Tensor('float32', x.data as Float32Array, [...x.shape]) })).latent_sample!;
    assert.deepEqual(lat.dims, [1, 16, 8, 6]);
    assert.ok(relErr(lat.data as Float32Array, io.get('flux16.mean')!.data as Float32Array) < 1e-4);
    const rec = (await dec.run({ latent_sample: lat })).sample!;
    assert.ok(relErr(rec.data as Float32Array, io.get('flux16.rec')!.data as Float32Array) < 1e-4);
    await m.release();
  });
}

const lower = (p: Program) => lowerToModel(p.graph, { inputs: p.inputs, outputs: p.outputs }).model;
const traceAt = (fn: (x: ReturnType<typeof o.reshape>) => ReturnType<typeof o.reshape>, [b, h, w]: number[]) =>
  lower(Program.trace((ins) => ({ y: fn(ins.x!) }), { x: { shape: [b!, 2, h!, w!], dtype: 'float32' } }));
const DIMS = [[2, 3, 5], [3, 7, 11], [5, 13, 4]];
const axes = { input: 'x', axes: { 0: 'batch', 2: 'height', 3: 'width' } };

it('a reshape through H·W and an upsampling expand run at sizes never traced', async () => {
  const fn = (x: ReturnType<typeof o.reshape>) => {
    const [b, c, h, w] = x.shape as number[];
    const flat = o.reshape(x, [b!, c!, h! * w!]); // [B, C, H·W]
    const back = o.reshape(flat, [b!, c!, h!, 1, w!, 1]);
    return o.reshape(o.expand(back, [b!, c!, h!, 2, w!, 2]), [b!, c!, 2 * h!, 2 * w!]);
  };
  const model = makeDynamic(DIMS.map((d) => ({ model: traceAt(fn, d), dims: d })), axes);
  assert.deepEqual(model.graph.output[0]!.type.tensorType.shape.dim, [{ dimParam: 'batch' }, { dimValue: 2 }, { dimParam: 'height*2' }, { dimParam: 'width*2' }]);
  const s = await ortNode.InferenceSession.create(encodeModel(model));
  const x = Float32Array.from({ length: 1 * 2 * 4 * 6 }, (_, i) => i);
  const y = (await s.run({ x: new ortNode.Tensor('float32', x, [1, 2, 4, 6]) })).y!;
  assert.deepEqual(y.dims, [1, 2, 8, 12]);
  const d = y.data as Float32Array;
  for (let c = 0; c < 2; c++) for (let i = 0; i < 8; i++) for (let j = 0; j < 12; j++) assert.equal(d[(c * 8 + i) * 12 + j], x[(c * 4 + (i >> 1)) * 6 + (j >> 1)]);
});

it('refuses what is not polymorphic: a size-dependent float constant, a shape entry that is not a monomial', () => {
  const mean = (x: ReturnType<typeof o.reshape>) => o.mul(o.sum(x, [2, 3], true), 1 / (x.shape[2]! * x.shape[3]!));
  assert.throws(() => makeDynamic(DIMS.map((d) => ({ model: traceAt(mean, d), dims: d })), axes), /free batch, height, width: constant input 0 of constant#1.0 \(Identity\) differs between traces — the model is not shape-polymorphic in them/);
  const padded = (x: ReturnType<typeof o.reshape>) => {
    const [b, c, h, w] = x.shape as number[];
    return o.reshape(o.pad(x, [0, 0, 1, 1, 0, 0, 1, 1]), [b!, c! * (h! + 2) * (w! + 2)]);
  };
  assert.throws(() => makeDynamic(DIMS.map((d) => ({ model: traceAt(padded, d), dims: d })), axes), /entry 1 of Reshape .* takes the values 70, 234, 180, not a monomial of batch, height, width/);
  assert.throws(() => makeDynamic(DIMS.slice(0, 2).map((d) => ({ model: traceAt(padded, d), dims: d })), axes), /three traces are needed/);
});
