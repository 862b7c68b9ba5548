// End-to-end: extract-codes → train-gpt → sample through the CLI, and the one-line errors
// for bad sampling requests (a condition that is not an image, a class out of range, a size
// off the code grid, a checkpoint without a transformer).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadImage } from '../../src/io/image.ts';
import { emojiClassFolders } from '../helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '../..');
const VQ = path.join(root, 'models/emoji-f4/model.safetensors');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-cli-gpt-'));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin/latentkit.js'), ...args], { encoding: 'utf8', env: { ...process.env, LATENTKIT_THREADS: '1', LATENTKIT_CACHE: path.join(tmp, 'cache') } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('CLI: transformer commands', () => {
  const data = path.join(tmp, 'images');
  const codes = path.join(tmp, 'codes.safetensors');
  const run = path.join(tmp, 'run');
  before(() => {
    emojiClassFolders(data, 300, 330, ['hearts', 'stars', 'moons']);
  });

  it('extract-codes → train-gpt → sample by class name, with a grid and timings', () => {
    let r = cli('extract-codes', '-m', VQ, '-d', data, '-o', codes);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /30 images × 2 view\(s\) → 16×16 codes of 1024; \d+ train \/ \d+ val; 3 classes/);
    r = cli('train-gpt', '--codes', codes, '--config', 'tiny', '--out', run, '--max-steps', '4', '--batch-size', '2');
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /finished at step 4/);
    assert.match(r.err, /model directory: /);
    r = cli('sample', '-m', run, '--class', 'Stars', '-n', '3', '--top-k', '20', '--batch', '2', '-o', path.join(tmp, 'out'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /ms per token step \(median, batch 2\)/);
    assert.match(r.err, /peak RSS \d+ MB/);
    for (const f of ['sample-000.png', 'sample-002.png', 'grid.png']) assert.ok(fs.existsSync(path.join(tmp, 'out', f)), f);
  });

  it('the same seed gives the same samples whatever --batch; a larger --size uses a sliding window', async () => {
    let r = cli('sample', '-m', run, '--class', '1', '-n', '3', '--batch', '3', '--seed', '5', '-o', path.join(tmp, 'b3'));
    assert.equal(r.code, 0, r.err);
    r = cli('sample', '-m', run, '--class', '1', '-n', '3', '--batch', '1', '--seed', '5', '-o', path.join(tmp, 'b1'));
    assert.equal(r.code, 0, r.err);
    for (const f of ['sample-000.png', 'sample-002.png']) {
      const [a, b] = await Promise.all([loadImage(path.join(tmp, 'b3', f)), loadImage(path.join(tmp, 'b1', f))]);
      assert.deepEqual(Array.from(a.data), Array.from(b.data), f);
    }
    r = cli('sample', '-m', run, '--class', '0', '-n', '1', '--size', '68x64', '-o', path.join(tmp, 'wide'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /17×16 codes \(68x64 pixels, sliding 16×16 window\)/);
    assert.deepEqual((await loadImage(path.join(tmp, 'wide', 'sample-000.png'))).shape, [3, 68, 64]);
  });

  it('bad requests are one-line errors', () => {
    const bad = (args: string[], re: RegExp) => {
      const r = cli(...args);
      assert.notEqual(r.code, 0, `${args.join(' ')} succeeded`);
      const lines = r.err.trim().split('\n').filter((l) => !l.startsWith('note:'));
      assert.equal(lines.length, 1, r.err);
      assert.match(lines[0]!, re);
    };
    const o = ['-o', path.join(tmp, 'x')];
    bad(['sample', '-m', run, '--class', '7', ...o], /class 7 out of range: this model has 3 classes \(0–2: hearts, moons, stars\)/);
    bad(['sample', '-m', run, '--class', 'Flags', ...o], /unknown class 'Flags'; valid classes: 0 hearts, 1 moons, 2 stars/);
    bad(['sample', '-m', run, '--class', '0', '--size', '66x64', ...o], /--size 66x64 is not a multiple of the model's 4-pixel code cells/);
    bad(['sample', '-m', run, '--cond', codes, ...o], /this model's condition is a class: use --class/);
    bad(['sample', '-m', VQ, '--class', '0', ...o], /no transformer\.\* keys — not a Net2NetTransformer checkpoint \(it looks like a VQGAN/);
    bad(['sample', '-m', run, '--class', '0', '--top-p', '1.5', ...o], /top-p must be in \(0, 1\]/);
    bad(['train-gpt', '--codes', VQ, '--out', path.join(tmp, 'y')], /not a code set/);
  });

  it('sketch → image: extract-codes --cond sketch, train, sample from a drawing; a --cond that is not an image is one line', () => {
    const sk = path.join(tmp, 'sketch-codes.safetensors');
    let r = cli('extract-codes', '-m', VQ, '-d', data, '--cond', 'sketch', '--cond-model', path.join(root, 'models/sketch-f4/model.safetensors'), '-o', sk, '--no-flip');
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /30 images × 1 view\(s\) → 16×16 codes of 1024, conditions 16×16 codes of 512/);
    const cfg = path.join(tmp, 'sketch.yaml');
    fs.writeFileSync(cfg, [
      'model:',
      '  target: taming.models.cond_transformer.Net2NetTransformer',
      '  params:',
      '    cond_stage_config: {target: taming.models.vqgan.VQModel, params: {}}',
      '    transformer_config: {target: taming.modules.transformer.mingpt.GPT, params: {vocab_size: 1024, block_size: 512, n_layer: 1, n_head: 2, n_embd: 32}}',
      'data: {params: {batch_size: 2}}',
      'latentkit: {max_steps: 2, lr: 0.001, log_every: 1, val_every: 2, sample_every: 2, ckpt_every: 2}',
    ].join('\n'));
    const sr = path.join(tmp, 'sketch-run');
    r = cli('train-gpt', '--codes', sk, '--config', cfg, '--out', sr);
    assert.equal(r.code, 0, r.err);
    r = cli('sample', '-m', sr, '--cond', path.join(root, 'models/emoji-sketch/drawings/heart.png'), '-n', '2', '-o', path.join(tmp, 'sk-out'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /condition .*heart\.png/);
    assert.ok(fs.existsSync(path.join(tmp, 'sk-out', 'grid.png')));
    r = cli('sample', '-m', sr, '--cond', cfg, '-o', path.join(tmp, 'sk-bad'));
    assert.notEqual(r.code, 0);
    const lines = r.err.trim().split('\n').filter((l) => !l.startsWith('note:'));
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0]!, /cannot decode image .*sketch\.yaml/);
    r = cli('sample', '-m', sr, '--class', '0', '-o', path.join(tmp, 'sk-bad'));
    assert.match(r.err, /this model is not class-conditional \(its condition is an image: use --cond\)/);
  });
});
