// The VQGAN commands on Stable Diffusion-style autoencoders (issue 18): encode → latents
// file → decode with the same VAE in another format and with a TAESD; reconstruct (tiled =
// untiled); convert to diffusers and back; export-onnx run by plain onnxruntime; info; and the
// one-line errors (wrong latent channels, KL flags on a VQGAN). Fixtures: test/fixtures/kl
// (scripts/make_kl_fixtures.py).
import { it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { loadImage, loadImageU8 } from '../../src/io/image.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl/load.ts';
import { HostTensor } from '../../src/tensor.ts';
import { TAESD } from '../../src/models/taesd/load.ts';
import { hashStateDict } from '../../src/nn/hashinit.ts';
import { taesdShapes } from '../../src/models/taesd/taesd.ts';
import { relErr } from '../helpers.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FX = path.join(root, 'test/fixtures/kl');
const IMG = path.join(root, 'node_modules/emoji-datasource-google/img/google/64/1f600.png');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-cli-kl-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin/latentkit.js'), ...args], { encoding: 'utf8', env: { ...process.env, LATENTKIT_THREADS: '1' } });
  return { code: r.status, err: r.stderr, out: r.stdout };
}
const t = (f: string) => path.join(tmp, f);

it('encode an SD .ckpt (its YAML beside) → latents.safetensors, scaled like the library; decode with the diffusers folder of the same VAE', async () => {
  let r = cli('encode', '-m', path.join(FX, 'sd_tiny.ckpt'), '-i', IMG, '-o', t('lat.safetensors'), '--size', '32');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /latent scaling 0\.18215/);
  const lat = readSafetensorsFile(t('lat.safetensors'));
  const z = lat.tensors.get('latents')!;
  assert.deepEqual([...z.shape], [1, 4, 16, 16]);
  assert.equal(lat.metadata.posterior, 'mode');
  const m = AutoencoderKL.load(path.join(FX, 'diffusers_tiny'));
  const x = (await loadImage(IMG, { size: 32 })).reshape([1, 3, 32, 32]);
  const want = (await m.encode(x)).latents;
  assert.ok(relErr(z.data as Float32Array, want.data as Float32Array) < 1e-5);
  r = cli('decode', '-m', path.join(FX, 'diffusers_tiny'), '-i', t('lat.safetensors'), '-o', t('dec.png'));
  assert.equal(r.code, 0, r.err);
  const img = await loadImageU8(t('dec.png'));
  assert.deepEqual([...img.shape], [3, 32, 32]);
  // --sample draws from the posterior: other latents, the same for the same seed
  r = cli('encode', '-m', path.join(FX, 'diffusers_tiny'), '-i', IMG, '-o', t('s1.safetensors'), '--size', '32', '--sample', '--seed', '3');
  assert.equal(r.code, 0, r.err);
  cli('encode', '-m', path.join(FX, 'diffusers_tiny'), '-i', IMG, '-o', t('s2.safetensors'), '--size', '32', '--sample', '--seed', '3');
  const [s1, s2] = [t('s1.safetensors'), t('s2.safetensors')].map((f) => Array.from(readSafetensorsFile(f).tensors.get('latents')!.data as Float32Array));
  assert.deepEqual(s1, s2);
  assert.notDeepEqual(s1, Array.from(z.data as Float32Array));
  await m.release();
});

