// latentkit serve: the API on the bundled emoji models (fastify inject, no sockets), its
// answers to bad requests, backpressure (503 + Retry-After), and graceful SIGTERM (a real
// process over loopback).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from '../../src/serve/server.ts';
import { loadServedModel, releaseServed, type ServedModel } from '../../src/serve/models.ts';
import { decodeImageBytes, encodePng } from '../../src/io/image.ts';
import { crc32 } from '../../src/io/formats/zip.ts';
import { HostTensor } from '../../src/tensor.ts';
import type { FastifyInstance } from 'fastify';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..', '..');
let app: FastifyInstance;
let models: ServedModel[];

async function png(size = 64): Promise<Buffer> {
  const x = HostTensor.float32([3, size, size]);
  for (let i = 0; i < x.size; i++) x.data[i] = Math.sin(i * 0.05) * 0.9;
  return Buffer.from(await encodePng(x));
}

/** A PNG whose (valid, CRC-checked) IHDR claims w×h: only the header is real. */
function hugePngHeader(w: number, h: number): Buffer {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const data = Buffer.alloc(13);
  data.writeUInt32BE(w, 0);
  data.writeUInt32BE(h, 4);
  data.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const typed = Buffer.concat([Buffer.from('IHDR'), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(13);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed) >>> 0);
  return Buffer.concat([sig, len, typed, crc, Buffer.alloc(64)]);
}

before(async () => {
  models = ['emoji-f4', 'emoji-class', 'emoji-sketch'].map((d) => loadServedModel(path.join(root, 'models', d), { threads: 1 }));
  ({ app } = await createServer({ models, queueDepth: 2 }));
});
after(async () => {
  await app.close();
  for (const m of models) await releaseServed(m);
});

test('health and model list', async () => {
  const h = await app.inject({ method: 'GET', url: '/api/health' });
  assert.equal(h.statusCode, 200);
  assert.deepEqual(h.json().models, ['emoji-f4', 'emoji-class', 'emoji-sketch']);
  const list = (await app.inject({ method: 'GET', url: '/api/models' })).json().models as { name: string; kind: string; classes?: string[] }[];
  assert.deepEqual(list.map((m) => m.kind), ['vqgan', 'transformer', 'transformer']);
  const info = (await app.inject({ method: 'GET', url: '/api/models/emoji-f4' })).json();
  assert.equal(info.downsampling_factor, 4);
  assert.ok(list[1]!.classes!.length > 1);
});

test('reconstruct: PNG in → PNG out (same size, with the code shape), and JSON with the code grid equal to encode', async () => {
  const body = await png();
  const r = await app.inject({ method: 'POST', url: '/api/models/emoji-f4/reconstruct', headers: { 'content-type': 'image/png' }, payload: body });
  assert.equal(r.statusCode, 200, r.body);
  assert.equal(r.headers['content-type'], 'image/png');
  assert.equal(r.headers['x-code-shape'], '16x16');
  const img = await decodeImageBytes(new Uint8Array(r.rawPayload));
  assert.deepEqual([...img.shape], [3, 64, 64]);
  const j = (await app.inject({ method: 'POST', url: '/api/models/emoji-f4/reconstruct?format=json', headers: { 'content-type': 'image/png' }, payload: body })).json();
  assert.deepEqual(j.shape, [16, 16]);
  assert.match(j.image, /^data:image\/png;base64,/);
  const e = (await app.inject({ method: 'POST', url: '/api/models/emoji-f4/encode', headers: { 'content-type': 'image/png' }, payload: body })).json();
  assert.deepEqual(e.indices, j.indices);
  // decode of those codes = the reconstruction
  const d = await app.inject({ method: 'POST', url: '/api/models/emoji-f4/decode', payload: { indices: e.indices, shape: e.shape } });
  assert.equal(d.statusCode, 200, d.body);
  const dimg = await decodeImageBytes(new Uint8Array(d.rawPayload));
  // (the reconstruction decodes z + (z_q − z), not bit-equal to the codebook rows: ≤ 1 level of 255)
  let maxDiff = 0;
  for (let i = 0; i < img.size; i++) maxDiff = Math.max(maxDiff, Math.abs(dimg.data[i]! - img.data[i]!));
  assert.ok(maxDiff <= 2 / 255 + 1e-6, `decode vs reconstruct: max |Δ| ${maxDiff}`);
  // ?size= resizes a photo-sized input
  const big = await app.inject({ method: 'POST', url: '/api/models/emoji-f4/encode?size=32', headers: { 'content-type': 'image/png' }, payload: await png(90) });
  assert.deepEqual(big.json().shape, [8, 8]);
});

