// Chooses a transformer's recommended sampling settings by measuring them on held-out data.
// Each setting samples the same conditions with the same seed; one table row per setting.
//
// - Sketch models: the sketches of N held-out emoji (the val split, never trained on), made as
//   the training sketches were. Per sample: edge correlation of its own sketch with the
//   condition (how well it follows the drawing; judge_sketch's measure), the RMS distance of its
//   16×16 thumbnail to the held-out emoji that sketch came from (colours and parts in place),
//   and whether the kNN judge (emoji_judge.ts) puts it in that emoji's category.
// - Class models: N samples per class; the kNN judge's agreement with the asked class, per class
//   and over all, beside the judge's own recall on real held-out emoji.
//
//   node --import tsx scripts/tune_sampling.ts MODEL OUT.json [--n 32] [--seed 0] [--threads 2]
//        [--settings '[{"topK":100},{"topK":100,"guidance":2}]']
import fs from 'node:fs';
import path from 'node:path';
import { Net2Net } from '../src/models/cond_transformer/load.ts';
import type { SamplingFlags } from '../src/models/cond_transformer/sampling.ts';
import { floatToU8, loadImageU8 } from '../src/io/image.ts';
import { sketchFromImage, sketchToFloat } from '../src/io/sketch.ts';
import { emojiDataset, splitDataset } from '../src/io/datasets.ts';
import { HostTensor } from '../src/tensor.ts';
import { buildJudge, features } from './emoji_judge.ts';
import { inkBlurred, pearson } from './judge_sketch_lib.ts';

const args = process.argv.slice(2);
const flag = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
const positional = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1]!.startsWith('--')));
const [modelPath, out] = positional;
if (!modelPath || !out) throw new Error('usage: tune_sampling.ts MODEL OUT.json [--n 32] [--seed 0] [--settings JSON]');
const N = Number(flag('--n', '32'));
const seed = Number(flag('--seed', '0'));
const threads = Number(flag('--threads', '2'));
const settings = JSON.parse(flag('--settings', '[{"topK":100}]')) as SamplingFlags[];

const m = Net2Net.load(modelPath, { session: { threads } });
const judge = await buildJudge();
console.log(`judge (kNN over the training emoji) on ${judge.heldOut.perClass.reduce((a, c) => a + c.n, 0)} held-out real emoji: accuracy ${(100 * judge.heldOut.accuracy).toFixed(1)}%`);
console.log(judge.heldOut.perClass.map((c) => `  ${c.name}: ${(100 * c.recall).toFixed(0)}% of ${c.n}`).join('\n'));

const u8Of = (imgs: HostTensor, k: number) => floatToU8((imgs.data as Float32Array).slice(k * 3 * 4096, (k + 1) * 3 * 4096));
const thumb = (u8: ArrayLike<number>) => features(u8).slice(0, 3 * 256);
const rms = (a: Float32Array, b: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0) / a.length);
const fmt = (s: SamplingFlags) => Object.entries(s).map(([k, v]) => `${k} ${v}`).join(', ') || 'built-in';
const rows: Record<string, unknown>[] = [];

if (m.config.cond_input === 'sketch') {
  const ds = await emojiDataset({ set: 'both' });
  const { val } = splitDataset(ds.items);
  const items = Array.from({ length: N }, (_, i) => val[Math.floor((i * val.length) / N)]!);
  const imgs = await Promise.all(items.map((it) => loadImageU8(it.path, { size: 64 })));
  const sketches = imgs.map((im) => sketchFromImage(im));
  const condInk = sketches.map((s) => inkBlurred(s.data as Uint8Array));
  const batch = HostTensor.float32([N, 1, 64, 64], new Float32Array(N * 4096));
  sketches.forEach((s, i) => (batch.data as Float32Array).set(sketchToFloat(s).data as Float32Array, i * 4096));
  const cond = await m.encodeCondition(batch);
  const truthThumb = imgs.map((im) => thumb(im.data));
  console.log(`\n${N} held-out sketches, seed ${seed}\n| setting | edge correlation | thumbnail RMS to the true emoji | judge: same category | s |`);
  console.log('|---|--:|--:|--:|--:|');
  for (const s of settings) {
    const t0 = performance.now();
    const tokens = await m.sample({ ...s, n: N, cond, seed });
    const secs = (performance.now() - t0) / 1000;
    const dec = await m.decodeTokens(tokens, N);
    let corr = 0;
    let dist = 0;
    const fs_: Float32Array[] = [];
    for (let k = 0; k < N; k++) {
      const u8 = u8Of(dec, k);
      corr += pearson(condInk[k]!, inkBlurred(sketchFromImage(new HostTensor('uint8', [3, 64, 64], u8)).data as Uint8Array)) / N;
      dist += rms(thumb(u8), truthThumb[k]!) / N;
      fs_.push(features(u8));
    }
    const same = judge.predict(fs_).filter((p, k) => p === items[k]!.categoryIndex).length;
    console.log(`| ${fmt(s)} | ${corr.toFixed(3)} | ${dist.toFixed(4)} | ${same}/${N} | ${secs.toFixed(1)} |`);
    rows.push({ setting: s, edgeCorrelation: corr, thumbRms: dist, sameCategory: same, n: N, seconds: secs });
  }
  // the real emoji's own agreement, for scale
  const truthSame = judge.predict(imgs.map((im) => features(im.data))).filter((p, k) => p === items[k]!.categoryIndex).length;
  console.log(`(the ${N} held-out emoji themselves: judge same category ${truthSame}/${N})`);
} else {
  const classes = m.config.classes ?? judge.classes;
  const C = classes.length;
  const cond = Int32Array.from({ length: C * N }, (_, i) => Math.floor(i / N));
  console.log(`\n${N} samples per class, seed ${seed}\n| setting | ${classes.join(' | ')} | all | s |`);
  console.log(`|---|${classes.map(() => '--:').join('|')}|--:|--:|`);
  for (const s of settings) {
    const t0 = performance.now();
    const tokens = await m.sample({ ...s, n: C * N, cond, seed });
    const secs = (performance.now() - t0) / 1000;
    const dec = await m.decodeTokens(tokens, C * N);
    const pred = judge.predict(Array.from({ length: C * N }, (_, k) => features(u8Of(dec, k))));
    const per = classes.map((_, c) => pred.slice(c * N, (c + 1) * N).filter((p) => judge.classes[p] === classes[c]).length);
    console.log(`| ${fmt(s)} | ${per.join(' | ')} | ${per.reduce((a, v) => a + v, 0)}/${C * N} | ${secs.toFixed(0)} |`);
    rows.push({ setting: s, perClass: Object.fromEntries(classes.map((c, i) => [c, per[i]])), n: N, seconds: secs });
  }
}
fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
fs.writeFileSync(out, JSON.stringify({ model: path.basename(modelPath), seed, judge: judge.heldOut, rows }, null, 2) + '\n');
console.log(`wrote ${out}`);
await m.release();