it('reconstruct prints PSNR; --tile 4 gives the untiled image; KL flags on a VQGAN and wrong latent channels are one line', () => {
  let r = cli('reconstruct', '-m', path.join(FX, 'diffusers_tiny'), '-i', IMG, '-o', t('rec.png'), '--size', '32');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /PSNR [\d.]+ dB/);
  r = cli('reconstruct', '-m', path.join(FX, 'diffusers_tiny'), '-i', IMG, '-o', t('rec_tiled.png'), '--size', '32', '--tile', '4');
  assert.equal(r.code, 0, r.err);
  assert.ok(fs.readFileSync(t('rec.png')).equals(fs.readFileSync(t('rec_tiled.png'))), 'tiled reconstruction differs');
  r = cli('decode', '-m', path.join(FX, 'flux16.safetensors'), '-i', t('lat.safetensors'), '-o', t('x.png'));
  assert.equal(r.code, 1);
  assert.match(r.err, /^latentkit: error: .*lat\.safetensors: latents have 4 channels, but .*flux16\.safetensors has a latent space of 16/m);
  assert.equal(r.err.trim().split('\n').filter((l) => !l.startsWith('note:')).length, 1);
  r = cli('encode', '-m', path.join(root, 'models/emoji-f4'), '-i', IMG, '-o', t('c.json'), '--tile', '4');
  assert.match(r.err, /--tile: for KL autoencoders .* is not one/);
});

it('a TAESD decodes the latents a KL encode wrote; a 16-channel TAESD says the channels do not match', () => {
  for (const c of [4, 16]) {
    const d = t(`taesd${c}`);
    fs.mkdirSync(d);
    writeSafetensorsFile(path.join(d, 'taesd_decoder.safetensors'), hashStateDict(taesdShapes('decoder', c)));
  }
  let r = cli('decode', '-m', t('taesd4'), '-i', t('lat.safetensors'), '-o', t('preview.png'));
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /TAESD decoder, 4 latent channels/);
  r = cli('decode', '-m', path.join(t('taesd16'), 'taesd_decoder.safetensors'), '-i', t('lat.safetensors'), '-o', t('p16.png'));
  assert.match(r.err, /latents have 4 channels, but .* decodes 16/);
  r = cli('info', '-m', t('taesd4'));
  assert.match(r.out, /TAESD preview autoencoder \(decoder\)/);
});

it('export-onnx of a TAESD (encoder and decoder): free sizes, images in [-1, 1], the library\'s numbers', async () => {
  const d = t('taesd-both');
  fs.mkdirSync(d);
  for (const part of ['encoder', 'decoder'] as const) writeSafetensorsFile(path.join(d, `taesd_${part}.safetensors`), hashStateDict(taesdShapes(part, 4)));
  const r = cli('export-onnx', '-m', d, '-o', t('taesd-onnx'));
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(fs.readFileSync(t('taesd-onnx/taesd.json'), 'utf8')).files, { encoder: 'taesd_encoder.onnx', decoder: 'taesd_decoder.onnx' });
  const lib = TAESD.load(d);
  const x = HostTensor.float32([2, 3, 16, 24], Float32Array.from({ length: 2 * 3 * 16 * 24 }, (_, i) => Math.sin(i * 0.31) * 0.9));
  const enc = await ort.InferenceSession.create(t('taesd-onnx/taesd_encoder.onnx'));
  const z = (await enc.run({ sample: new ort.Tensor('float32', x.data as Float32Array, [2, 3, 16, 24]) })).latents!;
  assert.deepEqual(z.dims, [2, 4, 2, 3]);
  assert.ok(relErr(z.data as Float32Array, (await lib.encode(x)).data as Float32Array) < 1e-5);
  const dec = await ort.InferenceSession.create(t('taesd-onnx/taesd_decoder.onnx'));
  const img = (await dec.run({ latents: z })).sample!;
  assert.ok(relErr(img.data as Float32Array, (await lib.decode(HostTensor.float32([2, 4, 2, 3], z.data as Float32Array))).data as Float32Array) < 1e-5);
  assert.match(cli('export-onnx', '-m', d, '-o', t('taesd-onnx2'), '--size', '64').err, /a TAESD exports with batch, height and width free/);
  await lib.release();
});

