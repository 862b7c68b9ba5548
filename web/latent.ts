// The Latent view: what a KL autoencoder (Stable Diffusion's kind) makes of an image. Two
// images are each encoded to a small grid of latent channels, drawn as images (blue below
// zero, red above), and decoded back with their PSNR; a slider walks the straight line between
// the two latents, decoded live — by the model's preview decoder first (when it has one), then
// by the full decoder. Everything runs on the server or in this browser as the backend toggle
// says; both paths start from the same pixels (the page resizes the image and sends those).
import { decode as decodePng } from 'fast-png';
import { floatToU8, interleavedToPlanar, u8ToFloat } from '../src/browser.ts';
import { apiCall } from './api.ts';
import { localKLDecode, localKLEncode, type Backend } from './local.ts';
import { imageToU8, toDataUrl } from './pixels.ts';
import type { View } from './status.ts';

export interface KLInfo {
  name: string;
  kind: 'kl';
  resolution?: number;
  downsampling_factor: number;
  latent_channels: number;
  preview?: { parameters: number; factor: number };
}

type Timed = <T>(view: View, what: string, fn: (progress: (m: string) => void) => Promise<T>) => Promise<T>;

interface Encoded {
  /** the input as the model saw it: planar uint8 RGB [3, S, S] */
  input: Uint8Array;
  latents: Float32Array;
  shape: [number, number, number];
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** PSNR (dB) of two planar uint8 images of the same size. */
export function psnrU8(a: Uint8Array, b: Uint8Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  return se === 0 ? Infinity : 10 * Math.log10((255 * 255 * a.length) / se);
}

/** A PNG data URL (the server's answers) → planar uint8 RGB. */
function pngDataUrlToU8(url: string): Uint8Array {
  const bin = atob(url.slice(url.indexOf(',') + 1));
  const png = decodePng(Uint8Array.from(bin, (ch) => ch.charCodeAt(0)));
  return interleavedToPlanar(png.data as Uint8Array, png.height, png.width, png.channels);
}

/** One latent channel as an image: blue below zero, white at zero, red above (symmetric range per channel). */
function channelCanvas(z: Float32Array, k: number, h: number, w: number): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const plane = z.subarray(k * h * w, (k + 1) * h * w);
  const m = plane.reduce((a, v) => Math.max(a, Math.abs(v)), 0) || 1;
  const px = new Uint8ClampedArray(4 * h * w);
  plane.forEach((v, i) => {
    const t = v / m;
    const fade = Math.round(255 * (1 - Math.abs(t)));
    px.set(t >= 0 ? [255, fade, fade, 255] : [fade, fade, 255, 255], 4 * i);
  });
  c.getContext('2d')!.putImageData(new ImageData(px, w, h), 0, 0);
  c.title = `channel ${k}: ${plane.reduce((a, v) => Math.min(a, v), Infinity).toFixed(2)} … ${plane.reduce((a, v) => Math.max(a, v), -Infinity).toFixed(2)}`;
  c.dataset.channel = String(k);
  return c;
}

