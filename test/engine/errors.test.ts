// Bad use fails at trace time with messages naming the op and the shapes/dtypes involved.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Program, jit } from '../../src/runtime/program.ts';
import * as o from '../../src/ops/core.ts';
import { grad } from '../../src/autodiff/grad.ts';
import { HostTensor } from '../../src/tensor.ts';
import type { DType } from '../../src/tensor.ts';

const f = (shape: number[], dtype: DType = 'float32') => ({ shape, dtype });

describe('trace-time errors', () => {
  it('shape mismatch names the op and both shapes', () => {
    assert.throws(() => Program.trace(({ a, b }) => ({ y: o.add(a!, b!) }), { a: f([2, 3]), b: f([4]) }), /add: shapes \[2, 3\] and \[4\] do not broadcast/);
    assert.throws(() => Program.trace(({ a, b }) => ({ y: o.matmul(a!, b!) }), { a: f([2, 3]), b: f([4, 5]) }), /matmul: inner dimensions differ: \[2, 3\] @ \[4, 5\]/);
    assert.throws(
      () => Program.trace(({ x, w }) => ({ y: o.conv2d(x!, w!) }), { x: f([1, 3, 8, 8]), w: f([4, 2, 3, 3]) }),
      /conv2d: input \[1, 3, 8, 8\] and weight \[4, 2, 3, 3\] disagree on channels/,
    );
    assert.throws(() => Program.trace(({ a }) => ({ y: o.reshape(a!, [5]) }), { a: f([2, 3]) }), /reshape: cannot reshape \[2, 3\] \(6 elements\) to \[5\]/);
  });

  it('dtype problems', () => {
    assert.throws(() => Program.trace(({ a }) => ({ y: a! }), { a: f([2], 'float16' as DType) }), /unknown dtype 'float16'/);
    assert.throws(() => Program.trace(({ a, b }) => ({ y: o.add(a!, b!) }), { a: f([2]), b: f([2], 'int64') }), /add: dtype mismatch \(float32\[2\] vs int64\[2\]\)/);
    assert.throws(() => Program.trace(({ a }) => ({ y: o.exp(a!) }), { a: f([2], 'int64') }), /exp: input must be float32, got int64\[2\]/);
  });

  it('gradient through a non-differentiable op', () => {
    assert.throws(
      () => Program.trace(({ a }) => ({ g: grad(o.sum(o.sign(a!)), [a!])[0]! }), { a: f([3]) }),
      /gradient requested through non-differentiable op 'sign'.*piecewise constant/,
    );
    assert.throws(() => Program.trace(({ a }) => ({ g: grad(o.mul(a!, 2), [a!])[0]! }), { a: f([3]) }), /has shape \[3\]; pass seeds/);
    assert.throws(() => Program.trace(({ a, i }) => ({ g: grad(o.sum(a!), [i!])[0]! }), { a: f([3]), i: f([3], 'int64') }), /cannot differentiate with respect to .* int64/);
  });

  it('an integer path carries no gradient (argmin → gather is fine; the codebook gets it)', async () => {
    const p = Program.trace(({ z, e }) => {
      const idx = o.argmin(o.matmul(z!, o.transpose(e!)), 1);
      const q = o.gather(e!, idx, 0);
      const [gz, ge] = grad(o.sum(o.mul(q, z!)), [z!, e!]);
      return { gz: gz!, ge: ge! };
    }, { z: f([4, 2]), e: f([3, 2]) });
    assert.ok(p.graph.nodes.some((n) => n.prim === 'scatterAdd'));
  });

  it('feeds are checked by name, shape and dtype', async () => {
    const c = await Program.trace(({ a }) => ({ y: o.mul(a!, 2) }), { a: f([2]) }).compile({ threads: 1 });
    await assert.rejects(c.run({}), /program input 'a' \(float32\[2\]\) was not given/);
    await assert.rejects(c.run({ a: HostTensor.float32([3]) }), /program input 'a': expected float32\[2\], got float32\[3\]/);
    await assert.rejects(c.run({ a: HostTensor.float32([2]), b: HostTensor.float32([2]) }), /unexpected program input 'b'/);
  });

  it('ops outside a trace', () => {
    assert.throws(() => o.constant(1), /no active trace/);
  });
});

describe('jit', () => {
  it('compiles once per input signature', async () => {
    const fn = jit(({ a }) => ({ y: o.add(o.mul(a!, a!), 1) }), { threads: 1 });
    const r1 = await fn({ a: HostTensor.float32([2], [1, 2]) });
    const r2 = await fn({ a: HostTensor.float32([2], [3, 4]) });
    const r3 = await fn({ a: HostTensor.float32([3], [1, 1, 1]) });
    assert.deepEqual(Array.from(r1.y!.data as Float32Array), [2, 5]);
    assert.deepEqual(Array.from(r2.y!.data as Float32Array), [10, 17]);
    assert.deepEqual(Array.from(r3.y!.data as Float32Array), [2, 2, 2]);
    assert.equal(fn.cacheSize(), 2);
  });

  it('writes into preallocated outputs', async () => {
    const c = await Program.trace(({ a }) => ({ y: o.mul(a!, 3) }), { a: f([4]) }).compile({ threads: 1 });
    const into = { y: HostTensor.float32([4]) };
    const r = await c.run({ a: HostTensor.float32([4], [1, 2, 3, 4]) }, into);
    assert.equal(r.y, into.y);
    assert.deepEqual(Array.from(into.y.data), [3, 6, 9, 12]);
  });
});