it('convert → a diffusers folder and an SD single file that load back the same; info describes them', async () => {
  let r = cli('convert', '-m', path.join(FX, 'sd_tiny.ckpt'), '-o', t('vae'));
  assert.equal(r.code, 0, r.err);
  r = cli('convert', '-m', t('vae'), '-o', t('vae.safetensors'));
  assert.equal(r.code, 0, r.err);
  const a = AutoencoderKL.load(path.join(FX, 'diffusers_tiny'));
  const x = (await loadImage(IMG, { size: 32 })).reshape([1, 3, 32, 32]);
  const want = (await a.encode(x)).latents;
  for (const p of [t('vae'), t('vae.safetensors')]) {
    const b = AutoencoderKL.load(p);
    assert.ok(relErr((await b.encode(x)).latents.data as Float32Array, want.data as Float32Array) < 1e-6, p);
    await b.release();
  }
  await a.release();
  r = cli('info', '-m', t('vae'), '--json');
  assert.equal(r.code, 0, r.err);
  const info = JSON.parse(r.out);
  assert.equal(info.kind, 'kl');
  assert.equal(info.latent_channels, 4);
  assert.equal(info.scaling.scale, 0.18215);
});

it("export-onnx: plain onnxruntime runs SD's ONNX names — encoder sample → latent_sample (unscaled mode), decoder latent_sample → sample — at any batch, height and width, like PyTorch", async () => {
  const r = cli('export-onnx', '-m', path.join(FX, 'diffusers_tiny'), '-o', t('onnx'));
  assert.equal(r.code, 0, r.err);
  const enc = await ort.InferenceSession.create(t('onnx/encoder.onnx'));
  const dec = await ort.InferenceSession.create(t('onnx/decoder.onnx'));
  const meta = (s: ort.InferenceSession, io: 'inputMetadata' | 'outputMetadata') => (s[io][0] as { shape: readonly (number | string)[] }).shape;
  assert.deepEqual(meta(enc, 'inputMetadata'), ['batch', 3, 'height', 'width']);
  assert.deepEqual(meta(enc, 'outputMetadata'), ['batch', 4, 'height/2', 'width/2']);
  assert.deepEqual(meta(dec, 'outputMetadata'), ['batch', 3, 'height*2', 'width*2']);
  // the PyTorch reference's 16×12 image (test/fixtures/kl/io.safetensors): its posterior mode and reconstruction
  const io = readSafetensorsFile(path.join(FX, 'io.safetensors')).tensors;
  const x = io.get('x')!;
  const lat = (await enc.run({ sample: new ort.Tensor('float32', x.data as Float32Array, [...x.shape]) })).latent_sample!;
  assert.deepEqual(lat.dims, [1, 4, 8, 6]);
  assert.ok(relErr(lat.data as Float32Array, io.get('tiny.mean')!.data as Float32Array) < 1e-4);
  const rec = (await dec.run({ latent_sample: lat })).sample!;
  assert.ok(relErr(rec.data as Float32Array, io.get('tiny.rec')!.data as Float32Array) < 1e-4);
  // another batch and aspect: the same numbers as the library at that size
  const m = AutoencoderKL.load(path.join(FX, 'diffusers_tiny'));
  const img = (await loadImage(IMG, { size: 32 })).data as Float32Array;
  const x2 = HostTensor.float32([2, 3, 32, 16], Float32Array.from({ length: 2 * 3 * 32 * 16 }, (_, i) => img[(i * 7) % img.length]!));
  const e = await m.encode(x2);
  const lat2 = (await enc.run({ sample: new ort.Tensor('float32', x2.data as Float32Array, [2, 3, 32, 16]) })).latent_sample!;
  assert.ok(relErr(lat2.data as Float32Array, e.mean.data as Float32Array) < 1e-5);
  const rec2 = (await dec.run({ latent_sample: lat2 })).sample!;
  assert.deepEqual(rec2.dims, [2, 3, 32, 16]);
  assert.ok(relErr(rec2.data as Float32Array, (await m.decode(e.latents)).data as Float32Array) < 1e-5);
  assert.equal(JSON.parse(fs.readFileSync(t('onnx/vae.json'), 'utf8')).scaling_factor, 0.18215);
  // --size fixes batch and size; --float16: weights stored as float16 (the files shrink), computed in float32
  const r16 = cli('export-onnx', '-m', path.join(FX, 'diffusers_tiny'), '-o', t('onnx16'), '--size', '32', '--float16');
  assert.equal(r16.code, 0, r16.err);
  const dec16 = await ort.InferenceSession.create(t('onnx16/decoder.onnx'));
  assert.deepEqual(meta(dec16, 'inputMetadata'), [1, 4, 16, 16]);
  const lat1 = new ort.Tensor('float32', (lat2.data as Float32Array).slice(0, 4 * 16 * 8), [1, 4, 16, 8]);
  await assert.rejects(dec16.run({ latent_sample: lat1 }), /dimension|shape/i);
  assert.ok(fs.statSync(t('onnx16/decoder.onnx')).size < 0.8 * fs.statSync(t('onnx/decoder.onnx')).size); // a tiny model: graph structure is a third of the file
  const sq = e.latents.data.slice(0, 4 * 16 * 8);
  const latSq = new ort.Tensor('float32', Float32Array.from({ length: 4 * 16 * 16 }, (_, i) => sq[(i % 256 >> 4) * 8 + (i % 8) + ((i / 256) | 0) * 128]! / 0.18215), [1, 4, 16, 16]);
  const img16 = (await dec16.run({ latent_sample: latSq })).sample!;
  const img32 = (await dec.run({ latent_sample: latSq })).sample!;
  assert.ok(relErr(img16.data as Float32Array, img32.data as Float32Array) < 1e-2);
  assert.match(cli('export-onnx', '-m', path.join(FX, 'diffusers_tiny'), '-o', t('onnxb'), '--batch', '2').err, /--batch fixes the batch of a fixed-size export: give --size too/);
  await m.release();
});

