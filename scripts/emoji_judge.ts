// An independent emoji-category judge for generated samples: k nearest neighbours over the
// training emoji's pixels, no learned weights and nothing shared with the models it judges.
// Features: the image over white, averaged to 16×16 RGB (layout and colour), plus a 4×4×4
// colour histogram of its non-white pixels (colour alone, wherever it is). Each feature block is
// centred on the training mean and scaled to unit norm per image; the distance is cosine.
// `accuracy()` scores the judge itself on the held-out real emoji (the training split's val).
import { emojiDataset, splitDataset, type EmojiItem } from '../src/io/datasets.ts';
import { loadImageU8 } from '../src/io/image.ts';

const SIDE = 16;
const BINS = 4;
export const DIM = 3 * SIDE * SIDE + BINS ** 3;

/** features of an RGB uint8 image, planar [3, 64, 64] */
export function features(u8: ArrayLike<number>, h = 64, w = 64): Float32Array {
  const f = new Float32Array(DIM);
  const s = h / SIDE;
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) f[c * SIDE * SIDE + Math.floor(y / s) * SIDE + Math.floor(x / s)]! += u8[c * h * w + y * w + x]! / 255 / (s * s);
  let n = 0;
  const hist = 3 * SIDE * SIDE;
  for (let i = 0; i < h * w; i++) {
    const [r, g, b] = [u8[i]!, u8[h * w + i]!, u8[2 * h * w + i]!];
    if (r > 235 && g > 235 && b > 235) continue; // paper
    const bin = (Math.floor(r / 64) * BINS + Math.floor(g / 64)) * BINS + Math.floor(b / 64);
    f[hist + bin]! += 1;
    n++;
  }
  if (n) for (let i = hist; i < DIM; i++) f[i]! /= n;
  return f;
}

export interface Judge {
  classes: string[];
  /** predicted class index of each feature vector */
  predict(fs: Float32Array[]): number[];
  /** the judge on held-out real emoji: recall per class and overall accuracy */
  heldOut: { perClass: { name: string; n: number; recall: number }[]; accuracy: number };
}

function normalizeBlocks(f: Float32Array, mean: Float32Array): Float32Array {
  const o = new Float32Array(DIM);
  for (const [a, b] of [[0, 3 * SIDE * SIDE], [3 * SIDE * SIDE, DIM]] as const) {
    let ss = 0;
    for (let i = a; i < b; i++) ss += (o[i] = f[i]! - mean[i]!) ** 2;
    const k = 1 / Math.sqrt(ss || 1);
    for (let i = a; i < b; i++) o[i]! *= k;
  }
  return o;
}

/** Build the judge from the bundled emoji (both sets) with k neighbours (default 7). */
export async function buildJudge(k = 7): Promise<Judge> {
  const ds = await emojiDataset({ set: 'both' });
  const { train, val } = splitDataset(ds.items);
  const load = async (items: readonly EmojiItem[]) => Promise.all(items.map(async (it) => features((await loadImageU8(it.path, { size: 64 })).data)));
  const trainF = await load(train);
  const mean = new Float32Array(DIM);
  for (const f of trainF) for (let i = 0; i < DIM; i++) mean[i]! += f[i]! / trainF.length;
  const bank = trainF.map((f) => normalizeBlocks(f, mean));
  const labels = train.map((t) => t.categoryIndex);
  const C = ds.categories.length;
  const predict = (fs: Float32Array[]) =>
    fs.map((f) => {
      const q = normalizeBlocks(f, mean);
      const best: [number, number][] = [];
      for (let j = 0; j < bank.length; j++) {
        let d = 0;
        const b = bank[j]!;
        for (let i = 0; i < DIM; i++) d += q[i]! * b[i]!;
        if (best.length < k || d > best[best.length - 1]![0]) {
          best.push([d, labels[j]!]);
          best.sort((x, y) => y[0] - x[0]);
          if (best.length > k) best.pop();
        }
      }
      const votes = new Float64Array(C);
      for (const [d, l] of best) votes[l]! += 1 + 1e-3 * d; // ties go to the nearer
      return votes.indexOf(Math.max(...votes));
    });
  const valPred = predict(await load(val));
  const perClass = ds.categories.map((name, c) => {
    const idx = val.map((v, i) => (v.categoryIndex === c ? i : -1)).filter((i) => i >= 0);
    return { name, n: idx.length, recall: idx.length ? idx.filter((i) => valPred[i] === c).length / idx.length : 0 };
  });
  const accuracy = val.filter((v, i) => valPred[i] === v.categoryIndex).length / val.length;
  return { classes: ds.categories, predict, heldOut: { perClass, accuracy } };
}
