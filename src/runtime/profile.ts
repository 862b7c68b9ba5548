// Where does a program's time go? Runs it under ONNX Runtime's profiler and groups kernel
// time by op group (convolutions, GEMMs, data movement, element-wise, reductions), by ONNX
// op type, and by the latentkit primitive / scope that emitted each node.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Program } from './program.ts';
import type { HostTensor } from '../tensor.ts';

export const OP_GROUPS: Record<string, string> = {
  Conv: 'conv',
  ConvTranspose: 'conv',
  FusedConv: 'conv',
  NhwcFusedConv: 'conv',
  MatMul: 'gemm',
  FusedMatMul: 'gemm',
  Gemm: 'gemm',
  Slice: 'copies',
  Concat: 'copies',
  Transpose: 'copies',
  Pad: 'copies',
  Expand: 'copies',
  Reshape: 'copies',
  Identity: 'copies',
  Unsqueeze: 'copies',
  Squeeze: 'copies',
  Gather: 'copies',
  ScatterND: 'copies',
  ConstantOfShape: 'copies',
  ReduceSum: 'reductions',
  ReduceMean: 'reductions',
  ReduceMax: 'reductions',
  ArgMin: 'reductions',
  ArgMax: 'reductions',
};

export interface ProfileReport {
  /** ms per run */
  total: number;
  wall: number;
  byGroup: Record<string, number>;
  byOp: Record<string, number>;
  byScope: Record<string, number>;
  /** by emitting primitive and ONNX op, e.g. 'groupNorm:Mul' */
  byPrim: Record<string, number>;
  top: { node: string; op: string; ms: number }[];
}

interface Ev {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

export function summarizeProfile(file: string, runs: number): Omit<ProfileReport, 'wall'> {
  const all = JSON.parse(fs.readFileSync(file, 'utf8')) as Ev[];
  // The first run allocates and warms up; count only the runs after it.
  const firstRun = all.filter((e) => e.name === 'model_run').sort((a, b) => a.ts - b.ts)[0];
  const skipUntil = firstRun ? firstRun.ts + firstRun.dur : -Infinity;
  const evs = all.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts > skipUntil);
  const add = (m: Record<string, number>, k: string, v: number) => (m[k] = (m[k] ?? 0) + v / 1e3 / runs);
  const r: Omit<ProfileReport, 'wall'> = { total: 0, byGroup: {}, byOp: {}, byScope: {}, byPrim: {}, top: [] };
  const nodes: Record<string, { op: string; ms: number }> = {};
  for (const e of evs) {
    const op = e.args?.op_name ?? '?';
    const node = e.name.slice(0, -'_kernel_time'.length);
    add(r.byGroup, OP_GROUPS[op] ?? 'element-wise', e.dur);
    add(r.byOp, op, e.dur);
    const scope = node.includes('/') ? node.slice(0, node.lastIndexOf('/')).split('/').slice(0, 2).join('/') : '(top)';
    add(r.byScope, scope, e.dur);
    const prim = /([A-Za-z0-9_]+)#\d+/.exec(node.slice(node.lastIndexOf('/') + 1))?.[1] ?? '?';
    add(r.byPrim, `${prim}:${op}`, e.dur);
    nodes[node] = { op, ms: (nodes[node]?.ms ?? 0) + e.dur / 1e3 / runs };
    r.total += e.dur / 1e3 / runs;
  }
  r.top = Object.entries(nodes).map(([node, v]) => ({ node, ...v })).sort((a, b) => b.ms - a.ms).slice(0, 15);
  return r;
}

/** Compile `program` with profiling, run it `reps` times after one warm-up, summarize. */
export async function profileProgram(program: Program, feeds: Record<string, HostTensor>, opts: { threads?: number; reps?: number; bake?: Record<string, HostTensor> } = {}): Promise<ProfileReport> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-profile-'));
  const cp = await program.compile({ threads: opts.threads, profilePrefix: path.join(dir, 'p'), bake: opts.bake });
  if (opts.bake) feeds = Object.fromEntries(Object.entries(feeds).filter(([k]) => !(k in opts.bake!)));
  const reps = opts.reps ?? 3;
  await cp.run(feeds);
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await cp.run(feeds);
  const wall = (performance.now() - t0) / reps;
  const file = cp.session.endProfiling() as unknown as string;
  await cp.release();
  const found = file && fs.existsSync(file) ? file : fs.readdirSync(dir).map((f) => path.join(dir, f))[0];
  if (!found) throw new Error('profile: ONNX Runtime wrote no profile file');
  const r = summarizeProfile(found, reps);
  fs.rmSync(dir, { recursive: true, force: true });
  return { ...r, wall };
}

export function formatProfile(r: ProfileReport): string {
  const pct = (v: number) => `${((100 * v) / r.total).toFixed(0)}%`;
  const line = (m: Record<string, number>, n = 12) =>
    Object.entries(m)
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `${k} ${v.toFixed(1)} ms (${pct(v)})`)
      .join(', ');
  return [
    `wall ${r.wall.toFixed(1)} ms/run, kernels ${r.total.toFixed(1)} ms/run`,
    `by group: ${line(r.byGroup)}`,
    `by op:    ${line(r.byOp)}`,
    `by scope: ${line(r.byScope, 16)}`,
    `by primitive: ${line(r.byPrim, 30)}`,
    'top nodes:',
    ...r.top.map((t) => `  ${t.ms.toFixed(2).padStart(8)} ms  ${t.op.padEnd(14)} ${t.node}`),
  ].join('\n');
}
