// The emoji demo page: draw → sketch transformer, category → class transformer, image →
// VQGAN reconstruction with its code grid, the codebook, training runs. Each model call runs
// on the server (`latentkit serve`, same origin) or in the page (onnxruntime-web: WASM or
// WebGPU), as the backend toggle says; the status line shows which ran and how long it took,
// with a spinner while an answer is computed. Each view keeps its own status; what a view
// needs and does not have here (a model, the emoji images) it says in the view itself.
import { apiCall, apiFetch } from './api.ts';
import { initStatus, note, statusFor, type View } from './status.ts';
import { hasWebGPU, localReconstruct, localSample, wasmThreads, type Backend } from './local.ts';
import { canvasToRgb, imageToPlanar, toDataUrl } from './pixels.ts';
import { initCodebook } from './codebook.ts';
import { initRuns } from './runs.ts';
import { initTrain } from './train.ts';
import { initLatent, type KLInfo } from './latent.ts';
import { initEdit } from './edit.ts';
interface ModelInfo { name: string; kind: 'vqgan' | 'transformer' | 'kl' | 'taesd'; condition?: string; classes?: string[] | null; downsampling_factor?: number; resolution?: number; decoding?: 'maskgit' | 'autoregressive'; image_size?: [number, number]; grid?: [number, number] }

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
let models: ModelInfo[] = [];
initStatus();
const setStatus = (msg: string) => statusFor('current').say(msg);

// ---- backend toggle
const backendSel = $<HTMLSelectElement>('backend');
const gpuOpt = backendSel.querySelector<HTMLOptionElement>('option[value="webgpu"]')!;
gpuOpt.disabled = !hasWebGPU();
if (!hasWebGPU()) gpuOpt.textContent += ' (not in this browser)';
const backend = (): Backend => backendSel.value as Backend;
backendSel.onchange = () => setStatus(backend() === 'server' ? 'models run on the server' : `models run in this page (${backend()}); each is downloaded once`);

/**
 * Run `fn` for `view` with a spinner and `what` in the status (progress messages replace it),
 * then report where it ran and how long it took; an error goes into the view. The page's
 * tests read body[data-ran].
 */
async function timed<T>(view: View, what: string, fn: (progress: (m: string) => void) => Promise<T>): Promise<T> {
  const b = backend();
  const s = statusFor(view);
  const where = b === 'server' ? 'server' : b === 'wasm' ? `in browser · WASM (${wasmThreads()} thread${wasmThreads() > 1 ? 's' : ''})` : 'in browser · WebGPU';
  const t0 = performance.now();
  const done = s.busy(`${what} (${b === 'server' ? 'on the server' : 'in this browser'})…`);
  try {
    const r = await fn((m) => s.busyText(m));
    done(`${where}: ${(performance.now() - t0).toFixed(0)} ms`);
    note(view, null);
    document.body.dataset.ran = b;
    return r;
  } catch (e) {
    // a request replaced by a newer one (the Draw view's live answers) is not a failure
    if ((e as Error).name === 'AbortError' || /cancelled: a newer request/.test((e as Error).message)) done('replaced by a newer request');
    else {
      done(`${what}: failed`);
      note(view, (e as Error).message, 'error');
    }
    throw e;
  }
}

const localBackend = () => backend() as Exclude<Backend, 'server'>;
const call = apiCall;

