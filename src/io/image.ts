// Image codecs (the project's only sharp importer): decode PNG/JPEG/WebP/… into planar RGB
// HostTensors in [-1, 1] (x/127.5 − 1; alpha composited over white, grayscale expanded),
// encode them back (clamp((y+1)/2)·255, rounded), tile batches into grids, rasterize SVG.
// Files are read with fs (not sharp's path input) so errors name the file and sharp's
// file cache can never serve a stale copy of a file that was rewritten.

import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type SharpNs from 'sharp';
import { HostTensor } from '../tensor.ts';
import { writeFileAtomic } from './atomic.ts';
import { floatToU8, interleavedToPlanar as hwcToChwU8, u8ToFloat } from './pixels.ts';

export { floatToU8, u8ToFloat };

/** sharp, loaded on first use: its native module costs ~60 ms of start-up that `--help` or a sampling run need not pay. */
let sharpMod: typeof SharpNs | null = null;
async function getSharp(): Promise<typeof SharpNs> {
  return (sharpMod ??= (await import('sharp')).default);
}

/** Planar uint8 image data (raw 0..255 pixels). */
export type U8Tensor = HostTensor<'uint8'>;

export interface LoadImageOptions {
  /** Resize the shorter side to `size` (Lanczos-3), then center-crop to size×size. */
  size?: number;
  /** What transparency is laid over (default white; edit masks use black: transparent = keep). */
  background?: 'white' | 'black';
}

export type ImageFormat = 'png' | 'jpeg' | 'webp';

export interface EncodeOptions {
  /** JPEG/WebP quality 1..100 (default 95 / 90). Ignored for PNG. */
  quality?: number;
}

export interface GridOptions {
  /** Images per row (default ceil(sqrt(N))). */
  cols?: number;
  /** Pixels of padding between and around tiles (default 2). */
  pad?: number;
  /** Padding value in [-1, 1] (default 1 = white). */
  padValue?: number;
}

export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.webp'];

const WHITE = { r: 255, g: 255, b: 255 };

function oneLine(msg: string): string {
  return msg.replace(/\s*\n\s*/g, ' ').trim();
}

function checkSize(size: number | undefined, what: string): void {
  if (size !== undefined && (!Number.isInteger(size) || size <= 0)) {
    throw new Error(`${what}: size must be a positive integer, got ${size}`);
  }
}

async function readBytes(file: string): Promise<Buffer> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory' : oneLine((err as Error).message);
    throw new Error(`cannot read image ${file}: ${why}`, { cause: err });
  }
}

