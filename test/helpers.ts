// Test helpers: deterministic random tensors, tolerant comparisons.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { HostTensor } from '../src/tensor.ts';

/** mulberry32: small, deterministic. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randn(shape: readonly number[], seed: number, scale = 1): HostTensor<'float32'> {
  const r = rng(seed);
  const t = HostTensor.float32(shape);
  for (let i = 0; i < t.size; i++) {
    const u = Math.max(r(), 1e-12);
    t.data[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r()) * scale;
  }
  return t;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** max |a−b| / (atol + rtol·|b|) ≤ 1, with a message naming the worst element. */
export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number, what = ''): void {
  assert.equal(a.length, b.length, `${what}: length ${a.length} vs ${b.length}`);
  let worst = 0;
  let wi = -1;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i]! - b[i]!) / (atol + rtol * Math.abs(b[i]!));
    if (!(e <= worst)) {
      worst = e;
      wi = i;
    }
  }
  if (worst > 1 || Number.isNaN(worst)) {
    assert.fail(`${what}: element ${wi}: got ${a[wi]}, expected ${b[wi]} (rtol ${rtol}, atol ${atol})`);
  }
}

/** Relative error ‖a−b‖/‖b‖ (with floor). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/**
 * Copy bundled Google emoji number `from` … `to` − 1 (by file name order) into class folders
 * under `dir`, image i into classes[i % classes.length]; returns the source files.
 */
export function emojiClassFolders(dir: string, from: number, to: number, classes: readonly string[]): string[] {
  const pkg = path.dirname(createRequire(import.meta.url).resolve('emoji-datasource-google/package.json'));
  const src = path.join(pkg, 'img/google/64');
  const files = fs.readdirSync(src).filter((f) => f.endsWith('.png')).slice(from, to);
  files.forEach((f, i) => {
    const d = path.join(dir, classes[i % classes.length]!);
    fs.mkdirSync(d, { recursive: true });
    fs.copyFileSync(path.join(src, f), path.join(d, f));
  });
  return files.map((f) => path.join(src, f));
}
