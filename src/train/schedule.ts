// Learning-rate schedules: host-side functions of the step, fed to the training program
// as a scalar input so changing the rate never recompiles anything.

export type Schedule = (step: number) => number;

export const constantLr = (lr: number): Schedule => () => lr;

/** Linear ramp from 0 to lr over `warmup` steps, then `after` (default constant). */
export function linearWarmup(lr: number, warmup: number, after?: Schedule): Schedule {
  return (s) => (s < warmup ? (lr * (s + 1)) / warmup : after ? after(s) : lr);
}

/** Cosine decay from lr to minLr over `total` steps, with optional linear warm-up. */
export function cosine(lr: number, total: number, opts: { warmup?: number; minLr?: number } = {}): Schedule {
  const w = opts.warmup ?? 0;
  const min = opts.minLr ?? 0;
  return (s) => {
    if (s < w) return (lr * (s + 1)) / w;
    const t = Math.min(1, (s - w) / Math.max(1, total - w));
    return min + 0.5 * (lr - min) * (1 + Math.cos(Math.PI * t));
  };
}

/** A schedule as plain data (what a training export's manifest carries). */
export interface ScheduleSpec {
  kind: 'constant' | 'cosine';
  lr: number;
  warmup: number;
  min_lr: number;
  total: number;
}

/** constant: linear warm-up (if any) then `lr`; cosine: warm-up then decay to min_lr at `total`. */
export function scheduleFromSpec(s: ScheduleSpec): Schedule {
  if (s.kind === 'cosine') return cosine(s.lr, s.total, { warmup: s.warmup, minLr: s.min_lr });
  return s.warmup > 0 ? linearWarmup(s.lr, s.warmup) : constantLr(s.lr);
}
