// How models/emoji-sketch reads a drawing's filled areas (eye dots, a filled heart, …) under
// each way normalizeDrawing can redraw them — 'outline' (the area's edge, as an emoji's
// filled shapes appear in the training sketches), 'solid' (kept filled), 'auto' (the
// default: dots solid, larger areas outlined) and 'thin' (thinned like a stroke: a dot
// becomes a point and is dropped as a speck; the behaviour before issue 17.7). For
// every test drawing (made here, deterministic: faces with filled eyes at several canvas
// sizes, pens and dot sizes, a filled heart, a filled star) and every representation:
//  • nll   — bits per image token of real emoji that match the drawing (faces with dot eyes,
//            hearts, stars; both sets) given the condition, teacher-forced: lower = the model
//            reads the condition as that emoji;
//  • rec   — the sketch VQGAN's (models/sketch-f4) reconstruction error of the condition, the
//            fraction of its pixels that flip ink↔paper: lower = closer to the sketches it
//            was trained on;
//  • eyes  — for faces, in n samples (top-k 100, --seed): the mean luminance contrast of each
//            drawn eye against a ring around it, |eye − ring| (eyes are dark on a yellow
//            face, light on a dark one), and how many samples show both eyes (> 0.1 at both);
//  • iou   — samples' non-white area against the drawing's silhouette (its ink, holes filled).
// Writes <out>/conditions.png (the drawings as the model sees them under each representation),
// <out>/samples-<representation>.png and <out>/results.json, and prints a table.
//   node --import tsx scripts/measure_filled_sketches.ts [out dir] [--n 4] [--seed 1] [--only name,…] [--reps auto,outline,…]
import fs from 'node:fs';
import path from 'node:path';
import { Net2Net } from '../src/models/cond_transformer/load.ts';
import { KVDecoder } from '../src/sample/decode.ts';
import { decodeImageBytesU8, loadImage, saveLabeledGrid, svgToPng } from '../src/io/image.ts';
import { emojiPackageDir } from '../src/io/datasets.ts';
import { normalizeDrawing, sketchToFloat, type FilledAreas } from '../src/io/sketch.ts';
import { HostTensor } from '../src/tensor.ts';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const N = Number(flag('--n') ?? 4);
const SEED = Number(flag('--seed') ?? 1);
const only = flag('--only')?.split(',');
const REPS = (flag('--reps')?.split(',') ?? ['auto', 'outline', 'solid', 'thin']) as FilledAreas[];
const OUT = args[0] ?? 'out/filled-sketches';
fs.mkdirSync(OUT, { recursive: true });

// ---- test drawings
let seed = 4242;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
type P = [number, number];
const wob = (pts: P[], amp: number) => pts.map(([x, y]) => [x + (rnd() - 0.5) * amp, y + (rnd() - 0.5) * amp] as P);
const pathD = (pts: P[], close = false) => 'M' + pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' L') + (close ? ' Z' : '');
const arc = (cx: number, cy: number, r: number, n = 48, a0 = 0, a1 = Math.PI * 2): P[] => Array.from({ length: n + 1 }, (_, i) => {
  const a = a0 + ((a1 - a0) * i) / n;
  return [cx + r * Math.cos(a), cy + r * Math.sin(a)];
});
const stroke = (d: string, w: number) => `<path d="${d}" fill="none" stroke="#111" stroke-width="${w}" stroke-linecap="round" stroke-linejoin="round"/>`;
const fill = (d: string) => `<path d="${d}" fill="#111"/>`;
const disc = (cx: number, cy: number, r: number) => `<circle cx="${cx}" cy="${cy}" r="${r}" fill="#111"/>`;
const oval = (cx: number, cy: number, rx: number, ry: number) => `<ellipse cx="${cx}" cy="${cy}" rx="${rx}" ry="${ry}" fill="#111"/>`;
const svg = (size: number, body: string[], alpha = false) =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}">${alpha ? '' : `<rect width="${size}" height="${size}" fill="white"/>`}${body.join('')}</svg>`;