export function initLatent(models: KLInfo[], o: { timed: Timed; backend: () => Backend; needs: () => void; note: (msg: string) => void; emoji: { installed: boolean; install: string } }): void {
  const sel = $<HTMLSelectElement>('lat-model');
  sel.replaceChildren(...models.map((m) => Object.assign(document.createElement('option'), { value: m.name, textContent: m.name })));
  const slider = $<HTMLInputElement>('lat-t');
  const files = { a: $<HTMLInputElement>('lat-file-a'), b: $<HTMLInputElement>('lat-file-b') };
  if (!models.length) {
    o.needs();
    for (const el of [sel, slider, files.a, files.b, $<HTMLButtonElement>('lat-example')]) el.disabled = true;
    return;
  }
  const model = (): KLInfo => models.find((m) => m.name === sel.value)!;
  const size = (): number => Math.min(model().resolution ?? 256, 256);
  const describeModel = () => {
    const m = model();
    $('lat-info').textContent = `${size()}×${size()} → ${m.latent_channels} × ${size() / m.downsampling_factor}×${size() / m.downsampling_factor} latents${m.preview ? ' · preview decoder' : ''}`;
  };
  describeModel();
  const enc: { a?: Encoded; b?: Encoded } = {};
  const files0: { a?: Blob | Uint8Array; b?: Blob | Uint8Array } = {};

  const encode = async (input: Uint8Array, progress: (m: string) => void): Promise<Omit<Encoded, 'input'>> => {
    const m = model();
    const s = size();
    if (o.backend() === 'server') {
      const png = await (await fetch(toDataUrl([u8ToFloat(input)], 3, s, s))).blob();
      const r = await apiCall(`./api/models/${m.name}/encode?format=json`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png });
      const j = (await r.json()) as { shape: number[]; data: number[] };
      return { latents: Float32Array.from(j.data), shape: j.shape.slice(1) as [number, number, number] };
    }
    return localKLEncode(m.name, o.backend() as Exclude<Backend, 'server'>, u8ToFloat(input), s, s, progress);
  };
  /** Scaled latents → planar uint8 RGB, by the full decoder or the preview. */
  const decode = async (z: Float32Array, shape: [number, number, number], preview: boolean, progress: (m: string) => void): Promise<Uint8Array> => {
    const m = model();
    if (o.backend() === 'server') {
      const r = await apiCall(`./api/models/${m.name}/decode?format=json${preview ? '&preview=1' : ''}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ shape: [1, ...shape], data: Array.from(z) }) });
      return pngDataUrlToU8(((await r.json()) as { images: string[] }).images[0]!);
    }
    return floatToU8(await localKLDecode(m.name, o.backend() as Exclude<Backend, 'server'>, z, shape, preview, progress));
  };
  const show = (img: HTMLImageElement, u8: Uint8Array, h: number, w: number) => {
    img.src = toDataUrl([u8ToFloat(u8)], 3, h, w);
  };

  /** An image (a file, or uint8 RGB [3, S, S] at the model's size) → channels, reconstruction, PSNR. */
  const load = async (which: 'a' | 'b', file: Blob | Uint8Array) => {
    files0[which] = file;
    const s = size();
    try {
      await o.timed('latent', `encoding and decoding image ${which.toUpperCase()}`, async (progress) => {
        const input = file instanceof Uint8Array ? file : await imageToU8(file, s);
        show($<HTMLImageElement>(`lat-in-${which}`), input, s, s);
        const e = { input, ...(await encode(input, progress)) };
        enc[which] = e;
        const [c, h, w] = e.shape;
        $(`lat-ch-${which}`).replaceChildren(...Array.from({ length: c }, (_, k) => channelCanvas(e.latents, k, h, w)));
        const rec = await decode(e.latents, e.shape, false, progress);
        show($<HTMLImageElement>(`lat-rec-${which}`), rec, s, s);
        const db = psnrU8(input, rec);
        $(`lat-psnr-${which}`).textContent = `reconstruction · PSNR ${db.toFixed(2)} dB`;
        $(`lat-rec-${which}`).dataset.psnr = db.toFixed(3);
      });
    } catch {
      return; // said in the view (timed)
    }
    slider.disabled = !(enc.a && enc.b);
    if (enc.a && enc.b) void mix();
  };

  // the slider: latest position wins, one decode at a time
  let busy = false;
  let again = false;
  const mix = async (): Promise<void> => {
    if (busy) {
      again = true;
      return;
    }
    const { a, b } = enc;
    if (!a || !b) return;
    busy = true;
    again = false;
    const t = Number(slider.value);
    $('lat-t-out').textContent = t.toFixed(2);
    const z = Float32Array.from(a.latents, (v, i) => (1 - t) * v + t * b.latents[i]!);
    const img = $<HTMLImageElement>('lat-mix');
    const s = size();
    const times: string[] = [];
    try {
      await o.timed('latent', `decoding the latent ${t.toFixed(2)} of the way from A to B`, async (progress) => {
        if (model().preview) {
          const t0 = performance.now();
          show(img, await decode(z, a.shape, true, progress), s, s);
          img.dataset.stage = 'preview';
          times.push(`preview ${(performance.now() - t0).toFixed(0)} ms`);
          $('lat-mix-info').textContent = `t = ${t.toFixed(2)} · ${times.join(' · ')} · full decoder…`;
        }
        const t1 = performance.now();
        show(img, await decode(z, a.shape, false, progress), s, s);
        img.dataset.stage = 'full';
        times.push(`full decoder ${(performance.now() - t1).toFixed(0)} ms`);
        $('lat-mix-info').textContent = `t = ${t.toFixed(2)} · ${times.join(' · ')}`;
      });
    } catch {
      // said in the view (timed)
    } finally {
      busy = false;
    }
    if (again) void mix();
  };
  slider.oninput = () => void mix();

  for (const which of ['a', 'b'] as const) {
    files[which].onchange = () => {
      const f = files[which].files?.[0];
      files[which].value = ''; // picking the same file again (say, on another backend) runs again
      if (f) void load(which, f);
    };
  }
  // two held-out emoji from the server (the emoji images are an optional package there)
  const example = $<HTMLButtonElement>('lat-example');
  let exampleSeed = 0;
  const exampleOk = () => o.emoji.installed && size() <= 64;
  example.disabled = !exampleOk();
  example.title = o.emoji.installed ? '' : `the server lacks the emoji images: ${o.emoji.install}`;
  example.onclick = async () => {
    const s = size();
    try {
      const r = await apiCall(`./api/train/data?split=val&n=2&size=${s}&seed=${exampleSeed++}`);
      const u8 = new Uint8Array(await r.arrayBuffer());
      const n = 3 * s * s;
      await load('a', u8.slice(0, n));
      await load('b', u8.slice(n, 2 * n));
    } catch (e) {
      o.note((e as Error).message);
    }
  };

  // another model: everything again, from the same files
  sel.onchange = () => {
    describeModel();
    example.disabled = !exampleOk();
    delete enc.a;
    delete enc.b;
    slider.disabled = true;
    for (const which of ['a', 'b'] as const) if (files0[which]) void load(which, files0[which]!);
  };
}
