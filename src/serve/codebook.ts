// The page's codebook view: every codebook entry decoded as a tile (a t×t code grid filled
// with that one code, so the tile shows the texture the code stands for rather than one
// border-dominated cell), and how often each entry is used over a dataset.
import { VQGAN } from '../models/vqgan/load.ts';
import { HostTensor } from '../tensor.ts';
import { encodePng, imageGrid, loadImageBatch } from '../io/image.ts';
import { emojiDataset, folderDataset } from '../io/datasets.ts';

export interface Atlas {
  png: Uint8Array;
  /** Entries, columns, tile edge in pixels, padding in pixels. */
  count: number;
  cols: number;
  tile: number;
  pad: number;
}

const BATCH = 64;

/** All entries as tiles of `codes`×`codes` equal codes, in a grid of `cols` columns (1 px gaps). */
export async function codebookAtlas(vq: VQGAN, codes = 2, cols = 32): Promise<Atlas> {
  const n = vq.codebookSize;
  const tiles: HostTensor[] = [];
  for (let k0 = 0; k0 < n; k0 += BATCH) {
    const b = Math.min(BATCH, n - k0);
    // fixed batch shape (one compiled program); the tail batch repeats the last code
    const idx = HostTensor.int64([BATCH, codes, codes], Array.from({ length: BATCH * codes * codes }, (_, i) => Math.min(k0 + Math.floor(i / (codes * codes)), n - 1)));
    const img = await vq.decode(idx);
    const [, c, h, w] = img.shape as [number, number, number, number];
    const data = img.data as Float32Array;
    for (let j = 0; j < b; j++) tiles.push(HostTensor.float32([c, h, w], data.slice(j * c * h * w, (j + 1) * c * h * w)));
  }
  const pad = 1;
  const grid = imageGrid(tiles, { cols: Math.min(cols, n), pad, padValue: 1 });
  return { png: await encodePng(grid), count: n, cols: Math.min(cols, n), tile: codes * vq.factor, pad };
}

export interface Usage {
  /** Times each entry was chosen, over all code cells of all images. */
  counts: number[];
  images: number;
  dataset: string;
  /** Entries used at least once, and the perplexity exp(H) of the usage distribution. */
  used: number;
  perplexity: number;
}

/**
 * Code usage over a dataset ('emoji' — the npm-shipped images — or a folder), encoded at the
 * model's resolution. At most `maxImages`, fewer for large models (a pixel budget of
 * maxImages·64²), spread evenly over the dataset.
 */
export async function codeUsage(vq: VQGAN, data = 'emoji', maxImages = 512): Promise<Usage> {
  const ds = data === 'emoji' ? await emojiDataset() : await folderDataset(data);
  const res = vq.config.ddconfig.resolution;
  const budget = Math.max(8, Math.min(maxImages, Math.floor((maxImages * 64 * 64) / (res * res))));
  const stride = Math.max(1, ds.items.length / budget);
  const files = Array.from({ length: Math.min(budget, ds.items.length) }, (_, i) => ds.items[Math.floor(i * stride)]!.path);
  const counts = new Array<number>(vq.codebookSize).fill(0);
  const B = 16;
  for (let i = 0; i < files.length; i += B) {
    const batch = files.slice(i, i + B);
    while (batch.length < B) batch.push(batch[batch.length - 1]!); // fixed batch shape; extras not counted
    const x = await loadImageBatch(batch, { size: res });
    const ch = vq.config.ddconfig.in_channels;
    const input = ch === 3 ? x : HostTensor.float32([B, 1, res, res], Float32Array.from({ length: B * res * res }, (_, j) => (x.data as Float32Array)[Math.floor(j / (res * res)) * 3 * res * res + (j % (res * res))]!));
    const { indices } = await vq.encode(input);
    const real = Math.min(B, files.length - i);
    const per = indices.size / B;
    const idx = indices.data as BigInt64Array;
    for (let j = 0; j < real * per; j++) counts[Number(idx[j])]!++;
  }
  const total = counts.reduce((a, b) => a + b, 0);
  let h = 0;
  for (const c of counts) if (c) h -= (c / total) * Math.log(c / total);
  return { counts, images: files.length, dataset: data === 'emoji' ? 'emoji (npm-shipped images)' : data.split('/').filter(Boolean).pop()!, used: counts.filter((c) => c > 0).length, perplexity: Math.exp(h) };
}
