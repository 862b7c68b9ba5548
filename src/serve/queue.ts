// A job queue with bounded concurrency and depth: the server's backpressure. Past its depth
// a job is refused at once (the route answers 503 with Retry-After) instead of piling up
// request bodies in memory; a job that waits past its deadline is dropped the same way.

export class QueueFullError extends Error {
  /** Seconds after which a retry is likely to be admitted. */
  readonly retryAfter: number;
  constructor(message: string, retryAfter: number) {
    super(message);
    this.retryAfter = retryAfter;
  }
}

/** The job's client went away (its request was aborted) before or while it ran. */
export class CancelledError extends Error {
  override name = 'AbortError';
  constructor(message = 'cancelled: the client went away') {
    super(message);
  }
}

interface Waiting {
  start: () => void;
  timer: NodeJS.Timeout | null;
}

export class JobQueue {
  readonly concurrency: number;
  readonly depth: number;
  private running = 0;
  private waiting: Waiting[] = [];
  /** Exponential moving average of job run time (ms), for Retry-After. */
  private avgMs = 1000;
  private done = 0;
  private refused = 0;
  private cancelled = 0;

  constructor(opts: { concurrency?: number; depth?: number } = {}) {
    this.concurrency = Math.max(1, opts.concurrency ?? 1);
    this.depth = Math.max(0, opts.depth ?? 16);
  }

  stats() {
    return { running: this.running, waiting: this.waiting.length, concurrency: this.concurrency, depth: this.depth, done: this.done, refused: this.refused, cancelled: this.cancelled, avg_job_ms: Math.round(this.avgMs) };
  }

  private retryAfter(): number {
    return Math.max(1, Math.ceil(((this.waiting.length + this.running) * this.avgMs) / this.concurrency / 1000));
  }

  /** Throws QueueFullError now if a job would be refused (lets a route shed load before decoding its body). */
  admit(): void {
    if (this.running >= this.concurrency && this.waiting.length >= this.depth) {
      this.refused++;
      throw new QueueFullError(`server busy: ${this.running} running and ${this.waiting.length} waiting (queue depth ${this.depth})`, this.retryAfter());
    }
  }

  /**
   * Run `fn` when a slot is free; rejects with QueueFullError when full or past `waitMs`, and
   * with CancelledError when `signal` aborts while the job waits (it leaves the queue: a
   * client that gave up holds no place). A running job sees the same signal (passed to `fn`)
   * and may stop early.
   */
  async run<T>(fn: (signal?: AbortSignal) => Promise<T>, opts: { waitMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    const { signal } = opts;
    if (signal?.aborted) {
      this.cancelled++;
      throw new CancelledError();
    }
    if (this.running >= this.concurrency) {
      this.admit();
      await new Promise<void>((resolve, reject) => {
        const w: Waiting = {
          start: () => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          },
          timer: null,
        };
        const leave = () => {
          const i = this.waiting.indexOf(w);
          if (i >= 0) this.waiting.splice(i, 1);
          if (w.timer) clearTimeout(w.timer);
          signal?.removeEventListener('abort', onAbort);
        };
        const onAbort = () => {
          leave();
          this.cancelled++;
          reject(new CancelledError());
        };
        if (opts.waitMs !== undefined) {
          w.timer = setTimeout(() => {
            leave();
            this.refused++;
            reject(new QueueFullError(`server busy: waited ${(opts.waitMs! / 1000).toFixed(1)} s in the queue without a free slot`, this.retryAfter()));
          }, opts.waitMs);
        }
        signal?.addEventListener('abort', onAbort, { once: true });
        this.waiting.push(w);
      });
      // the finishing job handed its slot over (running was not decremented)
    } else {
      this.running++;
    }
    const t0 = performance.now();
    try {
      return await fn(signal);
    } catch (e) {
      if (e instanceof CancelledError) this.cancelled++;
      throw e;
    } finally {
      this.avgMs = 0.8 * this.avgMs + 0.2 * (performance.now() - t0);
      this.done++;
      const next = this.waiting.shift();
      if (next) {
        if (next.timer) clearTimeout(next.timer);
        next.start(); // the slot passes to it
      } else {
        this.running--;
      }
    }
  }
}
