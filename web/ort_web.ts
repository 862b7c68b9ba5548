// onnxruntime-web for the page's Web Workers: its WebAssembly files come from the server's
// /ort/ (threads when the page is cross-origin isolated), loaded on first use; plus a
// fetch that reports bytes as they arrive (model downloads show progress).
import type * as OrtWeb from 'onnxruntime-web';

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
  const r = await fetch(url);
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
