// The demo page end to end in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core): drawing strokes gives emoji, an uploaded PNG gives its reconstruction
// and a 16×16 code grid equal to the API's, a category gives a sample grid; on a phone-sized
// screen too. In-browser (onnxruntime-web WASM): the same code indices as the server, still
// working with the server cut off; drawing and sampling in the page. The codebook view and
// the run viewer. The page's manners: a spinner while an answer is computed, each view its
// own one-line status, no broken-image icons, a favicon, a stopped server said as such, and
// on a server without the transformers or the emoji images every view saying what it needs
// (and no 500 anywhere). UPDATE_SCREENSHOTS=1 writes docs/screenshots/*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { createServer } from '../../src/serve/server.ts';
import { loadServedModel, type ServedModel } from '../../src/serve/models.ts';
import { root, servePage, webRoot, type PageServer } from './harness.ts';
import { encodePng } from '../../src/io/image.ts';
import { HostTensor } from '../../src/tensor.ts';

const shots = process.env.UPDATE_SCREENSHOTS === '1' ? path.join(root, 'docs', 'screenshots') : fs.mkdtempSync(path.join(os.tmpdir(), 'lk-shots-'));
/** Screenshots to look at, not in the README: always in a temporary folder. */
const extraShots = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-shots-'));
let app: FastifyInstance;
let models: ServedModel[];
let browser: Browser;
let url: string;

let server: PageServer | undefined;

before(async () => {
  models = ['emoji-f4', 'emoji-class', 'emoji-sketch'].map((d) => loadServedModel(path.join(root, 'models', d)));
  server = await servePage(models, { runs: models.map((m) => m.source) });
  ({ app, browser, url } = server);
  fs.mkdirSync(shots, { recursive: true });
});
after(async () => {
  await server?.close();
});

async function open(viewport = { width: 1100, height: 760 }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 30_000 });
  assert.deepEqual(errors, []);
  return page;
}

async function drawSmiley(page: Page): Promise<void> {
  const box = (await page.locator('#pad').boundingBox())!;
  const at = (x: number, y: number) => [box.x + x * box.width, box.y + y * box.height] as const;
  const stroke = async (pts: [number, number][]) => {
    await page.mouse.move(...at(...pts[0]!));
    await page.mouse.down();
    for (const p of pts.slice(1)) await page.mouse.move(...at(...p), { steps: 4 });
    await page.mouse.up();
  };
  const circle = Array.from({ length: 25 }, (_, i) => [0.5 + 0.38 * Math.cos((i / 24) * 2 * Math.PI), 0.5 + 0.38 * Math.sin((i / 24) * 2 * Math.PI)] as [number, number]);
  await stroke(circle);
  await stroke([[0.38, 0.4], [0.38, 0.44]]);
  await stroke([[0.62, 0.4], [0.62, 0.44]]);
  await stroke(Array.from({ length: 9 }, (_, i) => [0.33 + (i / 8) * 0.34, 0.62 + 0.08 * Math.sin((i / 8) * Math.PI)] as [number, number]));
}

test('draw strokes on the canvas → emoji images', { timeout: 120_000 }, async () => {
  const page = await open();
  await drawSmiley(page);
  await page.waitForFunction(() => document.querySelectorAll('#draw-out img').length === 4 && Array.from(document.querySelectorAll<HTMLImageElement>('#draw-out img')).every((i) => i.complete && i.naturalWidth === 64), null, { timeout: 60_000 });
  await page.screenshot({ path: path.join(shots, 'draw.png') });
  await page.close();
});

test('upload a PNG → its reconstruction and a code grid equal to the API answer; hover shows the code', { timeout: 120_000 }, async () => {
  const page = await open();
  await page.click('nav button[data-view="reconstruct"]');
  // a real emoji when the (optional) emoji package is installed, else a synthetic pattern
  const emoji = path.join(root, 'node_modules', 'emoji-datasource-google', 'img', 'google', '64', '1f600.png');
  let png: Buffer;
  if (fs.existsSync(emoji)) png = fs.readFileSync(emoji);
  else {
    const x = HostTensor.float32([3, 64, 64]);
    for (let i = 0; i < x.size; i++) x.data[i] = Math.sin(i * 0.05) * 0.9;
    png = Buffer.from(await encodePng(x));
  }
  await page.setInputFiles('#file', { name: 'test.png', mimeType: 'image/png', buffer: png });
  await page.waitForFunction(() => document.querySelectorAll('#codes span').length === 256 && (document.getElementById('rec-out') as HTMLImageElement).naturalWidth === 64, null, { timeout: 60_000 });
  const pageCodes = await page.$$eval('#codes span', (els) => els.map((e) => Number((e as HTMLElement).dataset.code)));
  const api = await app.inject({ method: 'POST', url: '/api/models/emoji-f4/encode?size=64', headers: { 'content-type': 'image/png' }, payload: png });
  assert.deepEqual(pageCodes, api.json().indices);
  await page.hover('#codes span:nth-child(40)');
  assert.match((await page.textContent('#code-info'))!, /^code \d+: \d+ of 256 cells$/);
  assert.ok((await page.$$('#codes span.same')).length >= 1);
  await page.screenshot({ path: path.join(shots, 'reconstruct.png') });
  await page.close();
});

