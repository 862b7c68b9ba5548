// The two weight-gradient lowerings of conv2d (im2col for small layers, per-tap products for
// large ones; src/prims/conv.ts) agree with each other on strides, pads, dilation and groups.
// (The spec rows check the default choice against finite differences.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as o from '../../src/ops/core.ts';
import { grad } from '../../src/autodiff/grad.ts';
import { Program } from '../../src/runtime/program.ts';
import { convLowering } from '../../src/prims/conv.ts';
import { HostTensor } from '../../src/tensor.ts';

const cases = [
  { name: '3×3 pad 1', x: [2, 3, 6, 5], w: [4, 3, 3, 3], opts: { padding: 1 } },
  { name: 'stride 2, pads (0,0,1,1)', x: [2, 3, 8, 8], w: [4, 3, 3, 3], opts: { stride: 2, padding: [0, 0, 1, 1] } },
  { name: 'dilation 2, groups 2', x: [1, 4, 9, 9], w: [6, 2, 3, 3], opts: { dilation: 2, groups: 2, padding: 1 } },
  { name: 'k4 s2 p1 (PatchGAN)', x: [2, 3, 8, 8], w: [4, 3, 4, 4], opts: { stride: 2, padding: 1 } },
  { name: 'stride (3,2), odd pads', x: [1, 2, 7, 8], w: [2, 2, 2, 3], opts: { stride: [3, 2], padding: [2, 0, 1, 3] } },
  { name: 'batch 1, k4 s1 p1', x: [1, 8, 5, 5], w: [1, 8, 4, 4], opts: { padding: 1 } },
] as const;

function fill(shape: readonly number[], seed: number): HostTensor<'float32'> {
  const t = HostTensor.float32(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = Math.sin(seed + i * 0.731) * 1.3;
  return t;
}

for (const cs of cases) {
  test(`conv2d weight gradient: im2col = per-tap lowering (${cs.name})`, async () => {
    const x = fill(cs.x, 1);
    const w = fill(cs.w, 2);
    const build = () =>
      Program.trace((ins) => {
        const y = o.conv2d(ins.x!, ins.w!, null, cs.opts as never);
        const [gw] = grad(o.sum(o.mul(y, o.tanh(y))), [ins.w!]);
        return { gw: gw! };
      }, { x: { shape: cs.x, dtype: 'float32' }, w: { shape: cs.w, dtype: 'float32' } });
    const saved = convLowering.im2colMaxPatch;
    try {
      convLowering.im2colMaxPatch = Infinity;
      const a = build();
      assert.ok(a.lower().model.graph.node.some((n) => n.name.includes('conv2dWeightGrad') && n.opType === 'Conv'), 'im2col lowering used');
      const results = [(await (await a.compile({ threads: 1 })).run({ x, w })).gw!];
      convLowering.im2colMaxPatch = 0;
      const b = build();
      assert.ok(!b.lower().model.graph.node.some((n) => n.name.includes('conv2dWeightGrad') && n.opType === 'Conv'), 'per-tap lowering used');
      const gb = (await (await b.compile({ threads: 1 })).run({ x, w })).gw!;
      for (const [k, ga] of results.entries()) {
        assert.deepEqual([...ga.shape], cs.w);
        let maxErr = 0;
        let maxAbs = 0;
        for (let i = 0; i < ga.size; i++) {
          maxErr = Math.max(maxErr, Math.abs((ga.data[i] as number) - (gb.data[i] as number)));
          maxAbs = Math.max(maxAbs, Math.abs(gb.data[i] as number));
        }
        assert.ok(maxErr <= 1e-5 * Math.max(1, maxAbs), `im2col ${k}: max |Δ| ${maxErr} (max |g| ${maxAbs})`);
      }
    } finally {
      convLowering.im2colMaxPatch = saved;
    }
  });
}