test('sample: by class (a grid PNG) and from a sketch (JSON images); same seed, same samples', async () => {
  const a = await app.inject({ method: 'POST', url: '/api/models/emoji-class/sample', payload: { class: 0, n: 2, seed: 3, top_k: 50 } });
  assert.equal(a.statusCode, 200, a.body);
  assert.equal(a.headers['content-type'], 'image/png');
  const b = await app.inject({ method: 'POST', url: '/api/models/emoji-class/sample?class=0&n=2&seed=3&top_k=50' });
  assert.deepEqual(b.rawPayload, a.rawPayload);
  const drawing = HostTensor.float32([3, 128, 128]).data.fill(1);
  for (let i = 20; i < 108; i++) for (const c of [0, 1, 2]) drawing[c * 128 * 128 + i * 128 + 64] = -1; // a vertical stroke
  const s = await app.inject({ method: 'POST', url: '/api/models/emoji-sketch/sample?n=1&format=json', headers: { 'content-type': 'image/png' }, payload: Buffer.from(await encodePng(HostTensor.float32([3, 128, 128], drawing))) });
  assert.equal(s.statusCode, 200, s.body);
  assert.equal(s.json().images.length, 1);
});

test('bad requests get 4xx JSON errors naming the problem, and the server keeps serving', async () => {
  const good = await png();
  const cases: { what: string; url: string; type?: string; payload?: Buffer | string | object; status: number; match: RegExp }[] = [
    { what: 'truncated PNG', url: '/api/models/emoji-f4/reconstruct', type: 'image/png', payload: good.subarray(0, 60), status: 400, match: /cannot decode|image/ },
    { what: '20000×20000 header', url: '/api/models/emoji-f4/reconstruct', type: 'image/png', payload: hugePngHeader(20000, 20000), status: 413, match: /20000×20000.*limit/ },
    { what: 'wrong content type', url: '/api/models/emoji-f4/reconstruct', type: 'text/plain', payload: 'hello', status: 415, match: /content type/ },
    { what: 'unknown model', url: '/api/models/nope/reconstruct', type: 'image/png', payload: good, status: 404, match: /unknown model 'nope'/ },
    { what: 'unknown class', url: '/api/models/emoji-class/sample', payload: { class: 'no-such-class' }, status: 400, match: /unknown class 'no-such-class'/ },
    { what: 'empty body', url: '/api/models/emoji-f4/reconstruct', type: 'image/png', payload: Buffer.alloc(0), status: 400, match: /empty body/ },
    { what: 'not a multiple of f', url: '/api/models/emoji-f4/reconstruct', type: 'image/png', payload: await png(66), status: 422, match: /multiple of .* factor 4.*size=/ },
    { what: 'wrong endpoint for the kind', url: '/api/models/emoji-class/reconstruct', type: 'image/png', payload: good, status: 400, match: /is a transformer/ },
    { what: 'code out of range', url: '/api/models/emoji-f4/decode', payload: { indices: [0, 1, 2, 99999], shape: [2, 2] }, status: 400, match: /indices\[3\]/ },
    { what: 'bad n', url: '/api/models/emoji-class/sample?class=0&n=1000', status: 400, match: /'n' must be ≤ 16/ },
    { what: 'unknown route', url: '/api/nothing', status: 404, match: /no route/ },
  ];
  for (const c of cases) {
    const r = await app.inject({ method: c.what === 'unknown route' ? 'GET' : 'POST', url: c.url, headers: c.type ? { 'content-type': c.type } : {}, payload: c.payload as never });
    assert.equal(r.statusCode, c.status, `${c.what}: ${r.body}`);
    const err = r.json().error as string;
    assert.match(err, c.match, c.what);
  }
  const ok = await app.inject({ method: 'POST', url: '/api/models/emoji-f4/encode', headers: { 'content-type': 'image/png' }, payload: good });
  assert.equal(ok.statusCode, 200);
});

test('training for the page: the tiny preset as ONNX (rescaled to ?steps) and emoji to train on; bad parameters are 400s', async () => {
  const m = (await app.inject({ url: '/api/train/onnx?steps=100' })).json();
  assert.equal(m.format, 'latentkit-vqgan-train-onnx');
  assert.equal(m.preset, 'tiny');
  assert.equal(m.max_steps, 100);
  assert.equal(m.disc_start, 75); // the preset's 45 of 60 steps, stretched as --max-steps does
  assert.deepEqual(Object.keys(m.programs), ['warmup', 'gan']);
  const f = await app.inject({ url: '/api/train/onnx/warmup.onnx?steps=100' });
  assert.equal(f.statusCode, 200);
  assert.equal(f.rawPayload.length, m.bytes['warmup.onnx']);
  const d = await app.inject({ url: '/api/train/data?n=5&size=32&split=val' });
  assert.equal(d.statusCode, 200);
  assert.equal(d.headers['x-shape'], '5x3x32x32');
  assert.equal(d.rawPayload.length, 5 * 3 * 32 * 32);
  assert.deepEqual((await app.inject({ url: '/api/train/data?n=5&size=32&split=val' })).rawPayload, d.rawPayload, 'same pick for the same seed');
  for (const [url, why] of [
    ['/api/train/onnx?steps=3', /'steps' must be ≥ 10, got 3/],
    ['/api/train/onnx?steps=1.5', /'steps' must be an integer, got "1.5"/],
    ['/api/train/onnx/nope.onnx', /no file 'nope.onnx'/],
    ['/api/train/data?split=test', /'split' must be train or val/],
    ['/api/train/data?n=0', /'n' must be ≥ 1, got 0/],
    ['/api/train/data?n=4096', /'n' must be ≤ 2048, got 4096/],
  ] as const) {
    const r = await app.inject({ url });
    assert.ok(r.statusCode === 400 || r.statusCode === 404, url);
    assert.match(r.json().error, why);
  }
});

