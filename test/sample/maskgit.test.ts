// MaskGIT's parallel decoder (src/sample/maskgit.ts) on a toy model whose logits depend on the
// position and on how many codes are known: the number of codes fixed per pass follows the
// cosine schedule, the codes kept are the most confident (with τ = 0, exactly by log-prob),
// a fixed code never changes, given codes are never touched (editing), no mask is left after
// the last pass, and a seed gives the same sample whatever the batch size.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { gammaCosine, maskSchedule, maskgitDecode, type MaskGitModel, type MaskGitPass } from '../../src/sample/maskgit.ts';
import { sampleStreams } from '../../src/io/rng.ts';

const V = 16; // codes 0..15, mask id 16
const MASK = V;
const N = 64;

/** Logits [N × (V+1)]: a fixed pseudo-random table per position, shifted by the count of known codes (so passes differ). */
const toy: MaskGitModel = async (codes) =>
  codes.map((c) => {
    const known = c.reduce((a, v) => a + (v === MASK ? 0 : 1), 0);
    const out = new Float32Array(N * (V + 1));
    for (let i = 0; i < N; i++) for (let k = 0; k <= V; k++) out[i * (V + 1) + k] = k === V ? 50 : 3 * Math.sin(i * 12.9898 + k * 78.233) + 0.01 * known * Math.cos(k + i);
    return out;
  });

it('the schedule: ⌊n·cos(π(t+1)/2T)⌋ still masked after pass t, strictly fewer each pass, none after the last', () => {
  const s = maskSchedule(256, 8);
  assert.equal(s.length, 8);
  assert.equal(s.at(-1), 0);
  for (let t = 0; t < 7; t++) assert.equal(s[t], Math.floor(256 * gammaCosine((t + 1) / 8)));
  for (let t = 1; t < 8; t++) assert.ok(s[t]! < s[t - 1]!);
  assert.deepEqual(maskSchedule(3, 8), [2, 1, 0, 0, 0, 0, 0, 0]); // one per pass at least, while any is left
  assert.throws(() => maskSchedule(10, 0), /steps must be a whole number ≥ 1, got 0/);
});

it('each pass fixes the scheduled number of codes, the most confident ones (τ = 0), never changes them, and ends with no mask', async () => {
  const codes = [new Int32Array(N).fill(MASK)];
  const sched = maskSchedule(N, 8);
  const passes: MaskGitPass[] = [];
  const seen: Int32Array[] = [];
  const model: MaskGitModel = async (c) => {
    seen.push(Int32Array.from(c[0]!));
    return toy(c);
  };
  const r = await maskgitDecode(model, { codes, maskId: MASK, vocab: V, streams: sampleStreams(0, 1) }, { steps: 8, choiceTemperature: 0, greedy: true }, (p) => passes.push(p));
  assert.equal(r.passes, 8);
  assert.ok(r.codes[0]!.every((v) => v >= 0 && v < V)); // the mask's own logit (50, the largest) is never chosen
  let before = N;
  passes.forEach((p, t) => {
    assert.equal(p.masked[0], sched[t]);
    assert.equal(p.fixed[0]!.length, before - sched[t]!);
    before = sched[t]!;
  });
  // most confident first: with greedy codes and τ = 0, every code fixed at pass t has a larger max log-prob than every position left masked
  for (let t = 0; t < 7; t++) {
    const logits = (await toy([seen[t]!]))[0]!;
    const conf = (i: number) => {
      const row = logits.subarray(i * (V + 1), i * (V + 1) + V);
      const m = Math.max(...row);
      return m - m - Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    };
    const fixedNow = passes[t]!.fixed[0]!;
    const still = [...seen[t + 1]!.keys()].filter((i) => seen[t + 1]![i] === MASK);
    const minFixed = Math.min(...fixedNow.map(conf));
    const maxLeft = Math.max(...still.map(conf));
    assert.ok(minFixed >= maxLeft, `pass ${t}: ${minFixed} < ${maxLeft}`);
    // a code fixed earlier is the same in every later input
    for (let i = 0; i < N; i++) if (seen[t]![i] !== MASK) assert.equal(seen[t + 1]![i], seen[t]![i]);
  }
});

it('editing: given codes stay exactly; only the masked region is generated, in as many passes as asked', async () => {
  const start = Int32Array.from({ length: N }, (_, i) => (i % 8 >= 2 && i % 8 < 6 && i >= 16 && i < 48 ? MASK : (i * 5) % V));
  const r = await maskgitDecode(toy, { codes: [start], maskId: MASK, vocab: V, streams: sampleStreams(3, 1) }, { steps: 12, temperature: 1, topK: 8 });
  for (let i = 0; i < N; i++) if (start[i] !== MASK) assert.equal(r.codes[0]![i], start[i]);
  assert.ok(r.codes[0]!.every((v) => v !== MASK));
  assert.equal(r.passes, 12);
  // nothing masked: nothing to do, no model call
  const none = await maskgitDecode(toy, { codes: [r.codes[0]!], maskId: MASK, vocab: V, streams: sampleStreams(3, 1) }, { steps: 12 });
  assert.equal(none.passes, 0);
});

it('a seed gives the same sample whatever the batch size; other seeds differ', async () => {
  const run = async (seed: number, n: number) => (await maskgitDecode(toy, { codes: Array.from({ length: n }, () => new Int32Array(N).fill(MASK)), maskId: MASK, vocab: V, streams: sampleStreams(seed, n) }, { steps: 8, temperature: 1 })).codes;
  const one = await run(5, 1);
  const three = await run(5, 3);
  assert.deepEqual(three[0], one[0]);
  assert.notDeepEqual(three[1], three[0]);
  assert.notDeepEqual((await run(6, 1))[0], one[0]);
});

it('bad input: codes outside the vocabulary, ragged grids, missing streams', async () => {
  const streams = sampleStreams(0, 1);
  await assert.rejects(maskgitDecode(toy, { codes: [Int32Array.of(1, 99)], maskId: MASK, vocab: V, streams }, { steps: 4 }), /code 99 is neither a code in \[0, 16\) nor the mask 16/);
  await assert.rejects(maskgitDecode(toy, { codes: [Int32Array.of(1, MASK), Int32Array.of(MASK)], maskId: MASK, vocab: V, streams: sampleStreams(0, 2) }, { steps: 4 }), /same number of positions/);
  await assert.rejects(maskgitDecode(toy, { codes: [Int32Array.of(MASK)], maskId: MASK, vocab: V, streams: [] }, { steps: 4 }), /1 samples but 0 random streams/);
});
