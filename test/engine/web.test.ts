// The same traced graphs run unchanged on onnxruntime-web (WASM), the browser build's
// runtime: forward + backward of a conv net agrees with onnxruntime-node.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as ortWeb from 'onnxruntime-web';
import { setBackend } from '../../src/runtime/backend.ts';
import { Program } from '../../src/runtime/program.ts';
import { HostTensor } from '../../src/tensor.ts';
import * as o from '../../src/ops/core.ts';
import * as nn from '../../src/ops/nn.ts';
import { grad } from '../../src/autodiff/grad.ts';
import { randn, relErr } from '../helpers.ts';

function program() {
  return Program.trace(({ x, w, g, b }) => {
    const h = nn.silu(nn.groupNorm(o.conv2d(x!, w!, null, { stride: 2, padding: [0, 0, 1, 1] }), 2, g!, b!, 1e-6));
    const y = o.conv2d(nn.upsampleNearest2x(h), w!, null, { padding: 1, groups: 1 });
    const l = o.mean(o.square(y));
    const [gx, gw, gg] = grad(l, [x!, w!, g!]);
    return { l, gx: gx!, gw: gw!, gg: gg! };
  }, { x: { shape: [2, 4, 8, 8], dtype: 'float32' }, w: { shape: [4, 4, 3, 3], dtype: 'float32' }, g: { shape: [4], dtype: 'float32' }, b: { shape: [4], dtype: 'float32' } });
}

it('onnxruntime-web (WASM) runs the forward+backward graph and matches onnxruntime-node', async () => {
  const feeds = { x: randn([2, 4, 8, 8], 1), w: randn([4, 4, 3, 3], 2, 0.3), g: randn([4], 3), b: randn([4], 4) };
  const native = await (await program().compile({ threads: 1 })).run(feeds);
  ortWeb.env.wasm.numThreads = 1;
  setBackend(ortWeb as never, ['wasm']);
  const web = await (await program().compile({ threads: 1 })).run(feeds);
  for (const k of ['l', 'gx', 'gw', 'gg']) {
    const e = relErr(web[k]!.data as Float32Array, native[k]!.data as Float32Array);
    assert.ok(e < 1e-5, `${k}: relative difference ${e}`);
  }
});

it('preallocated outputs are filled on onnxruntime-web (WASM) as on onnxruntime-node', async () => {
  // onnxruntime-web accepts preallocated CPU output tensors and returns them unwritten;
  // CompiledProgram.run must still fill the caller's buffers (the KV decoder relies on it).
  const prog = () => Program.trace(({ x }) => ({ y: o.mul(x!, x!) }), { x: { shape: [4], dtype: 'float32' } });
  const x = HostTensor.float32([4], new Float32Array([1, 2, 3, 4]));
  ortWeb.env.wasm.numThreads = 1;
  setBackend(ortWeb as never, ['wasm']);
  const into = { y: HostTensor.float32([4]) };
  const r = await (await prog().compile({ threads: 1 })).run({ x }, into);
  assert.equal(r.y, into.y);
  assert.deepEqual(Array.from(into.y.data), [1, 4, 9, 16]);
});
