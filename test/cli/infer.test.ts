// End-to-end: the CLI's inference commands on a taming Lightning checkpoint, exported ONNX
// graphs run by plain onnxruntime-node, and one-line errors with non-zero exits.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { saveImage, loadImage } from '../../src/io/image.ts';
import { VQGAN } from '../../src/models/vqgan/load.ts';
import { readSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { HostTensor } from '../../src/tensor.ts';
import { randn, relErr } from '../helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '../..');
const FX = path.join(root, 'test/fixtures/vqgan');
const CKPT = path.join(FX, 'tiny.ckpt');
const YAML = path.join(FX, 'tiny.yaml');

/** ONNX Runtime's own warnings (e.g. unused initializers): none in normal use. */
const ORT_WARNING = /\[W:onnxruntime|Removing initializer/;

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin/latentkit.js'), ...args], { encoding: 'utf8', env: { ...process.env, LATENTKIT_THREADS: '1' } });
  assert.doesNotMatch(r.stderr + r.stdout, ORT_WARNING, `latentkit ${args[0]} printed ONNX Runtime warnings`);
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('CLI inference', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-cli-'));
  const imgs = path.join(dir, 'in');
  before(async () => {
    fs.mkdirSync(path.join(imgs, 'sub'), { recursive: true });
    await saveImage(path.join(imgs, 'a.png'), randn([3, 8, 8], 1, 0.5));
    await saveImage(path.join(imgs, 'sub', 'b.png'), randn([3, 8, 8], 2, 0.5));
    await saveImage(path.join(imgs, 'c.png'), randn([3, 12, 8], 3, 0.5));
  });

  it('--help marks required options and lists the presets with defaults', () => {
    let r = cli('train-ae', '--help');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /-o, --out <dir>[\s\S]*?\(required\)/);
    assert.match(r.out, /preset \(emoji, sketch, tiny, taming; KL: emoji-kl,\s+tiny-kl,\s+kl-finetune\)[\s\S]*?\(default: emoji; with\s+--init:\s+kl-finetune\)/);
    r = cli('train-gpt', '--help');
    assert.match(r.out, /preset \(class, sketch, tiny, maskgit-class,\s+maskgit-sketch, maskgit-sketch-prefix,\s+tiny-maskgit\)/);
    assert.match(r.out, /--codes <file>[\s\S]*?\(required\)/);
  });

  it('info names the config, parameter count and ignored loss keys', () => {
    const r = cli('info', '-m', CKPT, '-c', YAML);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /VQGAN, 0\.\d+ M parameters, f=1, codebook 16×4/);
    assert.match(r.out, /loss\.discriminator.*ignored for inference/);
  });

  it('reconstruct a folder (mixed sizes), encode → decode round trip equals reconstruct', async () => {
    let r = cli('reconstruct', '-m', CKPT, '-c', YAML, '-i', imgs, '-o', path.join(dir, 'rec'));
    assert.equal(r.code, 0, r.err);
    for (const f of ['a.png', 'sub/b.png', 'c.png']) assert.ok(fs.existsSync(path.join(dir, 'rec', f)), f);
    r = cli('encode', '-m', CKPT, '-c', YAML, '-i', path.join(imgs, 'a.png'), '-o', path.join(dir, 'a.json'));
    assert.equal(r.code, 0, r.err);
    const codes = JSON.parse(fs.readFileSync(path.join(dir, 'a.json'), 'utf8')) as { shape: number[]; indices: number[] };
    assert.deepEqual(codes.shape, [8, 8]);
    assert.equal(codes.indices.length, 64);
    r = cli('decode', '-m', CKPT, '-c', YAML, '-i', path.join(dir, 'a.json'), '-o', path.join(dir, 'a-dec.png'));
    assert.equal(r.code, 0, r.err);
    const dec = await loadImage(path.join(dir, 'a-dec.png'));
    const rec = await loadImage(path.join(dir, 'rec', 'a.png'));
    assert.ok(relErr(dec.data, rec.data) < 1e-6, 'decode(encode(x)) must equal reconstruct(x)');
  });

  it('convert → safetensors with config metadata; loads back without --config and reconstructs identically', async () => {
    const out = path.join(dir, 'm.safetensors');
    const r = cli('convert', '-m', CKPT, '-c', YAML, '-o', out, '--inference-only');
    assert.equal(r.code, 0, r.err);
    const st = readSafetensorsFile(out);
    assert.ok(JSON.parse(st.metadata.config!).ddconfig);
    assert.ok(![...st.tensors.keys()].some((k) => k.startsWith('loss.')));
    const a = VQGAN.load(CKPT, { config: YAML });
    const b = VQGAN.load(out);
    const x = randn([1, 3, 8, 8], 9, 0.5);
    const ra = await a.reconstruct(x);
    const rb = await b.reconstruct(x);
    assert.deepEqual(Array.from(ra.image.data), Array.from(rb.image.data));
  });

  it('export-onnx graphs run in plain onnxruntime and match latentkit', async () => {
    const out = path.join(dir, 'onnx');
    const r = cli('export-onnx', '-m', CKPT, '-c', YAML, '-o', out, '--size', '8');
    assert.equal(r.code, 0, r.err);
    // plain onnxruntime in a fresh process loads both graphs without a warning; each carries only its own weights
    const plain = spawnSync(process.execPath, ['-e', `const o = require('onnxruntime-node'); (async () => { for (const f of ['encoder.onnx', 'decoder.onnx']) await o.InferenceSession.create(${JSON.stringify(out)} + '/' + f); console.log('ok'); })()`], { encoding: 'utf8', cwd: root });
    assert.equal(plain.stdout.trim(), 'ok', plain.stderr);
    assert.doesNotMatch(plain.stderr, ORT_WARNING);
    const size = (f: string) => fs.statSync(path.join(out, f)).size;
    const weights = fs.statSync(CKPT).size;
    assert.ok(size('encoder.onnx') + size('decoder.onnx') < 1.2 * weights, `encoder ${size('encoder.onnx')} + decoder ${size('decoder.onnx')} bytes vs checkpoint ${weights}`);
    const x = randn([1, 3, 8, 8], 11, 0.5);
    const enc = await ort.InferenceSession.create(path.join(out, 'encoder.onnx'));
    const dec = await ort.InferenceSession.create(path.join(out, 'decoder.onnx'));
    const e = await enc.run({ image: new ort.Tensor('float32', x.data as Float32Array, [1, 3, 8, 8]) });
    const d = await dec.run({ indices: e.indices! });
    const m = VQGAN.load(CKPT, { config: YAML });
    const want = await m.reconstruct(x);
    assert.deepEqual(Array.from(e.indices!.data as BigInt64Array), Array.from(want.indices.data as BigInt64Array));
    assert.ok(relErr(d.image!.data as Float32Array, want.image.data as Float32Array) < 1e-5);
  });

  it('bad input: one-line errors, exit code 1', async () => {
    const cases: [string[], RegExp][] = [
      [['reconstruct', '-m', path.join(dir, 'missing.ckpt'), '-i', imgs, '-o', dir], /model not found: .*missing\.ckpt/],
      [['reconstruct', '-m', CKPT, '-c', YAML, '-i', path.join(dir, 'nope.png'), '-o', dir], /input not found: .*nope\.png/],
      [['info', '-m', path.join(root, 'test/fixtures/ckpt/tiny_plain.pt')], /not a taming VQGAN checkpoint/],
      [['info', '-m', CKPT, '-c', path.join(FX, 'small.yaml')], /state dict does not match the model/],
      [['info', '-m', path.join(root, 'README.md')], /README\.md/],
    ];
    fs.writeFileSync(path.join(dir, 'bad.png'), 'not a png');
    cases.push([['reconstruct', '-m', CKPT, '-c', YAML, '-i', path.join(dir, 'bad.png'), '-o', path.join(dir, 'x.png')], /cannot decode image .*bad\.png/]);
    fs.writeFileSync(path.join(dir, 'bad.json'), '{"shape":[2,2],"indices":[1,2,3]}');
    cases.push([['decode', '-m', CKPT, '-c', YAML, '-i', path.join(dir, 'bad.json'), '-o', path.join(dir, 'x.png')], /expected \{"shape":\[h,w\]/]);
    for (const [args, re] of cases) {
      const r = cli(...args);
      assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}`);
      const lines = r.err.trim().split('\n').filter((l) => !l.startsWith('note:'));
      assert.equal(lines.length, 1, `${args.join(' ')}: expected one line, got:\n${r.err}`);
      assert.match(lines[0]!, /^latentkit: error: /);
      assert.match(lines[0]!, re);
    }
    void HostTensor;
  });
});
