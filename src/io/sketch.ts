// Sketches: clean black strokes on white, made the same way from a training image (edges)
// and from a person's drawing (its strokes), so the sketch-conditioned model sees one kind
// of input. Both end in the same normalisation: a binary stroke mask → a one-pixel skeleton
// (Zhang–Suen thinning) → specks removed → dilated to a fixed stroke width. A drawing's filled
// areas (eye dots, a filled heart) are found first and kept — dots solid, larger areas as
// their outline, as the training edges draw an emoji's filled shapes — not thinned away.
// Everything here is deterministic integer/float work on planar uint8 arrays (no codecs:
// io/image decodes).
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

/**
 * Squared Euclidean distance from every ink pixel (mask 1) to the nearest paper pixel (mask 0,
 * and everything outside the canvas), 0 on paper — Felzenszwalb & Huttenlocher's two 1-D
 * passes (lower envelope of parabolas), exact and linear in the pixel count.
 */
export function distanceToPaper(m: Uint8Array, h: number, w: number): Float64Array {
  const INF = (h + w + 2) ** 2;
  const d = new Float64Array(h * w);
  // 1-D transform of f over n samples with paper beyond both ends, in place
  const n0 = Math.max(h, w) + 2;
  const f = new Float64Array(n0);
  const g = new Float64Array(n0);
  const v = new Int32Array(n0);
  const z = new Float64Array(n0 + 1);
  const pass = (n: number) => {
    // samples 0 and n+1 are the paper outside the canvas
    const N = n + 2;
    let k = 0;
    v[0] = 0;
    z[0] = -Infinity;
    z[1] = Infinity;
    for (let q = 1; q < N; q++) {
      let s = (f[q]! + q * q - (f[v[k]!]! + v[k]! * v[k]!)) / (2 * q - 2 * v[k]!);
      while (s <= z[k]!) {
        k--;
        s = (f[q]! + q * q - (f[v[k]!]! + v[k]! * v[k]!)) / (2 * q - 2 * v[k]!);
      }
      k++;
      v[k] = q;
      z[k] = s;
      z[k + 1] = Infinity;
    }
    k = 0;
    for (let q = 0; q < N; q++) {
      while (z[k + 1]! < q) k++;
      g[q] = (q - v[k]!) ** 2 + f[v[k]!]!;
    }
  };
  for (let y = 0; y < h; y++) {
    f[0] = 0;
    f[w + 1] = 0;
    for (let x = 0; x < w; x++) f[x + 1] = m[y * w + x] ? INF : 0;
    pass(w);
    for (let x = 0; x < w; x++) d[y * w + x] = g[x + 1]!;
  }
  for (let x = 0; x < w; x++) {
    f[0] = 0;
    f[h + 1] = 0;
    for (let y = 0; y < h; y++) f[y + 1] = d[y * w + x]!;
    pass(h);
    for (let y = 0; y < h; y++) d[y * w + x] = g[y + 1]!;
  }
  return d;
}

/** How a drawing's filled areas (much thicker than its pen, or isolated dots) are redrawn. */
export type FilledAreas = 'auto' | 'outline' | 'solid' | 'thin';

/**
 * The filled areas of a stroke mask. The drawing's pen half-width is estimated along the
 * mask's skeleton (distance to the paper, 10th percentile: strokes are as thick there as
 * everywhere, a filled shape's skeleton thins out towards its corners). Cores are pixels at
 * least max(3, min(2 × pen, 4.5)) from the paper; they grow through the ink that is still
 * thicker than a stroke (≥ max(2, min(1.5 × pen, 3)) from the paper, e.g. a filled star's
 * arms), and the area is the union of the grown pixels' inscribed discs. Every isolated
 * blob of at least 4 pixels that thins to a speck (a dot, a tap of the pen) is a filled
 * area too. Strokes of one width, whatever it is, are not. Pixel counts are for a 64²
 * canvas; `scale` (canvas side / 64) scales them. Returns a 0/1 mask.
 */
export function filledAreas(mask: Uint8Array, skel: Uint8Array, h: number, w: number, minPiece = DEFAULTS.minPiece, scale = 1): Uint8Array {
  const d2 = distanceToPaper(mask, h, w);
  const along: number[] = [];
  for (let i = 0; i < skel.length; i++) if (skel[i]) along.push(d2[i]!);
  along.sort((a, b) => a - b);
  const pen = along.length ? Math.sqrt(along[Math.floor(0.1 * (along.length - 1))]!) : 1;
  const core = Math.max(3 * scale, Math.min(2 * pen, 4.5 * scale)) ** 2;
  const grow = Math.max(2 * scale, Math.min(1.5 * pen, 3 * scale)) ** 2;
  // cores, grown through 8-connected pixels at least `grow` from the paper
  const thick = new Uint8Array(h * w);
  const stack: number[] = [];
  for (let i = 0; i < d2.length; i++) if (d2[i]! >= core) {
    thick[i] = 1;
    stack.push(i);
  }
  while (stack.length) {
    const i = stack.pop()!;
    const y = Math.floor(i / w);
    const x = i % w;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      const yy = y + dy;
      const xx = x + dx;
      const j = yy * w + xx;
      if (yy >= 0 && yy < h && xx >= 0 && xx < w && !thick[j] && d2[j]! >= grow) {
        thick[j] = 1;
        stack.push(j);
      }
    }
  }
  const out = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!thick[y * w + x]) continue;
      const r2 = d2[y * w + x]!;
      const r = Math.ceil(Math.sqrt(r2));
      for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) {
        const yy = y + dy;
        const xx = x + dx;
        if (dy * dy + dx * dx < r2 && yy >= 0 && yy < h && xx >= 0 && xx < w && mask[yy * w + xx]) out[yy * w + xx] = 1;
      }
    }
  }
  // dots: 8-connected ink pieces of ≥ 4 pixels whose skeleton is shorter than minPiece
  const seen = new Uint8Array(h * w);
  const piece: number[] = [];
  for (let s = 0; s < mask.length; s++) {
    if (!mask[s] || seen[s]) continue;
    piece.length = 0;
    stack.push(s);
    seen[s] = 1;
    let bones = 0;
    while (stack.length) {
      const i = stack.pop()!;
      piece.push(i);
      if (skel[i]) bones++;
      const y = Math.floor(i / w);
      const x = i % w;
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const yy = y + dy;
        const xx = x + dx;
        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
        const j = yy * w + xx;
        if (mask[j] && !seen[j]) {
          seen[j] = 1;
          stack.push(j);
        }
      }
    }
    if (piece.length >= 4 * scale * scale && bones < minPiece) for (const i of piece) out[i] = 1;
  }
  return out;
}

