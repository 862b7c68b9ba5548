// `latentkit serve`: an HTTP API over VQGANs, transformers and Stable Diffusion's KL
// autoencoders / TAESD previews (their latents routes: kl.ts) on fastify. One job queue
// (bounded concurrency and depth) guards the models: past its depth requests get 503 with
// Retry-After, never an ever-growing backlog. Image bodies are raw bytes with their content
// type, checked by size (bodyLimit) and by pixel count read from the header before decoding.
// Every error answer is JSON { "error": "…" } with a 4xx/5xx status.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { decodeImageBytes, decodeImageBytesU8, encodePng, headerSize, imageGrid, imageInfo } from '../io/image.ts';
import { downFactor } from '../models/vqgan/config.ts';
import { HostTensor } from '../tensor.ts';
import { samplingSettings } from '../models/cond_transformer/sampling.ts';
import { editImage } from '../models/cond_transformer/edit.ts';
import { grayOf } from '../sample/edit.ts';
import type { Net2Net } from '../models/cond_transformer/load.ts';
import { CancelledError, JobQueue, QueueFullError } from './queue.ts';
import { describe, type ServedModel } from './models.ts';
import { klOnnx, net2netOnnx, vqganOnnx, type OnnxExport } from '../models/export_onnx.ts';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { describeRun, findRuns, readMetrics, runImagePath } from './runs.ts';
import { codebookAtlas, codeUsage, type Atlas, type Usage } from './codebook.ts';
import { registerTrainRoutes } from './train.ts';
import { MAX_IMAGE_PIXELS } from '../io/limits.ts';
import { EMOJI_INSTALL, EMOJI_PACKAGE, HttpError, emojiMissing, installed, num } from './http.ts';
import { LATENT_BODY_TYPES, PREVIEW_FILE, latentRoutes, registerLatentHooks, type LatentServedModel } from './kl.ts';

export { HttpError };

export interface ServerOptions {
  models: ServedModel[];
  /** Model runs at once (default 1: each run already uses every core). */
  concurrency?: number;
  /** Requests that may wait for a slot (default 16); more get 503. */
  queueDepth?: number;
  /** Largest request body in bytes (default 8 MiB). */
  maxBodyBytes?: number;
  /** Largest image in pixels, checked from its header before decoding (default 4096²). */
  maxPixels?: number;
  /** Longest wait for a queue slot before a 503 (default 30 s). */
  queueWaitMs?: number;
  /** Longest time to receive a whole request, headers and body (default 60 s; then 408). */
  requestTimeoutMs?: number;
  /** Largest n for /sample (default 16). */
  maxSamples?: number;
  /** Directory of the built web page (web/dist), served at / when given. */
  webRoot?: string;
  /**
   * Directory holding onnxruntime-web's WebAssembly files (served at /ort/ for the page's
   * in-browser inference; default: the installed onnxruntime-web package, when there is one).
   */
  ortWasmDir?: string | null;
  /** Training-run directories (a run, or a folder of runs) for the run viewer. */
  runs?: string[];
  /** Dataset for the codebook usage map: 'emoji' (default) or a folder of images. */
  usageData?: string;
  /**
   * Whether the emoji images (the optional emoji-datasource-google) are there for the codebook
   * usage map and the page's training data (default: whether the package is installed).
   * Without them those routes answer 503 naming the install command.
   */
  emojiImages?: boolean;
  logger?: boolean;
}

const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp'];

/** The page's icon: a 4×4 grid of codebook-coloured cells (answered at /favicon.ico too). */
const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">${Array.from({ length: 16 }, (_, i) => `<rect x="${(i % 4) * 4}" y="${Math.floor(i / 4) * 4}" width="4" height="4" fill="hsl(${(i * 137.5) % 360} 60% ${45 + (i % 5) * 8}%)"/>`).join('')}</svg>`;

function wantsJson(req: FastifyRequest): boolean {
  const q = req.query as Record<string, string | undefined>;
  if (q.format) return q.format === 'json';
  return /application\/json/.test(String(req.headers.accept ?? '')) && !/image\/png/.test(String(req.headers.accept ?? ''));
}

