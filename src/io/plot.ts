// Loss curves (drawn by svg_plot.ts) saved as .svg or rasterized to .png via io/image.

import * as path from 'node:path';
import { writeFileAtomic } from './atomic.ts';
import { svgToPng } from './image.ts';
import { lossCurveSvg, type PlotOptions, type Series } from './svg_plot.ts';

export { escapeXml, formatTick, lossCurveSvg, niceTicks, smoothEma, type PlotOptions, type Series } from './svg_plot.ts';

/** Write a loss plot: `.svg` as text, `.png` rasterized via sharp (io/image). Atomic. */
export async function saveLossCurve(file: string, series: readonly Series[], opts: PlotOptions = {}): Promise<void> {
  const svg = lossCurveSvg(series, opts);
  const ext = path.extname(file).toLowerCase();
  if (ext === '.svg') await writeFileAtomic(file, svg);
  else if (ext === '.png') await writeFileAtomic(file, await svgToPng(svg));
  else throw new Error(`saveLossCurve: ${file} must end in .svg or .png`);
}
