// Datasets for training and demos: the npm-shipped emoji sets (Google / Twitter, 10
// categories), folders of images, a deterministic hash-based train/val split, a seedable
// RNG, a uint8 decode cache (optionally persisted to disk) and a resumable BatchLoader that
// crops/flips batches out of that cache. Image decoding goes through io/image (sharp).

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { HostTensor } from '../tensor.ts';
import { listImages, loadImageU8, type U8Tensor } from './image.ts';
import { writeFileAtomic } from './atomic.ts';

import { hashString, Rng } from './rng.ts';
export { hashString, Rng };

// ---------------------------------------------------------------------------------------
// Items and datasets

export interface DatasetItem {
  /** Unique, stable identifier (used for splitting and cache fingerprints). */
  key: string;
  /** Image file. */
  path: string;
  /** Class index into the dataset's `classes`. */
  label: number;
  /** Items sharing a group always land in the same split (default: the key). */
  group?: string;
}

export interface Dataset<T extends DatasetItem = DatasetItem> {
  items: T[];
  /** Class names; `label` indexes this list. */
  classes: string[];
}

export type EmojiSet = 'google' | 'twitter';

export interface EmojiItem extends DatasetItem {
  /** short_name, with `::skin-tone-N` suffixes for skin-tone variants. */
  name: string;
  category: string;
  categoryIndex: number;
  set: EmojiSet;
  /** Unified code point sequence, lower case (e.g. "1f385-1f3fb"). */
  unified: string;
}

export interface EmojiDataset extends Dataset<EmojiItem> {
  /** Sorted category names (10); same as `classes`. */
  categories: string[];
  /** Requested training resolution; the shipped PNGs are 64×64 and are resized on decode. */
  size: 64 | 32 | 16;
  /** Horizontal flips are off by default for emoji: many are not mirror-symmetric (text, arrows, flags). */
  flip: false;
}

export interface EmojiOptions {
  set?: EmojiSet | 'both';
  size?: 64 | 32 | 16;
  /** Include skin-tone variants (default true: 1,911 base + 1,875 variants = 3,786 per set). */
  skinTones?: boolean;
}

interface EmojiJsonVariant {
  unified: string;
  image: string;
  [k: string]: unknown;
}

interface EmojiJsonEntry {
  unified: string;
  image: string;
  short_name: string;
  category: string;
  sort_order: number;
  skin_variations?: Record<string, EmojiJsonVariant>;
  [k: string]: unknown;
}

const SKIN_TONE: Record<string, number> = { '1F3FB': 2, '1F3FC': 3, '1F3FD': 4, '1F3FE': 5, '1F3FF': 6 };

