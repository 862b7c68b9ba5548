// latentkit serve with Stable Diffusion's KL autoencoders and TAESD previews (issue 18): the
// small fixtures of test/fixtures/kl (a diffusers folder, an SD .ckpt with its YAML beside,
// a 16-channel FLUX-layout .safetensors) and a hash-weight TAESD. Over HTTP (fastify inject):
// encode → latents (safetensors or JSON) equal to the library's, decode of those latents →
// the library's PNG, reconstruct with X-PSNR; bad inputs get 4xx JSON naming the problem;
// the queue sheds latents requests before their bodies are parsed; `serve -m` loads them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { createServer } from '../../src/serve/server.ts';
import type { JobQueue } from '../../src/serve/queue.ts';
import { defaultModelName, loadServedModel, releaseServed, type ServedModel } from '../../src/serve/models.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl/load.ts';
import { TAESD } from '../../src/models/taesd/load.ts';
import { taesdShapes } from '../../src/models/taesd/taesd.ts';
import { hashStateDict } from '../../src/nn/hashinit.ts';
import { readSafetensors, writeSafetensors, writeSafetensorsFile } from '../../src/io/formats/safetensors.ts';
import { decodeImageBytes, encodePng } from '../../src/io/image.ts';
import { psnr } from '../../src/eval/metrics.ts';
import { HostTensor } from '../../src/tensor.ts';
import { relErr } from '../helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..', '..');
const FX = path.join(root, 'test', 'fixtures', 'kl');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-serve-kl-'));
let app: FastifyInstance;
let queue: JobQueue;
let models: ServedModel[];
const MAX_PIXELS = 256 * 256;
const MAX_BODY = 1024 * 1024;

/** A smooth test image [3, size, size] as PNG bytes. */
async function png(w = 32, h = w): Promise<Buffer> {
  const x = HostTensor.float32([3, h, w]);
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let i = 0; i < w; i++) x.data[(c * h + y) * w + i] = Math.sin(0.2 * i + 0.13 * y + c) * 0.8;
  return Buffer.from(await encodePng(x));
}
/** The image the server sees: the PNG decoded, as [1, 3, H, W]. */
async function asInput(b: Buffer): Promise<HostTensor<'float32'>> {
  const x = await decodeImageBytes(new Uint8Array(b));
  return x.reshape([1, ...x.shape]) as HostTensor<'float32'>;
}
const pngOf = async (img: HostTensor): Promise<Buffer> => Buffer.from(await encodePng(HostTensor.float32(img.shape.slice(1), img.data as Float32Array)));
const latentsOf = (body: Buffer) => readSafetensors(new Uint8Array(body), 'answer');
const st = (t: HostTensor, meta?: Record<string, string>) => Buffer.from(writeSafetensors(new Map([['latents', t]]), meta));
const post = (url: string, payload: Buffer | object | string, type = 'image/png', headers: Record<string, string> = {}) => app.inject({ method: 'POST', url, headers: { 'content-type': type, ...headers }, payload: payload as never });

