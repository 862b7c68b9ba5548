// `latentkit edit` and the server's /edit end to end on a tiny MaskGIT model trained here: a
// brushed region is repainted and the rest of the code grid kept exactly, outpainting fills
// what a placed image leaves uncovered, and bad input gets one clear line — a mask of another
// size (resized, said), an empty mask (nothing to do), a mask over everything (plain sampling),
// --steps 0. The committed autoregressive emoji-class model edits a raster suffix, and says so.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadImage, saveImage } from '../../src/io/image.ts';
import { HostTensor } from '../../src/tensor.ts';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { Net2Net } from '../../src/models/cond_transformer/load.ts';
import { createServer } from '../../src/serve/server.ts';
import { emojiClassFolders } from '../helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '../..');
const VQ = path.join(root, 'models/emoji-f4/model.safetensors');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-cli-edit-'));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin/latentkit.js'), ...args], { encoding: 'utf8', env: { ...process.env, LATENTKIT_THREADS: '1', LATENTKIT_CACHE: path.join(tmp, 'cache') } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A black mask [h, w] with a white rectangle (x0, y0)–(x1, y1) exclusive. */
async function mask(file: string, h: number, w: number, rect: [number, number, number, number] | 'all' | 'none') {
  const t = HostTensor.float32([3, h, w], new Float32Array(3 * h * w).fill(-1));
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const on = rect === 'all' || (rect !== 'none' && x >= rect[0] && x < rect[2] && y >= rect[1] && y < rect[3]);
    if (on) for (let k = 0; k < 3; k++) t.data[(k * h + y) * w + x] = 1;
  }
  await saveImage(file, t);
}

