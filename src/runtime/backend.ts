// The ONNX Runtime seam: the only module that imports onnxruntime. Node uses
// onnxruntime-node; a browser build calls setBackend() with onnxruntime-web.
import type * as OrtNs from 'onnxruntime-common';
import os from 'node:os';

export type Ort = typeof OrtNs;
let ort: Ort | null = null;
let providers: string[] | null = null;

/**
 * Use another ONNX Runtime build, e.g. onnxruntime-web in a browser:
 * `setBackend(await import('onnxruntime-web'), ['wasm'])` (or ['webgpu', 'wasm']).
 */
export function setBackend(mod: Ort, executionProviders?: string[]): void {
  ort = mod;
  providers = executionProviders ?? null;
}

const NATIVE_HINT =
  'onnxruntime-node is not installed (it is an optional dependency: its install step downloads CUDA files from api.nuget.org on Linux x64 and is dropped when that fails). ' +
  'For native speed: ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node';

/**
 * onnxruntime-node when it is installed; otherwise onnxruntime-web's WebAssembly build in
 * Node (about 10× slower on the VQGAN; a one-line notice says so and how to get the native
 * build); otherwise a one-line error. LATENTKIT_BACKEND=wasm|node forces one (the tests run
 * the CLI both ways; `node` fails instead of falling back).
 */
export async function getOrt(): Promise<Ort> {
  if (ort) return ort;
  const want = process.env.LATENTKIT_BACKEND;
  if (want && want !== 'wasm' && want !== 'node') throw new Error(`LATENTKIT_BACKEND must be 'node' (onnxruntime-node) or 'wasm' (onnxruntime-web's WebAssembly build), got '${want}'`);
  if (want === 'wasm') return useWasm('note: running ONNX Runtime as WebAssembly (LATENTKIT_BACKEND=wasm)');
  try {
    ort = (await import('onnxruntime-node')) as unknown as Ort;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw e;
    if (want === 'node') throw new Error(`LATENTKIT_BACKEND=node: ${NATIVE_HINT}`, { cause: e });
    return useWasm(`note: running ONNX Runtime as WebAssembly (slower): ${NATIVE_HINT}`);
  }
  return ort;
}

/** onnxruntime-web's WebAssembly build in Node (the fallback, or LATENTKIT_BACKEND=wasm). */
async function useWasm(notice: string): Promise<Ort> {
  let web: Ort & { env: { wasm: { numThreads?: number } } };
  try {
    web = (await import('onnxruntime-web')) as never;
  } catch {
    throw new Error(`no ONNX Runtime: ${NATIVE_HINT} (or npm install onnxruntime-web)`);
  }
  web.env.wasm.numThreads = 1; // threaded wasm needs worker threads set up by the host
  console.error(notice);
  ort = web;
  providers = ['wasm'];
  return web;
}

export interface SessionOptions {
  /** Intra-op threads (default: LATENTKIT_THREADS or all cores). */
  threads?: number;
  /** 'cpu' (default) or 'cuda' (falls back to cpu if unavailable). */
  device?: 'cpu' | 'cuda';
  /** Write an ORT profile (JSON trace) with this path prefix; see runtime/profile.ts. */
  profilePrefix?: string;
  /**
   * ORT's memory pattern: one block per run for all intermediates, allocated outside the
   * arena's pool and so page-faulted afresh on every run. Off by default: on the training
   * step it cost 1.1 GB of extra RSS (3.0 vs 1.9 GB) and a third more page faults with no
   * speed gain (bench/README.md).
   */
  memPattern?: boolean;
  /** ORT graph optimization level (default 'all'). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
}

export function defaultThreads(): number {
  const env = Number(process.env.LATENTKIT_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** True once getOrt() has loaded onnxruntime-node (which reads external data from files). */
export function nativeBackend(): boolean {
  return ort !== null && providers === null;
}

/** `model`: the ONNX bytes, or a path to a model file (external data resolves beside it). */
export async function createSession(model: Uint8Array | string, o: SessionOptions = {}): Promise<OrtNs.InferenceSession> {
  const rt = await getOrt();
  const opts: OrtNs.InferenceSession.SessionOptions = {
    intraOpNumThreads: o.threads ?? defaultThreads(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: o.optimization ?? 'all',
    enableCpuMemArena: true,
    enableMemPattern: o.memPattern ?? false,
    enableProfiling: !!o.profilePrefix,
    ...(o.profilePrefix ? { profileFilePrefix: o.profilePrefix } : {}),
    executionProviders: providers ?? (o.device === 'cuda' ? ['cuda', 'cpu'] : ['cpu']),
    ...(process.env.LATENTKIT_ORT_SPIN === '0' ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
  };
  try {
    return typeof model === 'string' ? await rt.InferenceSession.create(model, opts) : await rt.InferenceSession.create(model, opts);
  } catch (e) {
    throw new Error(`ONNX Runtime could not create a session: ${(e as Error).message.split("\n")[0]}`, { cause: e });
  }
}