before(async () => {
  // a TAESD with both parts (hash weights, the original per-part file names) and a decoder-only one
  for (const [dir, parts] of [['taesd', ['encoder', 'decoder']], ['dec-only', ['decoder']]] as const) {
    fs.mkdirSync(path.join(tmp, dir));
    for (const part of parts) writeSafetensorsFile(path.join(tmp, dir, `taesd_${part}.safetensors`), hashStateDict(taesdShapes(part, 4)));
  }
  models = [
    loadServedModel(path.join(FX, 'diffusers_tiny'), { threads: 1 }), // diffusers folder
    loadServedModel(path.join(FX, 'sd_tiny.ckpt'), { threads: 1 }), // SD .ckpt, sd_tiny.yaml beside
    loadServedModel(path.join(FX, 'flux16.safetensors'), { threads: 1 }), // 16 channels, no quant convs
    loadServedModel(path.join(tmp, 'taesd', 'taesd_decoder.safetensors'), { threads: 1 }), // the encoder beside it too
    loadServedModel(`preview=${path.join(tmp, 'dec-only')}`, { threads: 1 }),
    loadServedModel(path.join(root, 'models', 'emoji-f4'), { threads: 1 }), // a VQGAN beside them
  ];
  ({ app, queue } = await createServer({ models, queueDepth: 1, maxPixels: MAX_PIXELS, maxBodyBytes: MAX_BODY }));
});
after(async () => {
  await app.close();
  for (const m of models) await releaseServed(m);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('GET /api/models: KL models and TAESDs with their kind, latent channels, factor, scaling and endpoints; names from the files', async () => {
  const list = (await app.inject({ url: '/api/models' })).json().models as Record<string, unknown>[];
  assert.deepEqual(list.map((m) => [m.name, m.kind]), [['diffusers_tiny', 'kl'], ['sd_tiny', 'kl'], ['flux16', 'kl'], ['taesd', 'taesd'], ['preview', 'taesd'], ['emoji-f4', 'vqgan']]);
  const [diff, sd, flux, taesd, preview] = list;
  assert.deepEqual([diff!.latent_channels, diff!.downsampling_factor, diff!.scaling], [4, 2, { scale: 0.18215, shift: 0, source: "from the file's config" }]);
  assert.deepEqual(sd!.scaling, diff!.scaling); // from sd_tiny.yaml's scale_factor
  assert.deepEqual([flux!.latent_channels, flux!.quant_conv, (flux!.scaling as { scale: number }).scale, (flux!.scaling as { shift: number }).shift], [16, false, 0.3611, 0.1159]);
  assert.deepEqual(diff!.endpoints, ['reconstruct', 'encode', 'decode']);
  assert.deepEqual([taesd!.latent_channels, taesd!.downsampling_factor, taesd!.parts, taesd!.endpoints], [4, 8, ['encoder', 'decoder'], ['reconstruct', 'encode', 'decode']]);
  assert.deepEqual([preview!.parts, preview!.endpoints], [['decoder'], ['decode']]);
  assert.equal((await app.inject({ url: '/api/models/flux16' })).json().latent_channels, 16);
  // default names: a diffusers weights file by its folder, a diffusers vae/ folder by its parent, TAESD parts without the part
  assert.equal(defaultModelName(path.join(FX, 'diffusers_tiny', 'diffusion_pytorch_model.safetensors')), 'diffusers_tiny');
  assert.equal(defaultModelName('/models/stable-diffusion-v1-5/vae'), 'stable-diffusion-v1-5-vae');
  assert.equal(defaultModelName('/models/stable-diffusion-v1-5/vae/diffusion_pytorch_model.fp16.safetensors'), 'stable-diffusion-v1-5-vae');
  assert.equal(defaultModelName('taesdxl_decoder.pth'), 'taesdxl');
});

test("encode → decode over HTTP equals the library's encode and decode, for a diffusers folder, an SD .ckpt and a 16-channel model; JSON latents the same", async () => {
  const body = await png(32, 24);
  const x = await asInput(body);
  for (const [name, file, config] of [['diffusers_tiny', 'diffusers_tiny', undefined], ['sd_tiny', 'sd_tiny.ckpt', 'sd_tiny.yaml'], ['flux16', 'flux16.safetensors', 'flux16.yaml']] as const) {
    // an independent instance of the library, loaded here
    const lib = AutoencoderKL.load(path.join(FX, file), { config: config && path.join(FX, config), session: { threads: 1 } });
    try {
      const want = (await lib.encode(x)).latents;
      const e = await post(`/api/models/${name}/encode`, body);
      assert.equal(e.statusCode, 200, e.body);
      assert.equal(e.headers['content-type'], 'application/octet-stream');
      assert.equal(e.headers['x-latent-shape'], `1x${lib.latentChannels}x12x16`);
      const got = latentsOf(e.rawPayload);
      const z = got.tensors.get('latents')!;
      assert.deepEqual([...z.shape], [1, lib.latentChannels, 12, 16]);
      assert.deepEqual(z.data, want.data, `${name}: latents over HTTP = the library's`);
      assert.equal(got.metadata.format, 'latentkit-latents');
      assert.deepEqual([got.metadata.model, got.metadata.scale, got.metadata.shift, got.metadata.posterior, got.metadata.image_size], [name, String(lib.scaling.scale), String(lib.scaling.shift), 'mode', '[24,32]']);
      // JSON latents: the same numbers (float32 → JSON → float32 is exact)
      const j = (await post(`/api/models/${name}/encode?format=json`, body)).json();
      assert.deepEqual(j.shape, [1, lib.latentChannels, 12, 16]);
      assert.deepEqual(Float32Array.from(j.data as number[]), want.data);
      assert.deepEqual((await post(`/api/models/${name}/encode`, body, 'image/png', { accept: 'application/json' })).json().data, j.data);
      // decode: the safetensors answer as the body (as `latentkit encode` writes it) → the library's PNG
      const wantPng = await pngOf(await lib.decode(want));
      const d = await post(`/api/models/${name}/decode`, e.rawPayload, 'application/octet-stream');
      assert.equal(d.statusCode, 200, d.body);
      assert.equal(d.headers['content-type'], 'image/png');
      assert.equal(d.headers['x-image-size'], '32x24');
      assert.ok(d.rawPayload.equals(wantPng), `${name}: decoded PNG = the library's`);
      // … and the JSON answer of encode posted back as JSON
      const dj = await post(`/api/models/${name}/decode`, { shape: j.shape, data: j.data }, 'application/json');
      assert.equal(dj.statusCode, 200, dj.body);
      assert.ok(dj.rawPayload.equals(wantPng), `${name}: decode of JSON latents`);
      // reconstruct: the library's image, and its PSNR in X-PSNR
      const r = await post(`/api/models/${name}/reconstruct`, body);
      assert.equal(r.statusCode, 200, r.body);
      const rec = (await lib.reconstruct(x)).image;
      assert.ok(r.rawPayload.equals(await pngOf(rec)), `${name}: reconstruction`);
      assert.equal(r.headers['x-psnr'], psnr(x, rec)[0]!.toFixed(3));
      assert.equal(r.headers['x-latent-shape'], `1x${lib.latentChannels}x12x16`);
      const rj = (await post(`/api/models/${name}/reconstruct?format=json`, body)).json();
      assert.ok(Math.abs(rj.psnr - psnr(x, rec)[0]!) < 1e-9);
      assert.match(rj.image, /^data:image\/png;base64,/);
    } finally {
      await lib.release();
    }
  }
});

test('posterior samples (?sample=1&seed=) and tiles (?tile=N, automatic above 96² latents) as the library draws and tiles them', async () => {
  const body = await png(32);
  const x = await asInput(body);
  const m = models[0]!;
  assert.equal(m.kind, 'kl');
  const kl = (m as Extract<ServedModel, { kind: 'kl' }>).kl;
  const z = async (url: string, b = body) => {
    const r = await post(url, b);
    assert.equal(r.statusCode, 200, r.body);
    return latentsOf(r.rawPayload);
  };
  const s3 = await z('/api/models/diffusers_tiny/encode?sample=1&seed=3');
  assert.deepEqual(s3.tensors.get('latents')!.data, (await kl.encode(x, { sample: true, seed: 3 })).latents.data);
  assert.equal(s3.metadata.posterior, 'sample (seed 3)');
  assert.deepEqual((await z('/api/models/diffusers_tiny/encode?sample=true&seed=3')).tensors.get('latents')!.data, s3.tensors.get('latents')!.data, 'same seed, same draw');
  const mode = (await kl.encode(x)).latents;
  assert.notDeepEqual((await z('/api/models/diffusers_tiny/encode?sample=1&seed=4')).tensors.get('latents')!.data, s3.tensors.get('latents')!.data);
  // ?tile=5 (odd, not dividing 16): the tiled encoder with whole-image statistics = untiled
  const tiled = await post('/api/models/diffusers_tiny/encode?tile=5', body);
  assert.equal(tiled.statusCode, 200, tiled.body);
  assert.equal(tiled.headers['x-tile'], '5');
  const tz = latentsOf(tiled.rawPayload).tensors.get('latents')!;
  assert.ok(relErr(tz.data as Float32Array, mode.data) < 1e-4, `tiled encode: ${relErr(tz.data as Float32Array, mode.data)}`);
  const td = await post('/api/models/diffusers_tiny/decode?tile=4', st(mode), 'application/octet-stream');
  assert.equal(td.headers['x-tile'], '4');
  const a = await decodeImageBytes(new Uint8Array(td.rawPayload));
  const b = await decodeImageBytes(await pngOf(await kl.decode(mode)));
  let worst = 0;
  for (let i = 0; i < a.size; i++) worst = Math.max(worst, Math.abs(a.data[i]! - b.data[i]!));
  assert.ok(worst <= 2 / 255 + 1e-6, `tiled decode vs untiled: max |Δ| ${worst}`);
  // automatic: 200×200 pixels = 100×100 latents > 96² → tiles of 64; ?tile=0 turns it off
  const big = await png(200);
  const auto = await post('/api/models/diffusers_tiny/encode', big);
  assert.equal(auto.statusCode, 200, auto.body);
  assert.equal(auto.headers['x-tile'], '64');
  const whole = await post('/api/models/diffusers_tiny/encode?tile=0', big);
  assert.equal(whole.headers['x-tile'], undefined);
  assert.ok(relErr(latentsOf(auto.rawPayload).tensors.get('latents')!.data as Float32Array, latentsOf(whole.rawPayload).tensors.get('latents')!.data as Float32Array) < 1e-4);
});

test("TAESD: decodes a KL model's latents as the library does (a batch as JSON images), encodes, reconstructs; a decoder-only TAESD only decodes", async () => {
  const t = (models[3] as Extract<ServedModel, { kind: 'taesd' }>).taesd;
  const lib = TAESD.load(path.join(tmp, 'taesd'), { session: { threads: 1 } });
  try {
    // the latents diffusers_tiny encodes (4 channels, scaled) decode with TAESD at its f=8
    const e = await post('/api/models/diffusers_tiny/encode', await png(16));
    const z = latentsOf(e.rawPayload).tensors.get('latents')!;
    for (const name of ['taesd', 'preview']) {
      const d = await post(`/api/models/${name}/decode`, e.rawPayload, 'application/octet-stream');
      assert.equal(d.statusCode, 200, d.body);
      assert.equal(d.headers['x-image-size'], '64x64');
      assert.ok(d.rawPayload.equals(await pngOf(await lib.decode(z))), name);
    }
    // a batch of two ([2, 4, 8, 8]) as JSON: one data URL each
    const two = HostTensor.float32([2, 4, 8, 8], Float32Array.from({ length: 512 }, (_, i) => Math.sin(i)));
    const bj = await post('/api/models/taesd/decode?format=json', st(two), 'application/octet-stream');
    assert.equal(bj.statusCode, 200, bj.body);
    const images = bj.json().images as string[];
    assert.equal(images.length, 2);
    const second = await lib.decode(HostTensor.float32([1, 4, 8, 8], two.data.slice(256)));
    assert.equal(images[1], `data:image/png;base64,${(await pngOf(second)).toString('base64')}`);
    const body = await png(32);
    const enc = await post('/api/models/taesd/encode', body);
    assert.equal(enc.statusCode, 200, enc.body);
    const tz = latentsOf(enc.rawPayload);
    assert.deepEqual(tz.tensors.get('latents')!.data, (await t.encode(await asInput(body))).data);
    assert.equal(tz.metadata.posterior, 'taesd');
    const r = await post('/api/models/taesd/reconstruct', body);
    assert.equal(r.statusCode, 200, r.body);
    assert.ok(Number(r.headers['x-psnr']) > 0);
    const no = await post('/api/models/preview/encode', body);
    assert.equal(no.statusCode, 400);
    assert.match(no.json().error, /TAESD 'preview' has no encoder .* it offers decode/);
  } finally {
    await lib.release();
  }
});

test('bad requests get 4xx JSON errors naming the problem, and the server keeps serving', async () => {
  const good = await png(16);
  const z4 = HostTensor.float32([1, 4, 8, 8], Float32Array.from({ length: 256 }, (_, i) => Math.cos(i)));
  const nan = HostTensor.float32([1, 4, 2, 2], Float32Array.from({ length: 16 }, (_, i) => (i === 5 ? NaN : 0)));
  const valid = st(z4);
  const O = 'application/octet-stream';
  const J = 'application/json';
  const cases: { what: string; url: string; type?: string; payload?: Buffer | string | object; status: number; match: RegExp }[] = [
    { what: 'wrong latent channel count', url: '/api/models/flux16/decode', type: O, payload: valid, status: 422, match: /latents have 4 channels, but model 'flux16' has a latent space of 16 \(latents \[1, 4, 8, 8\]\)/ },
    { what: 'wrong channel count for a TAESD', url: '/api/models/taesd/decode', type: J, payload: { shape: [1, 16, 2, 2], data: new Array(64).fill(0) }, status: 422, match: /16 channels, but model 'taesd' decodes 4/ },
    { what: 'latents that decode over the pixel limit', url: '/api/models/diffusers_tiny/decode', type: O, payload: st(HostTensor.float32([1, 4, 200, 160])), status: 413, match: /latents \[1, 4, 200, 160\] decode to 320×400 pixels \(0\.1 M\), over the limit of 0\.1 M pixels/ },
    { what: 'a batch over the pixel limit', url: '/api/models/taesd/decode?format=json', type: O, payload: st(HostTensor.float32([5, 4, 16, 16])), status: 413, match: /decode to 5 images of 128×128 pixels/ },
    { what: 'not safetensors', url: '/api/models/diffusers_tiny/decode', type: O, payload: Buffer.from('hello, these are not latents'), status: 400, match: /body is not a valid safetensors file: header length \d+ (is implausibly large|runs past)/ },
    { what: 'a PNG as octet-stream', url: '/api/models/diffusers_tiny/decode', type: O, payload: good, status: 400, match: /body is a PNG image, not safetensors latents \(decode takes latents; POST images to \/encode or \/reconstruct\)/ },
    { what: 'a PNG as image/png to decode', url: '/api/models/diffusers_tiny/decode', type: 'image/png', payload: good, status: 415, match: /decode takes latents: a safetensors file as application\/octet-stream, or JSON .*got content type 'image\/png' \(POST images to/ },
    { what: 'truncated safetensors', url: '/api/models/diffusers_tiny/decode', type: O, payload: valid.subarray(0, valid.length - 100), status: 400, match: /not a valid safetensors file: .*(out of range|data section)/ },
    { what: 'no latents tensor', url: '/api/models/diffusers_tiny/decode', type: O, payload: Buffer.from(writeSafetensors(new Map([['a', z4], ['b', z4]]))), status: 400, match: /no 'latents' tensor \(has a, b\)/ },
    { what: 'integer latents', url: '/api/models/diffusers_tiny/decode', type: O, payload: Buffer.from(writeSafetensors(new Map([['latents', HostTensor.int64([1, 4, 2, 2])]]))), status: 400, match: /floating point .* got int64/ },
    { what: 'NaN in the latents', url: '/api/models/diffusers_tiny/decode', type: O, payload: st(nan), status: 400, match: /latents hold NaN at index 5/ },
    { what: 'latents of rank 2', url: '/api/models/diffusers_tiny/decode', type: J, payload: { shape: [4, 4], data: new Array(16).fill(0) }, status: 400, match: /must be \[B, C, h, w\] \(or \[C, h, w\]\), got \[4, 4\]/ },
    { what: 'JSON data of the wrong length', url: '/api/models/diffusers_tiny/decode', type: J, payload: { shape: [1, 4, 2, 2], data: [1, 2, 3] }, status: 400, match: /'data' has 3 numbers; shape \[1, 4, 2, 2\] needs 16/ },
    { what: 'JSON data not numbers', url: '/api/models/diffusers_tiny/decode', type: J, payload: { shape: [1, 4, 1, 1], data: [1, 'x', 3, 4] }, status: 400, match: /data\[1\] = "x" is not a number/ },
    { what: 'JSON without shape', url: '/api/models/diffusers_tiny/decode', type: J, payload: { data: [1] }, status: 400, match: /'shape' must be \[B, C, h, w\]/ },
    { what: 'a batch as PNG', url: '/api/models/diffusers_tiny/decode', type: O, payload: st(HostTensor.float32([2, 4, 2, 2])), status: 422, match: /batch of 2; a PNG answer is one image: .*format=json/ },
    { what: 'empty latents body', url: '/api/models/diffusers_tiny/decode', type: O, payload: Buffer.alloc(0), status: 400, match: /empty body/ },
    { what: 'body over the size limit', url: '/api/models/diffusers_tiny/decode', type: O, payload: Buffer.alloc(MAX_BODY + 1), status: 413, match: /larger than the limit of 1048576 bytes/ },
    { what: 'image not a multiple of f', url: '/api/models/diffusers_tiny/encode', type: 'image/png', payload: await png(15), status: 422, match: /15×15, not a multiple of the model's downsampling factor 2; pass \?size=N/ },
    { what: 'image over the pixel limit', url: '/api/models/diffusers_tiny/reconstruct', type: 'image/png', payload: await png(300), status: 413, match: /300×300 .* limit/ },
    { what: 'latents as the encode body', url: '/api/models/diffusers_tiny/encode', type: O, payload: valid, status: 415, match: /expected an image body/ },
    { what: 'seed without sample', url: '/api/models/diffusers_tiny/encode?seed=3', type: 'image/png', payload: good, status: 400, match: /'seed' goes with sample=1/ },
    { what: 'bad sample flag', url: '/api/models/diffusers_tiny/encode?sample=maybe', type: 'image/png', payload: good, status: 400, match: /'sample' must be 1\/true or 0\/false, got "maybe"/ },
    { what: 'sample with a TAESD', url: '/api/models/taesd/encode?sample=1', type: 'image/png', payload: good, status: 400, match: /draws from a KL posterior; the TAESD 'taesd' encodes deterministically/ },
    { what: 'tile with a TAESD', url: '/api/models/taesd/decode?tile=8', type: O, payload: valid, status: 400, match: /'tile' is for KL models/ },
    { what: 'negative tile', url: '/api/models/diffusers_tiny/decode?tile=-1', type: O, payload: valid, status: 400, match: /'tile' must be ≥ 0, got -1/ },
    { what: 'unknown format', url: '/api/models/diffusers_tiny/encode?format=npy', type: 'image/png', payload: good, status: 400, match: /'format' must be safetensors or json, got "npy"/ },
    { what: 'sampling from a KL model', url: '/api/models/sd_tiny/sample', type: J, payload: {}, status: 400, match: /model 'sd_tiny' is a kl; this endpoint needs a transformer \(it offers reconstruct, encode, decode\)/ },
    { what: 'unknown model', url: '/api/models/nope/decode', type: O, payload: valid, status: 404, match: /unknown model 'nope'/ },
  ];
  for (const c of cases) {
    const r = await post(c.url, c.payload ?? '', c.type);
    assert.equal(r.statusCode, c.status, `${c.what}: ${r.body}`);
    assert.match(r.json().error as string, c.match, c.what);
  }
  for (const url of ['/api/models/sd_tiny/codebook', '/api/models/sd_tiny/usage', '/api/models/taesd/onnx']) {
    const r = await app.inject({ url });
    assert.equal(r.statusCode, 400, url);
    assert.match(r.json().error, /is a (KL autoencoder|TAESD): /, url);
  }
  // still serving, the VQGAN's routes beside them too
  assert.equal((await post('/api/models/diffusers_tiny/decode', valid, O)).statusCode, 200);
  const vq = await post('/api/models/emoji-f4/encode', good);
  assert.equal(vq.statusCode, 200, vq.body);
  assert.deepEqual(vq.json().shape, [4, 4]);
});

test('overload: a full queue sheds latents requests with 503 + Retry-After before their bodies are read (a malformed body is not even parsed); then they are served', async () => {
  // hold the one slot and the one waiting place
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const holders = [queue.run(() => gate), queue.run(() => gate)];
  await new Promise((r) => setImmediate(r));
  try {
    for (const [url, type, payload] of [
      ['/api/models/diffusers_tiny/decode', 'application/json', '{"shape": [1, 4, 2, 2], "data": [not json'],
      ['/api/models/diffusers_tiny/decode', 'application/octet-stream', 'garbage'],
      ['/api/models/taesd/encode', 'image/png', 'not a png'],
      ['/api/models/flux16/reconstruct', 'image/png', await png(16)],
    ] as const) {
      const r = await post(url, payload, type);
      assert.equal(r.statusCode, 503, `${url}: ${r.body}`);
      assert.ok(Number(r.headers['retry-after']) >= 1);
      assert.match(r.json().error, /server busy/);
    }
  } finally {
    release();
    await Promise.all(holders);
  }
  // the same malformed bodies, admitted now, get their 400s
  const r = await post('/api/models/diffusers_tiny/decode', '{"shape": [1, 4, 2, 2], "data": [not json', 'application/json');
  assert.equal(r.statusCode, 400);
  assert.equal((await post('/api/models/diffusers_tiny/decode', 'garbage', 'application/octet-stream')).statusCode, 400);
  // concurrent requests: one runs, one waits, the rest are shed; every answer is a 200 or a 503
  const body = await png(32);
  const rs = await Promise.all(Array.from({ length: 6 }, () => post('/api/models/diffusers_tiny/reconstruct', body)));
  const codes = rs.map((x) => x.statusCode);
  assert.ok(codes.every((c) => c === 200 || c === 503), codes.join());
  assert.ok(codes.filter((c) => c === 200).length >= 2, codes.join());
});

test('latentkit serve -m with an SD .ckpt and a diffusers folder: listed, and encode → decode over a socket', { timeout: 120_000 }, async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'serve', '-m', path.join(FX, 'sd_tiny.ckpt'), '-m', `vae=${path.join(FX, 'diffusers_tiny')}`, '--port', '0', '-t', '1', '--no-web'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(err);
        if (m) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
    });
    assert.match(err, /model sd_tiny \(kl\) from .*sd_tiny\.ckpt/);
    assert.match(err, /model vae \(kl\) from /);
    const list = (await (await fetch(`${url}/api/models`)).json()) as { models: { name: string; kind: string }[] };
    assert.deepEqual(list.models.map((m) => `${m.name}:${m.kind}`), ['sd_tiny:kl', 'vae:kl']);
    const e = await fetch(`${url}/api/models/sd_tiny/encode`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(await png(16)) });
    assert.equal(e.status, 200);
    const latents = Buffer.from(await e.arrayBuffer());
    const d = await fetch(`${url}/api/models/vae/decode`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(latents) });
    assert.equal(d.status, 200, await d.clone().text());
    assert.equal(d.headers.get('content-type'), 'image/png');
    assert.deepEqual([...(await decodeImageBytes(new Uint8Array(await d.arrayBuffer()))).shape], [3, 16, 16]);
  } finally {
    child.kill('SIGTERM');
  }
});