interface Drawing {
  name: string;
  svg: string;
  /** emoji (unified code point file names) this drawing should read as */
  targets: string[];
  /** eye centres, and their smallest and largest radius in drawing pixels (faces) */
  eyes?: { at: P[]; r: number; rMax: number };
}
const FACES = ['1f642', '1f600', '1f603'];
/** A face: outline circle + smile stroked with `pen`, eyes filled discs (or ovals). */
function face(name: string, size: number, pen: number, cx: number, cy: number, r: number, eye: { d: number; oval?: number }, alpha = false, mouth: 'smile' | 'grin' = 'smile'): Drawing {
  const ex = r * 0.36;
  const ey = cy - r * 0.28;
  const at: P[] = [[cx - ex, ey], [cx + ex, ey]];
  const eyes = at.map(([x, y]) => (eye.oval ? oval(x, y, eye.d / 2, (eye.d * eye.oval) / 2) : disc(x, y, eye.d / 2)));
  const m = mouth === 'smile'
    ? stroke(pathD(wob(arc(cx, cy + r * 0.05, r * 0.55, 24, 0.25 * Math.PI, 0.75 * Math.PI), r * 0.03)), pen)
    : fill(pathD([...arc(cx, cy + r * 0.12, r * 0.5, 24, 0, Math.PI)], true));
  return { name, svg: svg(size, [stroke(pathD(wob(arc(cx, cy, r, 64), r * 0.04)), pen), ...eyes, m], alpha), targets: FACES, eyes: { at, r: eye.d / 2, rMax: (eye.d * (eye.oval ?? 1)) / 2 } };
}
const heart = (cx: number, cy: number, s: number): P[] => Array.from({ length: 80 }, (_, i) => {
  const t = (i / 79) * Math.PI * 2;
  return [cx + s * 16 * Math.pow(Math.sin(t), 3), cy - s * (13 * Math.cos(t) - 5 * Math.cos(2 * t) - 2 * Math.cos(3 * t) - Math.cos(4 * t))];
});
const star = (cx: number, cy: number, r: number): P[] => Array.from({ length: 10 }, (_, i) => {
  const a = -Math.PI / 2 + (i * Math.PI) / 5;
  const rr = i % 2 ? r * 0.42 : r;
  return [cx + rr * Math.cos(a), cy + rr * Math.sin(a)];
});
const DRAWINGS: Drawing[] = [
  // the page's pad: 256², 6 px pen, 30 px eye dots
  face('dots-256-p6-d30', 256, 6, 128, 130, 100, { d: 30 }),
  // face.png's canvas and pen, 30 px dots
  face('dots-400-p14-d30', 400, 14, 200, 205, 165, { d: 30 }),
  // thin pen, big dots, transparent background
  face('dots-512-p5-d50', 512, 5, 256, 256, 200, { d: 50 }, true),
  // small face off-centre, small dots
  face('dots-300-p8-d20', 300, 8, 110, 120, 80, { d: 20 }),
  // dots the width of the pen (a tap)
  face('taps-400-p12-d12', 400, 12, 200, 200, 170, { d: 12 }),
  // filled oval eyes (Twitter's 😀) and a filled open mouth
  face('ovals-grin-400-p10', 400, 10, 200, 200, 170, { d: 34, oval: 1.7 }, false, 'grin'),
  { name: 'filled-heart-512', svg: svg(512, [fill(pathD(wob(heart(256, 250, 12), 4), true))], true), targets: ['2764-fe0f', '1f49b', '1f499'] },
  { name: 'filled-star-256', svg: svg(256, [fill(pathD(wob(star(128, 135, 110), 4), true))]), targets: ['2b50', '1f31f'] },
];

// ---- models
const m = Net2Net.load('models/emoji-sketch');
const dec = new KVDecoder(m.config.transformer, m.weights, m.session);
const S = 64;
const lum = (img: Float32Array, i: number) => (0.299 * img[i]! + 0.587 * img[S * S + i]! + 0.114 * img[2 * S * S + i]! + 1) / 2;

async function emojiCodes(names: string[]): Promise<{ codes: Int32Array; n: number }> {
  const files = (['google', 'twitter'] as const).flatMap((set) => names.map((u) => path.join(emojiPackageDir(set), 'img', set, '64', `${u}.png`)));
  const data = new Float32Array(files.length * 3 * S * S);
  for (const [i, f] of files.entries()) data.set((await loadImage(f)).data as Float32Array, i * 3 * S * S);
  const { indices } = await m.firstStage.encode(HostTensor.float32([files.length, 3, S, S], data));
  return { codes: Int32Array.from(indices.toArray(), Number), n: files.length };
}

