// Training runs for the page's run viewer: a run is a directory with a metrics.jsonl (what
// `latentkit train-ae` / `train-gpt` write, and every bundled model folder). The server lists
// them by name, answers their metrics as JSON (read afresh each time, so a run still training
// updates live) and serves the PNGs inside them (sample grids, loss plots) — nothing else.
import fs from 'node:fs';
import path from 'node:path';

export interface RunInfo {
  name: string;
  /** Metric records so far and the last step. */
  records: number;
  last_step: number | null;
  /** ms since the epoch of metrics.jsonl's last change. */
  updated: number;
  /** Numeric metric keys seen (besides step). */
  keys: string[];
  /** PNG files inside the run, relative ('/'-separated), newest sample grid first. */
  images: string[];
}

const isRun = (dir: string) => fs.existsSync(path.join(dir, 'metrics.jsonl'));

/** Run directories: each given directory that is a run, else its subdirectories that are. */
export function findRuns(dirs: readonly string[]): Map<string, string> {
  const runs = new Map<string, string>();
  const add = (dir: string) => {
    let name = path.basename(path.resolve(dir));
    for (let i = 2; runs.has(name); i++) name = `${path.basename(path.resolve(dir))}-${i}`;
    runs.set(name, path.resolve(dir));
  };
  for (const d of dirs) {
    if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) throw new Error(`runs directory not found: ${d}`);
    if (isRun(d)) add(d);
    else for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) if (e.isDirectory() && isRun(path.join(d, e.name))) add(path.join(d, e.name));
  }
  return runs;
}

/** metrics.jsonl → records; a torn last line (a run writing right now) or a bad line is skipped. */
export function readMetrics(dir: string): Record<string, unknown>[] {
  const text = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8');
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as unknown;
      if (r && typeof r === 'object' && !Array.isArray(r)) out.push(r as Record<string, unknown>);
    } catch {
      // skip
    }
  }
  return out;
}

function listPngs(dir: string, rel = '', depth = 0, out: string[] = []): string[] {
  if (depth > 2) return out;
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory() && !e.name.startsWith('.') && e.name !== 'checkpoints') listPngs(dir, r, depth + 1, out);
    else if (e.isFile() && e.name.toLowerCase().endsWith('.png')) out.push(r);
  }
  return out;
}

export function describeRun(name: string, dir: string): RunInfo {
  const recs = readMetrics(dir);
  const keys = new Set<string>();
  for (const r of recs) for (const [k, v] of Object.entries(r)) if (k !== 'step' && typeof v === 'number') keys.add(k);
  const steps = recs.map((r) => r.step).filter((s): s is number => typeof s === 'number');
  // sample grids newest first (step-0003800.png sorts after step-0001000.png), then the rest
  const images = listPngs(dir).sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
  return {
    name,
    records: recs.length,
    last_step: steps.length ? Math.max(...steps) : null,
    updated: Math.round(fs.statSync(path.join(dir, 'metrics.jsonl')).mtimeMs),
    keys: [...keys],
    images,
  };
}

/** The absolute path of a PNG inside the run, or null (not a PNG, outside the run, missing). */
export function runImagePath(dir: string, rel: string): string | null {
  if (!rel.toLowerCase().endsWith('.png') || rel.includes('\0')) return null;
  const full = path.resolve(dir, rel);
  if (!full.startsWith(dir + path.sep)) return null;
  return fs.existsSync(full) && fs.statSync(full).isFile() ? full : null;
}
