// In-browser inference off the main thread: this Web Worker holds onnxruntime-web (WASM, or
// WebGPU where the browser has it) and the served models' standalone ONNX exports, fetched
// once from /api/models/<name>/onnx/ and then held in memory — after that the page needs no
// server for them. The page calls it through comlink (web/local.ts); a whole sampling loop
// (hundreds of session runs) happens here, so drawing stays smooth while it runs.
import * as Comlink from 'comlink';
import { StandaloneKL, StandaloneNet2Net, StandaloneVQGAN, type KLOnnxManifest, type Net2NetOnnxManifest, type VQGANOnnxManifest } from '../src/browser.ts';
import { fetchExport, ort, pageUrl, setPageUrl, wasmThreads } from './ort_web.ts';
import { planEdit } from '../src/sample/edit.ts';

export type LocalBackend = 'wasm' | 'webgpu';
type Local = StandaloneVQGAN | StandaloneNet2Net | StandaloneKL;
type Progress = (msg: string) => void;

const loaded = new Map<string, Promise<Local>>();

function model(name: string, backend: LocalBackend, progress?: Progress): Promise<Local> {
  const key = `${backend}:${name}`;
  let p = loaded.get(key);
  if (!p) {
    p = (async () => {
      const { manifest, read } = await fetchExport<VQGANOnnxManifest | Net2NetOnnxManifest | KLOnnxManifest>(pageUrl(`./api/models/${encodeURIComponent(name)}/onnx`), `${name} for the browser`, progress);
      const rt = await ort();
      const o = { executionProviders: backend === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'] };
      if (manifest.format === 'latentkit-vqgan-onnx') return StandaloneVQGAN.load(rt as never, manifest, read, o);
      if (manifest.format === 'latentkit-kl-onnx') return StandaloneKL.load(rt as never, manifest, read, o);
      return StandaloneNet2Net.load(rt as never, manifest, read, o);
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

async function kl(name: string, backend: LocalBackend, progress?: Progress): Promise<StandaloneKL> {
  const m = await model(name, backend, progress);
  if (!(m instanceof StandaloneKL)) throw new Error(`${name} is not a KL autoencoder`);
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
  /** classifier-free guidance scale; MaskGIT passes (default: the model's recommended settings) */
  guidance?: number;
  steps?: number;
  /** a request number: a later request (cancel(id)) stops this one between passes/tokens */
  id?: number;
}

export interface LocalEditRequest extends LocalSampleRequest {
  /** planar float [3, H, W] in [−1, 1] at the model's size */
  image: Float32Array;
  /** per code cell, 1 = repaint (sample/edit.ts maskCells) */
  cells: Uint8Array;
}

/** The newest request id: older ones stop at their next progress callback. */
let newest = 0;
const CANCELLED = 'cancelled: a newer request replaced this one';

/** The request's sampling settings over the model's recommended ones (its config's latentkit.sampling). */
function settings(net: StandaloneNet2Net, r: LocalSampleRequest) {
  const d = net.manifest.sampling ?? {};
  const guidance = r.guidance ?? (net.manifest.condition.null_class != null || net.isMaskGit ? d.guidance ?? undefined : undefined);
  return {
    temperature: r.temperature ?? d.temperature ?? undefined,
    topK: r.topK ?? d.top_k ?? undefined,
    topP: r.topP ?? d.top_p ?? undefined,
    guidance: guidance || undefined,
    steps: r.steps ?? d.steps ?? undefined,
    choiceTemperature: d.choice_temperature ?? undefined,
  };
}

async function conditionOf(net: StandaloneNet2Net, r: LocalSampleRequest, name: string, allowNone = false): Promise<ArrayLike<number>> {
  if (r.sketch) return net.sketchCondition(r.sketch.rgb, r.sketch.h, r.sketch.w);
  if (r.cls !== undefined) return net.classCondition(r.cls);
  // an edit without a drawing: a MaskGIT image model's null condition (every token [MASK])
  const m = net.manifest;
  if (allowNone && m.maskgit && m.condition.kind !== 'label') return new Array(m.condition.tokens).fill(m.maskgit.mask_token);
  throw new Error(`${name}: give a class or a drawing`);
}

function watch(r: LocalSampleRequest, progress?: Progress) {
  if (r.id !== undefined) newest = Math.max(newest, r.id);
  return (done: number, total: number) => {
    if (r.id !== undefined && r.id < newest) throw new Error(CANCELLED);
    if (done === 1 || done === total || done % 4 === 0) progress?.(`pass ${done} of ${total}`);
  };
}

const api = {
  /** The page's URL: the API and /ort/ are resolved against it. */
  init(url: string): number {
    setPageUrl(url);
    return wasmThreads();
  },

  /** Image [C·H·W] in [−1, 1] at the export's size → its code grid and reconstruction. */
  async reconstruct(name: string, backend: LocalBackend, image: Float32Array, progress?: Progress) {
    const m = await vqgan(name, backend, progress);
    const { indices, shape } = await m.encode(image);
    const out = (await m.decode(indices)).slice(); // own buffer, transferable
    return Comlink.transfer({ indices, shape, image: out, channels: m.manifest.channels, size: m.manifest.image_size }, [indices.buffer, out.buffer]);
  },

  /** KL model: planar image [3·h·w] in [−1, 1] → scaled latents [c·h/f·w/f] (the posterior's mode). */
  async klEncode(name: string, backend: LocalBackend, image: Float32Array, h: number, w: number, progress?: Progress) {
    const m = await kl(name, backend, progress);
    const r = await m.encode(image, h, w);
    return Comlink.transfer(r, [r.latents.buffer]);
  },

  /** KL model: scaled latents → planar image [3, H, W] by the full decoder, or by its preview decoder. */
  async klDecode(name: string, backend: LocalBackend, latents: Float32Array, shape: [number, number, number], preview: boolean, progress?: Progress) {
    const m = await kl(name, backend, progress);
    const out = (preview ? await m.preview(latents, shape) : await m.decode(latents, shape)).slice();
    return Comlink.transfer(out, [out.buffer]);
  },

  /** n samples under a class or a drawing → planar float images [3, H, W]. */
  async sample(name: string, backend: LocalBackend, r: LocalSampleRequest, progress?: Progress) {
    const net = await net2net(name, backend, progress);
    const cond = await conditionOf(net, r, name);
    const s = settings(net, r);
    const onProgress = net.isMaskGit ? watch(r, progress) : watch(r);
    const tokens = await net.sample({ n: r.n, cond, seed: r.seed, ...s, onProgress });
    const images = (await net.decodeTokens(tokens, r.n)).map((i) => i.slice());
    return Comlink.transfer({ images, size: net.manifest.image_size, passes: net.isMaskGit ? s.steps ?? 12 : null }, images.map((i) => i.buffer));
  },

  /** Repaint the marked cells of an image: its codes (the export's encoder), kept where unmarked, the rest sampled. */
  async edit(name: string, backend: LocalBackend, r: LocalEditRequest, progress?: Progress) {
    const net = await net2net(name, backend, progress);
    const cond = await conditionOf(net, r, name, true);
    const codes = await net.encodeImage(r.image);
    const plan = planEdit(codes, r.cells, { autoregressive: !net.isMaskGit, grid: net.manifest.grid });
    if (plan.kind === 'nothing') return { images: [], size: net.manifest.image_size, plan };
    const s = settings(net, r);
    const tokens = await net.sample({ n: r.n, cond, seed: r.seed, ...s, init: plan.kind === 'all' ? undefined : plan.init, onProgress: watch(r, progress) });
    const images = (await net.decodeTokens(tokens, r.n)).map((i) => i.slice());
    return Comlink.transfer({ images, size: net.manifest.image_size, plan }, images.map((i) => i.buffer));
  },
};

export type InferApi = typeof api;
Comlink.expose(api);
