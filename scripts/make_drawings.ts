// The hand-drawn test drawings for the sketch → emoji model (models/emoji-sketch/drawings/):
// a circle face, a heart, a house and a star drawn as wobbly strokes (seeded jitter) on
// different canvases (256–512 px), stroke widths (6–14 px), placements, and one with a
// transparent background — the variety normalizeDrawing must absorb — and a face with
// filled eye dots (the filled areas it must keep), and a cat's head. Deterministic.
//   node --import tsx scripts/make_drawings.ts
import { svgToPng } from '../src/io/image.ts';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
const OUT = path.join(path.dirname(fileURLToPath(import.meta.url)), '../models/emoji-sketch/drawings');
fs.mkdirSync(OUT, { recursive: true });
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const wob = (pts: [number, number][], amp: number) => pts.map(([x, y]) => [x + (rnd() - 0.5) * amp, y + (rnd() - 0.5) * amp] as [number, number]);
const svgPath = (pts: [number, number][], close = false) => 'M' + pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' L') + (close ? ' Z' : '');
const circle = (cx: number, cy: number, r: number, n = 48, start = 0, end = Math.PI * 2): [number, number][] => Array.from({ length: n + 1 }, (_, i) => { const a = start + (end - start) * i / n; return [cx + r * Math.cos(a), cy + r * Math.sin(a)]; });
async function save(name: string, size: number, width: number, paths: string[], alpha = false, discs: [number, number, number][] = []) {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}">${alpha ? '' : `<rect width="${size}" height="${size}" fill="white"/>`}${paths.map((d) => `<path d="${d}" fill="none" stroke="#111" stroke-width="${width}" stroke-linecap="round" stroke-linejoin="round"/>`).join('')}${discs.map(([cx, cy, r]) => `<circle cx="${cx}" cy="${cy}" r="${r}" fill="#111"/>`).join('')}</svg>`;
  fs.writeFileSync(path.join(OUT, `${name}.png`), await svgToPng(svg, 1, { keepAlpha: alpha }));
}
// a circle face, 400² canvas, thick marker
const S = 400;
await save('face', S, 14, [svgPath(wob(circle(200, 205, 165, 64), 8)), svgPath(wob(circle(140, 160, 14, 16), 3), true), svgPath(wob(circle(260, 160, 14, 16), 3), true), svgPath(wob(circle(200, 215, 95, 24, 0.25 * Math.PI, 0.75 * Math.PI), 6))]);
// a heart, 512² transparent, thin pen
const heart: [number, number][] = Array.from({ length: 80 }, (_, i) => { const t = (i / 79) * Math.PI * 2; return [256 + 190 * Math.pow(Math.sin(t), 3), 250 - (150 * Math.cos(t) - 60 * Math.cos(2 * t) - 25 * Math.cos(3 * t) - 12 * Math.cos(4 * t))]; });
await save('heart', 512, 6, [svgPath(wob(heart, 6), true)], true);
// a house, 300² canvas, medium stroke, drawn off-centre and small
await save('house', 300, 9, [svgPath(wob([[60, 150], [130, 80], [200, 150]], 5)), svgPath(wob([[75, 140], [75, 230], [185, 230], [185, 140]], 5)), svgPath(wob([[115, 230], [115, 185], [145, 185], [145, 230]], 3)), svgPath(wob([[155, 155], [175, 155], [175, 175], [155, 175]], 2), true)]);
// a five-pointed star, 256², bold
const star: [number, number][] = Array.from({ length: 11 }, (_, i) => { const a = -Math.PI / 2 + i * Math.PI / 5; const r = i % 2 ? 45 : 110; return [128 + r * Math.cos(a), 135 + r * Math.sin(a)]; });
await save('star', 256, 10, [svgPath(wob(star, 6), true)]);
// a face with filled eye dots (30 px discs) on the page's pad: 256², its 6 px pen
await save('dots', 256, 6, [svgPath(wob(circle(128, 130, 100, 64), 5)), svgPath(wob(circle(128, 135, 58, 20, 0.25 * Math.PI, 0.75 * Math.PI), 4))], false, [[92, 100, 15], [164, 100, 15]]);
// a cat's head (ears, eyes, whiskers), 320², medium pen — appended last, so the drawings above
// keep their jitter
await save('cat', 320, 8, [
  svgPath(wob([...circle(160, 180, 110, 40, -0.15 * Math.PI, 1.15 * Math.PI)], 5)),
  svgPath(wob([[63, 130], [75, 40], [125, 80]], 4)),
  svgPath(wob([[257, 130], [245, 40], [195, 80]], 4)),
  svgPath(wob(circle(120, 160, 10, 12), 2), true),
  svgPath(wob(circle(200, 160, 10, 12), 2), true),
  svgPath(wob([[150, 205], [160, 215], [170, 205]], 2)),
  svgPath(wob([[60, 200], [120, 210]], 3)),
  svgPath(wob([[60, 230], [120, 222]], 3)),
  svgPath(wob([[260, 200], [200, 210]], 3)),
  svgPath(wob([[260, 230], [200, 222]], 3)),
]);