/**
 * A drawing's stroke mask → strokes like strokesFromMask, except that filled areas
 * (filledAreas) are not thinned to a line or a point (a dot to nothing): 'auto' keeps dots —
 * areas at most 10 pixels across at 64², e.g. eyes — solid and redraws larger areas as their
 * outline, as an emoji's filled shapes appear in its training sketch (edges); 'outline' and
 * 'solid' do one or the other for every area; 'thin' thins them like strokes.
 */
export function strokesFromDrawingMask(mask: Uint8Array, h: number, w: number, o: SketchOptions & { filled?: FilledAreas } = {}): U8Tensor {
  const filled = o.filled ?? 'auto';
  if (filled === 'thin') return strokesFromMask(mask, h, w, o);
  const opt = { ...DEFAULTS, ...o };
  const scale = Math.min(h, w) / 64;
  const skel = thin(mask.slice(), h, w);
  const area = filledAreas(mask, skel, h, w, opt.minPiece, scale);
  for (let i = 0; i < skel.length; i++) if (area[i]) skel[i] = 0;
  dropSpecks(skel, h, w, opt.minPiece);
  // which areas stay solid: all, none, or (auto) those whose inscribed radius is ≤ 5 px at 64²
  const solid = new Uint8Array(h * w);
  if (filled === 'solid') solid.set(area);
  else if (filled === 'auto') {
    const d2 = distanceToPaper(area, h, w);
    const stack: number[] = [];
    const piece: number[] = [];
    const seen = new Uint8Array(h * w);
    for (let s = 0; s < area.length; s++) {
      if (!area[s] || seen[s]) continue;
      piece.length = 0;
      stack.push(s);
      seen[s] = 1;
      let r2 = 0;
      while (stack.length) {
        const i = stack.pop()!;
        piece.push(i);
        r2 = Math.max(r2, d2[i]!);
        const y = Math.floor(i / w);
        const x = i % w;
        for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          const j = yy * w + xx;
          if (yy >= 0 && yy < h && xx >= 0 && xx < w && area[j] && !seen[j]) {
            seen[j] = 1;
            stack.push(j);
          }
        }
      }
      if (r2 <= (5 * scale) ** 2) for (const i of piece) solid[i] = 1;
    }
  }
  const at = (y: number, x: number) => (y >= 0 && y < h && x >= 0 && x < w ? area[y * w + x]! : 0);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!area[y * w + x]) continue;
      // outline: the area's pixels with a 4-neighbour outside it (a closed 8-connected curve)
      if (solid[y * w + x] || !at(y - 1, x) || !at(y + 1, x) || !at(y, x - 1) || !at(y, x + 1)) skel[y * w + x] = 1;
    }
  }
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
  /**
   * Filled areas — dots, filled shapes (filledAreas): 'auto' (default) keeps dots solid and
   * outlines larger areas; 'outline', 'solid' for all; 'thin' thins them like strokes (a dot
   * then becomes a point and is dropped as a speck). See strokesFromDrawingMask.
   */
  filled?: FilledAreas;
}

/**
 * A person's drawing → the model's sketch input [1, size, size]. Input: RGB [3, H, W] of any
 * size, alpha already composited over white (io/image does that). Dark pixels (luminance
 * below half) are ink; the ink's box is fitted into the canvas, area-resampled, thresholded,
 * then thinned and redrawn at the training stroke width, so stroke width and canvas size
 * do not matter. Filled areas (dots, filled shapes) are not thinned away: dots stay solid,
 * larger areas become their outline (`filled`).
 */
export function normalizeDrawing(img: U8Tensor, o: DrawingOptions = {}): U8Tensor {
  const size = o.size ?? 64;
  return strokesFromDrawingMask(drawingMask(img, o), size, size, o);
}

/** normalizeDrawing's first half: the drawing's ink, fitted and resampled to a binary mask [size²] (1 = ink). */
export function drawingMask(img: U8Tensor, o: DrawingOptions = {}): Uint8Array {
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
  return out;
}

/** uint8 [1|3, H, W] sketch → float32 [1, H, W] in [−1, 1] (paper 1, ink −1). */
export function sketchToFloat(s: U8Tensor): HostTensor<'float32'> {
  const [, h, w] = s.shape as [number, number, number];
  const out = new Float32Array(h * w);
  for (let i = 0; i < h * w; i++) out[i] = s.data[i]! / 127.5 - 1;
  return HostTensor.float32([1, h, w], out);
}
