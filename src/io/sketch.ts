// Sketches: clean black strokes on white, made the same way from a training image (edges)
// and from a person's drawing (its strokes), so the sketch-conditioned model sees one kind
// of input. Both end in the same normalisation: a binary stroke mask → a one-pixel skeleton
// (Zhang–Suen thinning) → specks removed → dilated to a fixed stroke width. Everything here
// is deterministic integer/float work on planar uint8 arrays (no codecs: io/image decodes).
import { HostTensor } from '../tensor.ts';
import type { U8Tensor } from './image.ts';

export interface SketchOptions {
  /** Stroke radius after dilation, in pixels at the output size (default 1: ~3 px strokes at 64²). */
  radius?: number;
  /** Edge threshold on the Sobel magnitude of [0, 1] colours (default 0.9). */
  threshold?: number;
  /** Connected stroke pieces smaller than this many skeleton pixels are dropped (default 3). */
  minPiece?: number;
}

const DEFAULTS: Required<SketchOptions> = { radius: 1, threshold: 0.9, minPiece: 3 };

/** Edges of an RGB image [3, H, W] → binary mask (1 = edge), max Sobel magnitude over channels. */
export function edgeMask(img: U8Tensor, threshold = DEFAULTS.threshold): Uint8Array {
  const [c, h, w] = img.shape as [number, number, number];
  const src = img.data;
  const mag = new Float32Array(h * w);
  const at = (k: number, y: number, x: number) => src[(k * h + Math.min(h - 1, Math.max(0, y))) * w + Math.min(w - 1, Math.max(0, x))]! / 255;
  for (let k = 0; k < c; k++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const gx = at(k, y - 1, x + 1) + 2 * at(k, y, x + 1) + at(k, y + 1, x + 1) - at(k, y - 1, x - 1) - 2 * at(k, y, x - 1) - at(k, y + 1, x - 1);
        const gy = at(k, y + 1, x - 1) + 2 * at(k, y + 1, x) + at(k, y + 1, x + 1) - at(k, y - 1, x - 1) - 2 * at(k, y - 1, x) - at(k, y - 1, x + 1);
        const m = Math.sqrt(gx * gx + gy * gy);
        if (m > mag[y * w + x]!) mag[y * w + x] = m;
      }
    }
  }
  const out = new Uint8Array(h * w);
  for (let i = 0; i < out.length; i++) out[i] = mag[i]! >= threshold ? 1 : 0;
  return out;
}

/** Zhang–Suen thinning of a binary mask (1 = foreground), in place; returns it. */
export function thin(m: Uint8Array, h: number, w: number): Uint8Array {
  const get = (y: number, x: number) => (y >= 0 && y < h && x >= 0 && x < w ? m[y * w + x]! : 0);
  const del: number[] = [];
  for (let changed = true; changed; ) {
    changed = false;
    for (let pass = 0; pass < 2; pass++) {
      del.length = 0;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          if (!m[y * w + x]) continue;
          // neighbours p2..p9 clockwise from north
          const p = [get(y - 1, x), get(y - 1, x + 1), get(y, x + 1), get(y + 1, x + 1), get(y + 1, x), get(y + 1, x - 1), get(y, x - 1), get(y - 1, x - 1)];
          const b = p.reduce((a, v) => a + v, 0);
          if (b < 2 || b > 6) continue;
          let a = 0;
          for (let i = 0; i < 8; i++) if (p[i] === 0 && p[(i + 1) % 8] === 1) a++;
          if (a !== 1) continue;
          const [p2, , p4, , p6, , p8] = p;
          if (pass === 0 ? p2! * p4! * p6! !== 0 || p4! * p6! * p8! !== 0 : p2! * p4! * p8! !== 0 || p2! * p6! * p8! !== 0) continue;
          del.push(y * w + x);
        }
      }
      for (const i of del) m[i] = 0;
      if (del.length) changed = true;
    }
  }
  return m;
}

/** Drop 8-connected pieces with fewer than `min` pixels, in place. */
export function dropSpecks(m: Uint8Array, h: number, w: number, min: number): Uint8Array {
  if (min <= 1) return m;
  const seen = new Uint8Array(h * w);
  const stack: number[] = [];
  const piece: number[] = [];
  for (let s = 0; s < m.length; s++) {
    if (!m[s] || seen[s]) continue;
    piece.length = 0;
    stack.push(s);
    seen[s] = 1;
    while (stack.length) {
      const i = stack.pop()!;
      piece.push(i);
      const y = Math.floor(i / w);
      const x = i % w;
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const yy = y + dy;
        const xx = x + dx;
        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
        const j = yy * w + xx;
        if (m[j] && !seen[j]) {
          seen[j] = 1;
          stack.push(j);
        }
      }
    }
    if (piece.length < min) for (const i of piece) m[i] = 0;
  }
  return m;
}

/** Disc dilation of a binary mask by `r` pixels. */
export function dilate(m: Uint8Array, h: number, w: number, r: number): Uint8Array {
  if (r <= 0) return m.slice();
  const out = new Uint8Array(h * w);
  const offs: [number, number][] = [];
  for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) if (dx * dx + dy * dy <= r * r + r) offs.push([dy, dx]);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!m[y * w + x]) continue;
      for (const [dy, dx] of offs) {
        const yy = y + dy;
        const xx = x + dx;
        if (yy >= 0 && yy < h && xx >= 0 && xx < w) out[yy * w + xx] = 1;
      }
    }
  }
  return out;
}

