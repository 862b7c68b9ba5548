// Quantizer details checked against direct JS computations: remap to used codes (taming's
// remap/unknown_index) and back, l2-normalized codes, usage statistics.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Program } from '../../src/runtime/program.ts';
import { ParamView } from '../../src/nn/params.ts';
import { codeUsage, quantize, remapToUsed, unmapToAll } from '../../src/models/vqgan/quantize.ts';
import { HostTensor } from '../../src/tensor.ts';
import { randn } from '../helpers.ts';

const used = BigInt64Array.from([5n, 2n, 9n]);

async function remap(idx: number[], unknown: 'extra' | 'random' | number) {
  const p = Program.trace(({ i }) => {
    const r = remapToUsed(i!, used, unknown);
    return { r, back: unmapToAll(r, used) };
  }, { i: { shape: [idx.length], dtype: 'int64' } });
  const out = await (await p.compile({ threads: 1 })).run({ i: HostTensor.int64([idx.length], idx) });
  return { r: out.r!.toArray(), back: out.back!.toArray() };
}

describe('quantizer', () => {
  it("remap to used codes; unknown → 'extra' (= len(used)), an int, or a fixed pseudo-random used slot", async () => {
    let r = await remap([2, 9, 5, 7], 'extra');
    assert.deepEqual(r.r, [1, 2, 0, 3]);
    assert.deepEqual(r.back, [2, 9, 5, 5]); // taming: extra indices map back to used[0]
    r = await remap([2, 7], 0);
    assert.deepEqual(r.r, [1, 0]);
    r = await remap([7, 7, 9], 'random');
    assert.ok(r.r[0]! >= 0 && r.r[0]! < 3 && r.r[2] === 2);
  });

  it('nearest code by squared distance; l2 mode matches by cosine', async () => {
    const z = randn([1, 4, 2, 3], 3);
    const e = randn([7, 4], 4);
    for (const l2 of [false, true]) {
      const p = Program.trace(({ z, e }) => {
        const q = quantize(new ParamView({ 'embedding.weight': e! }), z!, { beta: 0.25, legacy: true, l2 });
        return { idx: q.indices };
      }, { z: { shape: z.shape, dtype: 'float32' }, e: { shape: e.shape, dtype: 'float32' } });
      const got = (await (await p.compile({ threads: 1 })).run({ z, e })).idx!.toArray();
      const want: number[] = [];
      for (let pos = 0; pos < 6; pos++) {
        const v = [0, 1, 2, 3].map((c) => z.data[c * 6 + pos]!);
        const score = (k: number) => {
          const c = [0, 1, 2, 3].map((j) => e.data[k * 4 + j]!);
          if (!l2) return c.reduce((s, x, j) => s + (x - v[j]!) ** 2, 0);
          const dot = c.reduce((s, x, j) => s + x * v[j]!, 0);
          return -dot / Math.hypot(...c) / Math.hypot(...v);
        };
        want.push([0, 1, 2, 3, 4, 5, 6].reduce((b, k) => (score(k) < score(b) ? k : b), 0));
      }
      assert.deepEqual(got, want, `l2=${l2}`);
    }
  });

  it('usage and perplexity', () => {
    const u = codeUsage([0, 0, 1, 3], 8);
    assert.equal(u.used, 3);
    assert.equal(u.usage, 3 / 8);
    assert.ok(Math.abs(u.perplexity - Math.exp(-(0.5 * Math.log(0.5) + 2 * 0.25 * Math.log(0.25)))) < 1e-12);
  });
});
