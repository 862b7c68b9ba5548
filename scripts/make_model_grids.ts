// The sample grids committed with the transformer models, regenerated from the models and
// the seeds given here (so anyone can reproduce them):
//   node --import tsx scripts/make_model_grids.ts class  [models/emoji-class]
//   node --import tsx scripts/make_model_grids.ts sketch [models/emoji-sketch]
// class:  one row per category, 8 samples each, at four settings (plain, top-k, guided, and
//         the model's recommended ones; `class-defaults` makes only that last grid).
// sketch: one row per drawing in <model>/drawings/ (the drawing as the model sees it, then
//         samples), and held-out emoji sketches (sketch | samples | the original emoji).
import fs from 'node:fs';
import path from 'node:path';
import { Net2Net } from '../src/models/cond_transformer/load.ts';
import { loadImageU8, saveLabeledGrid } from '../src/io/image.ts';
import { normalizeDrawing, sketchBatch, sketchToFloat } from '../src/io/sketch.ts';
import { HostTensor } from '../src/tensor.ts';
import { loadTrainingData } from '../src/train/vqgan_run.ts';
import { samplingSettings } from '../src/models/cond_transformer/sampling.ts';

const [kind, dirArg] = process.argv.slice(2);
const dir = dirArg ?? (kind === 'sketch' ? 'models/emoji-sketch' : 'models/emoji-class');
// class-defaults: only the grid at the model's recommended settings
const out = path.join(dir, 'samples');
fs.mkdirSync(out, { recursive: true });
const m = Net2Net.load(dir);

const tile = (t: HostTensor, i: number): HostTensor<'float32'> => {
  const [, c, h, w] = t.shape as [number, number, number, number];
  const d = (t.data as Float32Array).slice(i * c * h * w, (i + 1) * c * h * w);
  if (c === 3) return HostTensor.float32([3, h, w], d);
  return HostTensor.float32([3, h, w], Float32Array.from({ length: 3 * h * w }, (_, k) => d[k % (h * w)]!));
};

async function classGrids(only?: string) {
  const names = m.classes!;
  const per = 8;
  const settings: { file: string; title: string; o: Record<string, number> }[] = [
    { file: 'classes-t1.png', title: 'temperature 1, no filtering', o: { temperature: 1 } },
    { file: 'classes-topk100.png', title: 'temperature 1, top-k 100', o: { temperature: 1, topK: 100 } },
    { file: 'classes-cfg2.png', title: 'temperature 1, top-k 100, guidance 2', o: { temperature: 1, topK: 100, guidance: 2 } },
    { file: 'classes-defaults.png', title: `the model's recommended settings (${samplingSettings(m, {}).fromModel.join(', ')})`, o: samplingSettings(m, {}).sampling as Record<string, number> },
  ];
  for (const s of settings.filter((x) => !only || x.file === only)) {
    const tiles: HostTensor[] = [];
    for (let c = 0; c < names.length; c++) {
      const t0 = performance.now();
      const tokens = await m.sample({ ...s.o, n: per, cond: [c], seed: 1 });
      const img = await m.decodeTokens(tokens, per);
      for (let i = 0; i < per; i++) tiles.push(tile(img, i));
      console.error(`${s.file}: ${names[c]} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    }
    await saveLabeledGrid(path.join(out, s.file), tiles, { cols: per, rowLabels: names, title: `${path.basename(dir)} samples, seed 1: ${s.title}` });
  }
  if (only) return;
  // a canvas larger than the training grid (32×32 codes, 128×128 px) by sliding window
  const tokens = await m.sample({ n: 4, cond: [names.indexOf('Flags')], seed: 1, topK: 100, grid: [32, 32] });
  const img = await m.decodeTokens(tokens, 4, [32, 32]);
  await saveLabeledGrid(path.join(out, 'flags-128px-window.png'), [0, 1, 2, 3].map((i) => tile(img, i)), { cols: 4, scale: 1, title: 'Flags at 128×128 (32×32 codes, sliding 16×16 window), top-k 100' });
}

async function sketchGrids() {
  const per = 4;
  // the model's own recommended settings (config latentkit.sampling)
  const { sampling: o, fromModel } = samplingSettings(m, {});
  const how = fromModel.join(', ') || 'temperature 1';
  const name = path.basename(dir);
  const drawDir = fs.existsSync(path.join(dir, 'drawings')) ? path.join(dir, 'drawings') : 'models/emoji-sketch/drawings';
  const drawings = fs.readdirSync(drawDir).filter((f) => f.endsWith('.png')).sort();
  const tiles: HostTensor[] = [];
  for (const f of drawings) {
    const sketch = sketchToFloat(normalizeDrawing(await loadImageU8(path.join(drawDir, f))));
    const cond = await m.encodeCondition(sketch.reshape([1, 1, 64, 64]));
    const tokens = await m.sample({ ...o, n: per, cond, seed: 1 });
    const img = await m.decodeTokens(tokens, per);
    tiles.push(tile(sketch.reshape([1, 1, 64, 64]), 0), ...[0, 1, 2, 3].map((i) => tile(img, i)));
    console.error(`drawing ${f}`);
  }
  await saveLabeledGrid(path.join(out, 'drawings.png'), tiles, { cols: per + 1, rowLabels: drawings.map((d) => d.replace('.png', '')), colLabels: ['drawing (normalised)', 'sample 1', 'sample 2', 'sample 3', 'sample 4'], title: `${name}: hand-drawn sketches → emoji (${how}, seed 1)` });
  // held-out emoji: their sketches → samples, next to the emoji they came from
  const d = await loadTrainingData('emoji', 64, 0.05);
  const pick = d.valIdx.filter((_, i) => i % 23 === 0).slice(0, 8);
  const imgs = new HostTensor('uint8', [pick.length, 3, 64, 64], new Uint8Array(pick.length * 3 * 4096));
  pick.forEach((r, i) => imgs.data.set(d.images.data.subarray(r * 3 * 4096, (r + 1) * 3 * 4096), i * 3 * 4096));
  const sk = sketchBatch(imgs);
  const rows: HostTensor[] = [];
  for (let i = 0; i < pick.length; i++) {
    const s = sketchToFloat(new HostTensor('uint8', [1, 64, 64], sk.data.subarray(i * 4096, (i + 1) * 4096)));
    const cond = await m.encodeCondition(s.reshape([1, 1, 64, 64]));
    const tokens = await m.sample({ ...o, n: 3, cond, seed: 1 });
    const img = await m.decodeTokens(tokens, 3);
    const orig = HostTensor.float32([3, 64, 64], Float32Array.from(imgs.data.subarray(i * 3 * 4096, (i + 1) * 3 * 4096), (v) => v / 127.5 - 1));
    rows.push(tile(s.reshape([1, 1, 64, 64]), 0), tile(img, 0), tile(img, 1), tile(img, 2), orig);
  }
  await saveLabeledGrid(path.join(out, 'held-out.png'), rows, { cols: 5, colLabels: ['sketch', 'sample 1', 'sample 2', 'sample 3', 'original'], title: `${name} on held-out emoji sketches (${how}, seed 1)` });
}

if (kind === 'class') await classGrids();
else if (kind === 'class-defaults') await classGrids('classes-defaults.png');
else if (kind === 'sketch') await sketchGrids();
else throw new Error("usage: make_model_grids.ts class|class-defaults|sketch [model dir]");
await m.release();
