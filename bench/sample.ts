// Whole-process sampling benchmark: `latentkit sample` (KV cache, one ONNX Runtime run per
// token) vs PyTorch running taming's own KV-cached sampler (sample_with_past), taming's
// uncached loop (full recompute per token) and a static-cache loop (bench/sample_torch.py),
// side by side: a class-conditional 12-layer, 512-wide, 8-head GPT over 1,024 codes (random
// weights, taming's init) sampling 16×16-code images after one class token, top-k 100, then
// decoding them with models/emoji-f4 — batch 1 and 4, 1 and 2 threads. Each process is timed
// with /usr/bin/time (wall, peak RSS); per-token times come from the processes themselves.
//
//   node --import tsx bench/sample.ts [--threads 1,2] [--batch 1,4] [--reps 2] [--skip-recompute]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { writeSafetensorsFile } from '../src/io/formats/safetensors.ts';
import { InitRng } from '../src/nn/params.ts';
import { initGPT } from '../src/models/mingpt/gpt.ts';
import { parseGPTConfig, gptParamCount } from '../src/models/mingpt/config.ts';
import { toTamingNet2Net, type Net2NetConfig } from '../src/models/cond_transformer/config.ts';
import { VQGAN } from '../src/models/vqgan/load.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const work = path.join(root, '.bench');
const VQ = path.join(root, 'models/emoji-f4/model.safetensors');

interface Timed { wall: number; rssMb: number; stderr: string; stdout: string }

