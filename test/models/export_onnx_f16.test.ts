// The standalone ONNX exports store weights float16 holds exactly (the bundled models keep
// theirs as F16) as float16 initializers read through a Cast: half the bytes the page
// downloads, the same numbers. Weights float16 cannot hold stay float32. (That the exports
// compute what the library computes, on onnxruntime-web: test/runtime/standalone.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { vqganOnnx } from '../../src/models/export_onnx.ts';
import { decodeModel } from '../../src/onnx/proto.ts';
import { HostTensor } from '../../src/tensor.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('F16-stored weights export as float16 initializers behind Casts (half the bytes); other weights stay float32', async () => {
  const vq = VQGAN.load(path.join(root, 'models/emoji-f4'), { session: { threads: 1 } });
  const e = vqganOnnx(vq, { batch: 1 });
  const dec = decodeModel(e.files.get('decoder.onnx')!);
  const halves = dec.graph.initializer.filter((t) => t.dataType === 10);
  const casts = dec.graph.node.filter((n) => n.opType === 'Cast');
  assert.ok(halves.length > 50, `${halves.length} float16 initializers`);
  assert.equal(casts.length, halves.length);
  assert.ok(casts.every((c) => c.input[0] === `${c.output[0]}.f16` && c.attribute[0]!.i === 1));
  assert.ok(halves.every((t) => t.name.endsWith('.f16')));
  assert.deepEqual(dec.graph.initializer.filter((t) => t.dataType === 1 && vq.weights.has(t.name) && t.rawData!.length >= 64).map((t) => t.name), [], 'no weight left in float32');

  // the same model with weights off the float16 grid (× (1 + 2⁻¹⁸)): exported as float32, twice the size
  const off = new Map([...vq.weights].map(([k, t]) => [k, t.dtype === 'float32' ? HostTensor.float32([...t.shape], Float32Array.from(t.data as Float32Array, (v) => v * (1 + 2 ** -18))) : t]));
  const vq32 = new VQGAN(vq.config, off as never, { session: { threads: 1 } });
  const e32 = vqganOnnx(vq32, { batch: 1 });
  const d32 = decodeModel(e32.files.get('decoder.onnx')!);
  assert.equal(d32.graph.initializer.filter((t) => t.dataType === 10).length, 0);
  assert.equal(d32.graph.node.filter((n) => n.opType === 'Cast').length, 0);
  const size = (x: typeof e) => [...x.files.values()].reduce((a, b) => a + b.length, 0);
  const ratio = size(e) / size(e32);
  assert.ok(ratio > 0.48 && ratio < 0.53, `float16 export is ${(100 * ratio).toFixed(1)} % of the float32 one`);
  await vq.release();
  await vq32.release();
});
