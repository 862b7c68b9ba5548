// Canvas ⇄ model tensors for the page: images in as planar floats (white behind alpha,
// resized and centre-cropped like the server's ?size=), outputs back as PNG data URLs.
import { convertIndexedToRgb, decode as decodePng, hasPngSignature } from 'fast-png';
import { interleavedToPlanar, planarFloatToRgba, rgbaOverWhite, u8ToFloat } from '../src/browser.ts';

function canvas(w: number, h: number): [HTMLCanvasElement, CanvasRenderingContext2D] {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  return [c, c.getContext('2d', { willReadFrequently: true })!];
}

/**
 * An 8-bit PNG already at the model's size, decoded in JavaScript: a canvas stores alpha
 * premultiplied, which moves edge pixels of transparent images by 1 and flips near-tie codes
 * (3 of 256 on 😀); decoded here the pixels equal the server's exactly. null otherwise.
 */
function exactPng(bytes: Uint8Array, size: number): Uint8Array | null {
  if (!hasPngSignature(bytes)) return null;
  let png;
  try {
    png = decodePng(bytes);
  } catch {
    return null; // the browser's decoder has its say (and its error)
  }
  const { width: w, height: h } = png;
  if (w !== size || h !== size) return null;
  // palette images expand to RGB(A); else 8-bit grey, grey+alpha, RGB or RGBA without a tRNS colour key
  const indexed = png.palette !== undefined;
  if (!indexed && (png.depth !== 8 || png.transparency)) return null;
  const d = indexed ? convertIndexedToRgb(png) : png.data;
  const ch = indexed ? png.palette![0]!.length : png.channels;
  const rgba = new Uint8Array(4 * w * h);
  for (let i = 0, j = 0; i < w * h; i++, j += ch) {
    const grey = ch < 3;
    rgba[4 * i] = d[j]!;
    rgba[4 * i + 1] = d[grey ? j : j + 1]!;
    rgba[4 * i + 2] = d[grey ? j : j + 2]!;
    rgba[4 * i + 3] = ch === 2 || ch === 4 ? d[j + ch - 1]! : 255;
  }
  return rgbaOverWhite(rgba, h, w);
}

/** An image file → float [3, size, size] in [−1, 1]. */
export async function imageToPlanar(file: Blob, size: number): Promise<Float32Array> {
  return u8ToFloat(await imageToU8(file, size));
}

/** An image file → uint8 [3, size, size] (white behind alpha, centre-cropped, resized). */
export async function imageToU8(file: Blob, size: number): Promise<Uint8Array> {
  const exact = exactPng(new Uint8Array(await file.arrayBuffer()), size);
  if (exact) return exact;
  const bmp = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const [, ctx] = canvas(size, size);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, size, size);
  const s = Math.min(bmp.width, bmp.height);
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bmp, (bmp.width - s) / 2, (bmp.height - s) / 2, s, s, 0, 0, size, size);
  return interleavedToPlanar(ctx.getImageData(0, 0, size, size).data, size, size, 4);
}

/** A canvas's pixels → planar uint8 RGB [3, H, W]. */
export function canvasToRgb(c: HTMLCanvasElement): Uint8Array {
  const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
  return interleavedToPlanar(d, c.height, c.width, 4);
}

/** Planar float images [C, H, W] → one PNG data URL, tiled `cols` per row with 2 px white gaps. */
export function toDataUrl(images: Float32Array[], c: number, h: number, w: number, cols = 1): string {
  const rows = Math.ceil(images.length / cols);
  const pad = images.length > 1 ? 2 : 0;
  const [el, ctx] = canvas(cols * (w + pad) + pad, rows * (h + pad) + pad);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, el.width, el.height);
  images.forEach((img, i) => ctx.putImageData(new ImageData(planarFloatToRgba(img, c, h, w), w, h), pad + (i % cols) * (w + pad), pad + Math.floor(i / cols) * (h + pad)));
  return el.toDataURL('image/png');
}
