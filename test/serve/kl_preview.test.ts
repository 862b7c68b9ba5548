// A KL model with its preview decoder beside it (preview_decoder.safetensors, what
// `latentkit distill-preview` trains), as the page's Latent view uses it: listed with the
// model, decode?preview=1 runs it, and /api/models/<name>/onnx exports encoder, decoder and
// preview with free sizes, which StandaloneKL runs on onnxruntime-node and on WASM with the
// server's numbers. A preview that does not fit the VAE is refused at load, naming both.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import type { FastifyInstance } from 'fastify';
import { createServer } from '../../src/serve/server.ts';
import { loadServedModel, releaseServed, type ServedModel } from '../../src/serve/models.ts';
import { PREVIEW_FILE } from '../../src/serve/kl.ts';
import { initPreviewDecoder } from '../../src/train/distill_preview.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl/load.ts';
import { TAESD } from '../../src/models/taesd/load.ts';
import { StandaloneKL } from '../../src/runtime/standalone.ts';
import type { KLOnnxManifest } from '../../src/models/onnx_manifest.ts';
import { writeSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { decodeImageBytes, encodePng } from '../../src/io/image.ts';
import { HostTensor } from '../../src/tensor.ts';
import { relErr } from '../helpers.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FX = path.join(root, 'test', 'fixtures', 'kl');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-serve-preview-'));
const VAE = path.join(tmp, 'vae');
let app: FastifyInstance;
let models: ServedModel[];

before(async () => {
  fs.cpSync(path.join(FX, 'diffusers_tiny'), VAE, { recursive: true });
  // an f2 VAE's preview: a TAESD decoder with one 2× stage (random weights: only the plumbing is tested)
  writeSafetensorsFile(path.join(VAE, PREVIEW_FILE), initPreviewDecoder(4, 1, 7));
  models = [loadServedModel(`vae=${VAE}`, { threads: 1 }), loadServedModel(path.join(FX, 'sd_tiny.ckpt'), { threads: 1 })];
  ({ app } = await createServer({ models }));
});
after(async () => {
  await app.close();
  for (const m of models) await releaseServed(m);
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function png(w: number, h: number): Promise<Buffer> {
  const x = HostTensor.float32([3, h, w]);
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let i = 0; i < w; i++) x.data[(c * h + y) * w + i] = Math.cos(0.3 * i - 0.17 * y + c) * 0.7;
  return Buffer.from(await encodePng(x));
}
const post = (url: string, payload: Buffer | object, type: string) => app.inject({ method: 'POST', url, headers: { 'content-type': type }, payload: payload as never });

test('the preview is listed with its model; decode?preview=1 runs it, as the library TAESD decodes; a model without one says how to get one', async () => {
  const info = (await app.inject({ url: '/api/models/vae' })).json();
  assert.equal(info.preview.factor, 2);
  assert.ok(info.preview.parameters > 1000);
  assert.equal((await app.inject({ url: '/api/models/sd_tiny' })).json().preview, undefined);
  const e = await post('/api/models/vae/encode?format=json', await png(16, 16), 'image/png');
  assert.equal(e.statusCode, 200, e.body);
  const lat = e.json() as { shape: number[]; data: number[] };
  const z = HostTensor.float32(lat.shape, Float32Array.from(lat.data));
  const pv = await post('/api/models/vae/decode?preview=1', lat, 'application/json');
  assert.equal(pv.statusCode, 200, pv.body);
  assert.equal(pv.headers['x-decoder'], 'preview');
  const lib = TAESD.load(path.join(VAE, PREVIEW_FILE), { session: { threads: 1 } });
  const want = await lib.decode(z);
  assert.ok(pv.rawPayload.equals(Buffer.from(await encodePng(HostTensor.float32(want.shape.slice(1), want.data)))));
  const full = await post('/api/models/vae/decode', lat, 'application/json');
  assert.ok(!full.rawPayload.equals(pv.rawPayload)); // the full decoder, not the preview
  const none = await post('/api/models/sd_tiny/decode?preview=1', lat, 'application/json');
  assert.equal(none.statusCode, 400);
  assert.match(none.json().error, /model 'sd_tiny' has no preview decoder: train one with `latentkit distill-preview .*preview_decoder\.safetensors/);
  await lib.release();
});

for (const [name, ort] of [['onnxruntime-node', ortNode], ['wasm', ortWeb]] as const) {
  test(`/api/models/<kl>/onnx: encoder, decoder and preview with free sizes; StandaloneKL on ${name} gives the server's latents and images`, async () => {
    if (name === 'wasm') ortWeb.env.wasm.numThreads = 1;
    const manifest = (await app.inject({ url: '/api/models/vae/onnx' })).json() as KLOnnxManifest & { bytes: Record<string, number> };
    assert.deepEqual(manifest.files, { encoder: 'encoder.onnx', decoder: 'decoder.onnx', preview: 'preview_decoder.onnx' });
    assert.ok(manifest.dynamic_axes);
    const read = async (f: string) => new Uint8Array((await app.inject({ url: `/api/models/vae/onnx/${f}` })).rawPayload);
    const m = await StandaloneKL.load(ort as never, manifest, read, { executionProviders: [name === 'wasm' ? 'wasm' : 'cpu'] });
    assert.ok(m.hasPreview);
    // a 24×16 image (not square, not the config's resolution)
    const body = await png(24, 16);
    const x = await decodeImageBytes(new Uint8Array(body));
    const { latents, shape } = await m.encode(x.data as Float32Array, 16, 24);
    assert.deepEqual(shape, [4, 8, 12]);
    const served = (await post('/api/models/vae/encode?format=json', body, 'image/png')).json() as { data: number[] };
    assert.ok(relErr(latents, Float32Array.from(served.data)) < 1e-5);
    const kl = AutoencoderKL.load(VAE, { session: { threads: 1 } });
    const z = HostTensor.float32([1, ...shape], latents);
    assert.ok(relErr(await m.decode(latents, shape), (await kl.decode(z)).data as Float32Array) < 1e-5);
    const t = TAESD.load(path.join(VAE, PREVIEW_FILE), { session: { threads: 1 } });
    assert.ok(relErr(await m.preview(latents, shape), (await t.decode(z)).data as Float32Array) < 1e-5);
    await Promise.all([m.release(), kl.release(), t.release()]);
  });
}

test('a preview decoder that does not fit the VAE is refused at load, naming both', () => {
  const bad = path.join(tmp, 'bad');
  fs.cpSync(path.join(FX, 'diffusers_tiny'), bad, { recursive: true });
  writeSafetensorsFile(path.join(bad, PREVIEW_FILE), initPreviewDecoder(4, 3, 7)); // factor 8 for an f2 VAE
  assert.throws(() => loadServedModel(bad), /preview_decoder\.safetensors: a preview decoder for 'bad' must decode its 4-channel latents at factor 2; this one reads 4 channels at factor 8/);
});
