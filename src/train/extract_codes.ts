// Encode a dataset once into a code set (io/codes.ts): the image codes of every image (and of
// its horizontal flip, as augmentation), its class label, its split, and — for conditioned
// models — the codes of its condition image (its sketch, or a paired image from a folder)
// encoded by the condition's own VQGAN.
import fs from 'node:fs';
import path from 'node:path';
import { HostTensor } from '../tensor.ts';
import type { U8Tensor } from '../io/image.ts';
import { loadImageU8 } from '../io/image.ts';
import { sketchBatch } from '../io/sketch.ts';
import type { VQGAN } from '../models/vqgan/load.ts';
import type { CodeSet } from '../io/codes.ts';
import { loadTrainingData } from './vqgan_run.ts';

export interface ExtractOptions {
  model: VQGAN;
  modelPath: string;
  data: string;
  size: number;
  flip: boolean;
  /** 'sketch' (derived from each image) or a folder of condition images paired by relative path. */
  cond?: { source: string; model: VQGAN; modelPath: string };
  batch?: number;
  valFraction?: number;
  onProgress?: (done: number, total: number, what: string) => void;
}

/** Horizontal flips of a uint8 batch [N, C, S, S]. */
export function flipBatch(images: U8Tensor): U8Tensor {
  const [n, c, h, w] = images.shape as [number, number, number, number];
  const out = new Uint8Array(images.data.length);
  for (let p = 0; p < n * c * h; p++) for (let x = 0; x < w; x++) out[p * w + x] = images.data[p * w + w - 1 - x]!;
  return new HostTensor('uint8', [n, c, h, w], out);
}

/** Encode a uint8 batch [N, C, S, S] in chunks → int32 codes [N, h, w]. */
async function encodeAll(model: VQGAN, images: U8Tensor, batch: number, progress: (d: number) => void): Promise<{ codes: Int32Array; h: number; w: number }> {
  const [n, c, s] = images.shape as [number, number, number];
  const want = model.config.ddconfig.in_channels;
  if (c !== want) throw new Error(`the images have ${c} channel(s) but the VQGAN takes ${want}`);
  const per = c * s * s;
  let out: Int32Array | null = null;
  let h = 0;
  let w = 0;
  for (let i = 0; i < n; i += batch) {
    const b = Math.min(batch, n - i);
    const x = HostTensor.float32([b, c, s, s]);
    for (let j = 0; j < b * per; j++) x.data[j] = images.data[i * per + j]! / 127.5 - 1;
    const { indices } = await model.encode(x);
    [, h, w] = indices.shape as [number, number, number];
    out ??= new Int32Array(n * h * w);
    const idx = indices.data as BigInt64Array;
    for (let j = 0; j < idx.length; j++) out[i * h * w + j] = Number(idx[j]);
    progress(i + b);
  }
  return { codes: out!, h, w };
}

/** Interleave views: [V][N, L] → [N, V, L]. */
function byRow(views: Int32Array[], n: number, l: number): Int32Array {
  const out = new Int32Array(n * views.length * l);
  for (let i = 0; i < n; i++) views.forEach((v, k) => out.set(v.subarray(i * l, (i + 1) * l), (i * views.length + k) * l));
  return out;
}

export async function extractCodes(o: ExtractOptions): Promise<CodeSet> {
  const batch = o.batch ?? 64;
  const d = await loadTrainingData(o.data, o.size, o.valFraction ?? 0.05, (k, t) => o.onProgress?.(k, t, 'decoding images'));
  const n = d.items.length;
  const views = o.flip ? [d.images, flipBatch(d.images)] : [d.images];
  const enc: Int32Array[] = [];
  let h = 0;
  let w = 0;
  for (const [k, v] of views.entries()) {
    const r = await encodeAll(o.model, v, batch, (i) => o.onProgress?.(i, n, k ? 'encoding flipped images' : 'encoding images'));
    enc.push(r.codes);
    [h, w] = [r.h, r.w];
  }
  let cond: HostTensor<'int32'> | null = null;
  if (o.cond) {
    let condViews: U8Tensor[];
    if (o.cond.source === 'sketch') condViews = views.map((v) => sketchBatch(v));
    else {
      const dir = o.cond.source;
      if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`--cond must be 'sketch' or a folder of condition images paired with --data by relative path; ${dir} is neither`);
      if (d.items.some((it) => !fs.existsSync(path.join(dir, it.key)))) {
        const miss = d.items.find((it) => !fs.existsSync(path.join(dir, it.key)))!;
        throw new Error(`condition folder ${dir} has no ${miss.key} (each image under --data needs a condition image at the same relative path)`);
      }
      const ch = o.cond.model.config.ddconfig.in_channels;
      const per = ch * o.size * o.size;
      const data = new Uint8Array(n * per);
      for (let i = 0; i < n; i++) {
        const im = await loadImageU8(path.join(dir, d.items[i]!.key), { size: o.size });
        // 1-channel conditions (depth, sketches) take the first plane of the grey-expanded image
        data.set(ch === 3 ? im.data : im.data.subarray(0, per), i * per);
        o.onProgress?.(i + 1, n, 'decoding condition images');
      }
      const base = new HostTensor('uint8', [n, ch, o.size, o.size], data);
      condViews = o.flip ? [base, flipBatch(base)] : [base];
    }
    const cenc: Int32Array[] = [];
    let hc = 0;
    let wc = 0;
    for (const [k, v] of condViews.entries()) {
      const r = await encodeAll(o.cond.model, v, batch, (i) => o.onProgress?.(i, n, k ? 'encoding flipped conditions' : 'encoding conditions'));
      cenc.push(r.codes);
      [hc, wc] = [r.h, r.w];
    }
    cond = new HostTensor('int32', [n, cenc.length, hc, wc], byRow(cenc, n, hc * wc));
  }
  const val = new Uint8Array(n);
  for (const i of d.valIdx) val[i] = 1;
  return {
    codes: new HostTensor('int32', [n, enc.length, h, w], byRow(enc, n, h * w)),
    cond,
    labels: Int32Array.from(d.items, (it) => it.label),
    val,
    classes: d.classes,
    keys: d.items.map((it) => it.key),
    nCodes: o.model.codebookSize,
    condCodes: o.cond ? o.cond.model.codebookSize : 0,
    info: { data: o.data, model: path.resolve(o.modelPath), size: o.size, ...(o.cond ? { cond: o.cond.source, condModel: path.resolve(o.cond.modelPath) } : {}) },
  };
}
