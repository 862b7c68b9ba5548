// ONNX Runtime profile of the engine-bench layers: where does forward+backward time go?
// Groups kernel times by ONNX op type and by the latentkit primitive that emitted the node.
//
//   node --import tsx bench/engine_profile.ts [--threads 1] [--reps 5] [--fwd] [--only 'conv3x3 C256 32²']
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getOrt } from '../src/runtime/backend.ts';
import { CompiledProgram, type Program } from '../src/runtime/program.ts';
import { LAYERS, feedsFor, forwardProgram, fwdBwdProgram } from './engine_layers.ts';

/**
 * compile({ profile: true }) with the session options of src/runtime/backend.ts plus the
 * profileFilePrefix that onnxruntime-node 1.30 requires when profiling (backend.ts does not
 * pass one, so `compile({ profile: true })` itself fails there).
 */
export async function compileProfiled(prog: Program, threads: number, prefix: string): Promise<CompiledProgram> {
  const ort = await getOrt();
  const session = await ort.InferenceSession.create(prog.toOnnx(), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableCpuMemArena: true,
    enableProfiling: true,
    profileFilePrefix: prefix,
    executionProviders: ['cpu'],
  });
  return new CompiledProgram(prog, session, ort);
}

interface Ev {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string; output_type_shape?: unknown; input_type_shape?: unknown };
}

/** Kernel events of an ORT profile file, grouped; `runs` = number of profiled runs. */
export function summarize(file: string, runs: number, top = 12): string {
  const evs = (JSON.parse(fs.readFileSync(file, 'utf8')) as Ev[]).filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
  const byOp = new Map<string, number>();
  const byPrim = new Map<string, number>();
  const byNode = new Map<string, { us: number; op: string; shapes: string }>();
  let total = 0;
  for (const e of evs) {
    const op = e.args?.op_name ?? '?';
    const node = e.name.slice(0, -'_kernel_time'.length);
    const prim = /([A-Za-z0-9]+)#\d+/.exec(node)?.[1] ?? `(ort:${op})`;
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
    byPrim.set(prim, (byPrim.get(prim) ?? 0) + e.dur);
    const shapes = JSON.stringify(e.args?.input_type_shape ?? '').replace(/"float"|\{|\}|"/g, '').slice(0, 90);
    const prev = byNode.get(node) ?? { us: 0, op, shapes };
    byNode.set(node, { ...prev, us: prev.us + e.dur });
    total += e.dur;
  }
  const ms = (us: number) => (us / 1e3 / runs).toFixed(2).padStart(8);
  const pct = (us: number) => `${((100 * us) / total).toFixed(0).padStart(3)}%`;
  const lines = [`  kernel total ${ms(total)} ms/run`];
  const sorted = <T,>(m: Map<string, T>, f: (v: T) => number) => [...m.entries()].sort((a, b) => f(b[1]) - f(a[1]));
  lines.push('  by op type:    ' + sorted(byOp, (v) => v).map(([k, v]) => `${k} ${ms(v).trim()} (${pct(v).trim()})`).join(', '));
  lines.push('  by primitive:  ' + sorted(byPrim, (v) => v).map(([k, v]) => `${k} ${ms(v).trim()} (${pct(v).trim()})`).join(', '));
  lines.push('  top nodes:');
  for (const [k, v] of sorted(byNode, (v) => v.us).slice(0, top)) lines.push(`  ${ms(v.us)} ms ${pct(v.us)} ${v.op.padEnd(14)} ${k.slice(0, 40).padEnd(40)} ${v.shapes}`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let threads = 1;
  let reps = 5;
  let fwdOnly = false;
  let only: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--threads') threads = Number(argv[++i]);
    else if (argv[i] === '--reps') reps = Number(argv[++i]);
    else if (argv[i] === '--fwd') fwdOnly = true;
    else if (argv[i] === '--only') only = argv[++i]!.split(',');
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  // ORT writes onnxruntime_profile_<time>.json into the working directory
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-prof-'));
  process.chdir(dir);
  for (const layer of LAYERS) {
    if (only.length && !only.includes(layer.name)) continue;
    const prog = fwdOnly ? forwardProgram(layer) : fwdBwdProgram(layer);
    const cp = await compileProfiled(prog, threads, path.join(dir, 'onnxruntime_profile'));
    const feeds = feedsFor(layer, !fwdOnly);
    for (let i = 0; i < reps + 1; i++) await cp.run(feeds); // +1: the first run is in the profile too
    cp.session.endProfiling();
    await cp.release();
    const file = fs.readdirSync(dir).filter((f) => f.startsWith('onnxruntime_profile_')).map((f) => path.join(dir, f)).sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
    console.log(`${layer.name} (${fwdOnly ? 'fwd' : 'fwd+bwd'}, ${threads} thread(s), ${prog.lower().stats.onnxNodes} ONNX nodes)`);
    if (file) {
      console.log(summarize(file, reps + 1));
      fs.renameSync(file, path.join(dir, `${layer.name.replace(/[^A-Za-z0-9]+/g, '_')}.json`));
    }
  }
  console.log(`# profiles in ${dir}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
