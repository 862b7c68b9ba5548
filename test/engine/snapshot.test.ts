// Structural promises about lowered graphs, pinned as op histograms and printed graphs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Program } from '../../src/runtime/program.ts';
import * as o from '../../src/ops/core.ts';
import { grad } from '../../src/autodiff/grad.ts';
import { onnxOpCounts, printGraph } from '../../src/graph/print.ts';
import { convLowering } from '../../src/prims/conv.ts';

/** Lower with the per-tap weight-gradient lowering forced (layers above the im2col bound). */
function perTap<T>(fn: () => T): T {
  const saved = convLowering.im2colMaxPatch;
  convLowering.im2colMaxPatch = 0;
  try {
    return fn();
  } finally {
    convLowering.im2colMaxPatch = saved;
  }
}

const f = (shape: number[]) => ({ shape, dtype: 'float32' as const });

function convGradProgram(opts: o.Conv2dOptions, x: number[], w: number[]) {
  return Program.trace(({ x, w, c }) => {
    const y = o.conv2d(x!, w!, null, opts);
    const [gx, gw] = grad(o.sum(o.mul(y, c!)), [x!, w!]);
    return { gx: gx!, gw: gw! };
  }, { x: f(x), w: f(w), c: f([x[0]!, w[0]!, ...(opts.stride === 2 ? [x[2]! / 2, x[3]! / 2] : [x[2]!, x[3]!])]) });
}

describe('graph snapshots', () => {
  it('3×3 stride-1 conv gradients of a large layer: a flipped Conv, one contiguous Slice + one batch-folded MatMul per tap, no ConvTranspose, no per-tap batch sum', () => {
    const counts = perTap(() => onnxOpCounts(convGradProgram({ padding: 1 }, [2, 4, 8, 8], [5, 4, 3, 3]).toOnnx()));
    assert.deepEqual(counts, {
      Concat: 1, Conv: 1, Expand: 1, Identity: 3, MatMul: 9, Mul: 1, Pad: 2, Reshape: 14, Slice: 10, Transpose: 4, Unsqueeze: 9,
    });
  });

  it('3×3 conv gradients of a small layer: flipped Conv for the input, im2col (depthwise Conv + one MatMul + one batch sum) for the weight', () => {
    const counts = onnxOpCounts(convGradProgram({ padding: 1 }, [2, 4, 8, 8], [5, 4, 3, 3]).toOnnx());
    assert.deepEqual(counts, { Conv: 2, Expand: 1, Identity: 3, MatMul: 1, Mul: 1, ReduceSum: 1, Reshape: 4, Slice: 1, Transpose: 3 });
  });

  it('stride-2 conv input gradient lowers to ConvTranspose', () => {
    const counts = perTap(() => onnxOpCounts(convGradProgram({ stride: 2, padding: [0, 0, 1, 1] }, [2, 4, 8, 8], [5, 4, 3, 3]).toOnnx()));
    assert.equal(counts.ConvTranspose, 1);
    assert.equal(counts.MatMul, 9);
    assert.equal(counts.Conv, undefined);
  });

  it('prints a readable graph', () => {
    const p = Program.trace(({ a, b }) => {
      const y = o.sum(o.mul(a!, b!));
      const [ga] = grad(y, [a!]);
      return { y, ga: ga! };
    }, { a: f([2, 3]), b: f([3]) });
    const text = printGraph(p.graph, p.outputs.map((x) => x.tensor));
    assert.equal(
      text,
      [
        'input %a: float32[2,3]',
        'input %b: float32[3]',
        '%2: float32[2,3] = mul(%a, %b)',
        '%3: float32[] = reduceSum(%2) axes=[0,1] keepdims=false',
        '%4: float32[] = constant() value=float32[](1)',
        '%5: float32[1,1] = reshape(%4) shape=[1,1]',
        '%6: float32[2,3] = expand(%5) shape=[2,3]',
        '%7: float32[2,3] = mul(%6, %b)',
        'return %3, %7',
      ].join('\n'),
    );
    assert.match(text, /= mul\(%\d+, %b\)/, 'the gradient of a·b w.r.t. a multiplies by b');
    assert.match(text, /^return %3, %\d+$/m);
  });
});
