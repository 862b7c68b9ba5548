// Weights held once: a VQGAN loaded from safetensors or from a taming Lightning .ckpt runs
// with its weights as ONNX external data read from the checkpoint itself (no JS copy, no copy
// in the model bytes) and gives the same results as the same weights embedded; the fallbacks
// (file changed on disk) stay correct.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadStateDict } from '../../src/io/formats/checkpoint.ts';
import { writeSafetensorsFile, writeSafetensors } from '../../src/io/formats/safetensors.ts';
import { writeTorchCheckpoint, type TorchValue } from '../../src/io/formats/torch_write.ts';
import { loadVQConfig } from '../../src/models/vqgan/config.ts';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { vqShapes } from '../../src/models/vqgan/vqmodel.ts';
import { hashStateDict } from '../../src/nn/hashinit.ts';
import { lowerToModel } from '../../src/onnx/lower.ts';
import { decodeModel, encodeModel } from '../../src/onnx/proto.ts';
import { Program } from '../../src/runtime/program.ts';
import { HostTensor } from '../../src/tensor.ts';
import { add } from '../../src/ops/core.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const cfg = loadVQConfig(path.join(here, '../fixtures/vqgan/small.yaml'));
// tiny.ckpt: written by PyTorch (scripts/make_vqgan_fixtures.py), Lightning-style with loss.*
// keys and Adam states; its model keys hold the hash weights of tiny.yaml.
const TINY_CKPT = path.join(here, '../fixtures/vqgan/tiny.ckpt');
const tinyCfg = loadVQConfig(path.join(here, '../fixtures/vqgan/tiny.yaml'));

function image(size = 16): HostTensor<'float32'> {
  const x = HostTensor.float32([1, 3, size, size]);
  for (let i = 0; i < x.size; i++) x.data[i] = Math.sin(i * 0.37);
  return x;
}

const ourTempDirs = () => fs.readdirSync(os.tmpdir()).filter((d) => d.startsWith('latentkit-')).sort();

test('external data: lowered initializers point at the file region (data_location EXTERNAL)', () => {
  const w = HostTensor.float32([2], [1, 2]);
  const prog = Program.trace((ins) => ({ y: add(ins.x!, ins.w!) }), { x: { shape: [2], dtype: 'float32' }, w: { shape: [2], dtype: 'float32' } });
  const m = lowerToModel(prog.graph, {
    inputs: prog.inputs,
    outputs: prog.outputs,
    bake: new Map([['w', w]]),
    external: () => ({ location: 'w0.safetensors', offset: 96, length: 8 }),
  }).model;
  const back = decodeModel(encodeModel(m)) as unknown as { graph: { initializer: { name: string; rawData?: unknown; dataLocation?: number; externalData?: { key: string; value: string }[] }[] } };
  const init = back.graph.initializer.find((i) => i.name === 'w')!;
  assert.equal(init.dataLocation, 1);
  assert.equal(init.rawData, undefined);
  assert.deepEqual(init.externalData, [
    { key: 'location', value: 'w0.safetensors' },
    { key: 'offset', value: '96' },
    { key: 'length', value: '8' },
  ]);
});

