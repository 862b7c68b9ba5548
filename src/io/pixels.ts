// Pixel layout and range conversions shared by the Node image codecs (io/image) and the
// browser (canvas ImageData): pure JavaScript, no Node modules.

/** Interleaved pixels (RGB: stride 3, RGBA: stride 4, alpha ignored) → planar uint8 [3, H, W]. */
export function interleavedToPlanar(src: ArrayLike<number>, h: number, w: number, stride = 3, out = new Uint8Array(3 * h * w), offset = 0): Uint8Array {
  const plane = h * w;
  for (let i = 0, j = 0; i < plane; i++, j += stride) {
    out[offset + i] = src[j]!;
    out[offset + plane + i] = src[j + 1]!;
    out[offset + 2 * plane + i] = src[j + 2]!;
  }
  return out;
}

/** uint8 → [-1, 1]: x/127.5 − 1. */
export function u8ToFloat(src: ArrayLike<number>, out = new Float32Array(src.length)): Float32Array {
  for (let i = 0; i < src.length; i++) out[i] = src[i]! / 127.5 - 1;
  return out;
}

/** [-1, 1] → uint8: round(clamp((y+1)/2, 0, 1)·255); NaN maps to 0. */
export function floatToU8(src: ArrayLike<number>, out = new Uint8Array(src.length)): Uint8Array {
  for (let i = 0; i < src.length; i++) {
    const v = (src[i]! + 1) * 127.5;
    out[i] = v > 255 ? 255 : v > 0 ? Math.round(v) : 0;
  }
  return out;
}

/** Planar float [C, H, W] in [-1, 1] (C = 1 or 3) → RGBA bytes for a canvas ImageData. */
export function planarFloatToRgba(src: Float32Array, c: number, h: number, w: number): Uint8ClampedArray<ArrayBuffer> {
  const plane = h * w;
  const u8 = floatToU8(src.subarray(0, c * plane));
  const out = new Uint8ClampedArray(4 * plane);
  for (let i = 0; i < plane; i++) {
    out[4 * i] = u8[i]!;
    out[4 * i + 1] = u8[(c === 3 ? plane : 0) + i]!;
    out[4 * i + 2] = u8[(c === 3 ? 2 * plane : 0) + i]!;
    out[4 * i + 3] = 255;
  }
  return out;
}

/**
 * Interleaved RGBA (straight alpha) → planar uint8 RGB [3, H, W] over white, with the
 * integer rounding of libvips' flatten (the server's decoder): ⌊(v·a + 255·(255 − a)) / 255⌋.
 * The browser uses it on PNGs it decodes itself, so its pixels equal the server's exactly.
 */
export function rgbaOverWhite(src: ArrayLike<number>, h: number, w: number, out = new Uint8Array(3 * h * w)): Uint8Array {
  const plane = h * w;
  for (let i = 0; i < plane; i++) {
    const a = src[4 * i + 3]!;
    const bg = 255 * (255 - a);
    for (let c = 0; c < 3; c++) out[c * plane + i] = Math.floor((src[4 * i + c]! * a + bg) / 255);
  }
  return out;
}
