// The page's Latent view in headless Chromium with the bundled emoji-kl-f4 and its preview
// decoder: two emoji give their latent channels (drawn as images) and reconstructions with
// PSNR; the slider's decode shows the preview before the full decoder; in the browser
// (onnxruntime-web, WASM) the reconstruction and the interpolation match the server's within
// 2/255; one click loads two held-out emoji. UPDATE_SCREENSHOTS=1 writes docs/screenshots/latent.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { loadServedModel } from '../../src/serve/models.ts';
import { imagePixels, root, servePage, type PageServer } from './harness.ts';

const shots = process.env.UPDATE_SCREENSHOTS === '1' ? path.join(root, 'docs', 'screenshots') : fs.mkdtempSync(path.join(os.tmpdir(), 'lk-shots-'));
const EMOJI = path.join(root, 'node_modules/emoji-datasource-google/img/google/64');
const [A, B] = ['1f600.png', '1f63a.png'].map((f) => path.join(EMOJI, f));
let server: PageServer | undefined;
let browser: Browser;
let url: string;

before(async () => {
  server = await servePage([loadServedModel(path.join(root, 'models', 'emoji-kl-f4'))]);
  ({ browser, url } = server);
  fs.mkdirSync(shots, { recursive: true });
});
after(async () => {
  await server?.close();
});

/** An image element's pixels (RGBA) as the page shows them. */
const pixels = (page: Page, id: string): Promise<number[]> => imagePixels(page, `#${id}`);

/** Load A and B and wait for both reconstructions (data-psnr cleared first, so a new one is waited for). */
async function loadBoth(page: Page): Promise<void> {
  await page.evaluate(() => ['lat-rec-a', 'lat-rec-b'].forEach((id) => delete document.getElementById(id)!.dataset.psnr));
  await page.setInputFiles('#lat-file-a', A!);
  await page.waitForSelector('#lat-rec-a[data-psnr]', { timeout: 60_000 });
  await page.setInputFiles('#lat-file-b', B!);
  await page.waitForSelector('#lat-rec-b[data-psnr]', { timeout: 60_000 });
}

/** Move the slider to t; resolves with the stages #lat-mix went through, once the full decode for t is shown. */
async function slide(page: Page, t: number): Promise<string[]> {
  await page.waitForFunction(() => !document.body.dataset.busy, null, { timeout: 60_000 });
  await page.evaluate(() => {
    const w = window as unknown as { stages: string[]; stageObserver?: MutationObserver };
    w.stages = [];
    const img = document.getElementById('lat-mix')!;
    w.stageObserver?.disconnect();
    w.stageObserver = new MutationObserver(() => w.stages.push(img.dataset.stage ?? ''));
    w.stageObserver.observe(img, { attributes: true, attributeFilter: ['data-stage'] });
  });
  await page.evaluate((t) => {
    const s = document.getElementById('lat-t') as HTMLInputElement;
    s.value = String(t);
    s.dispatchEvent(new Event('input'));
  }, t);
  await page.waitForFunction((t) => document.getElementById('lat-t-out')!.textContent === t.toFixed(2) && (window as unknown as { stages: string[] }).stages.at(-1) === 'full', t, { timeout: 60_000 });
  return page.evaluate(() => (window as unknown as { stages: string[] }).stages);
}

const maxDiff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test('Latent view: channels, reconstructions with PSNR and the interpolation, on the server and in the browser (within 2/255), preview first', { timeout: 240_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 30_000 });
  await page.click('nav button[data-view="latent"]');
  assert.match(await page.textContent('#lat-info') ?? '', /64×64 → 4 × 16×16 latents · preview decoder/);

  // on the server
  await loadBoth(page);
  for (const w of ['a', 'b']) {
    const chans = await page.$$eval(`#lat-ch-${w} canvas`, (cs) => cs.map((c) => {
      const d = (c as HTMLCanvasElement).getContext('2d')!.getImageData(0, 0, (c as HTMLCanvasElement).width, (c as HTMLCanvasElement).height).data;
      return { w: (c as HTMLCanvasElement).width, distinct: new Set(Array.from(d)).size };
    }));
    assert.equal(chans.length, 4);
    for (const c of chans) assert.ok(c.w === 16 && c.distinct > 10, JSON.stringify(c)); // a 16×16 map with structure, not a flat tile
    const db = Number(await page.getAttribute(`#lat-rec-${w}`, 'data-psnr'));
    assert.ok(db > 25, `PSNR of ${w}: ${db}`);
    assert.match(await page.textContent(`#lat-psnr-${w}`) ?? '', /PSNR \d+\.\d\d dB/);
  }
  const stagesServer = await slide(page, 0.3);
  assert.deepEqual(stagesServer.slice(-2), ['preview', 'full']);
  const serverRec = await pixels(page, 'lat-rec-a');
  const serverMix = await pixels(page, 'lat-mix');
  assert.match(await page.textContent('#lat-mix-info') ?? '', /t = 0\.30 · preview \d+ ms · full decoder \d+ ms/);
  await page.screenshot({ path: path.join(shots, 'latent.png') });

  // in the browser: the same pixels within 2/255, and the preview first again
  await page.selectOption('#backend', 'wasm');
  await loadBoth(page);
  assert.equal(await page.evaluate(() => document.body.dataset.ran), 'wasm');
  assert.ok(maxDiff(await pixels(page, 'lat-rec-a'), serverRec) <= 2);
  const stagesWasm = await slide(page, 0.3);
  assert.deepEqual(stagesWasm.slice(-2), ['preview', 'full']);
  assert.ok(maxDiff(await pixels(page, 'lat-mix'), serverMix) <= 2);
  // one click: two held-out emoji from the server
  await page.selectOption('#backend', 'server');
  await page.evaluate(() => ['lat-rec-a', 'lat-rec-b'].forEach((id) => delete document.getElementById(id)!.dataset.psnr));
  await page.click('#lat-example');
  await page.waitForSelector('#lat-rec-a[data-psnr]', { timeout: 60_000 });
  await page.waitForSelector('#lat-rec-b[data-psnr]', { timeout: 60_000 });
  assert.notDeepEqual(await pixels(page, 'lat-in-a'), await pixels(page, 'lat-in-b'));
  assert.deepEqual(errors, []);
  await page.close();
});
