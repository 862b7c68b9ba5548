// Engine benchmark: VQGAN-like layers, forward and forward+backward, latentkit (traced →
// ONNX → onnxruntime-node) against PyTorch (bench/engine_torch.py, Debian's /usr/bin/python3)
// on 1 and 2 threads, side by side. Prints one table and writes it as JSON to
// bench/results/engine-<date>.json.
//
//   node --import tsx bench/engine.ts [--threads 1,2] [--reps 9] [--warmup 2]
//                                     [--only 'conv1x1 C512 16²,attn C512 16²'] [--no-torch]
//                                     [--retries 3] [--max-load 10]
//
// forward          = y = layer(x, params)
// forward+backward = one program: loss = Σ y·c (c a fixed random cotangent input) and the
//                    gradients of loss w.r.t. x and every weight and bias.
// ratio = torch ms / latentkit ms (> 1: latentkit faster). GFLOP/s counts convolution FLOPs
// 2·N·O·C/g·kh·kw·Ho·Wo (plus the two attention matmuls), 3× that for forward+backward.
// "ceiling": the faster of a 2048³ MatMul and a 3×3 Conv through ONNX Runtime, same threads.
// PyTorch runs as a persistent child (engine_torch.py --serve) so each layer's latentkit and
// PyTorch timings are taken back to back; "other load" flags rows disturbed by other jobs.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import readline from 'node:readline';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as o from '../src/ops/core.ts';
import { Program } from '../src/runtime/program.ts';
import { LoadMeter, waitQuiet } from './engine_load.ts';
import { LAYERS, type Layer, convFlops, feedsFor, forwardProgram, fwdBwdProgram, randn, timeIt } from './engine_layers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const PY = '/usr/bin/python3';

