// Stable Diffusion's KL autoencoders and TAESD previews in `latentkit serve`: loading them
// (`serve -m` with a diffusers vae/ folder, an SD .ckpt, an ldm .safetensors or a TAESD), how
// GET /api/models describes them, and their encode / decode / reconstruct routes. Latents
// travel as a safetensors body (one tensor `latents` [B, C, h, w] float32, scaled as the
// diffusion pipelines use them — the file `latentkit encode` writes) or as JSON
// {"shape": [B, C, h, w], "data": [...]}; images as PNG/JPEG/WebP bytes. The limits are the
// VQGAN routes': the queue sheds load (503) before a body is parsed, the pixel limit holds
// for images read and for images latents would decode to, and every bad request is a 4xx
// JSON error naming the problem.
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AutoencoderKL } from '../models/autoencoder_kl/load.ts';
import { TAESD } from '../models/taesd/load.ts';
import type { LatentModelKind } from '../models/load_model.ts';
import { AUTO_TILE, AUTO_TILE_POSITIONS, klConfigBeside, klWeightsPath } from '../cli/kl.ts';
import type { SessionOptions } from '../runtime/backend.ts';
import { readSafetensors, writeSafetensors } from '../io/formats/safetensors.ts';
import { encodePng } from '../io/image.ts';
import { psnr } from '../eval/metrics.ts';
import { HostTensor } from '../tensor.ts';
import { HttpError, num } from './http.ts';

export type LatentServedModel = { name: string; kind: 'kl'; source: string; kl: AutoencoderKL; preview?: TAESD } | { name: string; kind: 'taesd'; source: string; taesd: TAESD };

/** A KL model's preview decoder (`latentkit distill-preview`'s decoder.safetensors), kept beside it under this name. */
export const PREVIEW_FILE = 'preview_decoder.safetensors';

/** The preview decoder beside a KL model (in its folder, or beside its file), if there is one. */
export function previewBeside(p: string): string | null {
  const dir = fs.statSync(p).isDirectory() ? p : path.dirname(p);
  const f = path.join(dir, PREVIEW_FILE);
  return fs.existsSync(f) ? f : null;
}

/** Content types a latents body may have besides JSON (raw safetensors bytes). */
export const LATENT_BODY_TYPES = ['application/octet-stream', 'application/x-safetensors'];

/** A KL VAE (its YAML beside an SD .ckpt is used, as the CLI does) or a TAESD, for the server. */
export function loadLatentServed(name: string, p: string, kind: LatentModelKind, session: SessionOptions): LatentServedModel {
  if (kind === 'taesd') return { name, kind, source: p, taesd: TAESD.load(p, { session }) };
  const file = klWeightsPath(p);
  const kl = AutoencoderKL.load(file, { config: klConfigBeside(file), session });
  const pf = previewBeside(p);
  const preview = pf ? TAESD.load(pf, { session }) : undefined;
  if (preview && (!preview.parts.decoder || preview.latentChannels !== kl.latentChannels || preview.factor !== kl.factor)) {
    throw new Error(`${pf}: a preview decoder for '${name}' must decode its ${kl.latentChannels}-channel latents at factor ${kl.factor}; this one ${preview.parts.decoder ? `reads ${preview.latentChannels} channels at factor ${preview.factor}` : 'has no decoder'}`);
  }
  return { name, kind, source: p, kl, ...(preview ? { preview } : {}) };
}

const model = (m: LatentServedModel): AutoencoderKL | TAESD => (m.kind === 'kl' ? m.kl : m.taesd);

function endpoints(m: LatentServedModel): string[] {
  if (m.kind === 'kl') return ['reconstruct', 'encode', 'decode'];
  const p = m.taesd.parts;
  return [...(p.encoder && p.decoder ? ['reconstruct'] : []), ...(p.encoder ? ['encode'] : []), ...(p.decoder ? ['decode'] : [])];
}

