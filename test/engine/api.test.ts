// Small API checks: valueAndGrad over parameter trees, LR schedules, dropout with a mask input.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Program } from '../../src/runtime/program.ts';
import * as o from '../../src/ops/core.ts';
import * as nn from '../../src/ops/nn.ts';
import { valueAndGrad } from '../../src/autodiff/grad.ts';
import { constantLr, cosine, linearWarmup } from '../../src/train/schedule.ts';
import { HostTensor } from '../../src/tensor.ts';

describe('engine API', () => {
  it('valueAndGrad returns the loss, aux outputs and a gradient per parameter', async () => {
    const f = valueAndGrad((p, x: o.TensorLike) => {
      const y = o.add(o.mul(p.w!, x), p.b!);
      return { loss: o.sum(o.square(y)), y };
    });
    const prog = Program.trace(({ w, b, x }) => {
      const r = f({ w: w!, b: b! }, x!);
      return { loss: r.value, y: r.aux.y as ReturnType<typeof o.add>, gw: r.grads.w!, gb: r.grads.b! };
    }, { w: { shape: [2], dtype: 'float32' }, b: { shape: [2], dtype: 'float32' }, x: { shape: [2], dtype: 'float32' } });
    const r = await (await prog.compile({ threads: 1 })).run({ w: HostTensor.float32([2], [1, 2]), b: HostTensor.float32([2], [0.5, -1]), x: HostTensor.float32([2], [3, 4]) });
    // y = [3.5, 7]; loss = 12.25 + 49; dL/dw = 2y·x = [21, 56]; dL/db = 2y = [7, 14]
    assert.deepEqual(Array.from(r.loss!.data as Float32Array), [61.25]);
    assert.deepEqual(Array.from(r.gw!.data as Float32Array), [21, 56]);
    assert.deepEqual(Array.from(r.gb!.data as Float32Array), [7, 14]);
  });

  it('learning-rate schedules', () => {
    assert.equal(constantLr(0.1)(1000), 0.1);
    const w = linearWarmup(1, 4);
    assert.deepEqual([0, 1, 2, 3, 4, 10].map(w), [0.25, 0.5, 0.75, 1, 1, 1]);
    const c = cosine(1, 10, { warmup: 2, minLr: 0.1 });
    assert.equal(c(0), 0.5);
    assert.equal(c(2), 1);
    assert.ok(Math.abs(c(6) - 0.55) < 1e-12);
    assert.ok(Math.abs(c(10) - 0.1) < 1e-12);
  });

  it('dropout takes its mask as an input (graphs stay random-free) and scales by 1/(1−p)', async () => {
    const prog = Program.trace(({ x, m }) => ({ y: nn.dropout(x!, m!, 0.5) }), { x: { shape: [4], dtype: 'float32' }, m: { shape: [4], dtype: 'float32' } });
    const r = await (await prog.compile({ threads: 1 })).run({ x: HostTensor.float32([4], [1, 2, 3, 4]), m: HostTensor.float32([4], [1, 0, 1, 0]) });
    assert.deepEqual(Array.from(r.y!.data as Float32Array), [2, 0, 6, 0]);
  });
});
