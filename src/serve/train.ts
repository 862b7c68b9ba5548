// What the page's "train in your browser" fetches: a training run as standalone ONNX files
// (train/export_train.ts; the tiny preset, rescaled to the steps asked for, exactly as
// `latentkit train-ae --config tiny --max-steps N` trains it) and emoji images to train on
// (uint8 planar [N, 3, S, S], from the npm-shipped set, train or validation split).
import type { FastifyInstance } from 'fastify';
import { PRESETS, parseTrainConfig, withMaxSteps } from '../train/config.ts';
import { trainOnnx, type TrainOnnxManifest } from '../train/export_train.ts';
import { cacheDataset, emojiDataset, splitDataset, Rng } from '../io/datasets.ts';
import { HttpError, emojiMissing, num } from './http.ts';
import { QueueFullError } from './queue.ts';

/** The preset the page trains (small enough for WebAssembly: ~1 M parameters at 32×32). */
export const BROWSER_PRESET = 'tiny';
const MAX_STEPS = 20_000;
const MAX_IMAGES = 2048;

/** The server's memo: the first request for a key runs `fn` in the job queue, later ones share it. */
type Once = <T>(key: string, fn: () => Promise<T>) => Promise<T>;
type Query = Record<string, unknown>;

export function registerTrainRoutes(app: FastifyInstance, once: Once, o: { emoji: boolean }): void {
  const exportFor = (steps: number) =>
    once<{ files: Map<string, Uint8Array>; manifest: TrainOnnxManifest }>(`train-onnx:${steps}`, async () => {
      const cfg = parseTrainConfig(structuredClone(PRESETS[BROWSER_PRESET]), `preset '${BROWSER_PRESET}'`);
      withMaxSteps(cfg, steps);
      return trainOnnx(cfg);
    });
  const stepsOf = (q: unknown) => num(q as Query, 'steps', { int: true, min: 10, max: MAX_STEPS }) ?? 300;

  app.get('/api/train/onnx', async (req) => {
    const e = await exportFor(stepsOf(req.query));
    return { ...e.manifest, preset: BROWSER_PRESET, bytes: Object.fromEntries([...e.files].map(([f, b]) => [f, b.length])) };
  });
  app.get('/api/train/onnx/:file', async (req, reply) => {
    const file = (req.params as { file: string }).file;
    const e = await exportFor(stepsOf(req.query));
    const b = e.files.get(file);
    if (!b) throw new HttpError(404, `the training export has no file '${file}'; files: ${[...e.files.keys()].join(', ')}`);
    return reply.type('application/octet-stream').send(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  });

  // emoji to train on: n images of the train (or val) split, a seeded pick, decoded at `size`
  app.get('/api/train/data', async (req, reply) => {
    const q = req.query as Query;
    const split = q.split ?? 'train';
    if (split !== 'train' && split !== 'val') throw new HttpError(400, `'split' must be train or val, got ${JSON.stringify(split)}`);
    const n = num(q, 'n', { int: true, min: 1, max: MAX_IMAGES }) ?? 256;
    const size = num(q, 'size', { int: true, min: 8, max: 64 }) ?? 32;
    const seed = num(q, 'seed', { int: true, min: 0, max: 2 ** 31 - 1 }) ?? 0;
    if (!o.emoji) throw emojiMissing('training on emoji', 'or train on your own images: pick them in the Train view');
    const bytes = await once(`train-data:${split}:${n}:${size}:${seed}`, async () => {
      const ds = await emojiDataset({ set: 'google' });
      const s = splitDataset(ds.items, { valFraction: 0.05 });
      const pool = new Rng(seed).shuffle(split === 'train' ? [...s.trainIndices] : [...s.valIndices]);
      return (await cacheDataset(pool.slice(0, n).map((i) => ds.items[i]!), size)).data; // uint8 [n, 3, size, size]
    }).catch((e: unknown) => {
      // the images are there but unreadable (an incomplete package): say so, not "internal error"
      if (e instanceof QueueFullError || e instanceof HttpError) throw e;
      throw new HttpError(503, `cannot read the emoji images: ${(e as Error).message}`);
    });
    const count = bytes.length / (3 * size * size);
    return reply.type('application/octet-stream').header('x-shape', `${count}x3x${size}x${size}`).send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });
}