test('pick a category → a grid of samples; the page fits a phone-sized screen', { timeout: 120_000 }, async () => {
  const page = await open({ width: 390, height: 844 });
  await page.click('nav button[data-view="sample"]');
  const options = await page.$$eval('#class option', (o) => o.map((e) => (e as HTMLOptionElement).value));
  assert.ok(options.length > 1, 'categories listed');
  await page.selectOption('#class', options.includes('Flags') ? 'Flags' : options[0]!);
  await page.click('#go');
  await page.waitForFunction(() => (document.getElementById('sample-out') as HTMLImageElement).naturalWidth > 0, null, { timeout: 90_000 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than a 390px screen`);
  await page.screenshot({ path: path.join(shots, 'sample-phone.png'), fullPage: true });
  await page.close();
});

const emojiPng = (code: string) => fs.readFileSync(path.join(root, 'node_modules', 'emoji-datasource-google', 'img', 'google', '64', `${code}.png`));

async function codesOf(page: Page, png: Buffer, name: string): Promise<number[]> {
  await page.evaluate(() => {
    document.body.dataset.ran = '';
    document.getElementById('codes')!.replaceChildren();
  });
  await page.setInputFiles('#file', { name, mimeType: 'image/png', buffer: png });
  await page.waitForFunction(() => document.body.dataset.ran && document.querySelectorAll('#codes span').length === 256 && (document.getElementById('rec-out') as HTMLImageElement).naturalWidth === 64, null, { timeout: 90_000 });
  return page.$$eval('#codes span', (els) => els.map((e) => Number((e as HTMLElement).dataset.code)));
}

test('in the browser (WASM): the same code indices as the server for the same image, and it keeps working with the server cut off', { timeout: 180_000 }, async () => {
  const page = await open();
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true, 'cross-origin isolated (threads for WASM)');
  await page.selectOption('#backend', 'wasm');
  await page.click('nav button[data-view="reconstruct"]');
  const [a, b] = [emojiPng('1f600'), emojiPng('1f431')];
  const web = await codesOf(page, a, 'grinning.png');
  assert.equal(await page.evaluate(() => document.body.dataset.ran), 'wasm');
  assert.match((await page.textContent('#status'))!, /^in browser · WASM \(\d threads?\): \d+ ms$/);
  const api = (png: Buffer) => app.inject({ method: 'POST', url: '/api/models/emoji-f4/encode?size=64', headers: { 'content-type': 'image/png' }, payload: png }).then((r) => r.json().indices as number[]);
  assert.deepEqual(web, await api(a));
  // the server unreachable from here on: every request the page makes fails
  let blocked = 0;
  await page.route('**/*', (r) => {
    blocked++;
    return r.abort();
  });
  assert.deepEqual(await codesOf(page, b, 'cat.png'), await api(b));
  assert.equal(blocked, 0, 'no request reached for the network');
  await page.screenshot({ path: path.join(shots, 'reconstruct-wasm.png') });
  await page.close();
});

// The models run in a Web Worker: with them on the page's own thread, each mouse move of the
// strokes below waited for a whole sampling run and this test timed out after 240 s.
test('in the browser (WASM, in a worker): drawing → emoji live, and a category → samples', { timeout: 360_000 }, async () => {
  const page = await open();
  await page.selectOption('#backend', 'wasm');
  await drawSmiley(page);
  await page.waitForFunction(() => document.body.dataset.ran === 'wasm' && document.querySelectorAll('#draw-out img').length === 4 && Array.from(document.querySelectorAll<HTMLImageElement>('#draw-out img')).every((i) => i.complete && i.naturalWidth === 64), null, { timeout: 120_000 });
  await page.click('nav button[data-view="sample"]');
  await page.evaluate(() => (document.body.dataset.ran = ''));
  await page.click('#go');
  await page.waitForFunction(() => document.body.dataset.ran === 'wasm' && (document.getElementById('sample-out') as HTMLImageElement).naturalWidth === 8 * 66 + 2, null, { timeout: 120_000 });
  await page.close();
});

test('codebook view: every entry as a tile and its use over the emoji images; hover names the entry', { timeout: 180_000 }, async () => {
  const page = await open();
  await page.click('nav button[data-view="codebook"]');
  await page.waitForFunction(() => document.body.dataset.codebook === 'emoji-f4' && (document.getElementById('cb-atlas') as HTMLImageElement).naturalWidth > 0, null, { timeout: 150_000 });
  assert.match((await page.textContent('#cb-stats'))!, /^\d+ of 1024 entries used over \d+ images of emoji/);
  const box = (await page.locator('#cb-heat').boundingBox())!;
  await page.mouse.move(box.x + 3, box.y + 3);
  assert.match((await page.textContent('#cb-info'))!, /^entry 0: used \d+ times/);
  await page.screenshot({ path: path.join(shots, 'codebook.png') });
  await page.close();
});

test("run viewer: a run directory's metrics as curves and its sample grids", { timeout: 60_000 }, async () => {
  const page = await open();
  await page.click('nav button[data-view="runs"]');
  await page.waitForFunction(() => document.body.dataset.run && document.querySelector('#run-plot svg path') && (document.getElementById('run-img') as HTMLImageElement).naturalWidth > 0, null, { timeout: 30_000 });
  const runs = await page.$$eval('#run option', (o) => o.map((e) => (e as HTMLOptionElement).value));
  assert.deepEqual(runs, ['emoji-f4', 'emoji-class', 'emoji-sketch']);
  assert.match((await page.textContent('#run-plot'))!, /emoji-f4: \d+ records/);
  // the y axis names what is plotted: losses by default, PSNR alone as PSNR (dB)
  const axis = () => page.$$eval('#run-plot svg text', (t) => t.map((e) => e.textContent));
  assert.ok((await axis()).includes('loss (log)'));
  for (const box of await page.$$('#run-keys input')) if ((await box.isChecked()) !== ((await box.evaluate((b) => b.parentElement!.textContent!.trim())) === 'psnr')) await box.click();
  await page.uncheck('#run-log');
  assert.ok((await axis()).includes('PSNR (dB)'), (await axis()).join('|'));
  assert.ok(!(await axis()).some((t) => /loss/.test(t!)));
  await page.selectOption('#run', 'emoji-class');
  await page.waitForFunction(() => document.body.dataset.run === 'emoji-class' && document.querySelector('#run-plot')!.textContent!.includes('loss'), null, { timeout: 30_000 });
  await page.screenshot({ path: path.join(shots, 'runs.png'), fullPage: true });
  await page.close();
});

test('train in the browser: a tiny VQGAN trains in a Web Worker (WASM), losses and reconstructions update live, and the downloaded model loads in the library', { timeout: 300_000 }, async () => {
  const page = await open();
  await page.click('nav button[data-view="train"]');
  await page.fill('#tr-steps', '40');
  await page.fill('#tr-n', '96');
  await page.click('#tr-start');
  await page.waitForFunction(() => Number(document.body.dataset.trStep) >= 10 && document.querySelector('#tr-plot svg path'), null, { timeout: 120_000 });
  await page.waitForFunction(() => document.body.dataset.trDone === '40', null, { timeout: 240_000 });
  assert.match((await page.textContent('#tr-status'))!, /^finished at step 40 in \d+ s/);
  assert.equal(await page.evaluate(() => document.body.dataset.trRecon), '40');
  assert.match((await page.textContent('#tr-recon-cap'))!, /at step 40; \d+ codebook entries in use/);
  await page.screenshot({ path: path.join(shots, 'train.png'), fullPage: true });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#tr-save')]);
  assert.equal(download.suggestedFilename(), 'model.safetensors');
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lk-trained-')), 'model.safetensors');
  await download.saveAs(file);
  await page.close();

  // the CLI's loader takes it (config from the metadata) and reconstructs held-out emoji far
  // better than the untrained weights the run started from
  const { VQGAN } = await import('../../src/models/vqgan/load.ts');
  const { readSafetensorsFile } = await import('../../src/io/formats/safetensors.ts');
  const { trainOnnx } = await import('../../src/train/export_train.ts');
  const { PRESETS, parseTrainConfig, withMaxSteps } = await import('../../src/train/config.ts');
  assert.equal(readSafetensorsFile(file).metadata.step, '40');
  const val = await app.inject({ url: '/api/train/data?split=val&n=8&size=32' });
  const x = HostTensor.float32([8, 3, 32, 32], Float32Array.from(val.rawPayload, (v) => v / 127.5 - 1));
  const psnr = (a: Float32Array, b: Float32Array) => 10 * Math.log10(4 / (a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0) / a.length));
  const trained = VQGAN.load(file, { session: { threads: 1 } });
  const after = psnr((await trained.reconstruct(x)).image.data as Float32Array, x.data);
  await trained.release();
  const cfg = parseTrainConfig(structuredClone(PRESETS.tiny));
  withMaxSteps(cfg, 40);
  const { files, manifest } = trainOnnx(cfg);
  const init = new Float32Array(files.get('init.f32')!.slice().buffer);
  const { names, shapes, offsets } = manifest.groups.ae;
  const sd = new Map(names.map((n, i) => [n, HostTensor.float32(shapes[i]!, init.slice(offsets[i]!, offsets[i]! + shapes[i]!.reduce((a, b) => a * b, 1)))]));
  const untrained = new VQGAN(cfg.model, sd, { session: { threads: 1 } });
  const before = psnr((await untrained.reconstruct(x)).image.data as Float32Array, x.data);
  await untrained.release();
  assert.ok(after > before + 3, `held-out PSNR ${after.toFixed(1)} dB after 40 steps vs ${before.toFixed(1)} dB untrained`);
});

/** Every answer the page gets: method, path and status (and the body of errors). */
function recordResponses(page: Page): { url: string; status: number; error?: string }[] {
  const seen: { url: string; status: number; error?: string }[] = [];
  page.on('response', (r) => {
    const e = { url: new URL(r.url()).pathname, status: r.status() } as { url: string; status: number; error?: string };
    seen.push(e);
    if (r.status() >= 400) void r.json().then((j: { error?: string }) => (e.error = j.error), () => (e.error = '(not JSON)'));
  });
  return seen;
}

/** Images with no source take no space (no broken-image icon, no alt text). */
async function noEmptyImages(page: Page): Promise<void> {
  const shown = await page.$$eval('img', (imgs) => imgs.filter((i) => !i.getAttribute('src') && i.getBoundingClientRect().width > 0).map((i) => i.id || i.alt));
  assert.deepEqual(shown, [], 'empty <img> elements that are shown');
}

test('a spinner while an answer is computed; each view its own one-line status; no empty images; a favicon; a stopped server is said as such', { timeout: 180_000 }, async () => {
  const page = await open();
  const responses = recordResponses(page);
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]');
  await noEmptyImages(page);
  // the status line over time, as the page shows it
  await page.evaluate(() => {
    const w = window as unknown as { statusLog: string[] };
    w.statusLog = [];
    const bar = document.getElementById('status-bar')!;
    new MutationObserver(() => w.statusLog.push(`${bar.classList.contains('busy') ? 'busy' : 'idle'}|${(document.getElementById('go') as HTMLButtonElement).disabled ? 'disabled' : 'enabled'}|${bar.textContent}`)).observe(bar, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await page.click('nav button[data-view="sample"]');
  await noEmptyImages(page);
  await page.click('#go');
  await page.waitForFunction(() => (document.getElementById('sample-out') as HTMLImageElement).naturalWidth > 0 && !document.getElementById('status-bar')!.classList.contains('busy'), null, { timeout: 90_000 });
  const log = await page.evaluate(() => (window as unknown as { statusLog: string[] }).statusLog);
  assert.ok(log.some((l) => /^busy\|disabled\|sampling 8 × .+ \(on the server\)…$/.test(l)), log.join('\n'));
  assert.match((await page.textContent('#status'))!, /^server: \d+ ms$/);
  assert.equal(await page.isEnabled('#go'), true);
  assert.equal(await page.isVisible('#status-bar .spinner'), false);
  // another view shows its own status, not Sample's; back on Sample, Sample's again
  await page.click('nav button[data-view="runs"]');
  await page.waitForFunction(() => document.body.dataset.run);
  assert.match((await page.textContent('#status'))!, /^run emoji-f4: /);
  await page.click('nav button[data-view="reconstruct"]');
  assert.equal(await page.textContent('#status'), '');
  await page.click('nav button[data-view="sample"]');
  assert.match((await page.textContent('#status'))!, /^server: \d+ ms$/);
  // a long status stays on one line: the header keeps its height
  const header = async () => (await page.locator('header').boundingBox())!.height;
  const h0 = await header();
  await page.evaluate(() => (document.getElementById('status')!.textContent = 'a very long status line '.repeat(20)));
  assert.equal(await header(), h0);
  // the icon is there
  // the icon the page names (headless Chromium does not fetch icons itself) and /favicon.ico
  const icon = await page.evaluate(async () => {
    const r = await fetch((document.querySelector('link[rel=icon]') as HTMLLinkElement).href);
    return [new URL(r.url).pathname, r.status, r.headers.get('content-type')];
  });
  assert.deepEqual(icon, ['/favicon.ico', 200, 'image/svg+xml']);
  assert.deepEqual(responses.filter((r) => r.status >= 400), []);
  // the server stopped: the view says so and what to do (not "Failed to fetch")
  await page.route('**/api/**', (r) => r.abort('connectionrefused'));
  await page.click('#go');
  await page.waitForSelector('#msg-sample:not([hidden])');
  const msg = (await page.textContent('#msg-sample'))!;
  assert.match(msg, /the server is unreachable .*start it again with npx latentkit serve and reload this page/);
  assert.doesNotMatch(msg + (await page.textContent('#status')), /Failed to fetch/);
  await page.screenshot({ path: path.join(extraShots, 'unreachable.png') });
  await page.close();
});

test('a server with only a VQGAN and without the emoji images: every view works or says what it needs and the command; no 500 from any route', { timeout: 240_000 }, async () => {
  const { app: bare } = await createServer({ models: [models[0]!], webRoot, runs: [], emojiImages: false });
  const bareUrl = await bare.listen({ host: '127.0.0.1', port: 0 });
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const responses = recordResponses(page);
  try {
    await page.goto(bareUrl);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 30_000 });
    // Draw: says it needs a sketch model and how to serve one; drawing changes nothing else
    assert.match((await page.textContent('#msg-draw'))!, /needs a sketch → image transformer, and this server serves none.*without --model/);
    assert.equal(await page.isVisible('#msg-draw code'), true);
    await drawSmiley(page);
    assert.equal(await page.$$eval('#draw-out img', (i) => i.length), 0);
    await noEmptyImages(page);
    await page.screenshot({ path: path.join(extraShots, 'draw-needs.png') });
    // Sample: no categories, the button off, and why
    await page.click('nav button[data-view="sample"]');
    assert.match((await page.textContent('#msg-sample'))!, /needs a class-conditional transformer/);
    assert.equal(await page.isEnabled('#go'), false);
    await noEmptyImages(page);
    // Reconstruct works
    await page.click('nav button[data-view="reconstruct"]');
    await noEmptyImages(page);
    const x = HostTensor.float32([3, 64, 64]);
    for (let i = 0; i < x.size; i++) x.data[i] = Math.sin(i * 0.05) * 0.9;
    await page.setInputFiles('#file', { name: 'test.png', mimeType: 'image/png', buffer: Buffer.from(await encodePng(x)) });
    await page.waitForFunction(() => document.querySelectorAll('#codes span').length === 256, null, { timeout: 60_000 });
    // Codebook: the entries show; the usage map says it needs the emoji images and the command
    await page.click('nav button[data-view="codebook"]');
    await page.waitForFunction(() => document.body.dataset.codebook === 'emoji-f4' && (document.getElementById('cb-atlas') as HTMLImageElement).naturalWidth > 0, null, { timeout: 150_000 });
    assert.match((await page.textContent('#msg-codebook'))!, /needs the emoji images, which are not installed here: run npm install emoji-datasource-google@16/);
    assert.equal(await page.isVisible('#cb-heat'), false);
    await page.screenshot({ path: path.join(extraShots, 'codebook-no-emoji.png') });
    // Runs: none, and how to show some
    await page.click('nav button[data-view="runs"]');
    assert.match((await page.textContent('#msg-runs'))!, /No training runs here: start the server with --runs <dir>/);
    await noEmptyImages(page);
    // Train: says what training on emoji needs; trying anyway says it again, in the view
    await page.click('nav button[data-view="train"]');
    assert.match((await page.textContent('#msg-train'))!, /needs the emoji images.*npm install emoji-datasource-google@16.*your own images/);
    await page.fill('#tr-steps', '10');
    await page.click('#tr-start');
    await page.waitForFunction(() => /^error: /.test(document.getElementById('tr-status')!.textContent!), null, { timeout: 120_000 });
    assert.match((await page.textContent('#tr-status'))!, /training on emoji needs the emoji images.*npm install emoji-datasource-google@16/);
    assert.deepEqual(errors, []);
    assert.deepEqual(responses.filter((r) => r.status === 500 || r.status === 404), []);
    const failed = responses.filter((r) => r.status >= 400);
    assert.ok(failed.length >= 2 && failed.every((r) => r.status === 503 && /npm install emoji-datasource-google@16/.test(r.error ?? '')), JSON.stringify(failed));
  } finally {
    await page.close();
    await bare.close();
  }
});
