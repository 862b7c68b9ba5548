// Limits and cost on the command line: the size limit the server has too (io/limits.ts),
// checked in one line before any work; and for long loops, an estimate from the first steps'
// timing before the progress bar.
import fs from 'node:fs';
import { headerSize } from '../io/image.ts';
import { MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE } from '../io/limits.ts';
import { CliError, progressBar } from './util.ts';

const LIMIT = `${MAX_IMAGE_SIDE} pixels a side, the server's limit too`;

/** An image side in pixels (e.g. --size n): a positive integer ≤ MAX_IMAGE_SIDE. */
export function parseSideOpt(v: string, name = '--size'): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new CliError(`${name} must be a positive integer (pixels), got '${v}'`);
  if (n > MAX_IMAGE_SIDE) throw new CliError(`${name} ${v} is over the limit of ${LIMIT}`);
  return n;
}

/** 'HxW' or 'N' (square) in pixels → [h, w], each ≤ MAX_IMAGE_SIDE. */
export function parseHxW(v: string, name = '--size'): [number, number] {
  const m = /^(\d+)(?:[x×](\d+))?$/.exec(v.trim());
  if (!m) throw new CliError(`${name} must be HxW in pixels (e.g. 128x128), got '${v}'`);
  const h = Number(m[1]);
  const w = Number(m[2] ?? m[1]);
  if (h <= 0 || w <= 0) throw new CliError(`${name} must be positive, got '${v}'`);
  if (h > MAX_IMAGE_SIDE || w > MAX_IMAGE_SIDE) throw new CliError(`${name} ${v} is over the limit of ${LIMIT}`);
  return [h, w];
}

/**
 * An input image's size from its header, before it is decoded: over MAX_IMAGE_PIXELS is one
 * line (the server answers 413 for the same). A header this cannot read is left to the decoder.
 */
export function checkImageHeader(file: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return; // the decoder's own error names the file
  }
  try {
    const head = new Uint8Array(65536);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    const s = headerSize(head.subarray(0, n));
    if (s && s.width * s.height > MAX_IMAGE_PIXELS) {
      throw new CliError(`${file} is ${s.width}×${s.height} (${((s.width * s.height) / 1e6).toFixed(1)} M pixels); the limit is ${MAX_IMAGE_SIDE}×${MAX_IMAGE_SIDE} (${(MAX_IMAGE_PIXELS / 1e6).toFixed(1)} M pixels), the server's limit too`);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Seconds → 'about 40 s', 'about 2 min', 'about 3.5 h', 'about 12 days'. */
export function aboutDuration(s: number): string {
  if (s < 1) return 'under a second';
  if (s < 90) return `about ${Math.round(s)} s`;
  if (s < 5400) return `about ${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `about ${(s / 3600).toFixed(1)} h`;
  return `about ${Math.round(s / 86400)} days`;
}

/**
 * Progress for a loop of `total` steps: times the first steps (the first includes set-up, so
 * the rate is taken from the ones after it), then prints one estimate line — `say(perStepMs,
 * totalSeconds)` — and shows the progress bar from there on.
 */
export function timedProgress(total: number, label: string, say: (perStepMs: number, totalS: number) => string, opts: { minSteps?: number; minMs?: number } = {}): { tick(): void; stop(): void } {
  const minSteps = opts.minSteps ?? 32;
  const minMs = opts.minMs ?? 1000;
  const t0 = performance.now();
  let t1 = 0;
  let done = 0;
  let bar: ReturnType<typeof progressBar> | null = null;
  return {
    tick() {
      done++;
      if (bar) return void bar.tick();
      const now = performance.now();
      if (done === 1) t1 = now;
      if (!(done === total || (done >= 2 && (done >= minSteps || now - t1 >= minMs)))) return;
      const per = done >= 2 ? (now - t1) / (done - 1) : now - t0;
      console.error(say(per, (now - t0 + (total - done) * per) / 1000));
      bar = progressBar(total, label);
      bar.tick(done);
    },
    stop() {
      bar?.stop();
    },
  };
}
