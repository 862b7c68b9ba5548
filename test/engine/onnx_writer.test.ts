// The streaming protobuf writer must produce models protobufjs decodes to the same object
// as its own encoding, and ONNX Runtime must accept them (covered by every other test).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Program } from '../../src/runtime/program.ts';
import * as o from '../../src/ops/core.ts';
import { grad } from '../../src/autodiff/grad.ts';
import { decodeModel, encodeModel, encodeModelReference } from '../../src/onnx/proto.ts';
import { lowerToModel } from '../../src/onnx/lower.ts';
import { HostTensor } from '../../src/tensor.ts';

it('streaming writer ≡ protobufjs encoding (ints, negative int64, floats, strings, tensors, metadata)', () => {
  const p = Program.trace(({ x, w }) => {
    const y = o.leakyRelu(o.conv2d(x!, w!, null, { stride: 2, padding: [0, 0, 1, 1] }), 0.2);
    const flipped = o.slice(y, [-1], [-1000], [3], [-1]);
    const [gw] = grad(o.sum(o.mul(flipped, 0.5)), [w!]);
    return { y: flipped, gw: gw! };
  }, { x: { shape: [1, 2, 6, 6], dtype: 'float32' }, w: { shape: [3, 2, 3, 3], dtype: 'float32' } });
  const bake = new Map([['w', HostTensor.float32([3, 2, 3, 3], Array.from({ length: 54 }, (_, i) => i / 7 - 3))]]);
  const { model } = lowerToModel(p.graph, { inputs: p.inputs, outputs: p.outputs, metadata: { config: '{"a": 1}' }, bake });
  const ours = decodeModel(encodeModel(model));
  const ref = decodeModel(encodeModelReference(model));
  assert.deepEqual(ours, ref);
  assert.ok(ours.graph.node.some((n) => n.opType === 'Slice'));
});