/** What GET /api/models/:name answers for a KL model or a TAESD. */
export function describeLatent(m: LatentServedModel): Record<string, unknown> {
  const common = { name: m.name, kind: m.kind, parameters: model(m).paramCount, downsampling_factor: model(m).factor, latent_channels: model(m).latentChannels };
  if (m.kind === 'taesd') {
    const t = m.taesd;
    return { ...common, parts: (['encoder', 'decoder'] as const).filter((p) => t.parts[p]), layout: t.layout, latents: 'scaled (as a KL model of its family encodes them)', endpoints: endpoints(m), notes: t.notes };
  }
  const k = m.kl;
  return {
    ...common,
    scaling: { scale: k.scaling.scale, shift: k.scaling.shift, source: k.scaling.source },
    channels: k.config.ddconfig.in_channels,
    resolution: k.config.ddconfig.resolution,
    quant_conv: k.config.use_quant_conv !== false,
    ...(m.preview ? { preview: { parameters: m.preview.paramCount, factor: m.preview.factor, decode: 'POST decode?preview=1' } } : {}),
    auto_tile: { above_latent_positions: AUTO_TILE_POSITIONS, tile: AUTO_TILE },
    endpoints: endpoints(m),
    notes: k.notes,
  };
}

/** What the server lends these routes: its queue, its image-body checks, its limits. */
export interface LatentRouteContext {
  /** Throws QueueFullError (503) now if a job would be refused. */
  admit(): void;
  run<T>(fn: () => Promise<T>): Promise<T>;
  imageBody(req: FastifyRequest): Promise<{ bytes: Uint8Array; width: number; height: number }>;
  decodeImage(bytes: Uint8Array, size: number | undefined): Promise<HostTensor<'float32'>>;
  maxPixels: number;
}

type Query = Record<string, unknown>;

/** A boolean query flag: absent → false; '', 1, true → true; 0, false → false. */
function flag(q: Query, key: string): boolean {
  const v = q[key];
  if (v === undefined) return false;
  if (v === '' || v === '1' || v === 'true' || v === true) return true;
  if (v === '0' || v === 'false' || v === false) return false;
  throw new HttpError(400, `'${key}' must be 1/true or 0/false, got ${JSON.stringify(v)}`);
}

/** ?format= (one of `allowed`, the first being the default) or, without it, Accept: application/json. */
function answerFormat<F extends string>(req: FastifyRequest, allowed: readonly F[]): F | 'json' {
  const f = (req.query as Query).format;
  if (f !== undefined && f !== '') {
    if (f === 'json' || allowed.includes(f as F)) return f as F | 'json';
    throw new HttpError(400, `'format' must be ${[...allowed, 'json'].join(' or ')}, got ${JSON.stringify(f)}`);
  }
  const accept = String(req.headers.accept ?? '');
  return /application\/json/.test(accept) && !/image\/png|application\/octet-stream/.test(accept) ? 'json' : allowed[0]!;
}

/** ?tile=N for a KL model (0: never); without it, automatic above AUTO_TILE_POSITIONS latent positions. */
function tileFor(q: Query, m: LatentServedModel, h: number, w: number): number | undefined {
  const t = num(q, 'tile', { int: true, min: 0 });
  if (m.kind === 'taesd') {
    if (t) throw new HttpError(400, `'tile' is for KL models; the TAESD '${m.name}' runs in one piece`);
    return undefined;
  }
  if (t !== undefined) return t > 0 ? t : undefined;
  return h * w > AUTO_TILE_POSITIONS ? AUTO_TILE : undefined;
}

/** ?sample / ?seed: the posterior's mode by default, a seeded draw with ?sample=1. */
function posterior(q: Query, m: LatentServedModel): { sample: boolean; seed: number } {
  const sample = flag(q, 'sample');
  const seed = num(q, 'seed', { int: true, min: 0, max: Number.MAX_SAFE_INTEGER });
  if (sample && m.kind === 'taesd') throw new HttpError(400, `'sample' draws from a KL posterior; the TAESD '${m.name}' encodes deterministically`);
  if (seed !== undefined && !sample) throw new HttpError(400, "'seed' goes with sample=1 (without it the latents are the posterior's mode, with no randomness)");
  return { sample, seed: seed ?? 0 };
}

/** ?preview=1: the KL model's preview decoder (a 400 naming how to get one when it has none). */
function previewOf(m: LatentServedModel): TAESD {
  if (m.kind === 'taesd') throw new HttpError(400, `'preview' is for KL models; '${m.name}' is itself a TAESD (decode without it)`);
  if (!m.preview) throw new HttpError(400, `model '${m.name}' has no preview decoder: train one with \`latentkit distill-preview --model <vae> --data <images> --out <dir>\` and put its decoder.safetensors beside the model as ${PREVIEW_FILE}`);
  return m.preview;
}