test('a VQGAN from safetensors runs on external data: same output as embedded weights, no JS copy, temp files removed', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-ext-'));
  const sd = hashStateDict(vqShapes(cfg));
  const file = path.join(dir, 'm.safetensors');
  writeSafetensorsFile(file, sd);
  const before = ourTempDirs();
  const inMemory = new VQGAN(cfg, sd);
  const fromFile = VQGAN.load(file, { config: cfg });
  try {
    const x = image();
    const want = await inMemory.reconstruct(x);
    const got = await fromFile.reconstruct(x);
    assert.deepEqual(got.indices.data, want.indices.data);
    let maxErr = 0;
    for (let i = 0; i < got.image.size; i++) maxErr = Math.max(maxErr, Math.abs(got.image.data[i]! - want.image.data[i]!));
    assert.ok(maxErr < 1e-5, `max |Δ| ${maxErr}`);
    const loaded = [...fromFile.weights.values()].filter((t) => t.loaded).length;
    assert.equal(loaded, 0, `${loaded} weights were read into JS`);
    assert.deepEqual(ourTempDirs(), before, 'the temporary model directory is removed');
  } finally {
    await inMemory.release();
    await fromFile.release();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a checkpoint replaced on disk after loading is not read as external data (the loaded weights are used)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-ext-'));
  const sd = hashStateDict(vqShapes(cfg));
  const file = path.join(dir, 'm.safetensors');
  writeSafetensorsFile(file, sd);
  const m = VQGAN.load(file, { config: cfg });
  const ref = new VQGAN(cfg, sd);
  try {
    // same size and layout, other values: a stale read would be silent garbage
    const other = new Map([...sd].map(([k, v]) => [k, HostTensor.float32(v.shape, (v.data as Float32Array).map((a) => a * -0.5))]));
    fs.writeFileSync(file + '.new', writeSafetensors(other));
    fs.renameSync(file + '.new', file);
    const x = image();
    const got = await m.reconstruct(x);
    const want = await ref.reconstruct(x);
    assert.deepEqual(got.indices.data, want.indices.data);
    assert.ok([...m.weights.values()].every((t) => t.loaded), 'weights came from the open file instead');
  } finally {
    await m.release();
    await ref.release();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a VQGAN from a taming Lightning .ckpt runs on external data pointing into the .ckpt: same output as from safetensors, nothing read into JS', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-ext-'));
  const st = path.join(dir, 'tiny.safetensors');
  writeSafetensorsFile(st, hashStateDict(vqShapes(tinyCfg)));
  const before = ourTempDirs();
  const fromCkpt = VQGAN.load(TINY_CKPT, { config: tinyCfg });
  const fromSt = VQGAN.load(st, { config: tinyCfg });
  const all = loadStateDict(TINY_CKPT).stateDict;
  try {
    for (const [k, t] of fromCkpt.weights) {
      assert.ok(t.origin, `${k}: no file origin`);
      assert.equal(t.origin.file, TINY_CKPT);
    }
    const x = image(8);
    const want = await fromSt.reconstruct(x);
    const got = await fromCkpt.reconstruct(x);
    assert.deepEqual(got.indices.data, want.indices.data);
    assert.deepEqual(got.image.data, want.image.data, 'bit-identical to the safetensors path');
    const loaded = [...fromCkpt.weights].filter(([, t]) => t.loaded).map(([k]) => k);
    assert.deepEqual(loaded, [], 'weights were read into JS (embedded, not external)');
    assert.deepEqual(ourTempDirs(), before, 'the temporary model directory is removed');
    // the checkpoint's other keys (loss.*) exist but are lazy too
    assert.ok([...all.keys()].some((k) => k.startsWith('loss.')));
    assert.ok([...all.values()].every((t) => !t.loaded));
  } finally {
    await fromCkpt.release();
    await fromSt.release();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a .ckpt replaced on disk after loading is not read as external data (the opened file is used)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-ext-'));
  const sd = hashStateDict(vqShapes(tinyCfg));
  const file = path.join(dir, 'm.ckpt');
  const top = (w: Map<string, HostTensor>) => new Map<string, TorchValue>([['state_dict', new Map<string, TorchValue>(w)], ['epoch', 1]]);
  writeTorchCheckpoint(file, top(sd));
  const m = VQGAN.load(file, { config: tinyCfg });
  const ref = new VQGAN(tinyCfg, sd);
  try {
    assert.ok([...m.weights.values()].every((t) => t.origin), 'weights carry their file region');
    const other = new Map([...sd].map(([k, v]) => [k, HostTensor.float32(v.shape, (v.data as Float32Array).map((a) => a * -0.5))]));
    writeTorchCheckpoint(file, top(other)); // atomic rename: same size and layout, other values
    const x = image(8);
    const got = await m.reconstruct(x);
    const want = await ref.reconstruct(x);
    assert.deepEqual(got.image.data, want.image.data);
    assert.ok([...m.weights.values()].every((t) => t.loaded), 'weights came from the replaced file instead');
  } finally {
    await m.release();
    await ref.release();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