test('without the optional emoji images: the usage map and the training data answer 503 naming the install command; the rest works; /favicon.ico is an icon', async () => {
  const vq = models[0]!;
  const { app: bare } = await createServer({ models: [vq], emojiImages: false });
  try {
    const h = (await bare.inject({ url: '/api/health' })).json();
    assert.deepEqual(h.optional.emoji_images.installed, false);
    assert.equal(h.optional.emoji_images.install, 'npm install emoji-datasource-google@16');
    for (const url of ['/api/models/emoji-f4/usage', '/api/train/data?n=8']) {
      const r = await bare.inject({ url });
      assert.equal(r.statusCode, 503, url);
      assert.match(r.json().error, /needs the emoji images, which are not installed here: run `npm install emoji-datasource-google@16`/, url);
    }
    // what needs no emoji images still works: the training graphs, a reconstruction
    assert.equal((await bare.inject({ url: '/api/train/onnx?steps=20' })).statusCode, 200);
    const r = await bare.inject({ method: 'POST', url: '/api/models/emoji-f4/encode', headers: { 'content-type': 'image/png' }, payload: await png() });
    assert.equal(r.statusCode, 200);
    const icon = await bare.inject({ url: '/favicon.ico' });
    assert.equal(icon.statusCode, 200);
    assert.equal(icon.headers['content-type'], 'image/svg+xml');
    assert.match(icon.body, /^<svg [^>]*>(<rect [^>]*\/>){16}<\/svg>$/);
  } finally {
    await bare.close();
  }
  // with them (this checkout has them): 200s
  assert.equal((await app.inject({ url: '/api/health' })).json().optional.emoji_images.installed, true);
});

test('a stalled upload gets 408 after the request time limit; the server keeps serving', async () => {
  const { app: slow } = await createServer({ models: [], requestTimeoutMs: 400 });
  const url = new URL(await slow.listen({ host: '127.0.0.1', port: 0 }));
  const sock = net.connect(Number(url.port), '127.0.0.1');
  const t0 = Date.now();
  const answer = new Promise<string>((resolve) => {
    let got = '';
    sock.on('data', (d) => (got += d.toString()));
    sock.on('close', () => resolve(got));
  });
  // headers promise 100 kB, then the client goes quiet
  sock.write('POST /api/models/x/encode HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n' + 'x'.repeat(100));
  const got = await answer;
  assert.match(got, /^HTTP\/1\.1 408/);
  assert.ok(Date.now() - t0 < 5000, `closed after ${Date.now() - t0} ms`);
  assert.equal((await slow.inject({ url: '/api/health' })).statusCode, 200);
  await slow.close();
});

test('overload: past the queue depth requests get 503 with Retry-After; the rest succeed', async () => {
  const body = await png();
  const rs = await Promise.all(Array.from({ length: 8 }, () => app.inject({ method: 'POST', url: '/api/models/emoji-f4/reconstruct', headers: { 'content-type': 'image/png' }, payload: body })));
  const codes = rs.map((r) => r.statusCode);
  assert.ok(codes.every((c) => c === 200 || c === 503), codes.join());
  assert.ok(codes.filter((c) => c === 200).length >= 3, `1 running + 2 queued succeed: ${codes.join()}`);
  assert.ok(codes.includes(503), `some are shed: ${codes.join()}`);
  const shed = rs.find((r) => r.statusCode === 503)!;
  assert.ok(Number(shed.headers['retry-after']) >= 1);
  assert.match(shed.json().error, /busy/);
  assert.equal((await app.inject({ method: 'GET', url: '/api/health' })).statusCode, 200);
});

test('SIGTERM: the in-flight request finishes, then the process exits 0', { timeout: 120_000 }, async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'serve', '-m', path.join(root, 'models', 'emoji-class'), '--port', '0', '-t', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const pending = fetch(`${url}/api/models/emoji-class/sample`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ class: 1, n: 2 }) });
  await new Promise((r) => setTimeout(r, 300)); // the request is in flight
  child.kill('SIGTERM');
  const res = await pending;
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(await exited, 0, err);
  assert.match(err, /SIGTERM: finishing in-flight requests/);
});
