// The Edit view: pick or drop an image (or take a held-out emoji), brush over a region, and a
// transformer repaints it — a MaskGIT model exactly the code cells the brush touched, keeping
// every other code; an autoregressive one from the first touched cell on (it says so). On the
// server (POST /api/models/<m>/edit) or in this browser (the model's ONNX export in the worker);
// both turn the brush into cells the same way (src/sample/edit.ts).
import { apiCall } from './api.ts';
import { maskCells, resizeNearest } from '../src/sample/edit.ts';
import { localEdit, type Backend } from './local.ts';
import { canvasToRgb, imageToPlanar, toDataUrl } from './pixels.ts';
import type { View } from './status.ts';

export interface EditModel {
  name: string;
  kind: string;
  condition?: string;
  classes?: string[] | null;
  decoding?: 'maskgit' | 'autoregressive';
  image_size?: [number, number];
  grid?: [number, number];
}

interface Deps {
  backend: () => Backend;
  timed: <T>(view: View, what: string, fn: (progress: (m: string) => void) => Promise<T>) => Promise<T>;
  note: (view: View, msg: string | null, kind?: 'need' | 'error') => void;
  /** the Draw view's pad, for a sketch condition */
  drawing: () => HTMLCanvasElement | null;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const BRUSH = 14; // display pixels (the pad is 256×256 for a 64×64 image)

export function initEdit(models: EditModel[], d: Deps): void {
  const editable = models.filter((m) => m.kind === 'transformer' && (m.condition === 'class' || m.condition === 'sketch' || m.condition === 'none'));
  const sel = $<HTMLSelectElement>('edit-model');
  // parallel (MaskGIT) models first: they repaint exactly the brushed cells
  editable.sort((a, b) => Number(b.decoding === 'maskgit') - Number(a.decoding === 'maskgit'));
  sel.replaceChildren(...editable.map((m) => Object.assign(document.createElement('option'), { value: m.name, textContent: `${m.name}${m.decoding === 'maskgit' ? ' (parallel)' : ' (autoregressive)'}` })));
  const go = $<HTMLButtonElement>('edit-go');
  if (!editable.length) {
    d.note('edit', 'Editing needs a transformer over a VQGAN\'s codes (a MaskGIT model repaints exactly the brushed region), and this server serves none: restart the server without `--model` to serve the bundled models.', 'need');
    go.disabled = true;
    return;
  }
  const model = () => editable.find((m) => m.name === sel.value)!;
  const clsSel = $<HTMLSelectElement>('edit-class');
  const condInfo = $('edit-cond');
  const syncCond = () => {
    const m = model();
    clsSel.hidden = m.condition !== 'class';
    clsSel.replaceChildren(...(m.classes ?? []).map((c) => Object.assign(document.createElement('option'), { value: c, textContent: c })));
    condInfo.textContent = m.condition === 'sketch' ? 'condition: your drawing in the Draw view (none when the pad is blank)' : '';
  };
  sel.onchange = syncCond;
  syncCond();

  const img = $<HTMLCanvasElement>('edit-img');
  const mask = $<HTMLCanvasElement>('edit-mask');
  const ictx = img.getContext('2d')!;
  const mctx = mask.getContext('2d')!;
  ictx.imageSmoothingEnabled = false;
  let hasImage = false;
  const clearMask = () => mctx.clearRect(0, 0, mask.width, mask.height);
  const show = async (blob: Blob) => {
    const bmp = await createImageBitmap(blob);
    ictx.fillStyle = '#fff';
    ictx.fillRect(0, 0, img.width, img.height);
    ictx.drawImage(bmp, 0, 0, img.width, img.height);
    hasImage = true;
    clearMask();
    $('edit-out').replaceChildren();
  };
  $<HTMLInputElement>('edit-file').onchange = (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) void show(f);
  };
  const pad = $('edit-pad');
  pad.ondragover = (e) => e.preventDefault();
  pad.ondrop = (e) => {
    e.preventDefault();
    const f = e.dataTransfer?.files[0];
    if (f) void show(f);
  };
  let exampleSeed = 0;
  $('edit-example').onclick = async () => {
    try {
      const r = await apiCall(`./api/train/data?split=val&n=1&size=64&seed=${exampleSeed++}`);
      const j = (await r.json()) as { images: string[] };
      await show(await (await fetch(j.images[0]!)).blob());
    } catch (e) {
      d.note('edit', (e as Error).message, 'error');
    }
  };

