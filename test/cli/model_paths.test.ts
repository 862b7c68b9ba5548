// One rule for model paths: every command takes a model directory or a file (the same
// results either way), `info` describes VQGANs and transformers, and the CLI's limits and
// input checks come in one line before any work. The commands run in this process (a fresh
// commander program per call) so the whole matrix stays fast.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { Command } from 'commander';
import sharp from 'sharp';
import { registerVqganCommands } from '../../src/cli/vqgan.ts';
import { registerGptCommands } from '../../src/cli/gpt.ts';
import { registerTrainCommands } from '../../src/cli/train.ts';
import { aboutDuration, timedProgress } from '../../src/cli/limits.ts';
import { kindFromKeys, resolveModelPath } from '../../src/io/model_path.ts';
import { MAX_IMAGE_SIDE } from '../../src/io/limits.ts';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { Net2Net } from '../../src/models/cond_transformer/load.ts';
import { readSafetensorsFile } from '../../src/io/formats/safetensors.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '../..');
const F4 = path.join(root, 'models/emoji-f4');
const CLASS = path.join(root, 'models/emoji-class');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-paths-'));

/** Run `latentkit <args>` in this process; its stdout, stderr and exit code. */
async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const program = new Command().exitOverride();
  registerVqganCommands(program);
  registerTrainCommands(program);
  registerGptCommands(program);
  const out: string[] = [];
  const err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  process.exitCode = 0;
  try {
    await program.parseAsync(['node', 'latentkit', ...args]);
  } finally {
    console.log = log;
    console.error = error;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** A failing command: exit 1, one line (the error) before anything else is printed. */
async function oneLine(args: string[], re: RegExp): Promise<void> {
  const r = await cli(...args);
  assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}\n${r.err}`);
  assert.equal(r.err.trim().split('\n').length, 1, `${args.join(' ')}: expected only the error line, got:\n${r.err}`);
  assert.match(r.err, /^latentkit: error: /);
  assert.match(r.err, re);
}

describe('model paths: one rule', () => {
  const images = path.join(tmp, 'images');
  const a = path.join(images, 'hearts', 'a.png');
  before(() => {
    process.env.LATENTKIT_THREADS = '1';
    const pkg = path.dirname(createRequire(import.meta.url).resolve('emoji-datasource-google/package.json'));
    const src = path.join(pkg, 'img/google/64');
    fs.readdirSync(src).filter((f) => f.endsWith('.png')).slice(400, 408).forEach((f, i) => {
      const d = path.join(images, i % 2 ? 'stars' : 'hearts');
      fs.mkdirSync(d, { recursive: true });
      fs.copyFileSync(path.join(src, f), i === 0 ? a : path.join(d, f));
    });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('resolveModelPath: a directory → its model.safetensors + config.yaml; a file → itself + configs beside it; --config first', () => {
    const d = resolveModelPath(F4);
    assert.equal(d.directory, true);
    assert.equal(d.weights, path.join(F4, 'model.safetensors'));
    assert.equal(d.config, path.join(F4, 'config.yaml'));
    const f = resolveModelPath(path.join(F4, 'model.safetensors'));
    assert.equal(f.directory, false);
    assert.equal(f.weights, path.join(F4, 'model.safetensors'));
    assert.equal(f.config, null, 'a file: the metadata comes before a config beside it');
    assert.deepEqual(f.beside, [path.join(F4, 'config.yaml')]);
    assert.equal(resolveModelPath(F4, path.join(CLASS, 'config.yaml')).config, path.join(CLASS, 'config.yaml'));
    assert.throws(() => resolveModelPath(path.join(tmp, 'nope')), /^Error: model not found: .*nope$/);
    assert.throws(() => resolveModelPath(F4, path.join(tmp, 'nope.yaml')), /config not found: .*nope\.yaml/);
    assert.throws(() => resolveModelPath(images), /images: a model directory holds model\.safetensors \(and config\.yaml\); this one has no model\.safetensors/);
    assert.equal(kindFromKeys(['encoder.conv_in.weight', 'quantize.embedding.weight']), 'vqgan');
    assert.equal(kindFromKeys(['transformer.tok_emb.weight', 'first_stage_model.encoder.conv_in.weight']), 'transformer');
  });

  it('the library loaders take a directory or a file and load the same model', () => {
    const d = VQGAN.load(F4);
    const f = VQGAN.load(path.join(F4, 'model.safetensors'));
    assert.deepEqual(d.config.ddconfig, f.config.ddconfig);
    assert.deepEqual(d.files, [path.join(F4, 'model.safetensors'), path.join(F4, 'config.yaml')]);
    assert.deepEqual(f.files, [path.join(F4, 'model.safetensors')]);
    assert.throws(() => VQGAN.load(CLASS), /emoji-class is a Net2Net transformer \(transformer\.\* keys\), not a VQGAN: sample from it with `latentkit sample`/);
    const n = Net2Net.load(path.join(CLASS, 'model.safetensors'));
    assert.deepEqual(n.files, [path.join(CLASS, 'model.safetensors'), path.join(F4, 'model.safetensors')]);
    assert.equal(n.classes!.length, 10);
    assert.throws(() => Net2Net.load(F4), /no transformer\.\* keys — not a Net2NetTransformer checkpoint/);
  });

  for (const [form, model] of [['directory', F4], ['file', path.join(F4, 'model.safetensors')]] as const) {
    it(`every VQGAN command takes the ${form} (${path.relative(root, model)})`, async () => {
      const o = path.join(tmp, form);
      fs.mkdirSync(o, { recursive: true });
      let r = await cli('info', '-m', model);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /VQGAN, 2\.87 M parameters, f=4, codebook 1024×32/);
      assert.match(r.out, /code grid: 16×16 for 64×64 images/);
      assert.match(r.out, /files: .*models\/emoji-f4\/model\.safetensors/);
      r = await cli('reconstruct', '-m', model, '-i', a, '-o', path.join(o, 'rec.png'));
      assert.equal(r.code, 0, r.err);
      r = await cli('encode', '-m', model, '-i', images, '-o', path.join(o, 'codes'));
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(JSON.parse(fs.readFileSync(path.join(o, 'codes/hearts/a.json'), 'utf8')).shape, [16, 16]);
      r = await cli('decode', '-m', model, '-i', path.join(o, 'codes/hearts/a.json'), '-o', path.join(o, 'dec.png'));
      assert.equal(r.code, 0, r.err);
      r = await cli('convert', '-m', model, '-o', path.join(o, 'c.safetensors'), '--inference-only');
      assert.equal(r.code, 0, r.err);
      assert.equal(JSON.parse(readSafetensorsFile(path.join(o, 'c.safetensors')).metadata.config!).n_embed, 1024);
      r = await cli('export-onnx', '-m', model, '-o', path.join(o, 'onnx'));
      assert.equal(r.code, 0, r.err);
      for (const f of ['encoder.onnx', 'decoder.onnx', 'model.json']) assert.ok(fs.existsSync(path.join(o, 'onnx', f)), `export-onnx wrote no ${f}`);
      r = await cli('eval', '-m', model, '-d', images, '--split', 'all', '-b', '8');
      assert.equal(r.code, 0, r.err);
      assert.ok(JSON.parse(r.out).psnr > 20);
      r = await cli('extract-codes', '-m', model, '-d', images, '-o', path.join(o, 'codes.safetensors'), '--no-flip');
      assert.equal(r.code, 0, r.err);
      // the code set records the weights file (train-gpt writes it as the first stage's ckpt_path)
      assert.equal(JSON.parse(readSafetensorsFile(path.join(o, 'codes.safetensors')).metadata.info!).model, path.join(F4, 'model.safetensors'));
    });
  }

  it('a directory and its file give the same bytes', () => {
    for (const f of ['rec.png', 'dec.png', 'codes/hearts/a.json', 'codes/stars/' + fs.readdirSync(path.join(tmp, 'file/codes/stars'))[0]]) {
      assert.ok(fs.readFileSync(path.join(tmp, 'directory', f)).equals(fs.readFileSync(path.join(tmp, 'file', f))), f);
    }
  });

  it('info describes a transformer: kind, condition, parameters, grid, classes, the files read', async () => {
    let r = await cli('info', '-m', CLASS);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Net2Net transformer, class-conditional, 10 classes \(\+ a null class: --cfg works\); 9\.78 M parameters/);
    assert.match(r.out, /GPT: 6\.91 M parameters, 8 layers × 256, 8 heads, vocab 1024, block 257/);
    assert.match(r.out, /first stage: VQGAN, 2\.87 M parameters, f=4, codebook 1024×32/);
    assert.match(r.out, /code grid: 16×16 for 64×64 images/);
    assert.match(r.out, /classes: 0 Activities, 1 Animals & Nature, .*9 Travel & Places/);
    assert.match(r.out, /files: .*emoji-class\/model\.safetensors, .*emoji-class\/config\.yaml, .*emoji-f4\/model\.safetensors/);
    r = await cli('info', '-m', path.join(root, 'models/emoji-sketch/model.safetensors'), '--json');
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    assert.equal(j.kind, 'transformer');
    assert.equal(j.condition, 'sketch');
    assert.deepEqual(j.grid, [16, 16]);
    assert.deepEqual(j.cond_grid, [16, 16]);
    assert.equal(j.cond_stage.codebook.n_embed, 512);
    assert.equal(j.parameters, j.transformer.parameters + j.first_stage.parameters + j.cond_stage.parameters);
    assert.equal(j.files.length, 3, 'weights + the two stages (the config is in the metadata)');
  });

  it('transformer commands take the directory or the file', async () => {
    for (const model of [CLASS, path.join(CLASS, 'model.safetensors')]) {
      const o = path.join(tmp, 'class-' + path.basename(model));
      const r = await cli('sample', '-m', model, '--class', 'Flags', '-n', '1', '--seed', '3', '-o', o);
      assert.equal(r.code, 0, r.err);
      // the estimate comes before the progress lines
      const lines = r.err.split('\n');
      const est = lines.findIndex((l) => /^256 token steps at [\d.]+ ms: (about \d+ (s|min)|under a second) on this machine$/.test(l));
      assert.ok(est > 0, `no estimate line in:\n${r.err}`);
      assert.ok(lines.findIndex((l) => l.startsWith('tokens: ')) > est, 'the estimate comes before the progress');
    }
    assert.ok(fs.readFileSync(path.join(tmp, 'class-emoji-class', 'sample-000.png')).equals(fs.readFileSync(path.join(tmp, 'class-model.safetensors', 'sample-000.png'))));
    const r = await cli('convert', '-m', CLASS, '-o', path.join(tmp, 'class.safetensors'));
    assert.equal(r.code, 0, r.err);
    assert.ok(readSafetensorsFile(path.join(tmp, 'class.safetensors')).tensors.has('first_stage_model.quantize.embedding.weight'));
  });

  it('limits and bad inputs: one line, before the model loads', async () => {
    const o = path.join(tmp, 'bad');
    const lim = new RegExp(`is over the limit of ${MAX_IMAGE_SIDE} pixels a side, the server's limit too`);
    await oneLine(['sample', '-m', CLASS, '--class', '0', '--size', '100000x100000', '-o', o], new RegExp(`--size 100000x100000 ${lim.source}`));
    await oneLine(['sample', '-m', CLASS, '--class', '0', '--size', '4100', '-o', o], lim);
    await oneLine(['reconstruct', '-m', F4, '-i', a, '--size', '100000', '-o', path.join(o, 'x.png')], new RegExp(`--size 100000 ${lim.source}`));
    await oneLine(['export-onnx', '-m', F4, '--size', '8192', '-o', o], lim);
    await oneLine(['extract-codes', '-m', F4, '--size', '5000', '-o', path.join(o, 'c.safetensors')], lim);
    await oneLine(['sample', '-m', path.join(root, 'models/emoji-sketch'), '--cond', path.join(tmp, 'missing.png'), '-o', o], /input not found: .*missing\.png$/);
    await oneLine(['sample', '-m', path.join(root, 'models/emoji-sketch'), '--cond', images, '-o', o], /--cond .*images is a directory; give one image/);
    await oneLine(['extract-codes', '-m', F4, '-d', path.join(tmp, 'nodata'), '-o', path.join(o, 'c.safetensors')], /input not found: .*nodata$/);
    await oneLine(['reconstruct', '-m', path.join(tmp, 'nope'), '-i', a, '-o', o], /model not found: .*nope$/);
    await oneLine(['info', '-m', images], /a model directory holds model\.safetensors/);
    await oneLine(['reconstruct', '-m', CLASS, '-i', a, '-o', o], /is a Net2Net transformer \(transformer\.\* keys\), not a VQGAN/);
    await oneLine(['export-onnx', '-m', CLASS, '--size', '64', '-o', o], /--size is for VQGAN exports/);
    const wide = path.join(tmp, 'wide.json');
    fs.writeFileSync(wide, JSON.stringify({ shape: [1, 1100], indices: new Array(1100).fill(0) }));
    // (the factor comes from the model, so its notes come first)
    const d = await cli('decode', '-m', path.join(F4, 'model.safetensors'), '-i', wide, '-o', path.join(o, 'x.png'));
    assert.equal(d.code, 1);
    assert.deepEqual(d.err.split('\n').filter((l) => !l.startsWith('note:')).length, 1, d.err);
    assert.match(d.err, /wide\.json: a 1×1100 code grid decodes to 4400×4 pixels, over the limit of 4096 pixels a side/);
    // an image over the pixel limit is refused from its header, as the server does (413)
    const big = path.join(tmp, 'big.png');
    await sharp({ create: { width: 4100, height: 4100, channels: 3, background: '#fff' } }).png().toFile(big);
    await oneLine(['sample', '-m', path.join(root, 'models/emoji-sketch'), '--cond', big, '-o', o], /big\.png is 4100×4100 \(16\.8 M pixels\); the limit is 4096×4096/);
  });

  it('--size that is off the code grid names --size, not "use --size"', async () => {
    const r = await cli('reconstruct', '-m', F4, '-i', a, '--size', '30', '-o', path.join(tmp, 'x.png'));
    assert.equal(r.code, 1);
    const lines = r.err.trim().split('\n').filter((l) => !l.startsWith('note:'));
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0]!, /--size 30 is not a multiple of the model's downsampling factor 4 \(try 28 or 32\)$/);
    // without --size, an image off the grid is named with the option that fixes it
    const odd = path.join(tmp, 'odd.png');
    await sharp({ create: { width: 30, height: 30, channels: 3, background: '#f00' } }).png().toFile(odd);
    const r2 = await cli('reconstruct', '-m', F4, '-i', odd, '-o', path.join(tmp, 'x.png'));
    assert.match(r2.err, /odd\.png is 30×30, not a multiple of the model's downsampling factor 4; pass --size N \(a multiple of 4\) to resize/);
  });

  it('timedProgress: one estimate from the steps after the first, then the bar', () => {
    const err: string[] = [];
    const error = console.error;
    console.error = (...a: unknown[]) => void err.push(a.join(' '));
    const seen: [number, number][] = [];
    try {
      const p = timedProgress(1000, 'steps', (ms, s) => {
        seen.push([ms, s]);
        return 'estimate';
      }, { minSteps: 5, minMs: 1e9 });
      for (let i = 0; i < 1000; i++) p.tick();
      p.stop();
    } finally {
      console.error = error;
    }
    assert.equal(seen.length, 1, 'one estimate');
    assert.equal(err[0], 'estimate');
    assert.ok(err.slice(1).every((l) => /^steps: \d+\/1000$/.test(l)) && err.at(-1) === 'steps: 1000/1000', err.join('\n'));
    assert.equal(aboutDuration(0.2), 'under a second');
    assert.equal(aboutDuration(42), 'about 42 s');
    assert.equal(aboutDuration(121), 'about 2 min');
    assert.equal(aboutDuration(3 * 3600), 'about 3.0 h');
    assert.equal(aboutDuration(5 * 86400), 'about 5 days');
  });
});
