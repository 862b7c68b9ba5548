// The README's screenshots of the parallel (MaskGIT) model in the page, with the committed
// models: Draw answering a drawing with emoji-sketch-maskgit, and Edit repainting the mouth of
// 😀 under that drawing. Writes docs/screenshots/draw-parallel.png and edit.png.
//   node --import tsx scripts/screenshots_maskgit.ts [--backend server|wasm]
import fs from 'node:fs';
import path from 'node:path';
import { loadServedModel } from '../src/serve/models.ts';
import { padStroke, paintPad, root, servePage } from '../test/web/harness.ts';

const args = process.argv.slice(2);
const backend = args.includes('--backend') ? args[args.indexOf('--backend') + 1]! : 'server';
const shots = path.join(root, 'docs', 'screenshots');
const drawing = fs.readFileSync(path.join(root, 'models/emoji-sketch/drawings/face.png'));
const emoji = path.join(root, 'node_modules/emoji-datasource-google/img/google/64/1f600.png');

const s = await servePage(['emoji-f4', 'emoji-sketch-maskgit', 'emoji-sketch'].map((d) => loadServedModel(path.join(root, 'models', d))));
try {
  const page = await s.browser.newPage({ viewport: { width: 1100, height: 760 } });
  await page.goto(s.url);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 30_000 });
  await page.selectOption('#backend', backend);
  await page.selectOption('#draw-model', 'emoji-sketch-maskgit');
  // the drawing onto the pad, then one short stroke over it: one request
  await paintPad(page, drawing);
  // on the face's outline (its top), so the stroke adds no ink of its own
  await padStroke(page, 0.5, 0.1);
  await page.waitForFunction(() => !document.body.dataset.busy && document.querySelectorAll('#draw-out img').length === 4, null, { timeout: 300_000 });
  await page.screenshot({ path: path.join(shots, 'draw-parallel.png') });
  console.log(`draw: ${await page.textContent('#status')}`);

  // Edit: 😀, the brush over its mouth, repainted under the drawing
  await page.click('nav button[data-view="edit"]');
  await page.selectOption('#edit-model', 'emoji-sketch-maskgit');
  await page.setInputFiles('#edit-file', emoji);
  const eb = (await page.locator('#edit-mask').boundingBox())!;
  const at = (x: number, y: number) => [eb.x + (x / 256) * eb.width, eb.y + (y / 256) * eb.height] as const;
  for (const y of [160, 176, 192, 206]) {
    await page.mouse.move(...at(60, y));
    await page.mouse.down();
    for (let x = 60; x <= 196; x += 8) await page.mouse.move(...at(x, y));
    await page.mouse.up();
  }
  await page.click('#edit-go');
  await page.waitForFunction(() => document.querySelectorAll('#edit-out img').length === 4 && Array.from(document.querySelectorAll<HTMLImageElement>('#edit-out img')).every((i) => i.complete && i.naturalWidth > 0), null, { timeout: 300_000 });
  await page.screenshot({ path: path.join(shots, 'edit.png') });
  console.log(`edit: ${await page.textContent('#edit-info')} — ${await page.textContent('#status')}`);
  await page.close();
} finally {
  await s.close();
}
