// Foreign CPU load on a shared machine: how much CPU other processes used while we measured,
// and a wait for a quiet moment before measuring. Benchmarks on a 2-core machine are only
// meaningful when nothing else runs, the 2-thread rows above all.
import fs from 'node:fs';
import os from 'node:os';

const HZ = 100; // USER_HZ

/** Busy jiffies of the whole machine (all CPUs), from /proc/stat; null where unavailable. */
export function busyJiffies(): number | null {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    return f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + (f[7] ?? 0);
  } catch {
    return null;
  }
}

/**
 * CPU used by processes other than this one (and a child whose CPU seconds the caller
 * reports) since construction, as a percentage of all cores.
 */
export class LoadMeter {
  private j0 = busyJiffies();
  private c0 = process.cpuUsage();
  private t0 = performance.now();
  private child0: number;
  constructor(childCpuS = 0) {
    this.child0 = childCpuS;
  }
  foreignPct(childCpuS = 0): number | null {
    const j1 = busyJiffies();
    if (this.j0 === null || j1 === null) return null;
    const c = process.cpuUsage(this.c0);
    const wall = (performance.now() - this.t0) / 1e3;
    const own = (c.user + c.system) / 1e6 + (childCpuS - this.child0);
    return Math.max(0, (100 * ((j1 - this.j0) / HZ - own)) / (wall * os.cpus().length));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Wait until other processes use less than `maxPct` of the machine over a 0.5 s window, for at
 * most `maxWaitMs`. Returns the last measured foreign load (null where /proc/stat is missing).
 */
export async function waitQuiet(maxPct = 10, maxWaitMs = 60_000): Promise<number | null> {
  const until = performance.now() + maxWaitMs;
  let warned = false;
  for (;;) {
    const m = new LoadMeter();
    await sleep(500);
    const p = m.foreignPct();
    if (p === null || p < maxPct || performance.now() > until) return p;
    if (!warned) process.stderr.write(`# other processes use ${p.toFixed(0)}% of the CPUs; waiting up to ${(maxWaitMs / 1e3).toFixed(0)} s for a quiet moment\n`);
    warned = true;
  }
}
