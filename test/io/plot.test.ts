// io/plot: loss-curve SVG structure (series names, ticks, log axis, smoothing, escaping)
// and rasterized PNG output.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { imageInfo, loadImage } from '../../src/io/image.ts';
import { formatTick, lossCurveSvg, niceTicks, saveLossCurve, smoothEma, type Series } from '../../src/io/plot.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-plot-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const series: Series[] = [
  { name: 'rec_loss', points: Array.from({ length: 200 }, (_, i) => [i * 10, 2 * Math.exp(-i / 50) + 0.05 * Math.sin(i)] as [number, number]) },
  { name: 'g_loss <adv> & "q"', points: Array.from({ length: 50 }, (_, i) => [i * 40, 0.5 + 0.1 * Math.cos(i)] as [number, number]) },
];

test('lossCurveSvg produces a well-formed SVG with axes, ticks and a legend', () => {
  const svg = lossCurveSvg(series, { title: 'VQGAN training', smoothing: 0.9 });
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="800" height="480"/);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  assert.ok(svg.includes('>rec_loss</text>'));
  assert.ok(svg.includes('g_loss &lt;adv&gt; &amp; &quot;q&quot;'), 'names are escaped');
  assert.ok(!svg.includes('<adv>'));
  assert.ok(svg.includes('VQGAN training'));
  assert.equal((svg.match(/class="smoothed"/g) ?? []).length, 2);
  assert.equal((svg.match(/class="raw"/g) ?? []).length, 2);
  assert.ok(svg.includes('class="legend"') && svg.includes('class="axes"'));
  // Tags balance (a cheap well-formedness check).
  const open = (svg.match(/<(g|svg|defs|clipPath)\b/g) ?? []).length;
  const close = (svg.match(/<\/(g|svg|defs|clipPath)>/g) ?? []).length;
  assert.equal(open, close);
  // Path coordinates stay finite.
  assert.ok(!/NaN|Infinity/.test(svg));
});

test('log axis, bad values and empty input are handled', () => {
  const svg = lossCurveSvg([{ name: 'l', points: [[0, 10], [1, 1], [2, 0.01], [3, 0], [4, NaN], [5, -1]] }], { logY: true });
  assert.ok(svg.includes('(log)'));
  for (const t of ['>0.01<', '>0.1<', '>1<', '>10<']) assert.ok(svg.includes(t), `tick ${t}`);
  assert.ok(!/NaN|Infinity/.test(svg));
  const empty = lossCurveSvg([], { title: 'nothing yet' });
  assert.ok(empty.includes('no data'));
  const single = lossCurveSvg([{ name: 'one', points: [[5, 1]] }]);
  assert.ok(single.includes('<circle'));
  assert.throws(() => lossCurveSvg(series, { smoothing: 1 }), /smoothing must be in \[0, 1\)/);
});

test('helpers: nice ticks, tick labels, EMA', () => {
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(-0.03, 0.07, 5), [-0.02, 0, 0.02, 0.04, 0.06]);
  assert.deepEqual(niceTicks(0, 10000, 4), [0, 2000, 4000, 6000, 8000, 10000]);
  assert.equal(formatTick(20000), '20k');
  assert.equal(formatTick(0.25), '0.25');
  assert.equal(formatTick(1e-5), '1e-5');
  const s = smoothEma([1, 1, 1], 0.9);
  s.forEach((v) => assert.ok(Math.abs(v - 1) < 1e-12), 'debiased EMA of a constant is the constant');
  assert.deepEqual(smoothEma([1, 2, 3], 0), [1, 2, 3]);
});

test('saveLossCurve writes SVG and a PNG rasterized by sharp', async () => {
  const svgFile = path.join(tmp, 'plots/loss.svg');
  await saveLossCurve(svgFile, series, { title: 'loss', logY: true });
  const text = fs.readFileSync(svgFile, 'utf8');
  assert.ok(text.startsWith('<svg') && text.includes('rec_loss'));
  const pngFile = path.join(tmp, 'plots/loss.png');
  await saveLossCurve(pngFile, series, { title: 'loss', width: 400, height: 300 });
  const info = await imageInfo(fs.readFileSync(pngFile));
  assert.deepEqual([info.format, info.width, info.height], ['png', 400, 300]);
  // Not blank: the plot draws dark axes/lines on a white background.
  const img = await loadImage(pngFile);
  let dark = 0;
  for (const v of img.data) if (v < 0) dark++;
  assert.ok(dark > 500, `${dark} dark samples`);
  await assert.rejects(saveLossCurve(path.join(tmp, 'loss.gif'), series), /must end in \.svg or \.png/);
});

test('the legend goes to the corner the curves leave free, and the y label is the one given', () => {
  const legendX = (svg: string) => Number(/<g class="legend"[^>]*>\s*<rect x="([\d.]+)"/.exec(svg)![1]);
  // rising to the top right: the legend moves left; falling from the top left (a loss): it stays right
  const rising = lossCurveSvg([{ name: 'psnr', points: [[30, 14.2], [60, 14.58]] }], { yLabel: 'PSNR (dB)' });
  const falling = lossCurveSvg([{ name: 'loss', points: [[0, 5], [100, 1]] }]);
  assert.ok(legendX(rising) < 200, `rising: legend at x=${legendX(rising)}`);
  assert.ok(legendX(falling) > 600, `falling: legend at x=${legendX(falling)}`);
  assert.ok(rising.includes('PSNR (dB)') && !/>loss</.test(rising));
});
