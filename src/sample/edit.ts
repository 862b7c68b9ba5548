// Editing a code grid (inpainting, outpainting, taming's image completion): which cells a
// pixel mask repaints, and which codes a model keeps. A MaskGIT model regenerates exactly the
// marked cells and keeps every other code; an autoregressive model can only continue a raster
// prefix, so it regenerates everything from the first marked cell on. Pure functions: the CLI,
// the server and the page share them.

export type EditKind = 'nothing' | 'all' | 'edit';

export interface EditPlan {
  /** per cell (row-major): the code kept, or −1 where the model generates */
  init: Int32Array;
  /** cells the model generates */
  generate: number;
  kind: EditKind;
  /** what was decided, one line each */
  notes: string[];
}

/** Nearest-neighbour resize of a one-channel uint8 image [h, w] → [H, W]. */
export function resizeNearest(src: Uint8Array, h: number, w: number, H: number, W: number): Uint8Array {
  if (src.length !== h * w) throw new Error(`resizeNearest: ${src.length} values for ${h}×${w}`);
  const out = new Uint8Array(H * W);
  for (let y = 0; y < H; y++) {
    const sy = Math.min(h - 1, Math.floor(((y + 0.5) * h) / H));
    for (let x = 0; x < W; x++) out[y * W + x] = src[sy * w + Math.min(w - 1, Math.floor(((x + 0.5) * w) / W))]!;
  }
  return out;
}

/** A planar uint8 [C, H, W] image's brightness [H, W] (mean of the channels). */
export function grayOf(img: Uint8Array, c: number, h: number, w: number): Uint8Array {
  const out = new Uint8Array(h * w);
  for (let i = 0; i < h * w; i++) {
    let s = 0;
    for (let k = 0; k < c; k++) s += img[k * h * w + i]!;
    out[i] = Math.round(s / c);
  }
  return out;
}

/**
 * The cells of a [gh, gw] grid that a mask [H, W] (H = gh·f) marks: a cell is repainted when
 * any of its pixels is light (≥ 128) — a brush stroke repaints every cell it touches.
 */
export function maskCells(mask: Uint8Array, H: number, W: number, grid: [number, number]): Uint8Array {
  const [gh, gw] = grid;
  if (H % gh || W % gw || H / gh !== W / gw) throw new Error(`mask ${W}x${H} does not divide into the ${gw}×${gh} code grid`);
  const f = H / gh;
  const cells = new Uint8Array(gh * gw);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (mask[y * W + x]! >= 128) cells[Math.floor(y / f) * gw + Math.floor(x / f)] = 1;
  return cells;
}

/**
 * The plan for repainting `cells` (1 = repaint) of `codes`. Autoregressive models regenerate
 * from the first marked cell in raster order onwards.
 */
export function planEdit(codes: ArrayLike<number>, cells: Uint8Array, o: { autoregressive: boolean; grid: [number, number] }): EditPlan {
  const n = codes.length;
  if (cells.length !== n) throw new Error(`planEdit: ${cells.length} mask cells for ${n} codes`);
  const init = Int32Array.from(codes);
  const notes: string[] = [];
  const marked = cells.reduce((a, v) => a + (v ? 1 : 0), 0);
  if (marked === 0) return { init, generate: 0, kind: 'nothing', notes: ['the mask marks no cell (white = repaint): nothing to do'] };
  if (o.autoregressive) {
    const first = cells.findIndex((v) => v !== 0);
    init.fill(-1, first);
    const gen = n - first;
    if (gen > marked) {
      const [, gw] = o.grid;
      notes.push(`autoregressive model: it regenerates every code from cell (row ${Math.floor(first / gw)}, column ${first % gw}) onwards in raster order — ${gen} cells, not only the ${marked} marked (taming's image completion); a MaskGIT model repaints only the marked cells`);
    }
    return { init, generate: gen, kind: first === 0 ? 'all' : 'edit', notes: first === 0 ? [...notes, 'the first cell is marked: every code is generated — plain sampling'] : notes };
  }
  for (let i = 0; i < n; i++) if (cells[i]) init[i] = -1;
  if (marked === n) return { init, generate: n, kind: 'all', notes: ['the mask covers every cell: every code is generated — plain sampling'] };
  return { init, generate: marked, kind: 'edit', notes };
}

/**
 * Outpainting: an image [C, h, w] (float) placed with its top-left corner at (x, y) on a white
 * canvas [C, H, W]; `uncovered` marks the cells of the f-pixel grid that the image does not
 * cover completely (they are generated).
 */
export function placeOnCanvas(img: Float32Array, c: number, h: number, w: number, canvas: [number, number], at: [number, number], f: number): { pixels: Float32Array; uncovered: Uint8Array } {
  const [H, W] = canvas;
  const [x0, y0] = at;
  if (!(Number.isInteger(x0) && Number.isInteger(y0) && x0 >= 0 && y0 >= 0 && x0 + w <= W && y0 + h <= H)) {
    throw new Error(`--at ${x0},${y0}: a ${w}x${h} image does not fit on the ${W}x${H} canvas there (x + width ≤ ${W}, y + height ≤ ${H})`);
  }
  const pixels = new Float32Array(c * H * W).fill(1);
  for (let k = 0; k < c; k++) for (let y = 0; y < h; y++) pixels.set(img.subarray((k * h + y) * w, (k * h + y + 1) * w), (k * H + y0 + y) * W + x0);
  const gh = H / f;
  const gw = W / f;
  const uncovered = new Uint8Array(gh * gw);
  for (let gy = 0; gy < gh; gy++) {
    for (let gx = 0; gx < gw; gx++) {
      const inside = gx * f >= x0 && (gx + 1) * f <= x0 + w && gy * f >= y0 && (gy + 1) * f <= y0 + h;
      if (!inside) uncovered[gy * gw + gx] = 1;
    }
  }
  return { pixels, uncovered };
}