/** Mean bits per image token of `codes` (n rows of 256) given the condition, teacher-forced. */
async function nll(cond: Int32Array, codes: Int32Array, n: number): Promise<number> {
  const V = m.config.transformer.vocab_size;
  const T = codes.length / n;
  let nats = 0;
  await dec.decode(Int32Array.from({ length: n * cond.length }, (_, i) => cond[i % cond.length]!), n, T, (logits, t) => {
    const pick = new Int32Array(n);
    for (let b = 0; b < n; b++) {
      const row = logits.subarray(b * V, (b + 1) * V);
      let mx = -Infinity;
      for (const v of row) if (v > mx) mx = v;
      let z = 0;
      for (const v of row) z += Math.exp(v - mx);
      pick[b] = codes[b * T + t]!;
      nats += Math.log(z) + mx - row[pick[b]!]!;
    }
    return pick;
  });
  return nats / Math.LN2 / codes.length;
}

/** Where the drawing's point lands on the 64² canvas (normalizeDrawing's fit, margin 3). */
function fitter(u8: HostTensor<'uint8'>): (p: P) => P {
  const [, h, w] = u8.shape as [number, number, number];
  let [y0, y1, x0, x1] = [h, -1, w, -1];
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = y * w + x;
    if (0.299 * u8.data[i]! + 0.587 * u8.data[h * w + i]! + 0.114 * u8.data[2 * h * w + i]! < 128) [y0, y1, x0, x1] = [Math.min(y0, y), Math.max(y1, y), Math.min(x0, x), Math.max(x1, x)];
  }
  const side = (Math.max(y1 - y0 + 1, x1 - x0 + 1) * S) / (S - 6);
  const sx = (x0 + x1 + 1) / 2 - side / 2;
  const sy = (y0 + y1 + 1) / 2 - side / 2;
  return ([x, y]) => [((x - sx) / side) * S - 0.5, ((y - sy) / side) * S - 0.5];
}

/** Contrast of a dark spot at c (radii r … rMax) against a ring around it, in [0, 1] luminance. */
function eyeContrast(img: Float32Array, c: P, r: number, rMax: number): number {
  let [a, na, b, nb] = [0, 0, 0, 0];
  for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
    const d = Math.hypot(x - c[0], y - c[1]);
    if (d <= Math.max(1, 0.7 * r)) [a, na] = [a + lum(img, y * S + x), na + 1];
    else if (d >= rMax + 1.5 && d <= rMax + 3.5) [b, nb] = [b + lum(img, y * S + x), nb + 1];
  }
  return Math.abs(b / nb - a / na);
}

/** The condition's ink with its holes filled (paper reachable from the border is outside). */
function silhouette(cond: Uint8Array): Uint8Array {
  const out = new Uint8Array(S * S).fill(1);
  const stack: number[] = [];
  for (let i = 0; i < S; i++) stack.push(i, (S - 1) * S + i, i * S, i * S + S - 1);
  while (stack.length) {
    const i = stack.pop()!;
    if (!out[i] || cond[i]! < 128) continue;
    out[i] = 0;
    const [y, x] = [Math.floor(i / S), i % S];
    if (y > 0) stack.push(i - S);
    if (y < S - 1) stack.push(i + S);
    if (x > 0) stack.push(i - 1);
    if (x < S - 1) stack.push(i + 1);
  }
  return out;
}

const gray = (s: Uint8Array) => HostTensor.float32([3, S, S], Float32Array.from({ length: 3 * S * S }, (_, k) => s[k % (S * S)]! / 127.5 - 1));
const tileOf = (img: Float32Array, i: number) => HostTensor.float32([3, S, S], img.slice(i * 3 * S * S, (i + 1) * 3 * S * S));

