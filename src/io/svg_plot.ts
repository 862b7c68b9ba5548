// Loss curves as standalone SVG text (axes, "nice" ticks, optional log-y, legend, optional
// TensorBoard-style EMA smoothing). Pure JavaScript: the web page's run viewer draws with it too.

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

export interface PlotOptions {
  title?: string;
  /** Logarithmic y axis (non-positive values are skipped). */
  logY?: boolean;
  /** EMA weight in [0, 1): 0 = raw only; otherwise raw is drawn faint under the smoothed line. */
  smoothing?: number;
  width?: number;
  height?: number;
  xLabel?: string;
  yLabel?: string;
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const FONT = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Debiased exponential moving average (as TensorBoard's smoothing slider). */
export function smoothEma(values: readonly number[], weight: number): number[] {
  if (!(weight >= 0 && weight < 1)) throw new Error(`smoothEma: weight must be in [0, 1), got ${weight}`);
  let s = 0;
  let corr = 1;
  return values.map((v) => {
    s = s * weight + (1 - weight) * v;
    corr *= weight;
    return s / (1 - corr);
  });
}

/** Ticks at 1/2/5·10^k covering [lo, hi], about `target` of them. */
export function niceTicks(lo: number, hi: number, target = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, target);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const e = raw / mag; // in [1, 10): pick the nearest of 1, 2, 5, 10 (geometric midpoints, as d3)
  const step = (e >= Math.sqrt(50) ? 10 : e >= Math.sqrt(10) ? 5 : e >= Math.sqrt(2) ? 2 : 1) * mag;
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  const ticks: number[] = [];
  // Integer multiples, rounded to the step's decimals so labels read 0.6, not 0.6000000000000001.
  for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-9; i++) ticks.push(+(i * step).toFixed(digits) || 0);
  return ticks;
}

function logTicks(lo: number, hi: number): number[] {
  const d0 = Math.floor(Math.log10(lo));
  const d1 = Math.ceil(Math.log10(hi));
  const mults = d1 - d0 <= 3 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let d = d0; d <= d1; d++) for (const m of mults) {
    const t = m * Math.pow(10, d);
    if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9)) ticks.push(t);
  }
  return ticks.length >= 2 ? ticks : niceTicks(lo, hi, 4);
}

export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(0).replace('e+', 'e');
  if (a >= 1e3) return `${+(v / 1000).toPrecision(3)}k`;
  return String(+v.toPrecision(4));
}

/** Keep at most ~2 points per pixel column (first/min/max/last per bucket), in order. */
function decimate(pts: [number, number][], toPx: (x: number) => number): [number, number][] {
  if (pts.length < 2000) return pts;
  const out: [number, number][] = [];
  let bucket: [number, number][] = [];
  let col = NaN;
  const flush = () => {
    if (bucket.length === 0) return;
    let lo = bucket[0];
    let hi = bucket[0];
    for (const p of bucket) {
      if (p[1] < lo[1]) lo = p;
      if (p[1] > hi[1]) hi = p;
    }
    const keep = new Set([bucket[0], lo, hi, bucket[bucket.length - 1]]);
    for (const p of bucket) if (keep.has(p)) out.push(p);
    bucket = [];
  };
  for (const p of pts) {
    const c = Math.round(toPx(p[0]));
    if (c !== col) {
      flush();
      col = c;
    }
    bucket.push(p);
  }
  flush();
  return out;
}

