// In-browser inference off the main thread: this Web Worker holds onnxruntime-web (WASM, or
// WebGPU where the browser has it) and the served models' standalone ONNX exports, fetched
// once from /api/models/<name>/onnx/ and then held in memory — after that the page needs no
// server for them. The page calls it through comlink (web/local.ts); a whole sampling loop
// (hundreds of session runs) happens here, so drawing stays smooth while it runs.
import * as Comlink from 'comlink';
import type * as OrtWeb from 'onnxruntime-web';
import { StandaloneNet2Net, StandaloneVQGAN, type Net2NetOnnxManifest, type VQGANOnnxManifest } from '../src/browser.ts';

export type LocalBackend = 'wasm' | 'webgpu';
type Local = StandaloneVQGAN | StandaloneNet2Net;
type Progress = (msg: string) => void;

let base = '';
let ortP: Promise<typeof OrtWeb> | null = null;
const threads = (): number => (self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);

/** onnxruntime-web, its WebAssembly files from the server's /ort/ (threads when cross-origin isolated). */
function ort(): Promise<typeof OrtWeb> {
  ortP ??= import('onnxruntime-web').then((m) => {
    m.env.wasm.wasmPaths = new URL('./ort/', base).href;
    m.env.wasm.numThreads = threads();
    return m;
  });
  return ortP;
}

async function fetchBytes(url: string, onBytes: (n: number) => void): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok || !r.body) throw new Error(`${url}: ${r.status} ${r.statusText}`);
  const parts: Uint8Array[] = [];
  const reader = r.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    onBytes(value.length);
  }
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const loaded = new Map<string, Promise<Local>>();

function model(name: string, backend: LocalBackend, progress?: Progress): Promise<Local> {
  const key = `${backend}:${name}`;
  let p = loaded.get(key);
  if (!p) {
    p = (async () => {
      const url = new URL(`./api/models/${encodeURIComponent(name)}/onnx`, base).href;
      const r = await fetch(url);
      if (!r.ok) throw new Error(`${name}: no ONNX export (${r.status})`);
      const manifest = (await r.json()) as (VQGANOnnxManifest | Net2NetOnnxManifest) & { bytes: Record<string, number> };
      const total = Object.values(manifest.bytes).reduce((a, b) => a + b, 0);
      let done = 0;
      const read = (f: string) =>
        fetchBytes(`${url}/${encodeURIComponent(f)}`, (n) => {
          done += n;
          progress?.(`loading ${name} for the browser: ${(done / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`);
        });
      const rt = await ort();
      const o = { executionProviders: backend === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'] };
      return manifest.format === 'latentkit-vqgan-onnx' ? StandaloneVQGAN.load(rt as never, manifest, read, o) : StandaloneNet2Net.load(rt as never, manifest as Net2NetOnnxManifest, read, o);
    })();
    loaded.set(key, p);
    p.catch(() => loaded.delete(key));
  }
  return p;
}

async function vqgan(name: string, backend: LocalBackend, progress?: Progress): Promise<StandaloneVQGAN> {
  const m = await model(name, backend, progress);
  if (!(m instanceof StandaloneVQGAN)) throw new Error(`${name} is a transformer, not a VQGAN`);
  return m;
}

async function net2net(name: string, backend: LocalBackend, progress?: Progress): Promise<StandaloneNet2Net> {
  const m = await model(name, backend, progress);
  if (!(m instanceof StandaloneNet2Net)) throw new Error(`${name} is a VQGAN, not a transformer`);
  return m;
}

export interface LocalSampleRequest {
  n: number;
  seed: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  /** A class name (class-conditional models) … */
  cls?: string;
  /** … or a drawing: planar uint8 RGB [3, h, w] (sketch-conditional models). */
  sketch?: { rgb: Uint8Array; h: number; w: number };
}

const api = {
  /** The page's URL: the API and /ort/ are resolved against it. */
  init(pageUrl: string): number {
    base = pageUrl;
    return threads();
  },

  /** Image [C·H·W] in [−1, 1] at the export's size → its code grid and reconstruction. */
  async reconstruct(name: string, backend: LocalBackend, image: Float32Array, progress?: Progress) {
    const m = await vqgan(name, backend, progress);
    const { indices, shape } = await m.encode(image);
    const out = (await m.decode(indices)).slice(); // own buffer, transferable
    return Comlink.transfer({ indices, shape, image: out, channels: m.manifest.channels, size: m.manifest.image_size }, [indices.buffer, out.buffer]);
  },

  /** n samples under a class or a drawing → planar float images [3, H, W]. */
  async sample(name: string, backend: LocalBackend, r: LocalSampleRequest, progress?: Progress) {
    const net = await net2net(name, backend, progress);
    const cond = r.sketch ? await net.sketchCondition(r.sketch.rgb, r.sketch.h, r.sketch.w) : r.cls !== undefined ? net.classCondition(r.cls) : null;
    if (!cond) throw new Error(`${name}: give a class or a drawing`);
    const tokens = await net.sample({ n: r.n, cond, seed: r.seed, temperature: r.temperature, topK: r.topK, topP: r.topP });
    const images = (await net.decodeTokens(tokens, r.n)).map((i) => i.slice());
    return Comlink.transfer({ images, size: net.manifest.image_size }, images.map((i) => i.buffer));
  },
};

export type InferApi = typeof api;
Comlink.expose(api);