interface Args {
  threads: number[];
  reps: number;
  warmup: number;
  only: string[];
  torch: boolean;
  /** Re-measure a layer up to this many times while other processes disturbed it. */
  retries: number;
  /** Foreign load (% of all cores) above which a row counts as disturbed. */
  maxLoad: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { threads: [1, 2], reps: 9, warmup: 2, only: [], torch: true, retries: 3, maxLoad: 10 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--threads') a.threads = v().split(',').map(Number);
    else if (k === '--reps') a.reps = Number(v());
    else if (k === '--warmup') a.warmup = Number(v());
    else if (k === '--only') a.only = v().split(',').filter(Boolean);
    else if (k === '--no-torch') a.torch = false;
    else if (k === '--retries') a.retries = Number(v());
    else if (k === '--max-load') a.maxLoad = Number(v());
    else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

interface Row {
  layer: string;
  shape: string;
  threads: number;
  gflop: number;
  sessionMs: { fwd: number; fwdBwd: number };
  onnxNodes: { fwd: number; fwdBwd: number };
  fwdMs: number;
  fwdBwdMs: number;
  fwdAll: number[];
  fwdBwdAll: number[];
  torchFwdMs: number | null;
  torchFwdBwdMs: number | null;
  torchFwdAll: number[] | null;
  torchFwdBwdAll: number[] | null;
  /** CPU used by other processes during this row, % of all cores */
  otherLoadPct: number | null;
}

/** Machine ceilings through ONNX Runtime: a 2048³ MatMul and a big 3×3 Conv, GFLOP/s. */
async function ceiling(threads: number, reps: number): Promise<{ matmul: number; conv: number }> {
  const n = 2048;
  const mm = Program.trace((t) => ({ y: o.matmul(t.a!, t.b!) }), {
    a: { shape: [n, n], dtype: 'float32' },
    b: { shape: [n, n], dtype: 'float32' },
  });
  const cv = Program.trace((t) => ({ y: o.conv2d(t.x!, t.w!, null, { padding: 1 }) }), {
    x: { shape: [8, 256, 32, 32], dtype: 'float32' },
    w: { shape: [256, 256, 3, 3], dtype: 'float32' },
  });
  const res: number[] = [];
  for (const [p, feeds, flop] of [
    [mm, { a: randn([n, n], 1), b: randn([n, n], 2) }, 2 * n ** 3],
    [cv, { x: randn([8, 256, 32, 32], 1), w: randn([256, 256, 3, 3], 2, 0.02) }, convFlops(8, 256, 256, 3, 3, 32, 32)],
  ] as const) {
    const cp = await p.compile({ threads });
    const { ms } = await timeIt(() => cp.run(feeds), 2, reps);
    await cp.release();
    res.push(flop / (ms * 1e6));
  }
  return { matmul: res[0]!, conv: res[1]! };
}

/** Waiting for other jobs to finish is capped at 60 s per bench run in all. */
let waitBudgetMs = 60_000;
async function quiet(maxLoad: number): Promise<void> {
  if (waitBudgetMs <= 0) return;
  const t0 = performance.now();
  await waitQuiet(maxLoad, Math.min(30_000, waitBudgetMs));
  waitBudgetMs -= performance.now() - t0;
}

/** A persistent engine_torch.py --serve process: one timing request at a time. */
class TorchServer {
  private proc: ChildProcessWithoutNullStreams;
  private lines: AsyncIterator<string>;
  cpuS = 0;
  private constructor(proc: ChildProcessWithoutNullStreams) {
    this.proc = proc;
    this.lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
    proc.stderr.on('data', (d: Buffer) => process.stderr.write(d));
  }
  static async start(threads: number, args: Args): Promise<TorchServer | null> {
    const argv = [path.join(here, 'engine_torch.py'), '--serve', '--threads', String(threads), '--reps', String(args.reps), '--warmup', String(args.warmup)];
    const proc = spawn(PY, argv, { env: { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) } });
    const s = new TorchServer(proc);
    const first = await s.lines.next();
    if (first.done || !(JSON.parse(first.value) as { ready?: boolean }).ready) {
      process.stderr.write(`# engine_torch.py --serve did not start; latentkit-only numbers for ${threads} thread(s)\n`);
      proc.kill();
      return null;
    }
    return s;
  }
  async time(mode: 'fwd' | 'fwd_bwd', layer: string): Promise<{ ms: number; all: number[] } | null> {
    this.proc.stdin.write(`${mode}\t${layer}\n`);
    const r = await this.lines.next();
    if (r.done) return null;
    const j = JSON.parse(r.value) as { ms?: number; all?: number[]; cpu_s?: number; error?: string };
    if (j.error !== undefined || j.ms === undefined) {
      process.stderr.write(`# torch ${layer} ${mode}: ${j.error}\n`);
      return null;
    }
    this.cpuS = j.cpu_s ?? this.cpuS;
    return { ms: j.ms, all: j.all ?? [] };
  }
  close(): void {
    this.proc.stdin.end();
  }
}

type M = { ms: number; all: number[] };

/**
 * One layer, one mode: compile (timed: trace + lower + session), then latentkit and PyTorch
 * timings back to back, again (up to args.retries times) while other processes disturbed
 * them. Only this one session is alive meanwhile: an idle second session's spinning ORT
 * threads slow a 2-thread run down badly (bench/engine_alt.ts --only spin).
 */
async function measure(layer: Layer, mode: 'fwd' | 'fwd_bwd', threads: number, args: Args, torch: TorchServer | null) {
  await quiet(args.maxLoad);
  const t0 = performance.now();
  const prog = mode === 'fwd' ? forwardProgram(layer) : fwdBwdProgram(layer);
  const cp = await prog.compile({ threads });
  const sessionMs = performance.now() - t0;
  const feeds = feedsFor(layer, mode === 'fwd_bwd');
  let best: { lk: M; torch: M | null; otherPct: number | null } | null = null;
  for (let attempt = 0; attempt <= args.retries; attempt++) {
    if (attempt > 0) await quiet(args.maxLoad);
    const meter = new LoadMeter(torch?.cpuS ?? 0);
    const lk = await timeIt(() => cp.run(feeds), args.warmup, args.reps);
    const tt = torch ? await torch.time(mode, layer.name) : null;
    const otherPct = meter.foreignPct(torch?.cpuS ?? 0);
    if (!best || (otherPct ?? 0) < (best.otherPct ?? 0)) best = { lk, torch: tt, otherPct };
    if (otherPct === null || otherPct <= args.maxLoad) break;
    process.stderr.write(`# ${layer.name} ${mode} t=${threads}: other processes used ${otherPct.toFixed(0)}% of the CPUs meanwhile${attempt < args.retries ? '; measuring again' : ''}\n`);
  }
  await cp.release();
  return { ...best!, sessionMs, onnxNodes: prog.lower().stats.onnxNodes };
}

/** One thread count: latentkit and PyTorch measured layer by layer, back to back. */
async function benchThreads(threads: number, args: Args, torch: TorchServer | null): Promise<Row[]> {
  const out: Row[] = [];
  for (const layer of LAYERS) {
    if (args.only.length && !args.only.includes(layer.name)) continue;
    const f = await measure(layer, 'fwd', threads, args, torch);
    const b = await measure(layer, 'fwd_bwd', threads, args, torch);
    const rf = f.lk, rb = b.lk, tf = f.torch, tb = b.torch;
    const loads = [f.otherPct, b.otherPct].filter((x): x is number => x !== null);
    out.push({
      layer: layer.name,
      shape: layer.shape,
      threads,
      gflop: layer.flops / 1e9,
      sessionMs: { fwd: f.sessionMs, fwdBwd: b.sessionMs },
      onnxNodes: { fwd: f.onnxNodes, fwdBwd: b.onnxNodes },
      fwdMs: rf.ms,
      fwdBwdMs: rb.ms,
      fwdAll: rf.all,
      fwdBwdAll: rb.all,
      torchFwdMs: tf?.ms ?? null,
      torchFwdBwdMs: tb?.ms ?? null,
      torchFwdAll: tf?.all ?? null,
      torchFwdBwdAll: tb?.all ?? null,
      otherLoadPct: loads.length ? Math.max(...loads) : null,
    });
    const tms = (x: { ms: number } | null) => (x ? x.ms.toFixed(2) : '–');
    process.stderr.write(`# ${layer.name} t=${threads}: latentkit fwd ${rf.ms.toFixed(2)} / f+b ${rb.ms.toFixed(2)} ms; torch fwd ${tms(tf)} / f+b ${tms(tb)} ms\n`);
  }
  return out;
}

function torchAvailable(): string | null {
  const r = spawnSync(PY, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

const fmt = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, j) => Math.max(...rows.map((r) => r[j]!.length)));
  const line = (r: string[]) => '| ' + r.map((c, j) => (j < 2 ? c.padEnd(w[j]!) : c.padStart(w[j]!))).join(' | ') + ' |';
  return [line(rows[0]!), '|' + w.map((n, j) => (j < 2 ? ':' : '') + '-'.repeat(n + (j < 2 ? 1 : 2)) + (j < 2 ? '' : ':')).join('|') + '|', ...rows.slice(1).map(line)].join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const torchVersion = args.torch ? torchAvailable() : null;
  const started = performance.now();
  console.log(`# engine bench: ${os.cpus()[0]?.model ?? '?'} × ${os.cpus().length}, node ${process.version}, load avg ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  if (args.torch && !torchVersion) console.log(`# ${PY} has no torch: latentkit-only numbers`);
  else if (torchVersion) console.log(`# PyTorch ${torchVersion} (${PY}); median of ${args.reps} runs after ${args.warmup} warm-up`);

  const results: { threads: number; ceiling: { matmul: number; conv: number }; rows: Row[] }[] = [];
  for (const threads of args.threads) {
    await quiet(args.maxLoad);
    const ceil = await ceiling(threads, Math.max(3, args.reps >> 1));
    const torch = torchVersion ? await TorchServer.start(threads, args) : null;
    const rows = await benchThreads(threads, args, torch);
    torch?.close();
    results.push({ threads, ceiling: ceil, rows });
  }

  const head = [
    'layer', 'thr', 'lk fwd ms', 'torch fwd ms', 'ratio', 'lk f+b ms', 'torch f+b ms', 'ratio',
    'lk GF/s fwd', 'lk GF/s f+b', 'torch GF/s fwd', 'torch GF/s f+b', '% ceil fwd', '% ceil f+b', 'session ms fwd', 'session ms f+b', 'other load %',
  ];
  const rows: string[][] = [head];
  const json: Record<string, unknown>[] = [];
  for (const { threads, ceiling: ceil, rows: rs } of results) {
    const top = Math.max(ceil.matmul, ceil.conv);
    for (const r of rs) {
      const gf = (ms: number | null, mult: number) => (ms === null ? undefined : (r.gflop * mult) / (ms / 1e3));
      const ratio = (t: number | null, l: number) => (t === null ? '–' : fmt(t / l, 2) + '×');
      rows.push([
        r.layer, String(threads),
        fmt(r.fwdMs), fmt(r.torchFwdMs ?? undefined), ratio(r.torchFwdMs, r.fwdMs),
        fmt(r.fwdBwdMs), fmt(r.torchFwdBwdMs ?? undefined), ratio(r.torchFwdBwdMs, r.fwdBwdMs),
        fmt(gf(r.fwdMs, 1), 0), fmt(gf(r.fwdBwdMs, 3), 0), fmt(gf(r.torchFwdMs, 1), 0), fmt(gf(r.torchFwdBwdMs, 3), 0),
        fmt((100 * gf(r.fwdMs, 1)!) / top, 0), fmt((100 * gf(r.fwdBwdMs, 3)!) / top, 0),
        fmt(r.sessionMs.fwd, 0), fmt(r.sessionMs.fwdBwd, 0), fmt(r.otherLoadPct ?? undefined, 0) + ((r.otherLoadPct ?? 0) > args.maxLoad ? ' (!)' : ''),
      ]);
      json.push({
        ...r,
        ceilingGflops: ceil,
        fwdRatio: r.torchFwdMs === null ? null : r.torchFwdMs / r.fwdMs,
        fwdBwdRatio: r.torchFwdBwdMs === null ? null : r.torchFwdBwdMs / r.fwdBwdMs,
      });
    }
  }
  console.log('');
  for (const l of LAYERS) if (!args.only.length || args.only.includes(l.name)) console.log(`# ${l.name}: ${l.shape}, ${(l.flops / 1e9).toFixed(2)} GFLOP fwd`);
  for (const r of results) {
    console.log(`# ceiling on ${r.threads} thread(s): 2048³ MatMul ${r.ceiling.matmul.toFixed(0)} GFLOP/s, 3×3 Conv (N=8, C=256, 32², weights as inputs) ${r.ceiling.conv.toFixed(0)} GFLOP/s; % ceil uses the larger`);
  }
  console.log('# ratio = torch ms / latentkit ms (>1: latentkit faster); f+b = forward+backward (3× the forward FLOPs)');
  console.log('# session = trace + lower + InferenceSession.create; other load = CPU used by other processes meanwhile, % of all cores (rows above ~5% are unreliable)\n');
  console.log(table(rows));
  console.log(`\n# total ${((performance.now() - started) / 1e3).toFixed(1)} s`);

  const dir = path.join(here, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `engine-${new Date().toISOString().slice(0, 10)}.json`);
  fs.writeFileSync(file, JSON.stringify({
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model,
    cores: os.cpus().length,
    node: process.version,
    torch: torchVersion,
    reps: args.reps,
    warmup: args.warmup,
    rows: json,
  }, null, 1) + '\n');
  console.log(`# wrote ${path.relative(process.cwd(), file)}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
