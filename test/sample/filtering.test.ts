// Top-k's fast path (the k-th logit by a numeric sort, then only the kept ids ordered) keeps
// exactly the tokens, order and probabilities of ordering the whole row — ties with the k-th
// included — checked against that reference on random rows with many ties.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filteredDistribution, kthSmallest } from '../../src/sample/filtering.ts';

function reference(row: number[], k: number, t: number) {
  const order = row.map((_, i) => i).sort((a, b) => row[b]! - row[a]! || a - b);
  const kth = row[order[k - 1]!]!;
  const ids = order.filter((i) => row[i]! >= kth);
  const z = ids.reduce((a, i) => a + Math.exp((row[i]! - row[ids[0]!]!) / t), 0);
  return { ids, probs: ids.map((i) => Math.exp((row[i]! - row[ids[0]!]!) / t) / z) };
}

test('top-k keeps the k largest logits and every tie with the k-th, most likely first', () => {
  let s = 1;
  const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647);
  for (let trial = 0; trial < 200; trial++) {
    const V = 5 + Math.floor(rnd() * 300);
    // few distinct values: ties everywhere; and float32 rows, as the models give
    const row = Array.from(Float32Array.from({ length: V }, () => (trial % 2 ? Math.floor(rnd() * 6) : rnd() * 8 - 4)));
    const k = 1 + Math.floor(rnd() * V);
    const t = 0.5 + rnd();
    const got = filteredDistribution(Float32Array.from(row), { topK: k, temperature: t });
    const want = reference(row, k, t);
    assert.deepEqual(Array.from(got.ids), want.ids, `trial ${trial}: ids`);
    for (let i = 0; i < want.probs.length; i++) assert.ok(Math.abs(got.probs[i]! - want.probs[i]!) < 1e-12, `trial ${trial}: p[${i}]`);
    if (trial % 2) assert.ok(got.ids.length >= Math.min(k, V), 'ties with the k-th are kept');
  }
});

test('kthSmallest: the sorted array\'s k-th value, ties and all', () => {
  let s = 7;
  const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647);
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + Math.floor(rnd() * 200);
    const a = Float64Array.from({ length: n }, () => (trial % 3 === 0 ? Math.floor(rnd() * 4) : rnd()));
    const sorted = Float64Array.from(a).sort();
    const k = Math.floor(rnd() * n);
    assert.equal(kthSmallest(Float64Array.from(a), k), sorted[k], `trial ${trial}, k ${k} of ${n}`);
  }
});
