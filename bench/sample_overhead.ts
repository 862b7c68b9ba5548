// Where a KV-cached decoding step's time goes, for the bench/sample GPT (12 layers × 512,
// 8 heads, vocab 1024, cache of 256 slots): the wall time of one step of the decode loop vs
// the ONNX Runtime kernel time of the step program (ORT profile), the JS work per token
// (writing the new keys/values into the cache, choosing the token with top-k 100), and what
// is left — the per-run overhead of crossing into ONNX Runtime. This is what an in-graph
// decode loop (ONNX Loop with the cache as loop state) could save at most.
//
//   node --import tsx bench/sample_overhead.ts [--threads 2] [--batch 1,4]
import { HostTensor } from '../src/tensor.ts';
import { InitRng } from '../src/nn/params.ts';
import { initGPT } from '../src/models/mingpt/gpt.ts';
import { parseGPTConfig } from '../src/models/mingpt/config.ts';
import { KVDecoder, traceStep, type DecodeStats } from '../src/sample/decode.ts';
import { makeChooser } from '../src/sample/filtering.ts';
import { Rng } from '../src/io/datasets.ts';
import { profileProgram } from '../src/runtime/profile.ts';

const args = process.argv.slice(2);
const get = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
const threads = Number(get('--threads', '2'));
const batches = get('--batch', '1,4').split(',').map(Number);
const cfg = parseGPTConfig({ vocab_size: 1024, block_size: 257, n_layer: 12, n_head: 8, n_embd: 512 });
const weights = initGPT(cfg, new InitRng(7));
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

for (const B of batches) {
  const L = 256;
  const dec = new KVDecoder(cfg, weights, { threads });
  await dec.prepare(B, 1, 256);
  const streams = Array.from({ length: B }, (_, i) => new Rng(`b:${i}`));
  const choose = makeChooser({ topK: 100 }, 1024, streams);
  const stats: DecodeStats = { prefillMs: 0, stepMs: [], compileMs: 0 };
  await dec.decode(new Array(B).fill(0), B, 256, (l) => choose(l), stats);
  const wall = median(stats.stepMs);
  // kernels only: the step program under ORT's profiler, fed a half-full cache
  const hs = cfg.n_embd / cfg.n_head;
  const feeds: Record<string, HostTensor> = { tok: HostTensor.int64([B], new Array(B).fill(3)), pos: HostTensor.int64([1], [128]) };
  for (let i = 0; i < cfg.n_layer; i++) {
    feeds[`cache.k.${i}`] = HostTensor.float32([B, cfg.n_head, hs, L]);
    feeds[`cache.v.${i}`] = HostTensor.float32([B, cfg.n_head, L, hs]);
  }
  const prof = await profileProgram(traceStep(cfg, weights, B, L), feeds, { threads, reps: 20, bake: Object.fromEntries(weights) });
  // JS per token: choose + cache writes (measured in isolation)
  const logits = new Float32Array(B * 1024).map((_, i) => Math.sin(i));
  let t0 = performance.now();
  for (let i = 0; i < 200; i++) choose(logits);
  const chooseMs = (performance.now() - t0) / 200;
  const K = new Float32Array(B * cfg.n_head * hs * L);
  const k = new Float32Array(B * cfg.n_head * hs);
  t0 = performance.now();
  for (let rep = 0; rep < 200; rep++) for (let l = 0; l < cfg.n_layer; l++) for (let r = 0; r < B * cfg.n_head; r++) for (let d = 0; d < hs; d++) K[(r * hs + d) * L + 100] = k[r * hs + d]!;
  const writeMs = (performance.now() - t0) / 200;
  const over = wall - prof.total - chooseMs;
  console.log(`batch ${B}, ${threads} thread(s): step wall ${wall.toFixed(2)} ms (median of 255) | ORT kernels ${prof.total.toFixed(2)} ms (bare session.run ${prof.wall.toFixed(2)} ms) | choose (top-k 100) ${chooseMs.toFixed(3)} ms | cache writes ${writeMs.toFixed(3)} ms | rest (ORT run overhead, feeds) ${over.toFixed(2)} ms = ${((100 * over) / wall).toFixed(1)}% of the step`);
  await dec.release();
}
