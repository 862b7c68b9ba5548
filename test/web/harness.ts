// The browser tests' set-up: the page built (web/dist, once), `latentkit serve` in-process on
// a free port with the given models, and Debian's Chromium driven by playwright-core.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { createServer } from '../../src/serve/server.ts';
import { releaseServed, type ServedModel } from '../../src/serve/models.ts';

export const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const webRoot = path.join(root, 'web', 'dist');

export interface PageServer {
  app: FastifyInstance;
  browser: Browser;
  url: string;
  close(): Promise<void>;
}

export async function servePage(models: ServedModel[], o: { runs?: string[] } = {}): Promise<PageServer> {
  if (!fs.existsSync(path.join(webRoot, 'index.html'))) execFileSync(process.execPath, [path.join(root, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], { cwd: root, stdio: 'inherit' });
  const { app } = await createServer({ models, webRoot, ...(o.runs ? { runs: o.runs } : {}) });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-background-networking'] });
  return {
    app,
    browser,
    url,
    async close() {
      await browser.close();
      await app.close();
      for (const m of models) await releaseServed(m);
    },
  };
}

/** An image element's pixels (RGBA) as the page shows them: the element `selector` names. */
export const imagePixels = (page: Page, selector: string): Promise<number[]> =>
  page.evaluate((sel) => {
    const img = document.querySelector(sel) as HTMLImageElement;
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const ctx = c.getContext('2d')!;
    ctx.drawImage(img, 0, 0);
    return Array.from(ctx.getImageData(0, 0, c.width, c.height).data);
  }, selector);

/** Paints a drawing (PNG bytes) onto the Draw view's pad as it is, without sending anything. */
export async function paintPad(page: Page, png: Uint8Array): Promise<void> {
  await page.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const pad = document.getElementById('pad') as HTMLCanvasElement;
    pad.getContext('2d')!.drawImage(img, 0, 0, pad.width, pad.height);
  }, Buffer.from(png).toString('base64'));
}

/** One short stroke on the pad at (fx, fy), fractions of its size: the Draw view sends one request. */
export async function padStroke(page: Page, fx: number, fy: number): Promise<void> {
  const box = (await page.locator('#pad').boundingBox())!;
  await page.mouse.move(box.x + box.width * fx, box.y + box.height * fy);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * fx + 1, box.y + box.height * fy);
  await page.mouse.up();
}