/** Render loss curves as an SVG document string. */
export function lossCurveSvg(series: readonly Series[], opts: PlotOptions = {}): string {
  const W = opts.width ?? 800;
  const H = opts.height ?? 480;
  const logY = opts.logY ?? false;
  const smoothing = opts.smoothing ?? 0;
  if (!(smoothing >= 0 && smoothing < 1)) throw new Error(`lossCurveSvg: smoothing must be in [0, 1), got ${smoothing}`);
  const m = { left: 70, right: 20, top: opts.title ? 40 : 20, bottom: 50 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;

  const clean = series.map((s) => ({
    name: s.name,
    pts: s.points
      .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0))
      .map(([x, y]) => [x, y] as [number, number])
      .sort((a, b) => a[0] - b[0]),
  }));
  const all = clean.flatMap((s) => s.pts);
  // Loops, not Math.min(...xs): long runs would overflow the argument stack.
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of all) {
    x0 = Math.min(x0, x);
    x1 = Math.max(x1, x);
    y0 = Math.min(y0, y);
    y1 = Math.max(y1, y);
  }
  if (all.length === 0) [x0, x1, y0, y1] = [0, 1, logY ? 0.1 : 0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = logY ? [y0 / 2, y1 * 2] : [y0 - Math.abs(y0 || 1) * 0.5, y1 + Math.abs(y1 || 1) * 0.5];
  if (!logY) {
    const padY = (y1 - y0) * 0.04;
    [y0, y1] = [y0 - padY, y1 + padY];
  } else {
    const padY = Math.pow(y1 / y0, 0.04);
    [y0, y1] = [y0 / padY, y1 * padY];
  }
  const fy = logY ? Math.log10 : (v: number) => v;
  const ly0 = fy(y0);
  const ly1 = fy(y1);
  const px = (x: number) => m.left + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number) => m.top + ph - ((fy(y) - ly0) / (ly1 - ly0)) * ph;
  const r = (v: number) => Math.round(v * 10) / 10;

  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  if (opts.title) {
    parts.push(`<text x="${W / 2}" y="${m.top / 2 + 6}" text-anchor="middle" font-size="16" ${FONT} fill="#222">${escapeXml(opts.title)}</text>`);
  }
  // Grid and ticks.
  const xt = niceTicks(x0, x1, Math.max(2, Math.round(pw / 110)));
  const yt = logY ? logTicks(y0, y1) : niceTicks(y0, y1, Math.max(2, Math.round(ph / 60)));
  parts.push('<g class="grid" stroke="#e5e5e5" stroke-width="1">');
  for (const t of xt) parts.push(`<line x1="${r(px(t))}" y1="${m.top}" x2="${r(px(t))}" y2="${m.top + ph}"/>`);
  for (const t of yt) parts.push(`<line x1="${m.left}" y1="${r(py(t))}" x2="${m.left + pw}" y2="${r(py(t))}"/>`);
  parts.push('</g>');
  parts.push(`<g class="ticks" font-size="11" ${FONT} fill="#444">`);
  for (const t of xt) parts.push(`<text x="${r(px(t))}" y="${m.top + ph + 16}" text-anchor="middle">${formatTick(t)}</text>`);
  for (const t of yt) parts.push(`<text x="${m.left - 6}" y="${r(py(t)) + 4}" text-anchor="end">${formatTick(t)}</text>`);
  parts.push('</g>');
  parts.push(`<rect class="axes" x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#444" stroke-width="1"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${H - 10}" text-anchor="middle" font-size="12" ${FONT} fill="#222">${escapeXml(opts.xLabel ?? 'step')}</text>`);
  parts.push(
    `<text x="16" y="${m.top + ph / 2}" text-anchor="middle" font-size="12" ${FONT} fill="#222" transform="rotate(-90 16 ${m.top + ph / 2})">${escapeXml(
      (opts.yLabel ?? 'loss') + (logY ? ' (log)' : ''),
    )}</text>`,
  );
  if (all.length === 0) {
    parts.push(`<text x="${m.left + pw / 2}" y="${m.top + ph / 2}" text-anchor="middle" font-size="14" ${FONT} fill="#888">no data</text>`);
  }

  // Curves, clipped to the plot area.
  parts.push(`<defs><clipPath id="plot-area"><rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}"/></clipPath></defs>`);
  parts.push('<g clip-path="url(#plot-area)" fill="none" stroke-linejoin="round" stroke-linecap="round">');
  const pathD = (pts: [number, number][]) =>
    decimate(pts, px)
      .map((p, i) => `${i === 0 ? 'M' : 'L'}${r(px(p[0]))},${r(py(p[1]))}`)
      .join('');
  clean.forEach((s, i) => {
    if (s.pts.length === 0) return;
    const color = COLORS[i % COLORS.length];
    const name = escapeXml(s.name);
    if (smoothing > 0) {
      parts.push(`<path class="raw" data-series="${name}" d="${pathD(s.pts)}" stroke="${color}" stroke-opacity="0.25" stroke-width="1"/>`);
      const sm = smoothEma(
        s.pts.map((p) => p[1]),
        smoothing,
      );
      const smPts = s.pts.map((p, k) => [p[0], sm[k]] as [number, number]).filter((p) => !logY || p[1] > 0);
      parts.push(`<path class="smoothed" data-series="${name}" d="${pathD(smPts)}" stroke="${color}" stroke-width="1.8"/>`);
    } else {
      parts.push(`<path class="raw" data-series="${name}" d="${pathD(s.pts)}" stroke="${color}" stroke-width="1.5"/>`);
    }
    if (s.pts.length === 1) parts.push(`<circle cx="${r(px(s.pts[0][0]))}" cy="${r(py(s.pts[0][1]))}" r="2.5" fill="${color}"/>`);
  });
  parts.push('</g>');

  // Legend (top right, inside the plot).
  if (series.length > 0) {
    const lw = Math.min(pw - 10, 28 + 7 * Math.max(...series.map((s) => s.name.length)));
    const lh = 8 + 18 * series.length;
    // the corner (top right, top left, bottom right, bottom left) that covers the fewest data points
    const corners = [
      [m.left + pw - lw - 8, m.top + 8],
      [m.left + 8, m.top + 8],
      [m.left + pw - lw - 8, m.top + ph - lh - 8],
      [m.left + 8, m.top + ph - lh - 8],
    ] as const;
    // the drawn lines, sampled every few pixels (points and the segments between them)
    const drawn: [number, number][] = [];
    for (const s of clean) {
      s.pts.forEach(([x, y], k) => {
        const [X, Y] = [px(x), py(y)];
        if (k === 0) return void drawn.push([X, Y]);
        const [X0, Y0] = [px(s.pts[k - 1]![0]), py(s.pts[k - 1]![1])];
        const n = Math.max(1, Math.ceil(Math.hypot(X - X0, Y - Y0) / 4));
        for (let j = 1; j <= n; j++) drawn.push([X0 + ((X - X0) * j) / n, Y0 + ((Y - Y0) * j) / n]);
      });
    }
    const covered = ([cx, cy]: readonly [number, number]) => drawn.filter(([X, Y]) => X >= cx - 6 && X <= cx + lw + 6 && Y >= cy - 6 && Y <= cy + lh + 6).length;
    const [lx, ly] = corners.reduce((best, c) => (covered(c) < covered(best) ? c : best), corners[0]);
    parts.push(`<g class="legend" font-size="12" ${FONT} fill="#222">`);
    parts.push(`<rect x="${lx}" y="${ly}" width="${lw}" height="${lh}" fill="#ffffff" fill-opacity="0.85" stroke="#bbb"/>`);
    series.forEach((s, i) => {
      const yy = ly + 16 + 18 * i;
      parts.push(`<line x1="${lx + 6}" y1="${yy - 4}" x2="${lx + 20}" y2="${yy - 4}" stroke="${COLORS[i % COLORS.length]}" stroke-width="3"/>`);
      parts.push(`<text x="${lx + 25}" y="${yy}">${escapeXml(s.name)}</text>`);
    });
    parts.push('</g>');
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
