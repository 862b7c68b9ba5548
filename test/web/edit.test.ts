// The page's Edit view in headless Chromium: an emoji is loaded, a region brushed, and the
// served MaskGIT model repaints it — on the server and in the browser (WASM): the brushed region
// changes, the rest stays (the repaint against the input's own reconstruction), and both
// backends give the same picture. The model is a small MaskGIT transformer with fixed random
// weights over the committed emoji-f4 (what is tested is the editing path, not the model).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { Net2Net } from '../../src/models/cond_transformer/load.ts';
import { initGPT } from '../../src/models/mingpt/gpt.ts';
import { InitRng } from '../../src/nn/params.ts';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { loadImage } from '../../src/io/image.ts';
import { imagePixels, root, servePage, type PageServer } from './harness.ts';

const EMOJI = path.join(root, 'node_modules/emoji-datasource-google/img/google/64/1f600.png');
let server: PageServer | undefined;
let browser: Browser;
let url: string;
let recon: Float32Array;

before(async () => {
  const base = Net2Net.load(path.join(root, 'models', 'emoji-class'), { session: { threads: 1 } });
  const t = { ...base.config.transformer, n_layer: 2, n_embd: 32, n_head: 2, vocab_size: 1025, block_size: 257, n_unmasked: 257 };
  const w = initGPT(t, new InitRng(3));
  (w.get('head.weight')!.data as Float32Array).forEach((v, i, a) => (a[i] = v * 60)); // peaked logits: the same choices on both backends
  const net = new Net2Net({ ...base.config, transformer: t, maskgit: { mask_token: 1024, cond: 'prefix' } }, w, base.firstStage, null, { session: { threads: 1 } });
  const vq = VQGAN.load(path.join(root, 'models', 'emoji-f4'), { session: { threads: 1 } });
  recon = (await vq.reconstruct((await loadImage(EMOJI)).reshape([1, 3, 64, 64]))).image.data as Float32Array;
  await vq.release();
  server = await servePage([{ name: 'emoji-maskgit-test', kind: 'transformer', source: 'memory', net }]);
  ({ browser, url } = server);
});
after(async () => {
  await server?.close();
});

/** The first repainted image's pixels as [3, 64, 64] in [−1, 1]. */
async function firstEdit(page: Page): Promise<Float32Array> {
  const rgba = await imagePixels(page, '#edit-out img');
  const out = new Float32Array(3 * 64 * 64);
  for (let i = 0; i < 64 * 64; i++) for (let k = 0; k < 3; k++) out[k * 4096 + i] = rgba[i * 4 + k]! / 127.5 - 1;
  return out;
}

/** Repaint and wait for four new images. */
async function repaint(page: Page): Promise<Float32Array> {
  await page.evaluate(() => document.getElementById('edit-out')!.replaceChildren());
  await page.click('#edit-go');
  await page.waitForFunction(() => document.querySelectorAll('#edit-out img').length === 4 && Array.from(document.querySelectorAll<HTMLImageElement>('#edit-out img')).every((i) => i.complete && i.naturalWidth > 0), null, { timeout: 120_000 });
  return firstEdit(page);
}

test('Edit view: brushing a region repaints it and keeps the rest, on the server and in the browser (WASM)', async () => {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.ready === '1', null, { timeout: 30_000 });
  await page.click('nav button[data-view="edit"]');
  await page.setInputFiles('#edit-file', EMOJI);
  // brush a horizontal band through the middle: display rows ~112–144 of 256 → image rows 28–36
  const box = (await page.locator('#edit-mask').boundingBox())!;
  const at = (x: number, y: number) => [box.x + (x / 256) * box.width, box.y + (y / 256) * box.height] as const;
  await page.mouse.move(...at(60, 128));
  await page.mouse.down();
  for (let x = 60; x <= 196; x += 8) await page.mouse.move(...at(x, 128));
  await page.mouse.up();

  const server = await repaint(page);
  const info = await page.textContent('#edit-info');
  assert.match(info ?? '', /repainted \d+ of 256 cells/);
  const cells = Number(/repainted (\d+)/.exec(info!)![1]);
  // the band covers image x 15–49, y 28.5–35.5: about 9 × 2 cells of 4×4 pixels
  assert.ok(cells >= 16 && cells <= 30, `${cells} cells repainted for a band of ~34×7 image pixels`);
  // against the input's own reconstruction: inside the band it changed, far from it it stayed
  let [din, nin, dout, nout] = [0, 0, 0, 0];
  for (let k = 0; k < 3; k++) for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) {
    const d = Math.abs(server[(k * 64 + y) * 64 + x]! - recon[(k * 64 + y) * 64 + x]!);
    if (y >= 29 && y < 35 && x >= 18 && x < 46) [din, nin] = [din + d, nin + 1];
    else if (y < 16 || y >= 48) [dout, nout] = [dout + d, nout + 1];
  }
  din /= nin;
  dout /= nout;
  assert.ok(din > 0.1, `the brushed band hardly changed: mean |Δ| ${din.toFixed(3)}`);
  assert.ok(dout < 0.25 * din, `the rest changed: mean |Δ| ${dout.toFixed(3)} far from the band vs ${din.toFixed(3)} in it`);

  await page.selectOption('#backend', 'wasm');
  const local = await repaint(page);
  assert.equal(await page.evaluate(() => document.body.dataset.ran), 'wasm');
  let max = 0;
  for (let i = 0; i < local.length; i++) max = Math.max(max, Math.abs(local[i]! - server[i]!) * 127.5);
  assert.ok(max <= 2, `the browser's repaint differs from the server's by ${max.toFixed(1)}/255`);
  assert.deepEqual(errors, []);
  await page.close();
});
