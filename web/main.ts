// The emoji demo page: draw → sketch transformer, category → class transformer, image →
// VQGAN reconstruction with its code grid. Talks to `latentkit serve` (same origin).
export {};
interface ModelInfo { name: string; kind: 'vqgan' | 'transformer'; condition?: string; classes?: string[] | null; downsampling_factor?: number; resolution?: number }

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const statusEl = $('status');
let models: ModelInfo[] = [];

function setStatus(msg: string) {
  statusEl.textContent = msg;
}

async function call(url: string, init: RequestInit): Promise<Response> {
  const t0 = performance.now();
  const r = await fetch(url, init);
  if (!r.ok) {
    const err = await r.json().catch(() => ({ error: r.statusText }));
    setStatus(`${r.status}: ${(err as { error: string }).error}`);
    throw new Error((err as { error: string }).error);
  }
  setStatus(`server: ${(performance.now() - t0).toFixed(0)} ms`);
  return r;
}

// ---- views
for (const b of document.querySelectorAll<HTMLButtonElement>('nav button')) {
  b.onclick = () => {
    for (const o of document.querySelectorAll('nav button')) o.classList.toggle('active', o === b);
    for (const v of document.querySelectorAll('.view')) v.classList.toggle('active', v.id === `view-${b.dataset.view}`);
  };
}

// ---- draw
const pad = $<HTMLCanvasElement>('pad');
const ctx = pad.getContext('2d')!;
function clearPad() {
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, pad.width, pad.height);
}
clearPad();
let drawing = false;
let last: [number, number] | null = null;
let dirty = false;
let inflight = false;
const pos = (e: PointerEvent): [number, number] => {
  const r = pad.getBoundingClientRect();
  return [((e.clientX - r.left) / r.width) * pad.width, ((e.clientY - r.top) / r.height) * pad.height];
};
pad.addEventListener('pointerdown', (e) => {
  drawing = true;
  last = pos(e);
  pad.setPointerCapture(e.pointerId);
});
pad.addEventListener('pointermove', (e) => {
  if (!drawing || !last) return;
  const p = pos(e);
  ctx.strokeStyle = '#000';
  ctx.lineWidth = 6;
  ctx.lineCap = 'round';
  ctx.beginPath();
  ctx.moveTo(...last);
  ctx.lineTo(...p);
  ctx.stroke();
  last = p;
  dirty = true;
  void drawToEmoji(); // live: one request at a time, the latest strokes next
});
pad.addEventListener('pointerup', () => {
  drawing = false;
  last = null;
  void drawToEmoji();
});
$('clear').onclick = () => {
  clearPad();
  $('draw-out').replaceChildren();
};

async function drawToEmoji(): Promise<void> {
  const sketch = models.find((m) => m.condition === 'sketch');
  if (!sketch || inflight || !dirty) return;
  inflight = true;
  dirty = false;
  try {
    const blob = await new Promise<Blob>((res) => pad.toBlob((b) => res(b!), 'image/png'));
    const seed = Number(($('draw-seed') as HTMLInputElement).value) || 0;
    const r = await call(`/api/models/${sketch.name}/sample?n=4&seed=${seed}&top_k=100&format=json`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: blob });
    const { images } = (await r.json()) as { images: string[] };
    $('draw-out').replaceChildren(...images.map((src) => Object.assign(document.createElement('img'), { src, alt: 'emoji from your drawing' })));
  } finally {
    inflight = false;
  }
  if (dirty) void drawToEmoji();
}

// ---- sample by category
const temp = $<HTMLInputElement>('temperature');
temp.oninput = () => ($('t-out').textContent = Number(temp.value).toFixed(2));
$('go').onclick = async () => {
  const cls = models.find((m) => m.condition === 'class');
  if (!cls) return setStatus('no class-conditional model is served');
  const q = new URLSearchParams({ class: ($('class') as HTMLSelectElement).value, n: '8', temperature: temp.value, top_k: ($('top-k') as HTMLInputElement).value, seed: ($('seed') as HTMLInputElement).value });
  const r = await call(`/api/models/${cls.name}/sample?${q}`, { method: 'POST' });
  ($('sample-out') as HTMLImageElement).src = URL.createObjectURL(await r.blob());
};

// ---- reconstruct
async function reconstruct(file: Blob) {
  const vq = models.find((m) => m.kind === 'vqgan');
  if (!vq) return setStatus('no VQGAN is served');
  ($('rec-in') as HTMLImageElement).src = URL.createObjectURL(file);
  const type = ['image/png', 'image/jpeg', 'image/webp'].includes(file.type) ? file.type : 'image/png';
  const r = await call(`/api/models/${vq.name}/reconstruct?size=${vq.resolution ?? 64}&format=json`, { method: 'POST', headers: { 'content-type': type }, body: file });
  const { image, indices, shape } = (await r.json()) as { image: string; indices: number[]; shape: [number, number] };
  ($('rec-out') as HTMLImageElement).src = image;
  const grid = $('codes');
  grid.style.gridTemplateColumns = `repeat(${shape[1]}, 1fr)`;
  const cells = indices.map((k) => {
    const s = document.createElement('span');
    s.dataset.code = String(k);
    s.style.background = `hsl(${(k * 137.5) % 360} 60% ${45 + (k % 5) * 8}%)`;
    return s;
  });
  grid.replaceChildren(...cells);
  grid.onmouseover = (e) => {
    const code = (e.target as HTMLElement).dataset.code;
    if (code === undefined) return;
    const same = cells.filter((c) => c.dataset.code === code);
    for (const c of cells) c.classList.toggle('same', c.dataset.code === code);
    $('code-info').textContent = `code ${code}: ${same.length} of ${cells.length} cells`;
  };
}
const drop = $('drop');
drop.ondragover = (e) => {
  e.preventDefault();
  drop.classList.add('over');
};
drop.ondragleave = () => drop.classList.remove('over');
drop.ondrop = (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const f = e.dataTransfer?.files[0];
  if (f) void reconstruct(f);
};
($('file') as HTMLInputElement).onchange = (e) => {
  const f = (e.target as HTMLInputElement).files?.[0];
  if (f) void reconstruct(f);
};
window.addEventListener('paste', (e) => {
  const f = [...(e.clipboardData?.files ?? [])][0];
  if (f) void reconstruct(f);
});

// ---- start
(async () => {
  models = ((await (await fetch('/api/models')).json()) as { models: ModelInfo[] }).models;
  const cls = models.find((m) => m.condition === 'class');
  ($('class') as HTMLSelectElement).replaceChildren(...(cls?.classes ?? []).map((c) => Object.assign(document.createElement('option'), { value: c, textContent: c })));
  setStatus(`models: ${models.map((m) => m.name).join(', ')}`);
  document.body.dataset.ready = '1';
})();
