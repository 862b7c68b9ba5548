// The training-run viewer: a run directory's metrics.jsonl as curves (pick the metrics, log
// scale, smoothing) and its PNGs (sample grids, newest first). Refreshes every 5 s while
// shown, so a run still training updates live.
import { lossCurveSvg, type Series } from '../src/browser.ts';
import { apiFetch, errorOf } from './api.ts';
import { note, type Status } from './status.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

interface Run { name: string; records: number; last_step: number | null; keys: string[]; images: string[]; metrics?: Record<string, unknown>[] }

// losses are shown first (together, log scale); PSNR only when a run logs no loss
const LOSSES = ['rec', 'g_loss', 'd_loss', 'qloss', 'loss', 'ae', 'nll'];
const LABELS: Record<string, string> = { psnr: 'PSNR (dB)', ssim: 'SSIM', bpt: 'bits/token', lr: 'learning rate', perplexity: 'perplexity', usage: 'codebook usage', tokens_per_s: 'tokens/s' };

/** The y axis of the chosen metrics: 'loss' for losses, the metric's name and unit, or 'value' when mixed. */
export function axisLabel(keys: readonly string[]): string {
  if (keys.length && keys.every((k) => LOSSES.includes(k))) return 'loss';
  const names = new Set(keys.map((k) => LABELS[k] ?? k));
  return names.size === 1 ? [...names][0]! : 'value';
}

export function initRuns(status: Status): void {
  const sel = $<HTMLSelectElement>('run');
  const plot = $('run-plot');
  const keysEl = $('run-keys');
  const imgSel = $<HTMLSelectElement>('run-image');
  const img = $<HTMLImageElement>('run-img');
  let run: Run | null = null;
  let chosen = new Set<string>();
  let shown = false;

  function series(): Series[] {
    const out = new Map<string, [number, number][]>();
    for (const r of run?.metrics ?? []) {
      const step = r.step;
      if (typeof step !== 'number') continue;
      for (const k of chosen) {
        const v = r[k];
        if (typeof v !== 'number') continue;
        const name = typeof r.split === 'string' && r.split !== 'train' ? `${r.split} ${k}` : k;
        if (!out.has(name)) out.set(name, []);
        out.get(name)!.push([step, v]);
      }
    }
    return [...out].map(([name, points]) => ({ name, points }));
  }

  function draw() {
    if (!run) return;
    const s = series();
    const logY = ($('run-log') as HTMLInputElement).checked;
    const smoothing = Number(($('run-smooth') as HTMLInputElement).value);
    plot.innerHTML = s.length ? lossCurveSvg(s, { title: `${run.name}: ${run.records} records, last step ${run.last_step ?? '–'}`, yLabel: axisLabel([...chosen]), logY, smoothing, width: 760, height: 400 }) : '<p class="hint">pick a metric</p>';
    plot.querySelector('svg')?.setAttribute('viewBox', '0 0 760 400');
  }

  function keyBoxes() {
    keysEl.replaceChildren(...run!.keys.map((k) => {
      const l = document.createElement('label');
      const c = Object.assign(document.createElement('input'), { type: 'checkbox', checked: chosen.has(k) });
      c.onchange = () => {
        if (c.checked) chosen.add(k);
        else chosen.delete(k);
        draw();
      };
      l.append(c, ` ${k}`);
      return l;
    }));
  }

  async function load(refresh = false) {
    const name = sel.value;
    if (!name) return;
    let next: Run;
    try {
      const r = await apiFetch(`./api/runs/${encodeURIComponent(name)}`);
      if (!r.ok) throw new Error(`run ${name}: ${await errorOf(r)}`);
      next = (await r.json()) as Run;
      note('runs', null);
    } catch (e) {
      note('runs', (e as Error).message, 'error');
      return;
    }
    const changed = !refresh || !run || run.name !== next.name || run.records !== next.records;
    const first = !run || run.name !== next.name;
    run = next;
    if (first) {
      chosen = new Set(LOSSES.filter((k) => run!.keys.includes(k)));
      if (!chosen.size) chosen = new Set(run.keys.includes('psnr') ? ['psnr'] : run.keys.slice(0, 2));
      keyBoxes();
      imgSel.replaceChildren(...run.images.map((f) => Object.assign(document.createElement('option'), { value: f, textContent: f })));
      showImage();
    }
    if (changed) {
      draw();
      if (refresh) showImage();
    }
    document.body.dataset.run = run.name;
    status.say(`run ${run.name}: ${run.records} records, last step ${run.last_step ?? '–'}`);
  }

  function showImage() {
    if (!run || !imgSel.value) return img.removeAttribute('src');
    img.src = `./api/runs/${encodeURIComponent(run.name)}/files/${imgSel.value.split('/').map(encodeURIComponent).join('/')}?t=${run.records}`;
  }

  sel.onchange = () => void load();
  imgSel.onchange = showImage;
  ($('run-log') as HTMLInputElement).onchange = draw;
  ($('run-smooth') as HTMLInputElement).oninput = draw;
  document.addEventListener('view', (e) => {
    shown = (e as CustomEvent<string>).detail === 'runs';
    if (shown && !run) void load();
  });
  setInterval(() => {
    if (shown && document.visibilityState === 'visible') void load(true);
  }, 5000);
  void (async () => {
    let runs: Run[];
    try {
      const r = await apiFetch('./api/runs');
      if (!r.ok) throw new Error(await errorOf(r));
      ({ runs } = (await r.json()) as { runs: Run[] });
    } catch (e) {
      note('runs', `cannot list the runs: ${(e as Error).message}`, 'error');
      return;
    }
    sel.replaceChildren(...runs.map((x) => Object.assign(document.createElement('option'), { value: x.name, textContent: `${x.name} (${x.last_step ?? 0} steps)` })));
    if (!runs.length) note('runs', 'No training runs here: start the server with `--runs <dir>` (a run directory with metrics.jsonl, as `latentkit train-ae` writes, or a folder of them).', 'need');
  })();
}