function needPart(m: LatentServedModel, part: 'encoder' | 'decoder', route: string): void {
  if (m.kind === 'taesd' && !m.taesd.parts[part]) {
    throw new HttpError(400, `the TAESD '${m.name}' has no ${part} (loaded from ${m.taesd.files.join(', ')}), so it cannot ${route}; it offers ${endpoints(m).join(', ') || 'nothing'} — serve a folder with both *_encoder and *_decoder files`);
  }
}

const MAGIC: [string, number[]][] = [
  ['a PNG image', [0x89, 0x50, 0x4e, 0x47]],
  ['a JPEG image', [0xff, 0xd8, 0xff]],
  ['a RIFF (WebP) image', [0x52, 0x49, 0x46, 0x46]],
  ['a zip archive (a torch .pt?)', [0x50, 0x4b, 0x03, 0x04]],
];

/** Latents from a safetensors body: the tensor 'latents' (or the only one), floats, any float dtype read as float32. */
function latentsFromSafetensors(bytes: Uint8Array): HostTensor {
  const looks = MAGIC.find(([, sig]) => sig.every((b, i) => bytes[i] === b));
  if (looks) throw new HttpError(400, `body is ${looks[0]}, not safetensors latents${looks[0].includes('image') ? ' (decode takes latents; POST images to /encode or /reconstruct)' : ''}`);
  let tensors: Map<string, HostTensor>;
  try {
    tensors = readSafetensors(bytes, 'request body').tensors;
  } catch (e) {
    throw new HttpError(400, `body is not a valid safetensors file: ${(e as Error).message.replace(/^request body: safetensors: /, '')}`);
  }
  const t = tensors.get('latents') ?? (tensors.size === 1 ? [...tensors.values()][0] : undefined);
  if (!t) throw new HttpError(400, `body has no 'latents' tensor (has ${[...tensors.keys()].slice(0, 5).join(', ') || 'none'})`);
  if (t.dtype !== 'float32') throw new HttpError(400, `latents must be floating point (F32, F16 or BF16), got ${t.dtype}`);
  return t;
}

/** Latents from a JSON body {"shape": [B, C, h, w] or [C, h, w], "data": [numbers, row-major]}. */
function latentsFromJson(body: unknown): HostTensor {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'send JSON {"shape": [B, C, h, w], "data": [...]} (or the safetensors file as application/octet-stream)');
  const { shape, data } = body as { shape?: unknown; data?: unknown };
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) > 0)) throw new HttpError(400, `'shape' must be [B, C, h, w] positive integers, got ${JSON.stringify(shape)}`);
  if (!Array.isArray(data)) throw new HttpError(400, `'data' must be an array of numbers (row-major), got ${data === undefined ? 'nothing' : typeof data}`);
  const n = (shape as number[]).reduce((a, d) => a * d, 1);
  if (data.length !== n) throw new HttpError(400, `'data' has ${data.length} numbers; shape [${shape.join(', ')}] needs ${n}`);
  const bad = data.findIndex((v) => typeof v !== 'number');
  if (bad >= 0) throw new HttpError(400, `data[${bad}] = ${JSON.stringify(data[bad])} is not a number`);
  return HostTensor.float32(shape as number[], Float32Array.from(data as number[]));
}

