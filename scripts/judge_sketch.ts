// The sketch judge: how well a sketch → emoji model follows a drawing, independently of the
// model. For each hand-drawn test drawing (models/emoji-sketch/drawings/*.png), n samples are
// drawn; each sample's own sketch is extracted exactly as the training sketches were
// (io/sketch.ts sketchFromImage: edges → thinning → 3-px strokes), and compared with the
// drawing as the model saw it (normalizeDrawing) by the Pearson correlation of their ink maps,
// both blurred by a 5×5 box so a stroke one or two pixels off still counts. Chance level: the
// same correlation against the sketches of 64 emoji (every 20th of the set). Prints a table per
// model and writes <out>/judge.json and <out>/<model>-<drawing>.png grids.
//   node --import tsx scripts/judge_sketch.ts OUT MODEL... [--n 8] [--seed 0] [--steps T] [--threads 2]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Net2Net } from '../src/models/cond_transformer/load.ts';
import { decodeImageBytesU8, floatToU8, saveLabeledGrid } from '../src/io/image.ts';
import { normalizeDrawing, sketchFromImage, sketchToFloat } from '../src/io/sketch.ts';
import { emojiDataset } from '../src/io/datasets.ts';
import { loadImageU8 } from '../src/io/image.ts';
import { HostTensor } from '../src/tensor.ts';
import { samplingSettings } from '../src/models/cond_transformer/sampling.ts';
import { inkBlurred, pearson } from './judge_sketch_lib.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
const positional = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1]!.startsWith('--')));
const [out, ...models] = positional;
if (!out || !models.length) throw new Error('usage: judge_sketch.ts OUT MODEL... [--n 8] [--seed 0] [--steps T]');
const n = Number(flag('--n', '8'));
const seed = Number(flag('--seed', '0'));
const threads = Number(flag('--threads', '2'));
const steps = args.includes('--steps') ? Number(flag('--steps', '12')) : undefined;
fs.mkdirSync(out, { recursive: true });

/** a float image [3, 64, 64] in [−1, 1] → its training-style sketch's blurred ink */
function sampleInk(img: Float32Array): Float64Array {
  const u8 = floatToU8(img);
  return inkBlurred(sketchFromImage(new HostTensor('uint8', [3, 64, 64], u8)).data as Uint8Array);
}

const drawingsDir = path.join(root, 'models/emoji-sketch/drawings');
const drawings = fs.readdirSync(drawingsDir).filter((f) => f.endsWith('.png')).sort();
const conds = await Promise.all(drawings.map(async (f) => normalizeDrawing(await decodeImageBytesU8(new Uint8Array(fs.readFileSync(path.join(drawingsDir, f)))), { size: 64 })));
const condInk = conds.map((c) => inkBlurred(c.data as Uint8Array));

// chance: the drawings against the sketches of 64 emoji (every 20th)
const ds = await emojiDataset();
const val = ds.items.filter((_, i) => i % 20 === 7).slice(0, 64);
const chanceInk = await Promise.all(val.map(async (it) => inkBlurred(sketchFromImage(await loadImageU8(it.path, { size: 64 })).data as Uint8Array)));
const chance = condInk.map((c) => chanceInk.reduce((a, s) => a + pearson(c, s), 0) / chanceInk.length);

const results: Record<string, unknown> = { drawings, n, seed, chance: Object.fromEntries(drawings.map((d, i) => [d, chance[i]])) };
console.log(`| model | ${drawings.map((d) => d.replace('.png', '')).join(' | ')} | mean |`);
console.log(`|---|${drawings.map(() => '--:').join('|')}|--:|`);
console.log(`| chance (64 emoji) | ${chance.map((v) => v.toFixed(3)).join(' | ')} | ${(chance.reduce((a, v) => a + v, 0) / chance.length).toFixed(3)} |`);
for (const mp of models) {
  const m = Net2Net.load(mp, { session: { threads } });
  const { sampling } = samplingSettings(m, { steps });
  const per: number[] = [];
  for (let d = 0; d < drawings.length; d++) {
    const cond = await m.encodeCondition(sketchToFloat(conds[d]!).reshape([1, 1, 64, 64]));
    const tokens = await m.sample({ ...sampling, n, cond, seed });
    const imgs = await m.decodeTokens(tokens, n);
    const tiles: HostTensor<'float32'>[] = [HostTensor.float32([3, 64, 64], Float32Array.from({ length: 3 * 4096 }, (_, i) => (conds[d]!.data[i % 4096]! / 127.5) - 1))];
    let s = 0;
    for (let k = 0; k < n; k++) {
      const img = (imgs.data as Float32Array).slice(k * 3 * 4096, (k + 1) * 3 * 4096);
      s += pearson(condInk[d]!, sampleInk(img));
      tiles.push(HostTensor.float32([3, 64, 64], img));
    }
    per.push(s / n);
    await saveLabeledGrid(path.join(out, `${path.basename(mp)}-${drawings[d]}`), tiles, { cols: tiles.length, title: `${path.basename(mp)}: ${drawings[d]} (correlation ${(s / n).toFixed(3)})` });
  }
  const mean = per.reduce((a, v) => a + v, 0) / per.length;
  console.log(`| ${path.basename(mp)} | ${per.map((v) => v.toFixed(3)).join(' | ')} | **${mean.toFixed(3)}** |`);
  results[path.basename(mp)] = { per: Object.fromEntries(drawings.map((d, i) => [d, per[i]])), mean, sampling };
  await m.release();
}
fs.writeFileSync(path.join(out, 'judge.json'), JSON.stringify(results, null, 2) + '\n');
console.log(`wrote ${path.join(out, 'judge.json')}`);
