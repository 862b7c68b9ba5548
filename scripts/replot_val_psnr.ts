// Redraw a run's val_psnr.png from its metrics.jsonl, as `latentkit train-ae` draws it now
// (the bundled models' plots were drawn when the axis still read "loss").
//   node --import tsx scripts/replot_val_psnr.ts models/emoji-f4 [models/sketch-f4 ...]
import fs from 'node:fs';
import path from 'node:path';
import { saveLossCurve } from '../src/io/plot.ts';

for (const dir of process.argv.slice(2)) {
  const lines = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number | string>);
  const points = lines.filter((l) => l.split === 'val' && Number.isFinite(l.psnr)).map((l) => [Number(l.step), Number(l.psnr)] as [number, number]);
  await saveLossCurve(path.join(dir, 'val_psnr.png'), [{ name: 'psnr', points }], { title: 'validation PSNR (dB)', yLabel: 'PSNR (dB)' });
  console.error(`${dir}/val_psnr.png: ${points.length} points`);
}