export async function createServer(opts: ServerOptions): Promise<{ app: FastifyInstance; queue: JobQueue }> {
  const maxPixels = opts.maxPixels ?? MAX_IMAGE_PIXELS;
  const maxSamples = opts.maxSamples ?? 16;
  const queue = new JobQueue({ concurrency: opts.concurrency ?? 1, depth: opts.queueDepth ?? 16 });
  const byName = new Map(opts.models.map((m) => [m.name, m]));
  if (byName.size !== opts.models.length) throw new Error('two models have the same name (use name=path)');
  const requestTimeout = opts.requestTimeoutMs ?? 60_000;
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: opts.maxBodyBytes ?? 8 * 1024 * 1024,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    // a slow or stalled upload gets 408 instead of holding a connection (Node checks every
    // connectionsCheckingInterval, so the limit is enforced within a tenth of itself)
    requestTimeout,
    serverFactory: (handler) => http.createServer({ requestTimeout, connectionsCheckingInterval: Math.max(50, Math.min(30_000, requestTimeout / 10)) }, handler),
  });
  const started = Date.now();
  const emoji = opts.emojiImages ?? installed(EMOJI_PACKAGE);

  app.addContentTypeParser(IMAGE_TYPES, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof HttpError) return reply.code(err.status).headers(err.headers).send({ error: err.message });
    if (err instanceof QueueFullError) return reply.code(503).header('retry-after', String(err.retryAfter)).send({ error: err.message });
    // the client went away (CancelledError, or sampling stopped by its signal): nobody reads
    // this answer (499, nginx's "client closed request")
    if (err.name === 'AbortError') return reply.code(499).send({ error: err.message });
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply.code(415).send({ error: `unsupported content type; send ${IMAGE_TYPES.join(', ')} (raw bytes), application/json where the endpoint takes JSON, or ${LATENT_BODY_TYPES[0]} (safetensors latents) to a KL model's decode` });
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send({ error: `request body is larger than the limit of ${app.initialConfig.bodyLimit} bytes` });
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return reply.code(err.statusCode).send({ error: err.message });
    app.log.error(err);
    return reply.code(500).send({ error: `internal error: ${err.message.split('\n')[0]}` });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}; see GET /api/models` }));

  const lookup = (req: FastifyRequest): ServedModel => {
    const name = (req.params as { name: string }).name;
    const m = byName.get(name);
    if (!m) throw new HttpError(404, `unknown model '${name}'; models: ${[...byName.keys()].join(', ') || '(none)'}`);
    return m;
  };
  const model = (req: FastifyRequest, kind: ServedModel['kind']): ServedModel => {
    const m = lookup(req);
    const name = m.name;
    if (m.kind !== kind) throw new HttpError(400, `model '${name}' is a ${m.kind}; this endpoint needs a ${kind} (it offers ${(describe(m).endpoints as string[]).join(', ')})`);
    queue.admit(); // shed load before decoding anything
    return m;
  };

  /** The request body as image bytes, with its header checked (type, pixel count). */
  const imageBody = async (req: FastifyRequest): Promise<{ bytes: Uint8Array; width: number; height: number }> => {
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (!IMAGE_TYPES.includes(type)) throw new HttpError(415, `expected an image body (${IMAGE_TYPES.join(', ')}), got content type '${type || '(none)'}'`);
    const body = req.body as Buffer | undefined;
    if (!body || body.length === 0) throw new HttpError(400, 'empty body: send the image bytes');
    const bytes = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    // the size as the header claims it, before any decoder sees the body
    let info: { width: number; height: number } | null = headerSize(bytes);
    if (!info) {
      try {
        info = await imageInfo(bytes, 'request body');
      } catch (e) {
        throw new HttpError(400, (e as Error).message);
      }
    }
    if (!info.width || !info.height) throw new HttpError(400, 'cannot read the image size from its header');
    if (info.width * info.height > maxPixels) throw new HttpError(413, `image is ${info.width}×${info.height} (${(info.width * info.height / 1e6).toFixed(1)} M pixels); the limit is ${(maxPixels / 1e6).toFixed(1)} M pixels`);
    return { bytes, ...info };
  };

  const decode = async (bytes: Uint8Array, size: number | undefined): Promise<HostTensor<'float32'>> => {
    try {
      return await decodeImageBytes(bytes, { size }, 'request body');
    } catch (e) {
      throw new HttpError(400, (e as Error).message);
    }
  };

  /** The image as the model's input [1, C, H, W]: resized (?size=) or checked against f. */
  const modelInput = async (req: FastifyRequest, m: Extract<ServedModel, { kind: 'vqgan' }>) => {
    const { bytes, width, height } = await imageBody(req);
    const q = req.query as Record<string, unknown>;
    const size = num(q, 'size', { int: true, min: 1, max: Math.floor(Math.sqrt(maxPixels)) });
    const f = m.vqgan.factor;
    if (size !== undefined && size % f) throw new HttpError(400, `size ${size} is not a multiple of the model's downsampling factor ${f}`);
    if (size === undefined && (width % f || height % f)) throw new HttpError(422, `image is ${width}×${height}, not a multiple of the model's downsampling factor ${f}; pass ?size=N to resize and center-crop to N×N`);
    const img = await decode(bytes, size);
    const ch = m.vqgan.config.ddconfig.in_channels;
    const [, h, w] = img.shape as [number, number, number];
    const x = ch === 3 ? img : HostTensor.float32([1, h, w], (img.data as Float32Array).slice(0, h * w)); // 1-channel models: red = gray for our decoded RGB
    return x.reshape([1, ch, h, w]) as HostTensor<'float32'>;
  };

  const run = <T>(fn: (signal?: AbortSignal) => Promise<T>, signal?: AbortSignal) => queue.run(fn, { waitMs: opts.queueWaitMs ?? 30_000, ...(signal ? { signal } : {}) });
  /**
   * Aborts when the client closes the connection before its answer is sent (the page's Draw
   * view cancels a request with every new stroke): a waiting job leaves the queue, a running
   * transformer stops at its next token step or pass.
   */
  const clientGone = (reply: FastifyReply): AbortSignal => {
    const c = new AbortController();
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) c.abort(new CancelledError());
    });
    return c.signal;
  };

  // KL autoencoders and TAESDs answer the same three routes with latents (kl.ts)
  const latentOf = (m: ServedModel): LatentServedModel | null => (m.kind === 'kl' || m.kind === 'taesd' ? m : null);
  const latent = latentRoutes({ admit: () => queue.admit(), run, imageBody, decodeImage: decode, maxPixels });
  const isLatent = (name: string): boolean => {
    const m = byName.get(name);
    return !!m && !!latentOf(m);
  };
  registerLatentHooks(app, isLatent, () => queue.admit());
  const notForLatent = (m: ServedModel, what: string): void => {
    if (latentOf(m)) throw new HttpError(400, `model '${m.name}' is a ${m.kind === 'kl' ? 'KL autoencoder' : 'TAESD'}: ${what} (it offers ${(describe(m).endpoints as string[]).join(', ')})`);
  };

  const sendImage = async (reply: FastifyReply, img: HostTensor, extra: Record<string, unknown> | null, json: boolean) => {
    const [, c, h, w] = img.shape.length === 4 ? (img.shape as number[]) : [1, ...img.shape];
    const chw = HostTensor.float32([c!, h!, w!], img.data as Float32Array);
    const png = await encodePng(chw);
    if (json) return reply.type('application/json').send({ ...extra, image: `data:image/png;base64,${Buffer.from(png).toString('base64')}` });
    if (extra?.shape) reply.header('x-code-shape', (extra.shape as number[]).join('x'));
    return reply.type('image/png').send(Buffer.from(png.buffer, png.byteOffset, png.byteLength));
  };

  if (opts.webRoot) {
    const { default: fastifyStatic } = await import('@fastify/static');
    await app.register(fastifyStatic, { root: opts.webRoot, prefix: '/' });
  }

  // Cross-origin isolation, so the page's WebAssembly runtime may use threads (SharedArrayBuffer).
  app.addHook('onSend', async (_req, reply) => {
    reply.header('cross-origin-opener-policy', 'same-origin');
    reply.header('cross-origin-embedder-policy', 'require-corp');
  });

  // Work done once per key (exports, codebook atlases, usage counts): the first request runs
  // it in the job queue, later ones share the promise; a failure is forgotten, so it retries.
  const memo = new Map<string, Promise<unknown>>();
  const once = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    let p = memo.get(key) as Promise<T> | undefined;
    if (!p) {
      p = run(fn);
      memo.set(key, p);
      p.catch(() => memo.delete(key));
    }
    return p;
  };
  // The page's in-browser inference: each model as standalone ONNX files (batch 1, weights
  // inside) plus its manifest, made once on first request and kept.
  const exportOf = (m: ServedModel): Promise<OnnxExport> => {
    if (m.kind === 'taesd') throw new HttpError(400, `model '${m.name}' is a TAESD: the page runs TAESDs as a KL model's preview decoder (its ${PREVIEW_FILE}); \`latentkit export-onnx\` exports KL models`);
    return once(`onnx:${m.name}`, async () => (m.kind === 'vqgan' ? vqganOnnx(m.vqgan, { batch: 1 }) : m.kind === 'kl' ? klOnnx(m.kl, { preview: m.preview }) : net2netOnnx(m.net, { batch: 1 })));
  };
  app.get('/api/models/:name/onnx', async (req) => {
    const e = await exportOf(lookup(req));
    return { ...e.manifest, bytes: Object.fromEntries([...e.files].map(([f, b]) => [f, b.length])) };
  });
  app.get('/api/models/:name/onnx/:file', async (req, reply) => {
    const m = lookup(req);
    const file = (req.params as { file: string }).file;
    const e = await exportOf(m);
    const b = e.files.get(file);
    if (!b) throw new HttpError(404, `model '${m.name}' has no export file '${file}'; files: ${[...e.files.keys()].join(', ')}`);
    return reply.type('application/octet-stream').header('cache-control', 'no-cache').send(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  });
  // Codebook view: entries as tiles, usage over a dataset (each computed once per model).
  const vqOf = (req: FastifyRequest) => {
    const m = lookup(req);
    notForLatent(m, 'its latents are continuous, there is no codebook');
    if (m.kind === 'vqgan') return { name: m.name, vq: m.vqgan };
    return { name: m.name, vq: (m as Extract<ServedModel, { kind: 'transformer' }>).net.firstStage }; // a transformer's codes are its first stage's
  };
  app.get('/api/models/:name/codebook', async (req, reply) => {
    const { name, vq } = vqOf(req);
    const a = await once<Atlas>(`atlas:${name}`, () => codebookAtlas(vq));
    return reply.type('image/png').header('x-atlas', JSON.stringify({ count: a.count, cols: a.cols, tile: a.tile, pad: a.pad })).send(Buffer.from(a.png));
  });
  app.get('/api/models/:name/usage', async (req) => {
    const { name, vq } = vqOf(req);
    const data = opts.usageData ?? 'emoji';
    if (data === 'emoji' && !emoji) throw emojiMissing('the code usage map', 'or start it with `--usage-data <folder of images>`');
    try {
      return { model: name, ...(await once<Usage>(`usage:${name}`, () => codeUsage(vq, data))) };
    } catch (e) {
      if (e instanceof QueueFullError) throw e;
      throw new HttpError(422, `cannot compute code usage over '${data}': ${(e as Error).message}`);
    }
  });

  // Run viewer: runs by name; metrics read afresh on every request (live while training).
  const runs = findRuns(opts.runs ?? []);
  const runDir = (req: FastifyRequest) => {
    const name = (req.params as { run: string }).run;
    const dir = runs.get(name);
    if (!dir) throw new HttpError(404, `unknown run '${name}'; runs: ${[...runs.keys()].join(', ') || '(none: start the server with --runs <dir>)'}`);
    return { name, dir };
  };
  app.get('/api/runs', async () => ({ runs: [...runs].map(([name, dir]) => describeRun(name, dir)) }));
  app.get('/api/runs/:run', async (req) => {
    const { name, dir } = runDir(req);
    return { ...describeRun(name, dir), metrics: readMetrics(dir) };
  });
  app.get('/api/runs/:run/files/*', async (req, reply) => {
    const { name, dir } = runDir(req);
    const rel = (req.params as { '*': string })['*'];
    const full = runImagePath(dir, rel);
    if (!full) throw new HttpError(404, `run '${name}' has no image '${rel}'`);
    return reply.type('image/png').header('cache-control', 'no-cache').send(fs.createReadStream(full));
  });

  const ortDir = opts.ortWasmDir === undefined ? installedOrtWasmDir() : opts.ortWasmDir;
  app.get('/ort/:file', async (req, reply) => {
    const file = (req.params as { file: string }).file;
    if (!ortDir || !/^ort-wasm-simd-threaded(\.jsep)?\.(mjs|wasm)$/.test(file)) throw new HttpError(404, `no ONNX Runtime file '${file}' here${ortDir ? '' : ' (onnxruntime-web is not installed)'}`);
    const full = path.join(ortDir, file);
    if (!fs.existsSync(full)) throw new HttpError(404, `no ONNX Runtime file '${file}' in ${ortDir}`);
    return reply.type(file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript').header('cache-control', 'max-age=86400').send(fs.createReadStream(full));
  });

  registerTrainRoutes(app, once, { emoji });

  app.get('/favicon.ico', async (_req, reply) => reply.type('image/svg+xml').header('cache-control', 'max-age=86400').send(FAVICON));

  app.get('/api/health', async () => ({ status: 'ok', uptime_s: Math.round((Date.now() - started) / 1000), models: [...byName.keys()], queue: queue.stats(), rss_mb: Math.round(process.memoryUsage().rss / 1048576), optional: { emoji_images: { installed: emoji, install: EMOJI_INSTALL, for: ['the codebook usage map', 'training on emoji in the page'] } } }));
  app.get('/api/models', async () => ({ models: opts.models.map(describe) }));
  app.get('/api/models/:name', async (req) => describe(lookup(req)));

  app.post('/api/models/:name/reconstruct', async (req, reply) => {
    const lm = latentOf(lookup(req));
    if (lm) return latent.reconstruct(req, reply, lm);
    const m = model(req, 'vqgan') as Extract<ServedModel, { kind: 'vqgan' }>;
    const x = await modelInput(req, m);
    const r = await run(() => m.vqgan.reconstruct(x));
    const [, h, w] = r.indices.shape as [number, number, number];
    return sendImage(reply, r.image, { model: m.name, shape: [h, w], indices: r.indices.toArray() }, wantsJson(req));
  });

  app.post('/api/models/:name/encode', async (req, reply) => {
    const lm = latentOf(lookup(req));
    if (lm) return latent.encode(req, reply, lm);
    const m = model(req, 'vqgan') as Extract<ServedModel, { kind: 'vqgan' }>;
    const x = await modelInput(req, m);
    const r = await run(() => m.vqgan.encode(x));
    const [, h, w] = r.indices.shape as [number, number, number];
    return { model: m.name, shape: [h, w], indices: r.indices.toArray() };
  });

  app.post('/api/models/:name/decode', async (req, reply) => {
    const lm = latentOf(lookup(req));
    if (lm) return latent.decode(req, reply, lm);
    const m = model(req, 'vqgan') as Extract<ServedModel, { kind: 'vqgan' }>;
    const b = req.body as { indices?: unknown; shape?: unknown } | undefined;
    if (!b || typeof b !== 'object') throw new HttpError(400, 'send JSON {"indices": [...], "shape": [h, w]}');
    const shape = b.shape;
    if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d > 0)) throw new HttpError(400, `'shape' must be [h, w] positive integers, got ${JSON.stringify(shape)}`);
    const [h, w] = shape as [number, number];
    if (h * w * m.vqgan.factor ** 2 > maxPixels) throw new HttpError(413, `a ${h}×${w} code grid decodes to ${h * m.vqgan.factor}×${w * m.vqgan.factor} pixels, over the limit`);
    const idx = b.indices;
    if (!Array.isArray(idx) || idx.length !== h * w) throw new HttpError(400, `'indices' must be an array of ${h}×${w} = ${h * w} integers, got ${Array.isArray(idx) ? idx.length : typeof idx}`);
    const n = m.vqgan.codebookSize;
    const bad = idx.findIndex((v) => !Number.isInteger(v) || v < 0 || v >= n);
    if (bad >= 0) throw new HttpError(400, `indices[${bad}] = ${JSON.stringify(idx[bad])} is not a code in [0, ${n})`);
    const img = await run(() => m.vqgan.decode(HostTensor.int64([1, h, w], idx as number[])));
    return sendImage(reply, img, { model: m.name }, wantsJson(req));
  });

  app.post('/api/models/:name/sample', async (req, reply) => {
    const m = model(req, 'transformer') as Extract<ServedModel, { kind: 'transformer' }>;
    const net = m.net;
    const isImage = IMAGE_TYPES.includes(String(req.headers['content-type'] ?? '').split(';')[0]!.trim());
    const q: Record<string, unknown> = { ...(req.query as Record<string, unknown>), ...(!isImage && req.body && typeof req.body === 'object' ? (req.body as Record<string, unknown>) : {}) };
    const n = num(q, 'n', { int: true, min: 1, max: maxSamples }) ?? 4;
    const seed = num(q, 'seed', { int: true, min: 0 }) ?? 0;
    const sampling = requestSampling(net, q);
    const gone = clientGone(reply);
    let cond: ArrayLike<number>;
    let condGrid: [number, number] | undefined;
    if (net.config.cond_stage.kind === 'vqgan' || net.config.cond_stage.kind === 'first_stage') {
      if (!isImage) throw new HttpError(415, `this model samples from a ${net.config.cond_input === 'sketch' ? 'sketch' : 'condition image'}: send it as the body (${IMAGE_TYPES.join(', ')})`);
      const { bytes } = await imageBody(req);
      ({ cond, condGrid } = await imageCondition(net, bytes, 'request body', gone));
    } else cond = labelCondition(net, q);
    const img = await run(async (signal) => {
      const tokens = await net.sample({ ...sampling, n, cond, condGrid, seed, ...(signal ? { signal } : {}) });
      return net.decodeTokens(tokens, n, net.grid);
    }, gone);
    const [, c, h, w] = img.shape as [number, number, number, number];
    const tiles = Array.from({ length: n }, (_, k) => HostTensor.float32([c, h, w], (img.data as Float32Array).slice(k * c * h * w, (k + 1) * c * h * w)));
    if (wantsJson(req)) {
      const images = await Promise.all(tiles.map(async (t) => `data:image/png;base64,${Buffer.from(await encodePng(t)).toString('base64')}`));
      return { model: m.name, n, seed, ...sampling, images };
    }
    const grid = imageGrid(tiles, { cols: Math.min(n, 8), pad: 2 });
    return sendImage(reply, grid.reshape([1, ...grid.shape]), null, false);
  });

  /** A request's sampling settings: its own, then the model's recommended ones. */
  const requestSampling = (net: Net2Net, q: Record<string, unknown>) => {
    try {
      return samplingSettings(net, {
        temperature: num(q, 'temperature', { min: 0.05, max: 10 }),
        topK: num(q, 'top_k', { int: true, min: 0 }),
        topP: num(q, 'top_p', { min: 0, max: 1 }),
        guidance: num(q, 'cfg', { min: 0, max: 20 }),
        steps: num(q, 'steps', { int: true, min: 1, max: 64 }),
        choiceTemperature: num(q, 'choice_temperature', { min: 0, max: 50 }),
      }).sampling;
    } catch (e) {
      if (e instanceof HttpError) throw e;
      throw new HttpError(400, (e as Error).message);
    }
  };
  /** The class (or SOS) condition of a request. */
  const labelCondition = (net: Net2Net, q: Record<string, unknown>): number[] => {
    if (net.config.cond_stage.kind !== 'label') return net.sosCondition();
    if (q.class === undefined || q.class === '') throw new HttpError(400, `this model samples by class: pass 'class' (one of ${net.classes!.join(', ')})`);
    try {
      return [net.classIndex(String(q.class))];
    } catch (e) {
      throw new HttpError(400, (e as Error).message);
    }
  };
  const imageCondition = (net: Net2Net, bytes: Uint8Array, name: string, signal?: AbortSignal) =>
    run(() => net.conditionFromImage(bytes, name), signal).catch((e: Error) => {
      if (e instanceof QueueFullError || e.name === 'AbortError') throw e;
      throw new HttpError(400, e.message);
    });
  /** A data URL (or bare base64) image field of a JSON body → its bytes, checked like an image body. */
  const dataUrlImage = (v: unknown, key: string): Uint8Array => {
    if (typeof v !== 'string' || !v) throw new HttpError(400, `'${key}' must be a PNG, JPEG or WebP image as a data URL (data:image/png;base64,…)`);
    const bytes = new Uint8Array(Buffer.from(v.replace(/^data:image\/(png|jpeg|webp);base64,/, ''), 'base64'));
    const h = headerSize(bytes);
    if (!h) throw new HttpError(415, `'${key}' is not a PNG, JPEG or WebP image`);
    if (h.width * h.height > maxPixels) throw new HttpError(413, `'${key}' is ${h.width}×${h.height} pixels, over the limit of ${maxPixels}`);
    return bytes;
  };

  /**
   * Edit: JSON { image, mask (data URLs; white = repaint), class | cond (a sketch, data URL),
   * n, seed, sampling settings } → the edits as data URLs, which cells were regenerated and
   * what was decided (a resized mask, an autoregressive model's raster suffix, plain sampling).
   * An empty mask answers 200 with no images and the note saying there is nothing to do.
   */
  app.post('/api/models/:name/edit', async (req, reply) => {
    const m = model(req, 'transformer') as Extract<ServedModel, { kind: 'transformer' }>;
    const net = m.net;
    const q = req.body && typeof req.body === 'object' ? (req.body as Record<string, unknown>) : null;
    if (!q) throw new HttpError(400, 'send JSON {"image": "data:image/png;base64,…", "mask": "data:image/png;base64,…", …}');
    const n = num(q, 'n', { int: true, min: 1, max: maxSamples }) ?? 4;
    const seed = num(q, 'seed', { int: true, min: 0 }) ?? 0;
    const sampling = requestSampling(net, q);
    const imageBytes = dataUrlImage(q.image, 'image');
    const maskBytes = dataUrlImage(q.mask, 'mask');
    const gone = clientGone(reply);
    const [H, W] = [net.grid[0], net.grid[1]].map((g) => g * downFactor(net.config.first_stage)) as [number, number];
    let cond: ArrayLike<number>;
    if (net.config.cond_stage.kind === 'vqgan' || net.config.cond_stage.kind === 'first_stage') {
      if (q.cond !== undefined) ({ cond } = await imageCondition(net, dataUrlImage(q.cond, 'cond'), 'cond', gone));
      // no condition: a MaskGIT model trained with condition dropout knows the all-[MASK] one
      else if (net.isMaskGit && net.config.null_class) cond = net.nullCondition();
      else throw new HttpError(400, `this model is conditioned on a ${net.config.cond_input === 'sketch' ? 'sketch' : 'condition image'}: pass 'cond' (a data URL)`);
    } else cond = labelCondition(net, q);
    const r = await run(async (signal) => {
      const info = await imageInfo(imageBytes, 'image');
      const notes: string[] = [];
      if (info.width !== W || info.height !== H) notes.push(`the image is ${info.width}x${info.height}; resized to the model's ${W}x${H}`);
      const image = await decodeImageBytes(imageBytes, info.width === W && info.height === H ? {} : { size: H }, 'image');
      const u8 = await decodeImageBytesU8(maskBytes, { background: 'black' }, 'mask');
      const [, mh, mw] = u8.shape as [number, number, number];
      const e = await editImage(net, { ...sampling, image, mask: { gray: grayOf(u8.data as Uint8Array, 3, mh, mw), height: mh, width: mw }, n, cond, seed, ...(signal ? { signal } : {}) });
      e.plan.notes.unshift(...notes);
      return e;
    }, gone).catch((e: Error) => {
      if (e instanceof QueueFullError || e instanceof HttpError || e.name === 'AbortError') throw e;
      throw new HttpError(400, e.message);
    });
    const out: Record<string, unknown> = { model: m.name, n, seed, ...sampling, kind: r.plan.kind, regenerated: r.plan.generate, cells: Array.from(r.cells), notes: r.plan.notes, images: [] };
    if (r.images) {
      const [, c, h, w] = r.images.shape as [number, number, number, number];
      out.images = await Promise.all(Array.from({ length: n }, (_, k) => encodePng(HostTensor.float32([c, h, w], (r.images!.data as Float32Array).slice(k * c * h * w, (k + 1) * c * h * w))).then((b) => `data:image/png;base64,${Buffer.from(b).toString('base64')}`)));
    }
    return out;
  });

  return { app, queue };
}

/** onnxruntime-web's dist folder (its WebAssembly builds), or null when it is not installed. */
function installedOrtWasmDir(): string | null {
  try {
    return path.dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
  } catch {
    return null;
  }
}