/** The shared tail: mask → skeleton → specks dropped → fixed-width strokes, as [1, H, W] (0 = ink, 255 = paper). */
export function strokesFromMask(mask: Uint8Array, h: number, w: number, o: SketchOptions = {}): U8Tensor {
  const opt = { ...DEFAULTS, ...o };
  const skel = dropSpecks(thin(mask.slice(), h, w), h, w, opt.minPiece);
  const d = dilate(skel, h, w, opt.radius);
  const out = new Uint8Array(h * w);
  for (let i = 0; i < out.length; i++) out[i] = d[i] ? 0 : 255;
  return new HostTensor('uint8', [1, h, w], out);
}

/** A training image (RGB [3, H, W], alpha already over white) → its sketch [1, H, W]. */
export function sketchFromImage(img: U8Tensor, o: SketchOptions = {}): U8Tensor {
  const [c, h, w] = img.shape as [number, number, number];
  if (img.shape.length !== 3 || (c !== 3 && c !== 1)) throw new Error(`sketchFromImage: expected uint8 [3, H, W], got [${img.shape.join(', ')}]`);
  return strokesFromMask(edgeMask(img, o.threshold), h, w, o);
}

/** Sketches of every image of a uint8 batch [N, 3, S, S] → [N, 1, S, S]. */
export function sketchBatch(images: U8Tensor, o: SketchOptions = {}): U8Tensor {
  const [n, c, h, w] = images.shape as [number, number, number, number];
  const out = new Uint8Array(n * h * w);
  for (let i = 0; i < n; i++) {
    const one = new HostTensor('uint8', [c, h, w], images.data.subarray(i * c * h * w, (i + 1) * c * h * w));
    out.set(sketchFromImage(one, o).data, i * h * w);
  }
  return new HostTensor('uint8', [n, 1, h, w], out);
}

export interface DrawingOptions extends SketchOptions {
  /** Output size (default 64). */
  size?: number;
  /**
   * Scale the drawing's bounding box to fill the canvas less `margin` pixels on each side,
   * centred (default true): a heart drawn small in a corner becomes a canvas-sized heart.
   */
  fit?: boolean;
  /** Margin in output pixels when fitting (default 3, about what emoji leave at 64²). */
  margin?: number;
}

/**
 * A person's drawing → the model's sketch input [1, size, size]. Input: RGB [3, H, W] of any
 * size, alpha already composited over white (io/image does that). Dark pixels (luminance
 * below half) are ink; the ink's box is fitted into the canvas, area-resampled, thresholded,
 * then thinned and redrawn at the training stroke width, so stroke width and canvas size
 * do not matter.
 */
export function normalizeDrawing(img: U8Tensor, o: DrawingOptions = {}): U8Tensor {
  const [c, h, w] = img.shape as [number, number, number];
  if (img.shape.length !== 3 || (c !== 3 && c !== 1)) throw new Error(`normalizeDrawing: expected uint8 [3, H, W], got [${img.shape.join(', ')}]`);
  const size = o.size ?? 64;
  const ink = new Float32Array(h * w);
  for (let i = 0; i < h * w; i++) {
    const lum = c === 3 ? 0.299 * img.data[i]! + 0.587 * img.data[h * w + i]! + 0.114 * img.data[2 * h * w + i]! : img.data[i]!;
    ink[i] = lum < 128 ? 1 : 0;
  }
  let y0 = h;
  let y1 = -1;
  let x0 = w;
  let x1 = -1;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (ink[y * w + x]) {
    y0 = Math.min(y0, y);
    y1 = Math.max(y1, y);
    x0 = Math.min(x0, x);
    x1 = Math.max(x1, x);
  }
  if (y1 < 0) throw new Error('the drawing has no strokes (no pixel darker than mid-grey)');
  // source window (square, in input pixels) mapped onto the output canvas
  let sx: number, sy: number, side: number, pad: number;
  if (o.fit ?? true) {
    const margin = o.margin ?? 3;
    const box = Math.max(y1 - y0 + 1, x1 - x0 + 1);
    side = (box * size) / Math.max(1, size - 2 * margin);
    sx = (x0 + x1 + 1) / 2 - side / 2;
    sy = (y0 + y1 + 1) / 2 - side / 2;
    pad = 0;
  } else {
    side = Math.max(h, w);
    sx = (w - side) / 2;
    sy = (h - side) / 2;
    pad = 0;
  }
  // area resampling: each output pixel averages the input pixels its square covers
  const out = new Uint8Array(size * size);
  const step = side / size;
  for (let oy = 0; oy < size; oy++) {
    for (let ox = 0; ox < size; ox++) {
      const ya = sy + oy * step;
      const xa = sx + ox * step;
      let sum = 0;
      let area = 0;
      for (let y = Math.floor(ya); y < Math.ceil(ya + step); y++) {
        const wy = Math.min(y + 1, ya + step) - Math.max(y, ya);
        if (wy <= 0) continue;
        for (let x = Math.floor(xa); x < Math.ceil(xa + step); x++) {
          const wx = Math.min(x + 1, xa + step) - Math.max(x, xa);
          if (wx <= 0) continue;
          const v = y >= 0 && y < h && x >= 0 && x < w ? ink[y * w + x]! : pad;
          sum += v * wx * wy;
          area += wx * wy;
        }
      }
      // a thin stroke covers little of a big output pixel: any real coverage counts as ink
      out[oy * size + ox] = area > 0 && sum / area >= Math.min(0.5, 0.5 / step + 0.05) ? 1 : 0;
    }
  }
  return strokesFromMask(out, size, size, o);
}

/** uint8 [1|3, H, W] sketch → float32 [1, H, W] in [−1, 1] (paper 1, ink −1). */
export function sketchToFloat(s: U8Tensor): HostTensor<'float32'> {
  const [, h, w] = s.shape as [number, number, number];
  const out = new Float32Array(h * w);
  for (let i = 0; i < h * w; i++) out[i] = s.data[i]! / 127.5 - 1;
  return HostTensor.float32([1, h, w], out);
}