// ---- views
for (const b of document.querySelectorAll<HTMLButtonElement>('nav button')) {
  b.onclick = () => {
    for (const o of document.querySelectorAll('nav button')) o.classList.toggle('active', o === b);
    for (const v of document.querySelectorAll('.view')) v.classList.toggle('active', v.id === `view-${b.dataset.view}`);
    document.dispatchEvent(new CustomEvent('view', { detail: b.dataset.view }));
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

const drawSel = $<HTMLSelectElement>('draw-model');
let drawRequest = 0;
let drawAbort: AbortController | null = null;

/**
 * Draw → emoji. A parallel (MaskGIT) model answers every stroke as it comes: a new request
 * cancels the one before (the server's fetch is aborted; in the browser the worker stops the
 * older loop at its next pass). An autoregressive model (seconds per answer) is asked one
 * request at a time, the latest strokes next. Sampling settings are the model's own.
 */
async function drawToEmoji(): Promise<void> {
  const sketchModel = models.find((m) => m.name === drawSel.value) ?? models.find((m) => m.condition === 'sketch');
  if (!sketchModel) return needs('draw');
  const parallel = sketchModel.decoding === 'maskgit';
  if (!dirty || (inflight && !parallel)) return;
  drawAbort?.abort();
  const abort = new AbortController();
  drawAbort = abort;
  const id = ++drawRequest;
  inflight = true;
  dirty = false;
  try {
    const seed = Number(($('draw-seed') as HTMLInputElement).value) || 0;
    const images = await timed('draw', `turning your drawing into 4 emoji${parallel ? ' (parallel decoding)' : ''}`, async (progress) => {
      if (backend() === 'server') {
        const blob = await new Promise<Blob>((res) => pad.toBlob((b) => res(b!), 'image/png'));
        const r = await call(`./api/models/${sketchModel.name}/sample?n=4&seed=${seed}&format=json`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: blob, signal: abort.signal });
        return ((await r.json()) as { images: string[] }).images;
      }
      const sketch = { rgb: canvasToRgb(pad), h: pad.height, w: pad.width };
      const { images, size: [h, w] } = await localSample(sketchModel.name, localBackend(), { n: 4, seed, sketch, id }, progress);
      return images.map((img) => toDataUrl([img], 3, h, w));
    });
    if (id === drawRequest) $('draw-out').replaceChildren(...images.map((src) => Object.assign(document.createElement('img'), { src, alt: 'emoji from your drawing' })));
  } catch {
    // said in the view (timed), or replaced by a newer request
  } finally {
    if (id === drawRequest) inflight = false;
  }
  if (dirty && id === drawRequest) void drawToEmoji();
}

// ---- sample by category
const temp = $<HTMLInputElement>('temperature');
temp.oninput = () => ($('t-out').textContent = Number(temp.value).toFixed(2));
const goBtn = $<HTMLButtonElement>('go');
goBtn.onclick = async () => {
  const cls = models.find((m) => m.condition === 'class');
  if (!cls) return needs('sample');
  const o = { cls: ($('class') as HTMLSelectElement).value, temperature: Number(temp.value), topK: Number(($('top-k') as HTMLInputElement).value), seed: Number(($('seed') as HTMLInputElement).value) };
  goBtn.disabled = true;
  try {
    ($('sample-out') as HTMLImageElement).src = await timed('sample', `sampling 8 × ${o.cls}`, async (progress) => {
      if (backend() === 'server') {
        const q = new URLSearchParams({ class: o.cls, n: '8', temperature: String(o.temperature), top_k: String(o.topK), seed: String(o.seed) });
        const r = await call(`./api/models/${cls.name}/sample?${q}`, { method: 'POST' });
        return URL.createObjectURL(await r.blob());
      }
      const { images, size: [h, w] } = await localSample(cls.name, localBackend(), { n: 8, cls: o.cls, seed: o.seed, temperature: o.temperature, topK: o.topK }, progress);
      return toDataUrl(images, 3, h, w, 8);
    });
  } catch {
    // said in the view (timed)
  } finally {
    goBtn.disabled = false;
  }
};

// ---- reconstruct
async function reconstruct(file: Blob) {
  const vq = models.find((m) => m.kind === 'vqgan');
  if (!vq) return needs('reconstruct');
  ($('rec-in') as HTMLImageElement).src = URL.createObjectURL(file);
  const size = vq.resolution ?? 64;
  let r: { image: string; indices: number[]; shape: [number, number] };
  try {
    r = await timed('reconstruct', 'encoding and decoding your image', async (progress) => {
      if (backend() === 'server') {
        const type = ['image/png', 'image/jpeg', 'image/webp'].includes(file.type) ? file.type : 'image/png';
        const res = await call(`./api/models/${vq.name}/reconstruct?size=${size}&format=json`, { method: 'POST', headers: { 'content-type': type }, body: file });
        return (await res.json()) as typeof r;
      }
      const o = await localReconstruct(vq.name, localBackend(), await imageToPlanar(file, size), progress);
      return { image: toDataUrl([o.image], o.channels, o.size[0], o.size[1]), indices: Array.from(o.indices), shape: o.shape };
    });
  } catch {
    return; // said in the view (timed)
  }
  const { image, indices, shape } = r;
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
// What a view needs when this server does not serve it, and how to get it.
const SERVE_BUNDLED = 'restart the server without `--model` to serve the bundled emoji models';
const NEEDS: Partial<Record<View, string>> = {
  draw: `Drawing needs a sketch → image transformer, and this server serves none. To get one, ${SERVE_BUNDLED} (emoji-sketch among them), or add \`--model <dir>\` of a sketch-conditioned model.`,
  sample: `Sampling by category needs a class-conditional transformer, and this server serves none. To get one, ${SERVE_BUNDLED} (emoji-class among them), or add \`--model <dir>\` of a class-conditional model.`,
  reconstruct: `Reconstruction needs a VQGAN, and this server serves none. To get one, ${SERVE_BUNDLED} (emoji-f4 among them), or add \`--model <file or dir>\` of a VQGAN.`,
  latent: `The latent view needs a KL autoencoder (Stable Diffusion's kind), and this server serves none. To get one, ${SERVE_BUNDLED} (emoji-kl-f4 among them), or add \`--model <vae>\` of an SD VAE (a diffusers vae/ folder, an SD .ckpt or .safetensors).`,
  codebook: `The codebook view needs a VQGAN or a transformer, and this server serves none: ${SERVE_BUNDLED}.`,
};
function needs(view: View): void {
  note(view, NEEDS[view]!, 'need');
}

(async () => {
  try {
    const r = await apiCall('./api/models');
    models = ((await r.json()) as { models: ModelInfo[] }).models;
  } catch (e) {
    for (const v of ['draw', 'sample', 'reconstruct', 'latent', 'codebook', 'runs', 'train'] as View[]) note(v, `cannot list the models: ${(e as Error).message}`, 'error');
    document.body.dataset.ready = '1';
    return;
  }
  const cls = models.find((m) => m.condition === 'class');
  ($('class') as HTMLSelectElement).replaceChildren(...(cls?.classes ?? []).map((c) => Object.assign(document.createElement('option'), { value: c, textContent: c })));
  if (!cls) {
    needs('sample');
    goBtn.disabled = true;
    ($('class') as HTMLSelectElement).disabled = true;
  }
  const sketchModels = models.filter((m) => m.condition === 'sketch').sort((a, b) => Number(b.decoding === 'maskgit') - Number(a.decoding === 'maskgit'));
  drawSel.replaceChildren(...sketchModels.map((m) => Object.assign(document.createElement('option'), { value: m.name, textContent: `${m.name}${m.decoding === 'maskgit' ? ' (parallel)' : ' (autoregressive)'}` })));
  if (!sketchModels.length) needs('draw');
  initEdit(models, { backend, timed, note, drawing: () => pad });
  if (!models.some((m) => m.kind === 'vqgan')) {
    needs('reconstruct');
    ($('file') as HTMLInputElement).disabled = true;
  }
  const cbModels = models.filter((m) => m.kind === 'vqgan' || m.kind === 'transformer').map((m) => m.name);
  if (!cbModels.length) needs('codebook');
  statusFor('draw').say(`models: ${models.map((m) => m.name).join(', ') || '(none)'}`);
  // what the server's optional packages allow (the emoji images: the usage map, training on emoji)
  const health = (await apiFetch('./api/health').then((x) => x.json()).catch(() => null)) as { optional?: { emoji_images?: { installed: boolean; install: string } } } | null;
  const emoji = health?.optional?.emoji_images ?? { installed: true, install: '' };
  initCodebook(cbModels, statusFor('codebook'), emoji);
  initLatent(models.filter((m): m is ModelInfo & KLInfo => m.kind === 'kl'), { timed, backend, needs: () => needs('latent'), note: (msg) => note('latent', msg, 'error'), emoji });
  initRuns(statusFor('runs'));
  initTrain(emoji);
  document.body.dataset.ready = '1';
})();
