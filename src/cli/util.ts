// Shared CLI helpers: clean one-line errors, progress bars, file discovery.
import fs from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { listImages } from '../io/image.ts';

export class CliError extends Error {}

/** Run a command body; print a one-line error and exit non-zero on failure. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      const err = e as Error;
      if (process.env.LATENTKIT_DEBUG) console.error(err.stack);
      console.error(`latentkit: error: ${err.message}`);
      process.exitCode = 1;
    }
  };
}

export function progressBar(total: number, label: string): { tick(n?: number, extra?: Record<string, string>): void; stop(): void } {
  if (!process.stderr.isTTY || total <= 1) {
    let done = 0;
    return {
      tick(n = 1) {
        done += n;
        if (total > 1 && (done === total || done % Math.max(1, Math.floor(total / 10)) === 0)) console.error(`${label}: ${done}/${total}`);
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} | {eta_formatted} left {info}`, hideCursor: true, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { info: '' });
  return {
    tick(n = 1, extra) {
      bar.increment(n, { info: extra ? Object.entries(extra).map(([k, v]) => `${k} ${v}`).join(' ') : '' });
    },
    stop() {
      bar.stop();
    },
  };
}

/** Inputs: a file, or every image under a directory (recursive). Returns [absolute, relative]. */
export async function resolveInputs(input: string): Promise<{ file: string; rel: string }[]> {
  let st: fs.Stats;
  try {
    st = fs.statSync(input);
  } catch {
    throw new CliError(`input not found: ${input}`);
  }
  if (st.isDirectory()) {
    const files = await listImages(input);
    if (!files.length) throw new CliError(`no images (png/jpg/webp) under ${input}`);
    return files.map((f) => ({ file: f, rel: path.relative(input, f) }));
  }
  return [{ file: input, rel: path.basename(input) }];
}

export function parseIntOpt(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new CliError(`${name} must be a positive integer, got '${v}'`);
  return n;
}

/**
 * A progress bar on a TTY (stderr) that messages can be printed above: `log()` clears the
 * bar's line, prints the message and lets the bar redraw below it, so nothing is overwritten.
 * Off a TTY there is no bar; `log()` prints the line and `update()` prints nothing.
 */
export class LiveBar {
  private bar: cliProgress.SingleBar | null = null;
  private readonly tty = !!process.stderr.isTTY;

  start(format: string, total: number, value: number, payload: Record<string, string>): void {
    if (!this.tty) return;
    this.bar = new cliProgress.SingleBar({ format, hideCursor: true, stream: process.stderr, etaBuffer: 50, clearOnComplete: false, forceRedraw: true }, cliProgress.Presets.shades_classic);
    this.bar.start(total, value, payload);
  }

  update(value: number, payload: Record<string, string>): void {
    this.bar?.update(value, payload);
  }

  log(msg: string): void {
    if (this.bar) {
      process.stderr.write(`\r\x1b[K${msg}\n`);
      this.bar.render();
    } else console.error(msg);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

/**
 * Run a training start; if it fails before its first checkpoint, remove the run directory it
 * made (a directory that existed before, or one holding a checkpoint, is left alone).
 */
export async function removeIfFailedStart<T>(out: string, run: () => Promise<T>): Promise<T> {
  const existed = fs.existsSync(out);
  try {
    return await run();
  } catch (e) {
    if (!existed && !fs.existsSync(path.join(out, 'checkpoints', 'last.json'))) fs.rmSync(out, { recursive: true, force: true });
    throw e;
  }
}