export function latentRoutes(ctx: LatentRouteContext) {
  /** An image body as the model's input [1, C, H, W]: resized (?size=) or checked against f. */
  const imageInput = async (req: FastifyRequest, m: LatentServedModel): Promise<HostTensor<'float32'>> => {
    const { bytes, width, height } = await ctx.imageBody(req);
    const q = req.query as Query;
    const size = num(q, 'size', { int: true, min: 1, max: Math.floor(Math.sqrt(ctx.maxPixels)) });
    const f = model(m).factor;
    if (size !== undefined && size % f) throw new HttpError(400, `size ${size} is not a multiple of the model's downsampling factor ${f}`);
    if (size === undefined && (width % f || height % f)) throw new HttpError(422, `image is ${width}×${height}, not a multiple of the model's downsampling factor ${f}; pass ?size=N to resize and center-crop to N×N`);
    const img = await ctx.decodeImage(bytes, size);
    const ch = m.kind === 'kl' ? m.kl.config.ddconfig.in_channels : 3;
    const [, h, w] = img.shape as [number, number, number];
    const x = ch === 3 ? img : HostTensor.float32([1, h, w], (img.data as Float32Array).slice(0, h * w));
    return x.reshape([1, ch, h, w]) as HostTensor<'float32'>;
  };

  /** The latents of a decode request, checked against the model (channels) and the pixel limit. */
  const latentsInput = (req: FastifyRequest, m: LatentServedModel): HostTensor<'float32'> => {
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    let z: HostTensor;
    if (type === 'application/json') z = latentsFromJson(req.body);
    else if (LATENT_BODY_TYPES.includes(type)) {
      const body = req.body as Buffer | undefined;
      if (!body || body.length === 0) throw new HttpError(400, 'empty body: send the latents (a safetensors file)');
      z = latentsFromSafetensors(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
    } else throw new HttpError(415, `decode takes latents: a safetensors file as application/octet-stream, or JSON {"shape", "data"}; got content type '${type || '(none)'}'${type.startsWith('image/') ? ' (POST images to /encode or /reconstruct)' : ''}`);
    if (z.shape.length === 3) z = z.reshape([1, ...z.shape]);
    if (z.shape.length !== 4) throw new HttpError(400, `latents must be [B, C, h, w] (or [C, h, w]), got [${z.shape.join(', ')}]`);
    const [b, c, h, w] = z.shape as [number, number, number, number];
    const lm = model(m);
    if (c !== lm.latentChannels) throw new HttpError(422, `latents have ${c} channels, but model '${m.name}' ${m.kind === 'taesd' ? 'decodes' : 'has a latent space of'} ${lm.latentChannels} (latents [${z.shape.join(', ')}])`);
    const f = lm.factor;
    if (b * h * w * f * f > ctx.maxPixels) throw new HttpError(413, `latents [${z.shape.join(', ')}] decode to ${b > 1 ? `${b} images of ` : ''}${w * f}×${h * f} pixels (${((b * h * w * f * f) / 1e6).toFixed(1)} M), over the limit of ${(ctx.maxPixels / 1e6).toFixed(1)} M pixels`);
    const d = z.data as Float32Array;
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) throw new HttpError(400, `latents hold ${d[i]} at index ${i} (of [${z.shape.join(', ')}])`);
    return z as HostTensor<'float32'>;
  };

  const png = async (img: HostTensor, k = 0): Promise<Buffer> => {
    const [, c, h, w] = img.shape as [number, number, number, number];
    const n = c * h * w;
    const p = await encodePng(HostTensor.float32([c, h, w], (img.data as Float32Array).subarray(k * n, (k + 1) * n)));
    return Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  };
  const dataUrl = (b: Buffer) => `data:image/png;base64,${b.toString('base64')}`;

  return {
    /** Image → scaled latents: safetensors (default) or JSON {shape, data}. */
    async encode(req: FastifyRequest, reply: FastifyReply, m: LatentServedModel) {
      ctx.admit(); // shed load before decoding anything
      needPart(m, 'encoder', 'encode');
      const q = req.query as Query;
      const format = answerFormat(req, ['safetensors'] as const);
      const post = posterior(q, m);
      const x = await imageInput(req, m);
      const [, , H, W] = x.shape as [number, number, number, number];
      const f = model(m).factor;
      const tile = tileFor(q, m, H / f, W / f);
      const latents = await ctx.run(async () => (m.kind === 'taesd' ? m.taesd.encode(x) : (await m.kl.encode(x, { sample: post.sample, seed: post.seed, ...(tile ? { tile } : {}) })).latents));
      const scaling = m.kind === 'kl' ? { scale: m.kl.scaling.scale, shift: m.kl.scaling.shift } : null;
      const how = m.kind === 'taesd' ? 'taesd' : post.sample ? `sample (seed ${post.seed})` : 'mode';
      reply.header('x-latent-shape', latents.shape.join('x'));
      if (tile) reply.header('x-tile', String(tile));
      if (format === 'json') return reply.type('application/json').send({ model: m.name, shape: latents.shape, ...(scaling ?? {}), posterior: how, ...(tile ? { tile } : {}), data: Array.from(latents.data as Float32Array) });
      const meta: Record<string, string> = { format: 'latentkit-latents', model: m.name, image_size: JSON.stringify([H, W]), posterior: how, ...(scaling ? { scale: String(scaling.scale), shift: String(scaling.shift) } : { scaling: 'taesd (the scaled latents of its VAE family)' }) };
      const bytes = writeSafetensors(new Map([['latents', latents]]), meta);
      return reply.type('application/octet-stream').header('content-disposition', 'attachment; filename="latents.safetensors"').send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    },

    /** Scaled latents (safetensors or JSON) → PNG, or JSON {images: [data URLs]} (a batch needs JSON). */
    async decode(req: FastifyRequest, reply: FastifyReply, m: LatentServedModel) {
      ctx.admit();
      needPart(m, 'decoder', 'decode');
      const q = req.query as Query;
      const format = answerFormat(req, ['png'] as const);
      const preview = flag(q, 'preview') ? previewOf(m) : null;
      const z = latentsInput(req, m);
      const [b, , h, w] = z.shape as [number, number, number, number];
      if (b > 1 && format !== 'json') throw new HttpError(422, `latents hold a batch of ${b}; a PNG answer is one image: send one latent, or ask for ?format=json (a list of images)`);
      const tile = preview ? undefined : tileFor(q, m, h, w);
      const img = await ctx.run(() => (preview ? preview.decode(z) : m.kind === 'taesd' ? m.taesd.decode(z) : m.kl.decode(z, tile ? { tile } : {})));
      if (preview) reply.header('x-decoder', 'preview');
      const f = model(m).factor;
      reply.header('x-image-size', `${w * f}x${h * f}`);
      if (tile) reply.header('x-tile', String(tile));
      if (format === 'json') {
        const images: string[] = [];
        for (let k = 0; k < b; k++) images.push(dataUrl(await png(img, k)));
        return reply.type('application/json').send({ model: m.name, size: [h * f, w * f], ...(tile ? { tile } : {}), images });
      }
      return reply.type('image/png').send(await png(img));
    },

    /** Image → latents → image: PNG with X-PSNR (input vs output, dB) and X-Latent-Shape, or JSON. */
    async reconstruct(req: FastifyRequest, reply: FastifyReply, m: LatentServedModel) {
      ctx.admit();
      needPart(m, 'encoder', 'reconstruct');
      needPart(m, 'decoder', 'reconstruct');
      const q = req.query as Query;
      const format = answerFormat(req, ['png'] as const);
      const post = posterior(q, m);
      const x = await imageInput(req, m);
      const f = model(m).factor;
      const tile = tileFor(q, m, x.shape[2]! / f, x.shape[3]! / f);
      const r = await ctx.run(async () => {
        if (m.kind === 'taesd') {
          const latents = await m.taesd.encode(x);
          return { latents, image: await m.taesd.decode(latents) };
        }
        return m.kl.reconstruct(x, { sample: post.sample, seed: post.seed, ...(tile ? { tile } : {}) });
      });
      const db = psnr(x, r.image)[0]!;
      const body = await png(r.image);
      reply.header('x-psnr', db.toFixed(3)).header('x-latent-shape', r.latents.shape.join('x'));
      if (tile) reply.header('x-tile', String(tile));
      if (format === 'json') return reply.type('application/json').send({ model: m.name, psnr: db, latent_shape: r.latents.shape, posterior: m.kind === 'taesd' ? 'taesd' : post.sample ? `sample (seed ${post.seed})` : 'mode', ...(tile ? { tile } : {}), image: dataUrl(body) });
      return reply.type('image/png').send(body);
    },
  };
}

/**
 * Raw bodies for the latents routes (parsed by the route, after the queue admitted it), and
 * admission before the body is even read for a latent model's routes: a JSON body (which
 * fastify would parse first) is shed with 503 unread too.
 */
export function registerLatentHooks(app: FastifyInstance, isLatent: (name: string) => boolean, admit: () => void): void {
  app.addContentTypeParser(LATENT_BODY_TYPES, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  const routes = new Set(['encode', 'decode', 'reconstruct'].map((r) => `/api/models/:name/${r}`));
  app.addHook('onRequest', async (req) => {
    if (req.method === 'POST' && routes.has(req.routeOptions.url ?? '') && isLatent((req.params as { name: string }).name)) admit();
  });
}