it('train-ae trains a KL autoencoder from a KL preset; the run directory loads as a model', () => {
  const data = t('images');
  const src = path.dirname(IMG);
  fs.mkdirSync(data);
  fs.readdirSync(src).filter((f) => f.endsWith('.png')).slice(400, 440).forEach((f) => fs.copyFileSync(path.join(src, f), path.join(data, f)));
  let r = spawnSync(process.execPath, [path.join(root, 'bin/latentkit.js'), 'train-ae', '--config', 'tiny-kl', '--data', data, '--out', t('klrun'), '--max-steps', '6'], { encoding: 'utf8', env: { ...process.env, LATENTKIT_THREADS: '1', LATENTKIT_CACHE: t('cache') } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /training KL autoencoder: /);
  assert.match(r.stderr, /finished at step 6/);
  const info = cli('info', '-m', t('klrun'), '--json');
  assert.equal(info.code, 0, info.err);
  assert.equal(JSON.parse(info.out).kind, 'kl');
  r = spawnSync(process.execPath, [path.join(root, 'bin/latentkit.js'), 'reconstruct', '-m', t('klrun'), '-i', IMG, '-o', t('klrec.png')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /PSNR [\d.]+ dB/);
});

it('eval takes a KL autoencoder: PSNR and SSIM of the posterior mode decoded, as the library computes them; a TAESD is refused', async () => {
  const r = cli('eval', '-m', path.join(root, 'models/emoji-kl-f4'), '--limit', '6', '-b', '3');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { images: number; psnr: number; ssim: number; codebook_usage?: number };
  assert.equal(j.images, 6);
  assert.equal(j.codebook_usage, undefined);
  assert.ok(j.psnr > 24 && j.psnr < 45 && j.ssim > 0.8 && j.ssim <= 1, JSON.stringify(j));
  const bad = cli('eval', '-m', path.join(root, 'models/emoji-kl-f4/preview_decoder.safetensors'));
  assert.equal(bad.code, 1);
  assert.match(bad.err, /is a TAESD \(a decoder or encoder alone\): eval takes a VQGAN or a KL autoencoder/);
});