/** Directory of an installed emoji-datasource-<set> package. */
export function emojiPackageDir(set: EmojiSet): string {
  const pkg = `emoji-datasource-${set}`;
  try {
    return path.dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`));
  } catch {
    throw new Error(`emojiDataset: package ${pkg} is not installed (npm i ${pkg}@16)`);
  }
}

function readEmojiJson(dir: string): EmojiJsonEntry[] {
  const file = path.join(dir, 'emoji.json');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as EmojiJsonEntry[];
  } catch (err) {
    throw new Error(`emojiDataset: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The emoji images shipped by emoji-datasource-google/-twitter (64×64 RGBA PNGs under
 * img/<set>/64/; the packages ship no other per-image sizes, so 32/16 are resized on decode).
 * Only entries with `has_img_<set>` are used. Labels are indices into the sorted category
 * list. Keys are `<set>/<unified>`; `group` is the base emoji, so both sets and all skin
 * tones of one emoji fall into the same split.
 */
export async function emojiDataset(opts: EmojiOptions = {}): Promise<EmojiDataset> {
  const size = opts.size ?? 64;
  if (size !== 64 && size !== 32 && size !== 16) throw new Error(`emojiDataset: size must be 64, 32 or 16, got ${size}`);
  const which = opts.set ?? 'google';
  if (which !== 'google' && which !== 'twitter' && which !== 'both') {
    throw new Error(`emojiDataset: set must be 'google', 'twitter' or 'both', got '${String(which)}'`);
  }
  const sets: EmojiSet[] = which === 'both' ? ['google', 'twitter'] : [which];
  const skinTones = opts.skinTones ?? true;
  type Raw = Omit<EmojiItem, 'label' | 'categoryIndex'>;
  const raw: Raw[] = [];
  for (const set of sets) {
    const dir = emojiPackageDir(set);
    const imgDir = path.join(dir, 'img', set, '64');
    if (!fs.existsSync(imgDir)) throw new Error(`emojiDataset: ${imgDir} not found (is emoji-datasource-${set} complete?)`);
    const has = `has_img_${set}`;
    const entries = readEmojiJson(dir).slice().sort((a, b) => a.sort_order - b.sort_order);
    for (const e of entries) {
      const group = e.unified.toLowerCase();
      if (e[has] === true) {
        raw.push({ key: `${set}/${group}`, name: e.short_name, category: e.category, set, unified: group, group, path: path.join(imgDir, e.image) });
      }
      if (!skinTones || !e.skin_variations) continue;
      for (const [tones, v] of Object.entries(e.skin_variations)) {
        if (v[has] !== true) continue;
        const suffix = tones
          .split('-')
          .map((t) => `::skin-tone-${SKIN_TONE[t.toUpperCase()] ?? t.toLowerCase()}`)
          .join('');
        const unified = v.unified.toLowerCase();
        raw.push({ key: `${set}/${unified}`, name: e.short_name + suffix, category: e.category, set, unified, group, path: path.join(imgDir, v.image) });
      }
    }
  }
  const categories = [...new Set(raw.map((r) => r.category))].sort();
  const index = new Map(categories.map((c, i) => [c, i]));
  const items = raw.map((r) => {
    const categoryIndex = index.get(r.category)!;
    return { ...r, categoryIndex, label: categoryIndex };
  });
  return { items, classes: categories, categories, size, flip: false };
}

/**
 * Every png/jpg/jpeg/webp under `dir`. If images sit in first-level subfolders, each
 * subfolder is a class (sorted names; images directly in `dir` then form class '.');
 * otherwise every label is 0 and `classes` is ['.'].
 */
export async function folderDataset(dir: string): Promise<Dataset> {
  const files = await listImages(dir);
  if (files.length === 0) throw new Error(`folderDataset: no png/jpg/jpeg/webp images under ${dir}`);
  const rels = files.map((f) => path.relative(dir, f).split(path.sep).join('/'));
  const classOf = (r: string) => (r.includes('/') ? r.slice(0, r.indexOf('/')) : '.');
  const classes = [...new Set(rels.map(classOf))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const index = new Map(classes.map((c, i) => [c, i]));
  const items = files.map((f, i) => ({ key: rels[i], path: f, label: index.get(classOf(rels[i]))! }));
  return { items, classes };
}

// ---------------------------------------------------------------------------------------
// Deterministic split

export interface SplitOptions {
  /** Fraction of groups held out for validation (default 0.05). */
  valFraction?: number;
  /** Changes the split without changing the keys (default ''). */
  salt?: string;
}

export interface Split<T> {
  train: T[];
  val: T[];
  trainIndices: number[];
  valIndices: number[];
}

/** True when the item's group hashes into the validation fraction. */
export function isValKey(groupKey: string, valFraction = 0.05, salt = ''): boolean {
  return hashString(salt + '\u0000' + groupKey) / 4294967296 < valFraction;
}

/**
 * Train/val split by a hash of each item's `group ?? key` — no RNG, so it is stable across
 * runs, machines and dataset growth (adding items never moves existing ones).
 */
export function splitDataset<T extends DatasetItem>(items: readonly T[], opts: SplitOptions = {}): Split<T> {
  const frac = opts.valFraction ?? 0.05;
  if (!(frac >= 0 && frac <= 1)) throw new Error(`splitDataset: valFraction must be in [0, 1], got ${frac}`);
  const out: Split<T> = { train: [], val: [], trainIndices: [], valIndices: [] };
  items.forEach((it, i) => {
    if (isValKey(it.group ?? it.key, frac, opts.salt ?? '')) {
      out.val.push(it);
      out.valIndices.push(i);
    } else {
      out.train.push(it);
      out.trainIndices.push(i);
    }
  });
  return out;
}

// ---------------------------------------------------------------------------------------
// Decode cache: uint8 [N, 3, S, S], optionally persisted.
//
// File format (little endian): 8-byte magic "LKIMGC01", u64 header byte length, UTF-8 JSON
// header { version, shape, fingerprint, keys } padded with spaces so pixel data starts at a
// multiple of 8, then N·3·S·S bytes of planar pixels.

const CACHE_MAGIC = 'LKIMGC01';

export interface CacheHeader {
  version: 1;
  shape: [number, number, number, number];
  fingerprint: string;
  keys: string[];
}

export interface CacheOptions {
  /** Persist to / load from this file; a stale or unreadable file is rebuilt. */
  cachePath?: string;
  /** Parallel decodes (default 2 × CPUs, at most 16). */
  concurrency?: number;
  /** Decode progress; not called when the cache file is used. */
  onProgress?: (done: number, total: number) => void;
}

/** sha256 over the size and each item's key, path, file size and mtime. */
export async function cacheFingerprint(items: readonly DatasetItem[], size: number): Promise<string> {
  const h = createHash('sha256');
  h.update(`latentkit-image-cache v1 size=${size} n=${items.length}\n`);
  const stats = await mapPool(items, 32, (it) => fsp.stat(it.path).catch(() => undefined));
  items.forEach((it, i) => {
    const st = stats[i];
    h.update(`${it.key}\t${it.path}\t${st ? `${st.size}:${Math.floor(st.mtimeMs)}` : 'missing'}\n`);
  });
  return h.digest('hex');
}

/** Write a cache file atomically. */
export async function writeImageCache(file: string, images: U8Tensor, fingerprint: string, keys: readonly string[]): Promise<void> {
  const [n, c, h, w] = images.shape;
  const header: CacheHeader = { version: 1, shape: [n, c, h, w], fingerprint, keys: [...keys] };
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil((16 + json.length) / 8) * 8 - 16;
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const out = new Uint8Array(16 + json.length + images.data.length);
  out.set(Buffer.from(CACHE_MAGIC, 'ascii'), 0);
  new DataView(out.buffer).setBigUint64(8, BigInt(json.length), true);
  out.set(json, 16);
  out.set(images.data, 16 + json.length);
  await writeFileAtomic(file, out);
}

/** Read a cache file; throws a one-line error naming the file if it is malformed. */
export async function readImageCache(file: string): Promise<{ header: CacheHeader; images: U8Tensor }> {
  const buf = await fsp.readFile(file);
  const bad = (why: string) => new Error(`readImageCache: ${file} is not a valid image cache (${why})`);
  if (buf.length < 16 || buf.toString('ascii', 0, 8) !== CACHE_MAGIC) throw bad('bad magic');
  const hlen = Number(buf.readBigUInt64LE(8));
  if (16 + hlen > buf.length) throw bad('truncated header');
  let header: CacheHeader;
  try {
    header = JSON.parse(buf.toString('utf8', 16, 16 + hlen)) as CacheHeader;
  } catch {
    throw bad('header is not JSON');
  }
  if (header.version !== 1 || !Array.isArray(header.shape) || header.shape.length !== 4) throw bad('unsupported header');
  const n = header.shape.reduce((a, b) => a * b, 1);
  if (buf.length !== 16 + hlen + n) throw bad(`expected ${n} pixel bytes, found ${buf.length - 16 - hlen}`);
  // A view, not a copy: the file buffer is large and owned by us.
  const data = new Uint8Array(buf.buffer, buf.byteOffset + 16 + hlen, n);
  return { header, images: new HostTensor('uint8', header.shape, data) };
}

async function mapPool<T, R>(items: readonly T[], concurrency: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  return out;
}

/**
 * Decode every item once to uint8 [N, 3, size, size] (shorter side resized to `size`, center
 * crop, alpha over white). With `cachePath`, a matching cache file is loaded instead of
 * decoding, and a freshly decoded cache is written there (atomically).
 */
export async function cacheDataset(items: readonly DatasetItem[], size: number, opts: CacheOptions = {}): Promise<U8Tensor> {
  if (!Number.isInteger(size) || size <= 0) throw new Error(`cacheDataset: size must be a positive integer, got ${size}`);
  if (items.length === 0) throw new Error('cacheDataset: no items');
  const fingerprint = opts.cachePath ? await cacheFingerprint(items, size) : '';
  if (opts.cachePath && fs.existsSync(opts.cachePath)) {
    try {
      const { header, images } = await readImageCache(opts.cachePath);
      const [n, c, h, w] = header.shape;
      if (header.fingerprint === fingerprint && n === items.length && c === 3 && h === size && w === size) return images;
    } catch {
      // unreadable or stale: rebuild below
    }
  }
  const per = 3 * size * size;
  const data = new Uint8Array(items.length * per);
  let done = 0;
  const concurrency = opts.concurrency ?? Math.min(16, 2 * availableParallelism());
  await mapPool(items, concurrency, async (it, i) => {
    const im = await loadImageU8(it.path, { size });
    data.set(im.data, i * per);
    done++;
    opts.onProgress?.(done, items.length);
  });
  const images = new HostTensor('uint8', [items.length, 3, size, size], data);
  if (opts.cachePath) await writeImageCache(opts.cachePath, images, fingerprint, items.map((it) => it.key));
  return images;
}

// ---------------------------------------------------------------------------------------
// Batches

export interface BatchLoaderOptions {
  /** Decoded images, uint8 [N, C, S, S] (from cacheDataset: C = 3; sketches: C = 1). */
  images: U8Tensor;
  /** Per-row labels (default all 0). */
  labels?: ArrayLike<number>;
  /** Per-row keys (default the row index). */
  keys?: readonly string[];
  /** Rows to draw from, e.g. a split's trainIndices (default all rows). */
  indices?: readonly number[];
  batchSize: number;
  /** Output size C ≤ S (default S). Random crop when augmenting, center crop otherwise. */
  crop?: number;
  /** Random horizontal flips (default false; turn on for folders of natural images). */
  flip?: boolean;
  /** Random crops and flips (default true); false gives center crops, no flips (eval). */
  augment?: boolean;
  /** Reshuffle each epoch (default true). */
  shuffle?: boolean;
  /** Drop the last incomplete batch of each epoch (default true). */
  dropLast?: boolean;
  seed?: number;
}

export interface Batch {
  /** float32 [B, channels, C, C] in [-1, 1]. */
  x: HostTensor<'float32'>;
  labels: Int32Array;
  keys: string[];
  /** Rows of `images` used. */
  rows: Int32Array;
  /** Epoch and position (in items) this batch was drawn at. */
  epoch: number;
  position: number;
}

/** Everything needed to continue exactly where a loader stopped (JSON-serializable). */
export interface LoaderState {
  seed: number;
  epoch: number;
  position: number;
  /** Augmentation stream (Rng.state()). */
  rng: number[];
  /** Rows in the loader, to catch resuming over a different dataset. */
  count: number;
}

const U8_TO_FLOAT = Float32Array.from({ length: 256 }, (_, i) => i / 127.5 - 1);

/**
 * Infinite, epoch-based batches from a uint8 image cache. The epoch's order is a pure
 * function of (seed, epoch); crops/flips come from an Rng whose state is part of `state()`,
 * so `setState(state())` on a fresh loader reproduces the following batches exactly.
 */
export class BatchLoader implements Iterable<Batch> {
  private readonly images: U8Tensor;
  private readonly labels: Int32Array;
  private readonly keys: readonly string[] | undefined;
  private readonly rows: number[];
  private readonly batchSize: number;
  private readonly crop: number;
  private readonly flip: boolean;
  private readonly augment: boolean;
  private readonly shuffle: boolean;
  private readonly dropLast: boolean;
  private readonly seed: number;
  private rng: Rng;
  private epochNo = 0;
  private pos = 0;
  private order: number[] = [];
  private orderEpoch = -1;

  constructor(opts: BatchLoaderOptions) {
    const s = opts.images.shape;
    if (s.length !== 4 || s[1]! < 1 || s[2] !== s[3]) {
      throw new Error(`BatchLoader: images must be uint8 [N, C, S, S], got [${s.join(', ')}]`);
    }
    const [n, , size] = s;
    this.images = opts.images;
    this.rows = opts.indices ? [...opts.indices] : Array.from({ length: n }, (_, i) => i);
    for (const r of this.rows) if (!Number.isInteger(r) || r < 0 || r >= n) throw new Error(`BatchLoader: index ${r} out of range 0..${n - 1}`);
    if (opts.labels && opts.labels.length !== n) throw new Error(`BatchLoader: ${opts.labels.length} labels for ${n} images`);
    if (opts.keys && opts.keys.length !== n) throw new Error(`BatchLoader: ${opts.keys.length} keys for ${n} images`);
    this.labels = Int32Array.from(opts.labels ?? new Int32Array(n));
    this.keys = opts.keys;
    this.batchSize = opts.batchSize;
    if (!Number.isInteger(this.batchSize) || this.batchSize <= 0) throw new Error(`BatchLoader: batchSize must be a positive integer, got ${opts.batchSize}`);
    this.crop = opts.crop ?? size;
    if (!Number.isInteger(this.crop) || this.crop <= 0 || this.crop > size) throw new Error(`BatchLoader: crop ${opts.crop} must be an integer in 1..${size}`);
    this.flip = opts.flip ?? false;
    this.augment = opts.augment ?? true;
    this.shuffle = opts.shuffle ?? true;
    this.dropLast = opts.dropLast ?? true;
    this.seed = (opts.seed ?? 0) >>> 0;
    if (this.rows.length === 0) throw new Error('BatchLoader: no rows to load');
    if (this.dropLast && this.rows.length < this.batchSize) {
      throw new Error(`BatchLoader: ${this.rows.length} images is fewer than one batch of ${this.batchSize} (use dropLast: false)`);
    }
    this.rng = new Rng(`augment:${this.seed}`);
  }

  get epoch(): number {
    return this.epochNo;
  }

  /** Items consumed so far in the current epoch. */
  get position(): number {
    return this.pos;
  }

  get length(): number {
    return this.rows.length;
  }

  get batchesPerEpoch(): number {
    return this.dropLast ? Math.floor(this.rows.length / this.batchSize) : Math.ceil(this.rows.length / this.batchSize);
  }

  private orderFor(epoch: number): number[] {
    if (this.orderEpoch !== epoch) {
      this.order = [...this.rows];
      if (this.shuffle) new Rng(`order:${this.seed}:${epoch}`).shuffle(this.order);
      this.orderEpoch = epoch;
    }
    return this.order;
  }

  next(): Batch {
    const n = this.rows.length;
    if (this.pos >= n || (this.dropLast && this.pos + this.batchSize > n)) {
      this.epochNo++;
      this.pos = 0;
    }
    const order = this.orderFor(this.epochNo);
    const b = Math.min(this.batchSize, n - this.pos);
    const epoch = this.epochNo;
    const position = this.pos;
    const rows = Int32Array.from(order.slice(this.pos, this.pos + b));
    this.pos += b;

    const size = this.images.shape[2];
    const c = this.crop;
    const src = this.images.data;
    const ch = this.images.shape[1];
    const x = new Float32Array(b * ch * c * c);
    const labels = new Int32Array(b);
    const keys: string[] = [];
    const centre = (size - c) >> 1;
    for (let i = 0; i < b; i++) {
      const r = rows[i];
      labels[i] = this.labels[r];
      keys.push(this.keys ? this.keys[r] : String(r));
      const y0 = this.augment ? this.rng.int(size - c + 1) : centre;
      const x0 = this.augment ? this.rng.int(size - c + 1) : centre;
      const flip = this.augment && this.flip && this.rng.next() < 0.5;
      for (let k = 0; k < ch; k++) {
        const srcPlane = (r * ch + k) * size * size;
        const dstPlane = (i * ch + k) * c * c;
        for (let y = 0; y < c; y++) {
          const s = srcPlane + (y0 + y) * size + x0;
          const d = dstPlane + y * c;
          if (flip) for (let xx = 0; xx < c; xx++) x[d + xx] = U8_TO_FLOAT[src[s + c - 1 - xx]];
          else for (let xx = 0; xx < c; xx++) x[d + xx] = U8_TO_FLOAT[src[s + xx]];
        }
      }
    }
    return { x: new HostTensor('float32', [b, ch, c, c], x), labels, keys, rows, epoch, position };
  }

  state(): LoaderState {
    return { seed: this.seed, epoch: this.epochNo, position: this.pos, rng: this.rng.state(), count: this.rows.length };
  }

  setState(st: LoaderState): void {
    if (st.seed !== this.seed) throw new Error(`BatchLoader.setState: state has seed ${st.seed}, loader has ${this.seed}`);
    if (st.count !== this.rows.length) throw new Error(`BatchLoader.setState: state is for ${st.count} images, loader has ${this.rows.length}`);
    if (!Number.isInteger(st.epoch) || st.epoch < 0 || !Number.isInteger(st.position) || st.position < 0 || st.position > st.count) {
      throw new Error(`BatchLoader.setState: bad epoch/position ${st.epoch}/${st.position}`);
    }
    this.rng.setState(st.rng);
    this.epochNo = st.epoch;
    this.pos = st.position;
  }

  *[Symbol.iterator](): Iterator<Batch> {
    for (;;) yield this.next();
  }
}