describe('edit: repaint a region, outpaint, and the one-line answers', () => {
  const data = path.join(tmp, 'images');
  const codes = path.join(tmp, 'codes.safetensors');
  const run = path.join(tmp, 'run');
  let input = '';
  before(async () => {
    input = emojiClassFolders(data, 400, 424, ['hearts', 'stars'])[0]!;
    let r = cli('extract-codes', '-m', VQ, '-d', data, '-o', codes, '--no-flip');
    assert.equal(r.code, 0, r.err);
    r = cli('train-gpt', '--codes', codes, '--config', 'tiny-maskgit', '--out', run, '--max-steps', '4', '--batch-size', '2');
    assert.equal(r.code, 0, r.err);
    await mask(path.join(tmp, 'box.png'), 64, 64, [16, 16, 48, 40]);
    await mask(path.join(tmp, 'box-small.png'), 32, 32, [8, 8, 24, 20]);
    await mask(path.join(tmp, 'none.png'), 64, 64, 'none');
    await mask(path.join(tmp, 'all.png'), 64, 64, 'all');
  });

  it('repaints the masked cells and keeps every other code exactly', async () => {
    const out = path.join(tmp, 'e1');
    const r = cli('edit', '-m', run, '-i', input, '--mask', path.join(tmp, 'box.png'), '--class', 'stars', '-n', '2', '--steps', '4', '-o', out);
    assert.equal(r.code, 0, r.err);
    // the box covers cells x 4–11, y 4–9: 8 × 6 = 48 cells
    assert.match(r.err, /repainted 48 of 256 cells; kept 208 codes of each edit exactly as the input's/);
    for (const f of ['edit-000.png', 'edit-001.png', 'grid.png']) assert.ok(fs.existsSync(path.join(out, f)), f);
    // pixels: against the input's own reconstruction, the repainted box changes and the rest
    // (far from the box: the decoder's convolutions blur its edge) stays nearly the same
    const vq = VQGAN.load(VQ, { session: { threads: 1 } });
    const rec = (await vq.reconstruct((await loadImage(input)).reshape([1, 3, 64, 64]))).image.data as Float32Array;
    await vq.release();
    const ed = (await loadImage(path.join(out, 'edit-000.png'))).data as Float32Array;
    let [din, nin, dout, nout] = [0, 0, 0, 0];
    for (let k = 0; k < 3; k++) for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) {
      const d = Math.abs(ed[(k * 64 + y) * 64 + x]! - rec[(k * 64 + y) * 64 + x]!);
      if (x >= 16 && x < 48 && y >= 16 && y < 40) [din, nin] = [din + d, nin + 1];
      else if (x < 8 || x >= 56 || y < 8 || y >= 48) [dout, nout] = [dout + d, nout + 1];
    }
    din /= nin;
    dout /= nout;
    assert.ok(din > 0.05, `the repainted region hardly changed: mean |Δ| ${din.toFixed(4)}`);
    assert.ok(dout < 0.25 * din, `the rest changed: mean |Δ| ${dout.toFixed(4)} far from the box vs ${din.toFixed(4)} inside`);
  });

  it('a mask of another size is resized and said; the same cells are repainted', () => {
    const r = cli('edit', '-m', run, '-i', input, '--mask', path.join(tmp, 'box-small.png'), '--class', '0', '-n', '1', '--steps', '3', '-o', path.join(tmp, 'e2'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /the mask is 32x32, the image 64x64: resized the mask to 64x64 \(nearest\)/);
    assert.match(r.err, /repainted 48 of 256 cells/);
  });

  it('an empty mask: nothing to do; a full mask: plain sampling; --steps 0 and no mask: one line each', () => {
    let r = cli('edit', '-m', run, '-i', input, '--mask', path.join(tmp, 'none.png'), '--class', '0', '-o', path.join(tmp, 'e3'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /the mask marks no cell \(white = repaint\): nothing to do/);
    assert.ok(!fs.existsSync(path.join(tmp, 'e3', 'grid.png')));
    r = cli('edit', '-m', run, '-i', input, '--mask', path.join(tmp, 'all.png'), '--class', '0', '-n', '1', '--steps', '2', '-o', path.join(tmp, 'e4'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /the mask covers every cell: every code is generated — plain sampling/);
    r = cli('edit', '-m', run, '-i', input, '--mask', path.join(tmp, 'box.png'), '--class', '0', '--steps', '0', '-o', path.join(tmp, 'e5'));
    assert.equal(r.code, 1);
    assert.equal(r.err.trim(), "latentkit: error: --steps must be a whole number ≥ 1 (parallel decoding passes), got '0'");
    r = cli('edit', '-m', run, '-i', input, '--class', '0', '-o', path.join(tmp, 'e6'));
    assert.equal(r.code, 1);
    assert.match(r.err.trim(), /^latentkit: error: give --mask \(white = repaint\) or --at X,Y \(outpainting\), or both$/);
    r = cli('edit', '-m', run, '-i', path.join(tmp, 'nope.png'), '--mask', path.join(tmp, 'box.png'), '-o', path.join(tmp, 'e7'));
    assert.equal(r.code, 1);
    assert.match(r.err.trim(), /^latentkit: error: input not found: .*nope\.png$/);
  });

  it('outpainting: a 32x32 image placed at 16,16 keeps its 64 covered cells', async () => {
    const small = path.join(tmp, 'small.png');
    const img = await loadImage(input, { size: 32 });
    await saveImage(small, img);
    const r = cli('edit', '-m', run, '-i', small, '--at', '16,16', '--class', '1', '-n', '1', '--steps', '4', '-o', path.join(tmp, 'o1'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /outpainting: the 32x32 image at 16,16 on the 64x64 canvas; 192 cells it does not cover are generated/);
    assert.match(r.err, /repainted 192 of 256 cells; kept 64 codes/);
    const bad = cli('edit', '-m', run, '-i', small, '--at', '40,0', '--class', '1', '-o', path.join(tmp, 'o2'));
    assert.equal(bad.code, 1);
    assert.match(bad.err, /--at 40,0: a 32x32 image does not fit on the 64x64 canvas there/);
  });

  it('an autoregressive model regenerates from the first masked cell on, and says so', async () => {
    const r = cli('edit', '-m', path.join(root, 'models/emoji-class'), '-i', input, '--mask', path.join(tmp, 'box.png'), '--class', '0', '-n', '1', '--top-k', '50', '-o', path.join(tmp, 'ar'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /autoregressive model: it regenerates every code from cell \(row 4, column 4\) onwards in raster order — 188 cells, not only the 48 marked/);
    assert.match(r.err, /kept 68 codes of each edit exactly/);
  });

  it('HTTP: POST /edit answers the edits, the regenerated cells and the notes; bad input is a 400', async () => {
    const net = Net2Net.load(run, { session: { threads: 1 } });
    const { app } = await createServer({ models: [{ name: 'mg', kind: 'transformer', source: run, net }] });
    const url = (f: string) => `data:image/png;base64,${fs.readFileSync(f).toString('base64')}`;
    let res = await app.inject({ method: 'POST', url: '/api/models/mg/edit', payload: { image: url(input), mask: url(path.join(tmp, 'box.png')), class: 'hearts', n: 2, steps: 3 } });
    assert.equal(res.statusCode, 200, res.body);
    let j = res.json();
    assert.equal(j.kind, 'edit');
    assert.equal(j.regenerated, 48);
    assert.equal(j.images.length, 2);
    assert.equal(j.cells.reduce((a: number, v: number) => a + v, 0), 48);
    res = await app.inject({ method: 'POST', url: '/api/models/mg/edit', payload: { image: url(input), mask: url(path.join(tmp, 'none.png')), class: 'hearts' } });
    assert.equal(res.statusCode, 200);
    j = res.json();
    assert.equal(j.kind, 'nothing');
    assert.deepEqual(j.images, []);
    assert.match(j.notes[0], /nothing to do/);
    res = await app.inject({ method: 'POST', url: '/api/models/mg/edit', payload: { image: url(input), mask: 'hello', class: 'hearts' } });
    assert.equal(res.statusCode, 415);
    assert.match(res.json().error, /'mask' is not a PNG, JPEG or WebP image/);
    res = await app.inject({ method: 'POST', url: '/api/models/mg/edit', payload: { image: url(input), mask: url(path.join(tmp, 'box.png')), class: 'hearts', steps: 0 } });
    assert.equal(res.statusCode, 400);
    assert.match(res.json().error, /'steps' must be ≥ 1/);
    await app.close();
    await net.release();
  });
});