  // the brush: a translucent red mask over the image
  let brushing = false;
  const dot = (e: PointerEvent) => {
    const r = mask.getBoundingClientRect();
    const x = ((e.clientX - r.left) / r.width) * mask.width;
    const y = ((e.clientY - r.top) / r.height) * mask.height;
    mctx.fillStyle = 'rgba(230, 40, 40, 0.55)';
    mctx.beginPath();
    mctx.arc(x, y, BRUSH, 0, 2 * Math.PI);
    mctx.fill();
  };
  mask.addEventListener('pointerdown', (e) => {
    brushing = true;
    mask.setPointerCapture(e.pointerId);
    dot(e);
  });
  mask.addEventListener('pointermove', (e) => brushing && dot(e));
  mask.addEventListener('pointerup', () => (brushing = false));
  $('edit-clear').onclick = clearMask;

  /** The brush as white-on-black [H, W] at the image's size, and the cells it marks. */
  const brushMask = (m: EditModel) => {
    const [H, W] = m.image_size ?? [64, 64];
    const a = mctx.getImageData(0, 0, mask.width, mask.height).data;
    const g = new Uint8Array(mask.width * mask.height);
    for (let i = 0; i < g.length; i++) g[i] = a[i * 4 + 3]! > 0 ? 255 : 0;
    const small = resizeNearest(g, mask.height, mask.width, H, W);
    return { small, H, W, cells: maskCells(small, H, W, m.grid ?? [H / 4, W / 4]) };
  };
  const maskPng = async (small: Uint8Array, H: number, W: number): Promise<string> => {
    const c = document.createElement('canvas');
    c.width = W;
    c.height = H;
    const id = c.getContext('2d')!.createImageData(W, H);
    for (let i = 0; i < small.length; i++) id.data.set([small[i]!, small[i]!, small[i]!, 255], i * 4);
    c.getContext('2d')!.putImageData(id, 0, 0);
    return c.toDataURL('image/png');
  };
  const imagePng = async (H: number, W: number): Promise<Blob> => {
    const c = document.createElement('canvas');
    c.width = W;
    c.height = H;
    c.getContext('2d')!.drawImage(img, 0, 0, W, H);
    return new Promise((res) => c.toBlob((b) => res(b!), 'image/png'));
  };

  go.onclick = async () => {
    const m = model();
    if (!hasImage) return d.note('edit', 'pick or drop an image first (or take a held-out emoji)', 'error');
    const { small, H, W, cells } = brushMask(m);
    const seed = Number($<HTMLInputElement>('edit-seed').value) || 0;
    const pad = m.condition === 'sketch' ? d.drawing() : null;
    const drawing = pad && hasInk(pad) ? pad : null;
    go.disabled = true;
    try {
      const r = await d.timed('edit', `repainting ${cells.reduce((a, v) => a + v, 0)} cells with ${m.name}`, async (progress) => {
        const png = await imagePng(H, W);
        if (d.backend() === 'server') {
          const body: Record<string, unknown> = { image: await blobUrl(png), mask: await maskPng(small, H, W), n: 4, seed };
          if (m.condition === 'class') body.class = clsSel.value;
          if (drawing) body.cond = drawing.toDataURL('image/png');
          const res = await apiCall(`./api/models/${m.name}/edit`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
          const j = (await res.json()) as { images: string[]; notes: string[]; regenerated: number };
          return { images: j.images, notes: j.notes, regenerated: j.regenerated };
        }
        const image = await imageToPlanar(png, H);
        const sketch = drawing ? { rgb: canvasToRgb(drawing), h: drawing.height, w: drawing.width } : undefined;
        const o = await localEdit(m.name, d.backend() as Exclude<Backend, 'server'>, { n: 4, seed, image, cells, cls: m.condition === 'class' ? clsSel.value : undefined, sketch }, progress);
        return { images: o.images.map((x) => toDataUrl([x], 3, o.size[0], o.size[1])), notes: o.plan.notes, regenerated: o.plan.generate };
      });
      $('edit-out').replaceChildren(...r.images.map((src) => Object.assign(document.createElement('img'), { src, alt: 'repainted image' })));
      $('edit-info').textContent = [`repainted ${r.regenerated} of ${cells.length} cells`, ...r.notes].join('; ');
    } catch {
      // said in the view (timed)
    } finally {
      go.disabled = false;
    }
  };
}

async function blobUrl(b: Blob): Promise<string> {
  return new Promise((res) => {
    const fr = new FileReader();
    fr.onload = () => res(String(fr.result));
    fr.readAsDataURL(b);
  });
}

/** Whether a drawing pad holds any ink (a blank pad is no condition). */
function hasInk(c: HTMLCanvasElement): boolean {
  const a = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
  for (let i = 0; i < a.length; i += 4) if (a[i]! < 200) return true;
  return false;
}
