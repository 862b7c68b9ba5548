// Shared CLI helpers: clean one-line errors, progress bars, file discovery.
import fs from 'node:fs';
import path from 'node:path';
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
  const bar = new LiveBar();
  let done = 0;
  bar.start(`${label} [{bar}] {value}/{total} | {eta_formatted} left {info}`, total, 0, { info: '' });
  return {
    tick(n = 1, extra) {
      done += n;
      bar.update(done, { info: extra ? Object.entries(extra).map(([k, v]) => `${k} ${v}`).join(' ') : '' });
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

const BAR_WIDTH = 40;
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';
const CLEAR_TO_END = '\x1b[K';

/** Seconds as a bar shows them: 45s, 3m05s, 2h07m; '-' while unknown. */
export function formatEta(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '-';
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * One bar line: `{bar}` (40 cells, █ done, ░ to do), `{value}`, `{total}`, `{percentage}`,
 * `{eta_formatted}` and the payload's keys are filled in; other `{…}` stay as written.
 */
export function formatBarLine(format: string, value: number, total: number, etaS: number, payload: Record<string, string> = {}): string {
  const frac = total > 0 ? Math.min(1, Math.max(0, value / total)) : 0;
  const full = Math.round(frac * BAR_WIDTH);
  const fields: Record<string, string> = {
    bar: '\u2588'.repeat(full) + '\u2591'.repeat(BAR_WIDTH - full),
    value: String(value),
    total: String(total),
    percentage: String(Math.floor(frac * 100)),
    eta_formatted: formatEta(etaS),
    ...payload,
  };
  return format.replace(/\{(\w+)\}/g, (m, k: string) => fields[k] ?? m);
}

/** `line` cut to fewer than `columns` characters, so that it never wraps onto a second row. */
export function fitLine(line: string, columns: number): string {
  const chars = Array.from(line);
  return chars.length < columns ? line : chars.slice(0, Math.max(1, columns - 1)).join('');
}

/**
 * A progress bar on the last line of a terminal (stderr) that messages can be printed above:
 * `log()` clears the bar's line, prints the message (which wraps like any other output) and
 * redraws the bar below it; `stop()` leaves the bar's last state as a line of its own and
 * puts the cursor on a fresh line below it, so what is printed next lands there. The bar is
 * drawn in place with a carriage return only — no saved and restored cursor positions, which
 * a terminal keeps as screen coordinates that scrolling invalidates — and cut to the
 * terminal's width, since a wrapped line could not be redrawn in place. The cursor is hidden
 * while the bar runs and shown again by `stop()` or at exit. Off a TTY there is no bar:
 * `log()` prints the line and `update()` prints nothing.
 */
export class LiveBar {
  private readonly out: NodeJS.WriteStream;
  private readonly tty: boolean;
  private active = false;
  private format = '';
  private total = 0;
  private value = 0;
  private payload: Record<string, string> = {};
  /** (time, value) of recent updates: the ETA is the rate over them. */
  private recent: [number, number][] = [];
  private lastDraw = 0;
  private pending: NodeJS.Timeout | null = null;
  private readonly atExit = () => {
    if (this.active) this.out.write(`\n${SHOW_CURSOR}`);
  };

  constructor(out: NodeJS.WriteStream = process.stderr) {
    this.out = out;
    this.tty = !!out.isTTY;
  }

  start(format: string, total: number, value: number, payload: Record<string, string>): void {
    if (!this.tty) return;
    if (this.active) this.stop();
    this.format = format;
    this.total = total;
    this.value = value;
    this.payload = { ...payload };
    this.recent = []; // the rate is taken between updates: the first step's set-up is not in it
    this.active = true;
    process.on('exit', this.atExit);
    this.out.write(HIDE_CURSOR);
    this.draw();
  }

  update(value: number, payload: Record<string, string> = {}): void {
    if (!this.active) return;
    this.value = value;
    Object.assign(this.payload, payload);
    this.recent.push([Date.now(), value]);
    if (this.recent.length > 50) this.recent.shift();
    // at most ~10 redraws a second; a skipped one is drawn a little later
    const wait = this.lastDraw + 100 - Date.now();
    if (wait <= 0 || value >= this.total) this.draw();
    else this.pending ??= setTimeout(() => this.draw(), wait).unref();
  }

  log(msg: string): void {
    if (!this.active) {
      console.error(msg);
      return;
    }
    this.out.write(`\r${CLEAR_TO_END}${msg}\n`);
    this.draw();
  }

  stop(): void {
    if (!this.active) return;
    this.draw();
    this.out.write(`\n${SHOW_CURSOR}`);
    this.active = false;
    process.off('exit', this.atExit);
  }

  private eta(): number {
    if (this.value >= this.total) return 0;
    if (this.recent.length < 2) return NaN;
    const [t0, v0] = this.recent[0]!;
    const [t1, v1] = this.recent[this.recent.length - 1]!;
    return v1 > v0 && t1 > t0 ? ((this.total - this.value) * (t1 - t0)) / (v1 - v0) / 1000 : NaN;
  }

  private draw(): void {
    if (this.pending) clearTimeout(this.pending);
    this.pending = null;
    if (!this.active) return;
    const line = formatBarLine(this.format, this.value, this.total, this.eta(), this.payload);
    this.out.write(`\r${fitLine(line, this.out.columns || 80)}${CLEAR_TO_END}`);
    this.lastDraw = Date.now();
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

/**
 * Ctrl-C or SIGTERM (a supervisor's stop) asks a training loop to stop after its current step,
 * which then saves a checkpoint; a second one aborts at once (exit 130). `stopRequested` is the
 * loop's shouldStop; `release` removes the handlers.
 */
export function stopOnSignal(bar: LiveBar): { stopRequested: () => boolean; release: () => void } {
  let stop = false;
  const onSig = () => {
    if (stop) process.exit(130);
    stop = true;
    bar.log('stopping after this step (saving a checkpoint); press Ctrl-C again to abort');
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  return {
    stopRequested: () => stop,
    release: () => {
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
    },
  };
}
