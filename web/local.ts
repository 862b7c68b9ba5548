// The page's side of in-browser inference: one Web Worker (infer.worker.ts) runs the models
// through onnxruntime-web; this wraps it with comlink so calls read like plain async functions.
import * as Comlink from 'comlink';
import type { InferApi, LocalBackend, LocalEditRequest, LocalSampleRequest } from './infer.worker.ts';

export type Backend = 'server' | LocalBackend;
export type { LocalSampleRequest };

let worker: Comlink.Remote<InferApi> | null = null;
let threads = 1;

async function api(): Promise<Comlink.Remote<InferApi>> {
  if (!worker) {
    worker = Comlink.wrap<InferApi>(new Worker(new URL('./infer.worker.ts', import.meta.url), { type: 'module', name: 'latentkit-infer' }));
    threads = await worker.init(location.href);
  }
  return worker;
}

/** WASM threads the worker runs with (more than 1 only when the page is cross-origin isolated). */
export const wasmThreads = (): number => threads;

export const hasWebGPU = (): boolean => 'gpu' in navigator;

/** A served VQGAN in this browser: image [3·size·size] in [−1, 1] → codes and reconstruction. */
export async function localReconstruct(name: string, backend: LocalBackend, image: Float32Array, progress: (m: string) => void) {
  return (await api()).reconstruct(name, backend, Comlink.transfer(image, [image.buffer]), Comlink.proxy(progress));
}

/** A served transformer in this browser: class or drawing → n images [3, H, W] in [−1, 1]. */
export async function localSample(name: string, backend: LocalBackend, r: LocalSampleRequest, progress: (m: string) => void) {
  return (await api()).sample(name, backend, r, Comlink.proxy(progress));
}

/** A served transformer in this browser: repaint the marked code cells of an image (MaskGIT: exactly those). */
export async function localEdit(name: string, backend: LocalBackend, r: LocalEditRequest, progress: (m: string) => void) {
  return (await api()).edit(name, backend, Comlink.transfer(r, [r.image.buffer]), Comlink.proxy(progress));
}

/** A served KL autoencoder in this browser: image [3·h·w] in [−1, 1] → scaled latents. */
export async function localKLEncode(name: string, backend: LocalBackend, image: Float32Array, h: number, w: number, progress: (m: string) => void) {
  return (await api()).klEncode(name, backend, Comlink.transfer(image, [image.buffer]), h, w, Comlink.proxy(progress));
}

/** Scaled latents → planar image by the model's full decoder or its preview decoder. */
export async function localKLDecode(name: string, backend: LocalBackend, latents: Float32Array, shape: [number, number, number], preview: boolean, progress: (m: string) => void) {
  return (await api()).klDecode(name, backend, latents.slice(), shape, preview, Comlink.proxy(progress));
}