/** Decode to interleaved RGB uint8 (HWC), alpha over white, optional cover-resize. */
async function decodeRaw(bytes: Uint8Array, size: number | undefined, name: string, background: 'white' | 'black' = 'white') {
  const sharp = await getSharp();
  try {
    let img = sharp(bytes).autoOrient();
    if (size !== undefined) img = img.resize({ width: size, height: size, fit: 'cover', position: 'centre', kernel: 'lanczos3' });
    const { data, info } = await img
      .flatten({ background: background === 'black' ? { r: 0, g: 0, b: 0 } : WHITE })
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels after conversion, got ${info.channels}`);
    return { data, width: info.width, height: info.height };
  } catch (err) {
    throw new Error(`cannot decode image ${name}: ${oneLine((err as Error).message)}`, { cause: err });
  }
}

/** Decode encoded bytes to planar uint8 [3, H, W]. `name` is used in error messages. */
export async function decodeImageBytesU8(bytes: Uint8Array, opts: LoadImageOptions = {}, name = '<bytes>'): Promise<U8Tensor> {
  checkSize(opts.size, 'decodeImage');
  const { data, width, height } = await decodeRaw(bytes, opts.size, name, opts.background);
  return new HostTensor('uint8', [3, height, width], hwcToChwU8(data, height, width));
}

/** Decode encoded bytes to float32 [3, H, W] in [-1, 1]. */
export async function decodeImageBytes(bytes: Uint8Array, opts: LoadImageOptions = {}, name = '<bytes>'): Promise<HostTensor<'float32'>> {
  const u8 = await decodeImageBytesU8(bytes, opts, name);
  return new HostTensor('float32', u8.shape, u8ToFloat(u8.data));
}

/** Load an image file as planar uint8 [3, H, W] (alpha over white, grayscale expanded). */
export async function loadImageU8(file: string, opts: LoadImageOptions = {}): Promise<U8Tensor> {
  return decodeImageBytesU8(await readBytes(file), opts, file);
}

/** Load an image file as float32 [3, H, W] in [-1, 1]. */
export async function loadImage(file: string, opts: LoadImageOptions = {}): Promise<HostTensor<'float32'>> {
  return decodeImageBytes(await readBytes(file), opts, file);
}

/** Load several images into one float32 [N, 3, H, W]; all must share H×W (or pass `size`). */
export async function loadImageBatch(files: readonly string[], opts: LoadImageOptions = {}): Promise<HostTensor<'float32'>> {
  if (files.length === 0) throw new Error('loadImageBatch: no files given');
  const imgs = await Promise.all(files.map((f) => loadImageU8(f, opts)));
  const [, h, w] = imgs[0].shape;
  const out = new Float32Array(files.length * 3 * h * w);
  imgs.forEach((im, i) => {
    if (im.shape[1] !== h || im.shape[2] !== w) {
      throw new Error(
        `loadImageBatch: ${files[i]} is ${im.shape[2]}x${im.shape[1]} but ${files[0]} is ${w}x${h}; pass {size} to resize and crop`,
      );
    }
    u8ToFloat(im.data, out.subarray(i * 3 * h * w, (i + 1) * 3 * h * w));
  });
  return new HostTensor('float32', [files.length, 3, h, w], out);
}

/** Accept [C, H, W] or [1, C, H, W] with C ∈ {1, 3}; returns C, H, W. */
function imageDims(t: HostTensor, what: string): [number, number, number] {
  const s = t.shape;
  const dims = s.length === 4 && s[0] === 1 ? s.slice(1) : s;
  if (dims.length !== 3 || (dims[0] !== 1 && dims[0] !== 3) || t.dtype !== 'float32') {
    throw new Error(`${what}: expected a float32 [3,H,W] or [1,3,H,W] tensor, got ${t.dtype} [${s.join(', ')}]`);
  }
  return [dims[0], dims[1], dims[2]];
}

/** Encode a [-1, 1] image tensor ([C,H,W] or [1,C,H,W], C ∈ {1,3}) to PNG/JPEG/WebP bytes. */
export async function encodeImage(t: HostTensor, format: ImageFormat = 'png', opts: EncodeOptions = {}): Promise<Uint8Array> {
  const [c, h, w] = imageDims(t, 'encodeImage');
  const planar = floatToU8(t.data as Float32Array);
  const plane = h * w;
  const hwc = new Uint8Array(c * plane); // [H, W, C]
  for (let k = 0; k < c; k++) for (let i = 0; i < plane; i++) hwc[i * c + k] = planar[k * plane + i];
  const sharp = await getSharp();
  let img = sharp(hwc, { raw: { width: w, height: h, channels: c as 1 | 3 } });
  if (c === 1) img = img.toColourspace('b-w');
  if (format === 'png') img = img.png({ compressionLevel: 6 });
  else if (format === 'jpeg') img = img.jpeg({ quality: opts.quality ?? 95, chromaSubsampling: '4:4:4' });
  else if (format === 'webp') img = img.webp({ quality: opts.quality ?? 90 });
  else throw new Error(`encodeImage: unsupported format ${String(format)}`);
  const buf = await img.toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function encodePng(t: HostTensor): Promise<Uint8Array> {
  return encodeImage(t, 'png');
}

/** Output format from a file extension (.png, .jpg/.jpeg, .webp). */
export function formatForPath(file: string): ImageFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.png') return 'png';
  if (ext === '.jpg' || ext === '.jpeg') return 'jpeg';
  if (ext === '.webp') return 'webp';
  throw new Error(`cannot save image ${file}: unknown extension '${ext}' (use .png, .jpg, .jpeg or .webp)`);
}

/** Save [3,H,W] / [1,3,H,W] in [-1, 1] to a file (format by extension), atomically. */
export async function saveImage(file: string, t: HostTensor, opts: EncodeOptions = {}): Promise<void> {
  const bytes = await encodeImage(t, formatForPath(file), opts);
  await writeFileAtomic(file, bytes);
}

/** Rasterize an SVG document to PNG bytes (used by io/plot); scale 1 keeps its pixel size. */
export async function svgToPng(svg: string, scale = 1, opts: { keepAlpha?: boolean } = {}): Promise<Uint8Array> {
  const sharp = await getSharp();
  try {
    let img = sharp(Buffer.from(svg, 'utf8'), { density: 72 * scale });
    if (!opts.keepAlpha) img = img.flatten({ background: WHITE });
    const buf = await img.png().toBuffer();
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    throw new Error(`svgToPng: cannot rasterize SVG: ${oneLine((err as Error).message)}`, { cause: err });
  }
}

/**
 * Width and height read straight from a PNG, JPEG or WebP header (no codec), or null when
 * the bytes do not start like one. For limits checked before anything is decoded: a
 * 20000×20000 claim is refused whatever the rest of the file holds.
 */
export function headerSize(b: Uint8Array): { width: number; height: number; format: ImageFormat } | null {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const at = (i: number, s: string) => [...s].every((ch, k) => b[i + k] === ch.charCodeAt(0));
  if (b.length >= 24 && b[0] === 0x89 && at(1, 'PNG') && at(12, 'IHDR')) return { width: dv.getUint32(16), height: dv.getUint32(20), format: 'png' };
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    // walk the markers to the first start-of-frame (SOF0–SOF15 but DHT C4, JPG C8, DAC CC)
    let i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xff) return null;
      const m = b[i + 1]!;
      if (m === 0xff) {
        i++;
        continue;
      }
      if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
        i += 2;
        continue;
      }
      const len = dv.getUint16(i + 2);
      if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) return { width: dv.getUint16(i + 7), height: dv.getUint16(i + 5), format: 'jpeg' };
      i += 2 + len;
    }
    return null;
  }
  if (b.length >= 30 && at(0, 'RIFF') && at(8, 'WEBP')) {
    if (at(12, 'VP8X')) return { width: 1 + (b[24]! | (b[25]! << 8) | (b[26]! << 16)), height: 1 + (b[27]! | (b[28]! << 8) | (b[29]! << 16)), format: 'webp' };
    if (at(12, 'VP8 ')) return { width: dv.getUint16(26, true) & 0x3fff, height: dv.getUint16(28, true) & 0x3fff, format: 'webp' };
    if (at(12, 'VP8L')) {
      const bits = dv.getUint32(21, true);
      return { width: (bits & 0x3fff) + 1, height: ((bits >> 14) & 0x3fff) + 1, format: 'webp' };
    }
  }
  return null;
}

/** Width, height and format of encoded image bytes, without decoding pixels. */
export async function imageInfo(bytes: Uint8Array, name = '<bytes>'): Promise<{ width: number; height: number; format: string }> {
  const sharp = await getSharp();
  try {
    const m = await sharp(bytes).metadata();
    return { width: m.width ?? 0, height: m.height ?? 0, format: m.format ?? 'unknown' };
  } catch (err) {
    throw new Error(`cannot decode image ${name}: ${oneLine((err as Error).message)}`, { cause: err });
  }
}

/**
 * Tile images into one [C, GH, GW] grid, row-major, like torchvision's make_grid:
 * GH = rows·H + (rows+1)·pad, GW = cols·W + (cols+1)·pad.
 */
export function imageGrid(images: HostTensor | readonly HostTensor[], opts: GridOptions = {}): HostTensor<'float32'> {
  const tiles: Float32Array[] = [];
  let c = 0;
  let h = 0;
  let w = 0;
  const take = (data: Float32Array, dims: readonly number[], label: string) => {
    if (tiles.length === 0) [c, h, w] = dims;
    else if (dims[0] !== c || dims[1] !== h || dims[2] !== w) {
      throw new Error(`imageGrid: ${label} is [${dims.join(', ')}] but the first image is [${c}, ${h}, ${w}]`);
    }
    tiles.push(data);
  };
  if (Array.isArray(images)) {
    (images as readonly HostTensor[]).forEach((t, i) => {
      const dims = imageDims(t, 'imageGrid');
      take(t.data as Float32Array, dims, `image ${i}`);
    });
  } else {
    const t = images as HostTensor;
    if (t.dtype !== 'float32') throw new Error(`imageGrid: expected float32, got ${t.dtype}`);
    if (t.shape.length === 3) take(t.data as Float32Array, imageDims(t, 'imageGrid'), 'image 0');
    else if (t.shape.length === 4) {
      const [n, cc, hh, ww] = t.shape;
      if (cc !== 1 && cc !== 3) throw new Error(`imageGrid: expected [N,3,H,W], got [${t.shape.join(', ')}]`);
      const per = cc * hh * ww;
      for (let i = 0; i < n; i++) take((t.data as Float32Array).subarray(i * per, (i + 1) * per), [cc, hh, ww], `image ${i}`);
    } else throw new Error(`imageGrid: expected [N,3,H,W], got [${t.shape.join(', ')}]`);
  }
  const n = tiles.length;
  if (n === 0) throw new Error('imageGrid: no images');
  const cols = Math.max(1, Math.min(opts.cols ?? Math.ceil(Math.sqrt(n)), n));
  if (!Number.isInteger(cols)) throw new Error(`imageGrid: cols must be an integer, got ${opts.cols}`);
  const pad = opts.pad ?? 2;
  if (!Number.isInteger(pad) || pad < 0) throw new Error(`imageGrid: pad must be a non-negative integer, got ${pad}`);
  const rows = Math.ceil(n / cols);
  const gh = rows * h + (rows + 1) * pad;
  const gw = cols * w + (cols + 1) * pad;
  const out = new Float32Array(c * gh * gw).fill(opts.padValue ?? 1);
  for (let i = 0; i < n; i++) {
    const y0 = pad + Math.floor(i / cols) * (h + pad);
    const x0 = pad + (i % cols) * (w + pad);
    const src = tiles[i];
    for (let k = 0; k < c; k++) {
      for (let y = 0; y < h; y++) {
        const s = (k * h + y) * w;
        out.set(src.subarray(s, s + w), (k * gh + y0 + y) * gw + x0);
      }
    }
  }
  return new HostTensor('float32', [c, gh, gw], out);
}

/** imageGrid + saveImage. */
export async function saveGrid(file: string, images: HostTensor | readonly HostTensor[], opts: GridOptions & EncodeOptions = {}): Promise<void> {
  await saveImage(file, imageGrid(images, opts), opts);
}

/** All png/jpg/jpeg/webp files under `dir` (recursive, dot-files skipped), sorted by relative path. */
export async function listImages(dir: string): Promise<string[]> {
  const rel: string[] = [];
  const walk = async (sub: string): Promise<void> => {
    let entries;
    try {
      entries = await fsp.readdir(path.join(dir, sub), { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (sub === '') {
        const why = code === 'ENOENT' ? 'not found' : code === 'ENOTDIR' ? 'not a directory' : oneLine((err as Error).message);
        throw new Error(`listImages: cannot read directory ${dir}: ${why}`, { cause: err });
      }
      throw err;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const r = sub === '' ? e.name : `${sub}/${e.name}`;
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        const st = await fsp.stat(path.join(dir, r)).catch(() => undefined);
        isDir = st?.isDirectory() ?? false;
        isFile = st?.isFile() ?? false;
      }
      if (isDir) await walk(r);
      else if (isFile && IMAGE_EXTENSIONS.includes(path.extname(e.name).toLowerCase())) rel.push(r);
    }
  };
  await walk('');
  rel.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return rel.map((r) => path.join(dir, r));
}

export interface LabeledGridOptions extends GridOptions {
  /** A label left of each row. */
  rowLabels?: readonly string[];
  /** A label above each column. */
  colLabels?: readonly string[];
  /** Nearest-neighbour upscaling of the tiles (default 2, so 64² tiles are readable). */
  scale?: number;
  title?: string;
}

const escXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * imageGrid with row/column labels and an optional title, saved as PNG: the grid is
 * upscaled (nearest), embedded in an SVG next to the text and rasterized.
 */
export async function saveLabeledGrid(file: string, images: HostTensor | readonly HostTensor[], opts: LabeledGridOptions = {}): Promise<void> {
  const grid = imageGrid(images, opts);
  const scale = opts.scale ?? 2;
  const [c, gh, gw] = grid.shape as [number, number, number];
  const up = new Float32Array(c * gh * scale * gw * scale);
  for (let k = 0; k < c; k++) for (let y = 0; y < gh * scale; y++) for (let x = 0; x < gw * scale; x++) {
    up[(k * gh * scale + y) * gw * scale + x] = grid.data[(k * gh + Math.floor(y / scale)) * gw + Math.floor(x / scale)]!;
  }
  const png = await encodeImage(new HostTensor('float32', [c, gh * scale, gw * scale], up), 'png');
  const left = opts.rowLabels?.length ? 12 + 7 * Math.max(...opts.rowLabels.map((l) => l.length)) : 0;
  const top = (opts.title ? 28 : 0) + (opts.colLabels?.length ? 20 : 0);
  const W = Math.max(left + gw * scale, opts.title ? 16 + Math.ceil(opts.title.length * 8.2) : 0);
  const H = top + gh * scale;
  const x0 = left + Math.floor((W - left - gw * scale) / 2); // the grid, centred under a wide title
  const pad = (opts.pad ?? 2) * scale;
  const n = Array.isArray(images) ? images.length : (images as HostTensor).shape.length === 4 ? (images as HostTensor).shape[0]! : 1;
  const cols = Math.max(1, Math.min(opts.cols ?? Math.ceil(Math.sqrt(n)), n));
  const tileW = (gw * scale - pad) / cols;
  const rows = Math.ceil(n / cols);
  const tileH = (gh * scale - pad) / rows;
  const font = 'font-family="DejaVu Sans, Arial, sans-serif"';
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${W}" height="${H}"><rect width="${W}" height="${H}" fill="#fff"/>`];
  if (opts.title) parts.push(`<text x="${W / 2}" y="19" text-anchor="middle" font-size="15" ${font} fill="#222">${escXml(opts.title)}</text>`);
  opts.colLabels?.forEach((l, i) => parts.push(`<text x="${x0 + pad + tileW * (i + 0.5) - pad / 2}" y="${top - 6}" text-anchor="middle" font-size="12" ${font} fill="#333">${escXml(l)}</text>`));
  opts.rowLabels?.forEach((l, i) => parts.push(`<text x="${x0 - 6}" y="${top + pad + tileH * (i + 0.5)}" text-anchor="end" dominant-baseline="middle" font-size="12" ${font} fill="#333">${escXml(l)}</text>`));
  parts.push(`<image x="${x0}" y="${top}" width="${gw * scale}" height="${gh * scale}" xlink:href="data:image/png;base64,${Buffer.from(png).toString('base64')}"/></svg>`);
  await writeFileAtomic(file, await svgToPng(parts.join('')));
}
