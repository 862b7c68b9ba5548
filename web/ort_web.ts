// onnxruntime-web for the page's Web Workers: its WebAssembly files come from the server's
// /ort/ (threads when the page is cross-origin isolated), loaded on first use; plus a
// fetch that reports bytes as they arrive (model downloads show progress).
import type * as OrtWeb from 'onnxruntime-web';
import { apiFetch } from './api.ts';

let base = '';
let ortP: Promise<typeof OrtWeb> | null = null;

/** The page's URL: the API and /ort/ are resolved against it (a worker's own URL is elsewhere). */
export function setPageUrl(pageUrl: string): void {
  base = pageUrl;
}

export const pageUrl = (rel: string): string => new URL(rel, base).href;

export const wasmThreads = (): number => (self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);

export function ort(): Promise<typeof OrtWeb> {
  ortP ??= import('onnxruntime-web').then((m) => {
    m.env.wasm.wasmPaths = pageUrl('./ort/');
    m.env.wasm.numThreads = wasmThreads();
    return m;
  });
  return ortP;
}

export async function fetchBytes(url: string, onBytes: (n: number) => void = () => {}): Promise<Uint8Array> {
  const r = await apiFetch(url);
  if (!r.ok || !r.body) {
    const why = await r.json().then((j: { error?: string }) => j.error ?? r.statusText).catch(() => r.statusText);
    throw new Error(`${url.replace(base, './')}: ${r.status} ${why}`);
  }
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

/**
 * A served export: its manifest (JSON at `url` + `query`, with the file sizes in `bytes`) and
 * a reader of its files (`url`/<file> + `query`) that reports "loading <what>: x / y MB".
 */
export async function fetchExport<M>(url: string, what: string, progress?: (m: string) => void, query = ''): Promise<{ manifest: M & { bytes: Record<string, number> }; read: (f: string) => Promise<Uint8Array> }> {
  const manifest = JSON.parse(new TextDecoder().decode(await fetchBytes(url + query))) as M & { bytes: Record<string, number> };
  const total = Object.values(manifest.bytes).reduce((a, b) => a + b, 0);
  let done = 0;
  const read = (f: string) =>
    fetchBytes(`${url}/${encodeURIComponent(f)}${query}`, (n) => {
      done += n;
      progress?.(`loading ${what}: ${(done / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`);
    });
  return { manifest, read };
}
