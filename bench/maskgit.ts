// Parallel (MaskGIT) vs autoregressive sketch → emoji, side by side on the same drawing:
// `latentkit sample --cond DRAWING -n 4` with each model, whole process (wall and peak RSS by
// /usr/bin/time) and sampling alone (the CLI's own "N samples in X s" line, which excludes
// loading and the PNG writes), alternating A/B for --reps rounds on onnxruntime-node; then
// the same four samples through the standalone ONNX exports on onnxruntime-web's WASM build
// (the page's in-browser path, one sample after another) in this Node process; then the page
// itself in headless Chromium: the Draw view's answer time (its status line, request to
// pictures) for one stroke, on the server and in the browser (WASM, in the page's worker).
//
//   node --import tsx bench/maskgit.ts [--parallel models/emoji-sketch-maskgit] [--ar models/emoji-sketch]
//        [--steps 12,8] [--reps 3] [--threads 2] [--drawing models/emoji-sketch/drawings/face.png]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ortWeb from 'onnxruntime-web';
import { Net2Net } from '../src/models/cond_transformer/load.ts';
import { net2netOnnx, type Net2NetOnnxManifest } from '../src/models/export_onnx.ts';
import { StandaloneNet2Net } from '../src/runtime/standalone.ts';
import { decodeImageBytesU8 } from '../src/io/image.ts';
import { loadServedModel } from '../src/serve/models.ts';
import { samplingSettings } from '../src/models/cond_transformer/sampling.ts';
import { padStroke, paintPad, servePage } from '../test/web/harness.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const get = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
const parallel = get('--parallel', path.join(root, 'models/emoji-sketch-maskgit'));
const ar = get('--ar', path.join(root, 'models/emoji-sketch'));
const stepsList = get('--steps', '12,8').split(',').map(Number);
const reps = Number(get('--reps', '3'));
const threads = Number(get('--threads', '2'));
const drawing = get('--drawing', path.join(root, 'models/emoji-sketch/drawings/face.png'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-bench-maskgit-'));

interface Row { model: string; wall: number; rssMb: number; sampleS: number }

function sample(model: string, extra: string[]): Row {
  const tf = path.join(tmp, 'time.txt');
  const err = path.join(tmp, 'stderr.txt');
  const fd = fs.openSync(err, 'w');
  try {
    execFileSync('/usr/bin/time', ['-o', tf, '-f', '%e %M', process.execPath, path.join(root, 'bin/latentkit.js'), 'sample', '--model', model, '--cond', drawing, '-n', '4', '--batch', '4', '--out', path.join(tmp, 'out'), '-t', String(threads), ...extra], { stdio: ['ignore', 'ignore', fd] });
  } finally {
    fs.closeSync(fd);
  }
  const stderr = fs.readFileSync(err, 'utf8');
  const [wall, kb] = fs.readFileSync(tf, 'utf8').trim().split(/\s+/).map(Number);
  const m = /4 samples in ([\d.]+) s/.exec(stderr);
  if (!m) throw new Error(`no sampling time in:\n${stderr}`);
  return { model: path.basename(model), wall: wall!, rssMb: kb! / 1024, sampleS: Number(m[1]) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function wasm(model: string, steps?: number, guidance?: number): Promise<number> {
  ortWeb.env.wasm.numThreads = 1;
  const m = Net2Net.load(model, { session: { threads } });
  const e = net2netOnnx(m, { batch: 1 });
  const web = await StandaloneNet2Net.load(ortWeb as never, e.manifest as unknown as Net2NetOnnxManifest, async (f) => e.files.get(f)!);
  const u8 = await decodeImageBytesU8(new Uint8Array(fs.readFileSync(drawing)));
  const cond = await web.sketchCondition(u8.data as Uint8Array, u8.shape[1]!, u8.shape[2]!);
  const { sampling } = samplingSettings(m, { ...(steps !== undefined ? { steps } : {}), ...(guidance !== undefined ? { guidance } : {}) });
  const o = { ...sampling, n: 4, cond, seed: 0 };
  await web.sample({ ...o, n: 1 }); // warm-up
  const t0 = performance.now();
  await web.sample(o);
  const s = (performance.now() - t0) / 1000;
  await web.release();
  await m.release();
  return s;
}

const lines: string[] = [];
const say = (l: string) => {
  lines.push(l);
  console.log(l);
};
say(`sketch → 4 emoji, ${drawing.replace(root + '/', '')}, ${threads} threads, ${os.cpus().length} cores; median of ${reps}`);
say('| model | passes | whole process (s) | sampling alone (s) | peak RSS (MB) | vs autoregressive (sampling) |');
say('|---|--:|--:|--:|--:|--:|');
const runs: Record<string, Row[]> = {};
// each model with its own recommended settings (the parallel model's include guidance 2: two
// rows per sample per pass); the parallel model also without guidance
const variants = [...stepsList.map((s) => ({ key: `p${s}`, passes: `${s}`, args: ['--steps', String(s)], steps: s, guidance: undefined as number | undefined })), { key: 'p12-cfg0', passes: '12, no guidance', args: ['--steps', '12', '--cfg', '0'], steps: 12, guidance: 0 }];
for (let r = 0; r < reps; r++) {
  (runs.ar ??= []).push(sample(ar, []));
  for (const v of variants) (runs[v.key] ??= []).push(sample(parallel, v.args));
}
const arS = median(runs.ar!.map((x) => x.sampleS));
const row = (name: string, passes: string, xs: Row[]) => say(`| ${name} | ${passes} | ${median(xs.map((x) => x.wall)).toFixed(2)} | ${median(xs.map((x) => x.sampleS)).toFixed(2)} | ${median(xs.map((x) => x.rssMb)).toFixed(0)} | ${(arS / median(xs.map((x) => x.sampleS))).toFixed(2)}× |`);
row(path.basename(ar), '256 tokens', runs.ar!);
for (const v of variants) row(path.basename(parallel), v.passes, runs[v.key]!);
say('');
say('WASM (onnxruntime-web, 1 thread, standalone exports, one sample after another), sampling alone:');
say('| model | passes | sampling alone | vs autoregressive |');
say('|---|--:|--:|--:|');
const wa = await wasm(ar);
say(`| ${path.basename(ar)} | 256 tokens | ${wa.toFixed(2)} s | 1.00× |`);
for (const v of variants) {
  const wp = await wasm(parallel, v.steps, v.guidance);
  say(`| ${path.basename(parallel)} | ${v.passes} | ${wp.toFixed(2)} s | ${(wa / wp).toFixed(2)}× |`);
}

// The page in headless Chromium: the drawing painted onto the pad, then one short stroke (one
// request); the Draw view's own status line gives the answer time. First answer = warm-up
// (the WASM worker loads the model then); median of the next --reps.
say('');
say(`The page's Draw view in headless Chromium (4 emoji per answer; median of ${reps} strokes after a warm-up one):`);
say('| model | server | in the browser (WASM) |');
say('|---|--:|--:|');
const page = await servePage([loadServedModel(ar), loadServedModel(parallel)]);
try {
  const drawingPng = fs.readFileSync(drawing);
  const times: Record<string, Record<string, number>> = {};
  for (const backend of ['server', 'wasm']) {
    for (const model of [ar, parallel]) {
      const p = await page.browser.newPage({ viewport: { width: 1100, height: 760 } });
      await p.goto(page.url);
      await p.waitForSelector('body[data-ready="1"]', { timeout: 30_000 });
      await p.selectOption('#backend', backend);
      await p.selectOption('#draw-model', path.basename(model));
      await paintPad(p, drawingPng);
      const ms: number[] = [];
      for (let r = 0; r <= reps; r++) {
        await p.evaluate(() => document.getElementById('draw-out')!.replaceChildren());
        // a short stroke along the face's outline (its top): one request, no new ink outside it
        await padStroke(p, 0.48 + 0.01 * r, 0.1);
        await p.waitForFunction(() => !document.body.dataset.busy && document.querySelectorAll('#draw-out img').length === 4, null, { timeout: 300_000 });
        const m = /: (\d+) ms$/.exec((await p.textContent('#status')) ?? '');
        if (!m) throw new Error(`no answer time in the status line: ${await p.textContent('#status')}`);
        if (r > 0) ms.push(Number(m[1]));
      }
      (times[path.basename(model)] ??= {})[backend] = median(ms);
      await p.close();
    }
  }
  for (const model of [ar, parallel]) {
    const t = times[path.basename(model)]!;
    say(`| ${path.basename(model)} | ${(t.server! / 1000).toFixed(2)} s | ${(t.wasm! / 1000).toFixed(2)} s |`);
  }
} finally {
  await page.close();
}

const out = path.join(root, 'bench/results', `maskgit-${new Date().toISOString().slice(0, 10)}.md`);
fs.writeFileSync(out, lines.join('\n') + '\n');
console.log(`wrote ${out}`);
