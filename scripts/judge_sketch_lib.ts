// The sketch judge's measure: ink maps blurred by a 5×5 box, compared by Pearson correlation.

/** ink map (1 = ink) of a uint8 sketch [1, 64, 64] (0 = ink), blurred by a 5×5 box */
export function inkBlurred(s: Uint8Array, h = 64, w = 64): Float64Array {
  const ink = Float64Array.from(s, (v) => (v < 128 ? 1 : 0));
  const out = new Float64Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    let a = 0;
    for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) {
      const yy = y + dy;
      const xx = x + dx;
      if (yy >= 0 && yy < h && xx >= 0 && xx < w) a += ink[yy * w + xx]!;
    }
    out[y * w + x] = a / 25;
  }
  return out;
}

export function pearson(a: Float64Array, b: Float64Array): number {
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < a.length; i++) [ma, mb] = [ma + a[i]!, mb + b[i]!];
  ma /= a.length;
  mb /= b.length;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < a.length; i++) {
    const [da, db] = [a[i]! - ma, b[i]! - mb];
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return saa && sbb ? sab / Math.sqrt(saa * sbb) : 0;
}