function run(cmd: string, args: string[], env: Record<string, string> = {}): Timed {
  const tf = path.join(work, 'time.txt');
  let stdout: string;
  try {
    stdout = execFileSync('/usr/bin/time', ['-o', tf, '-f', '%e %M', cmd, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 1 << 24 });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(' ')} failed: ${String((e as { stderr?: string }).stderr ?? e).slice(-600)}`, { cause: e });
  }
  const [wall, kb] = fs.readFileSync(tf, 'utf8').trim().split(/\s+/).map(Number);
  return { wall: wall!, rssMb: kb! / 1024, stderr: '', stdout };
}

/** Like run, but keeps the child's stderr (latentkit prints its timings there). */
function runLk(args: string[], threads: number): Timed & { msPerToken: number } {
  const tf = path.join(work, 'time.txt');
  const err = path.join(work, 'lk-stderr.txt');
  const fd = fs.openSync(err, 'w');
  try {
    execFileSync('/usr/bin/time', ['-o', tf, '-f', '%e %M', process.execPath, path.join(root, 'bin/latentkit.js'), ...args, '-t', String(threads)], { stdio: ['ignore', 'ignore', fd] });
  } finally {
    fs.closeSync(fd);
  }
  const stderr = fs.readFileSync(err, 'utf8');
  const [wall, kb] = fs.readFileSync(tf, 'utf8').trim().split(/\s+/).map(Number);
  const m = /([\d.]+) ms per token step/.exec(stderr);
  if (!m) throw new Error(`latentkit sample printed no per-token time:\n${stderr}`);
  return { wall: wall!, rssMb: kb! / 1024, stderr, stdout: '', msPerToken: Number(m[1]) };
}

function makeModel(dir: string): { params: number } {
  const gc = parseGPTConfig({ vocab_size: 1024, block_size: 257, n_layer: 12, n_head: 8, n_embd: 512 });
  fs.mkdirSync(dir, { recursive: true });
  const vq = VQGAN.load(VQ);
  const cfg: Net2NetConfig = {
    transformer: gc,
    first_stage: vq.config,
    first_stage_ckpt: VQ,
    cond_stage: { kind: 'label', n_classes: 10 },
    pkeep: 1,
    sos_token: 0,
    downsample_cond_size: -1,
    first_stage_key: 'image',
    cond_stage_key: 'class_label',
    base_learning_rate: 4.5e-6,
    grid: [16, 16],
  };
  if (!fs.existsSync(path.join(dir, 'model.safetensors'))) {
    const w = initGPT(gc, new InitRng(7));
    writeSafetensorsFile(path.join(dir, 'model.safetensors'), new Map([...w].map(([k, v]) => [`transformer.${k}`, v])));
  }
  fs.writeFileSync(path.join(dir, 'config.yaml'), YAML.stringify(toTamingNet2Net(cfg)));
  return { params: gptParamCount(gc) };
}

function main() {
  const args = process.argv.slice(2);
  const get = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
  const threadsList = get('--threads', '1,2').split(',').map(Number);
  const batches = get('--batch', '1,4').split(',').map(Number);
  const reps = Number(get('--reps', '2'));
  const skipRecompute = args.includes('--skip-recompute');
  fs.mkdirSync(work, { recursive: true });
  const dir = path.join(work, 'gpt-12x512');
  const { params } = makeModel(dir);
  const best = <T extends { wall: number }>(f: () => T): T => Array.from({ length: reps }, f).sort((a, b) => a.wall - b.wall)[0]!;
  const rows: Record<string, unknown>[] = [];
  console.log(`class-conditional GPT, 12 layers × 512, 8 heads, vocab 1024 (${(params / 1e6).toFixed(1)} M params); 256 tokens per image + emoji-f4 decode; top-k 100; whole process, best of ${reps}`);
  console.log('batch threads | latentkit: process, ms/token, RSS | taming sample_with_past: process, ms/token | static-cache loop: ms/token | full recompute: process');
  for (const b of batches) {
    for (const t of threadsList) {
      const lk = best(() => runLk(['sample', '-m', dir, '--class', '0', '-n', String(b), '--batch', String(b), '--top-k', '100', '-o', path.join(work, 'sample-out')], t));
      const py = (mode: string) => {
        const r = best(() => run('/usr/bin/python3', [path.join(here, 'sample_torch.py'), '--model', dir, '--vq', VQ, '--mode', mode, '--threads', String(t), '--batch', String(b)], { OMP_NUM_THREADS: String(t) }));
        return { ...r, ...(JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, number>) } as Timed & Record<string, number>;
      };
      const tam = py('taming');
      const sta = py('static');
      const rec = skipRecompute ? null : py('recompute');
      const row = { batch: b, threads: t, latentkit: { wall: lk.wall, ms_per_token: lk.msPerToken, rss_mb: lk.rssMb }, taming: tam, static: sta, recompute: rec };
      rows.push(row);
      console.log(
        `${b} ${t} | ${lk.wall.toFixed(2)} s, ${lk.msPerToken.toFixed(2)} ms, ${lk.rssMb.toFixed(0)} MB | ${tam.wall.toFixed(2)} s, ${(tam.per_token_ms as number).toFixed(2)} ms | ${(sta.per_token_ms as number).toFixed(2)} ms | ${rec ? `${rec.wall.toFixed(2)} s` : '-'}`,
      );
    }
  }
  // ratios against each PyTorch variant at its better thread count
  console.log('\nratios (PyTorch variant at its better thread count / latentkit at its better):');
  for (const b of batches) {
    const rs = rows.filter((r) => r.batch === b) as any[];
    const lk = Math.min(...rs.map((r) => r.latentkit.wall));
    const lkTok = Math.min(...rs.map((r) => r.latentkit.ms_per_token));
    const tam = Math.min(...rs.map((r) => r.taming.wall));
    const sta = Math.min(...rs.map((r) => r.static.per_token_ms));
    const rec = rs[0].recompute ? Math.min(...rs.map((r) => r.recompute.wall)) : NaN;
    console.log(`batch ${b}: whole process vs taming ${(tam / lk).toFixed(2)}× (target ≥ 3), vs full recompute ${(rec / lk).toFixed(1)}× (target ≥ 20), per token vs static-cache loop ${(sta / lkTok).toFixed(2)}× (target ≥ 2)`);
  }
  fs.mkdirSync(path.join(here, 'results'), { recursive: true });
  fs.writeFileSync(path.join(here, 'results', `sample-${new Date().toISOString().slice(0, 10)}.json`), JSON.stringify(rows, null, 2) + '\n');
}

main();
