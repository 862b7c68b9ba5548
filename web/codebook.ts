// The codebook view: every entry of a model's codebook decoded as a tile (server-rendered
// atlas), beside a heat map of how often each entry codes the emoji dataset; hovering either
// names the entry and its use. Without the emoji images (an optional package) the atlas still
// shows, and the view says what the usage map needs.
import { apiFetch, errorOf } from './api.ts';
import { note, type Status } from './status.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

interface AtlasInfo { count: number; cols: number; tile: number; pad: number }
interface Usage { counts: number[]; images: number; dataset: string; used: number; perplexity: number }

// viridis at 0, ¼, ½, ¾, 1 (dark blue → green → yellow)
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

/** Use → colour: log-scaled between the least and most used entry (unused: grey). */
function heat(c: number, lo: number, hi: number): string {
  if (c === 0) return '#ccc';
  const t = hi > lo ? (Math.log(c) - Math.log(lo)) / (Math.log(hi) - Math.log(lo)) : 1;
  const x = t * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  const [a, b] = [RAMP[i]!, RAMP[i + 1]!];
  return `rgb(${a.map((v, k) => Math.round(v + f * (b[k]! - v))).join(',')})`;
}

export function initCodebook(names: string[], status: Status, emoji: { installed: boolean }): void {
  const sel = $<HTMLSelectElement>('cb-model');
  sel.replaceChildren(...names.map((n) => Object.assign(document.createElement('option'), { value: n, textContent: n })));
  const atlas = $<HTMLImageElement>('cb-atlas');
  const map = $<HTMLCanvasElement>('cb-heat');
  const info = $('cb-info');
  let state: { a: AtlasInfo; u: Usage | null } | null = null;
  let loading = '';

  async function load() {
    const name = sel.value;
    if (!name || loading === name) return;
    loading = name;
    state = null;
    info.textContent = '';
    const done = status.busy(`decoding every entry of ${name}'s codebook${emoji.installed ? ' and counting code use over the emoji images' : ''}…`);
    try {
      // the atlas needs only the model; the usage map needs the emoji images (or --usage-data)
      const [ra, ru] = await Promise.all([apiFetch(`./api/models/${name}/codebook`), apiFetch(`./api/models/${name}/usage`)]);
      if (!ra.ok) throw new Error(await errorOf(ra));
      const a = JSON.parse(ra.headers.get('x-atlas')!) as AtlasInfo;
      atlas.src = URL.createObjectURL(await ra.blob());
      let u: Usage | null = null;
      if (ru.ok) u = (await ru.json()) as Usage;
      else note('codebook', `Not shown: ${await errorOf(ru)}`, 'need');
      map.parentElement!.hidden = !u;
      state = { a, u };
      if (u) {
        const rows = Math.ceil(a.count / a.cols);
        const cell = 8;
        map.width = a.cols * cell;
        map.height = rows * cell;
        const ctx = map.getContext('2d')!;
        const used = u.counts.filter((c) => c > 0);
        const [lo, hi] = [Math.min(...used), Math.max(...used)];
        u.counts.forEach((c, k) => {
          ctx.fillStyle = heat(c, lo, hi);
          ctx.fillRect((k % a.cols) * cell, Math.floor(k / a.cols) * cell, cell, cell);
        });
        $('cb-stats').textContent = `${u.used} of ${a.count} entries used over ${u.images} images of ${u.dataset}; perplexity ${u.perplexity.toFixed(0)}`;
        info.textContent = `hover an entry (use from ${lo} to ${hi} times per entry, log colour scale)`;
      } else {
        $('cb-stats').textContent = `${a.count} entries`;
        info.textContent = 'hover an entry';
      }
      document.body.dataset.codebook = name;
      done(`${name}: ${a.count} codebook entries`);
    } catch (e) {
      done(`codebook of ${name}: failed`);
      note('codebook', (e as Error).message, 'error');
    } finally {
      loading = '';
    }
  }

  const hover = (el: HTMLElement, e: MouseEvent) => {
    if (!state) return;
    const { a, u } = state;
    const r = el.getBoundingClientRect();
    const rows = Math.ceil(a.count / a.cols);
    const k = Math.floor(((e.clientY - r.top) / r.height) * rows) * a.cols + Math.floor(((e.clientX - r.left) / r.width) * a.cols);
    if (k < 0 || k >= a.count) return;
    const total = u ? u.counts.reduce((s, c) => s + c, 0) : 0;
    info.textContent = u ? `entry ${k}: used ${u.counts[k]} times (${((100 * u.counts[k]!) / total).toFixed(2)} % of code cells)` : `entry ${k}`;
    const box = $('cb-box');
    box.style.display = 'block';
    for (const [target, id] of [[atlas, 'cb-box'], [map, 'cb-box2']] as const) {
      const tr = target.getBoundingClientRect();
      const pr = target.parentElement!.getBoundingClientRect();
      const b = $(id);
      b.style.display = 'block';
      b.style.left = `${tr.left - pr.left + ((k % a.cols) / a.cols) * tr.width}px`;
      b.style.top = `${tr.top - pr.top + (Math.floor(k / a.cols) / rows) * tr.height}px`;
      b.style.width = `${tr.width / a.cols}px`;
      b.style.height = `${tr.height / rows}px`;
    }
  };
  atlas.onmousemove = (e) => hover(atlas, e);
  map.onmousemove = (e) => hover(map, e);
  sel.onchange = () => void load();
  document.addEventListener('view', (e) => {
    if ((e as CustomEvent<string>).detail === 'codebook' && !state) void load();
  });
}