interface Row { drawing: string; rep: FilledAreas; nll: number; rec: number; ink: number; eyes?: number; bothEyes?: number; iou: number }
const rows: Row[] = [];
const condTiles: HostTensor[] = [];
const sampleTiles: Record<string, HostTensor[]> = Object.fromEntries(REPS.map((r) => [r, []]));
const drawings = DRAWINGS.filter((d) => !only || only.includes(d.name));
for (const d of drawings) {
  const png = await svgToPng(d.svg, 1, { keepAlpha: true });
  fs.writeFileSync(path.join(OUT, `${d.name}.png`), png);
  const u8 = await decodeImageBytesU8(png, {}, d.name);
  const fit = fitter(u8);
  const targets = await emojiCodes(d.targets);
  condTiles.push(HostTensor.float32([3, S, S], Float32Array.from({ length: 3 * S * S }, (_, k) => {
    const [, h, w] = u8.shape as [number, number, number];
    const [y, x] = [Math.floor(((k % (S * S)) / S) * (h / S)), Math.floor((k % S) * (w / S))];
    return u8.data[Math.floor(k / (S * S)) * h * w + y * w + x]! / 127.5 - 1;
  })));
  for (const rep of REPS) {
    const t0 = performance.now();
    const sk = normalizeDrawing(u8, { filled: rep });
    const f = sketchToFloat(sk).reshape([1, 1, S, S]);
    const cond = await m.encodeCondition(f);
    const { image } = await m.condStage!.reconstruct(f);
    let flips = 0;
    let ink = 0;
    for (let i = 0; i < S * S; i++) {
      if (sk.data[i]! < 128) ink++;
      if ((image.data[i] as number) < 0 !== sk.data[i]! < 128) flips++;
    }
    const bits = await nll(cond, targets.codes, targets.n);
    const tokens = await m.sample({ n: N, cond, seed: SEED, topK: 100 });
    const img = (await m.decodeTokens(tokens, N)).data as Float32Array;
    const sil = silhouette(sk.data);
    let iou = 0;
    let eyes = 0;
    let both = 0;
    for (let s = 0; s < N; s++) {
      const one = img.subarray(s * 3 * S * S, (s + 1) * 3 * S * S);
      let [inter, uni] = [0, 0];
      for (let i = 0; i < S * S; i++) {
        const fg = Math.min(one[i]!, one[S * S + i]!, one[2 * S * S + i]!) < 0.8 ? 1 : 0;
        inter += fg & sil[i]!;
        uni += fg | sil[i]!;
      }
      iou += inter / uni / N;
      if (d.eyes) {
        const scale = fit([1, 0])[0] - fit([0, 0])[0];
        const c = d.eyes.at.map((p) => eyeContrast(one, fit(p), d.eyes!.r * scale, d.eyes!.rMax * scale));
        eyes += (c[0]! + c[1]!) / 2 / N;
        if (c.every((v) => v > 0.1)) both++;
      }
    }
    rows.push({ drawing: d.name, rep, nll: bits, rec: flips / (S * S), ink, iou, ...(d.eyes ? { eyes, bothEyes: both } : {}) });
    condTiles.push(gray(sk.data));
    sampleTiles[rep]!.push(gray(sk.data), ...Array.from({ length: N }, (_, i) => tileOf(img, i)));
    console.error(`${d.name} ${rep}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}
await dec.release();
await m.release();

await saveLabeledGrid(path.join(OUT, 'conditions.png'), condTiles, { cols: 1 + REPS.length, rowLabels: drawings.map((d) => d.name), colLabels: ['drawing', ...REPS], title: `normalizeDrawing: filled areas as ${REPS.join(' | ')}` });
for (const rep of REPS) {
  await saveLabeledGrid(path.join(OUT, `samples-${rep}.png`), sampleTiles[rep]!, { cols: 1 + N, rowLabels: drawings.map((d) => d.name), colLabels: ['condition', ...Array.from({ length: N }, (_, i) => `sample ${i + 1}`)], title: `emoji-sketch, filled areas: ${rep} (top-k 100, seed ${SEED})` });
}
fs.writeFileSync(path.join(OUT, 'results.json'), JSON.stringify(rows, null, 1) + '\n');
const fmt = (v: number | undefined, k = 2) => (v === undefined ? '' : v.toFixed(k));
console.log('| drawing | filled | nll (bits/token) | rec flips | eye contrast | both eyes | iou |');
console.log('|---|---|--:|--:|--:|--:|--:|');
for (const r of rows) console.log(`| ${r.drawing} | ${r.rep} | ${fmt(r.nll)} | ${fmt(r.rec, 3)} | ${fmt(r.eyes)} | ${r.bothEyes === undefined ? '' : `${r.bothEyes}/${N}`} | ${fmt(r.iou)} |`);
for (const rep of REPS) {
  const rs = rows.filter((r) => r.rep === rep);
  const mean = (f: (r: Row) => number | undefined) => {
    const v = rs.map(f).filter((x): x is number => x !== undefined);
    return v.reduce((a, b) => a + b, 0) / v.length;
  };
  console.log(`| **mean** | ${rep} | ${fmt(mean((r) => r.nll))} | ${fmt(mean((r) => r.rec), 3)} | ${fmt(mean((r) => r.eyes))} | ${fmt(mean((r) => r.bothEyes), 2)}/${N} | ${fmt(mean((r) => r.iou))} |`);
}
