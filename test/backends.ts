// Run a block of tests once per ONNX Runtime backend: onnxruntime-node (native) and
// onnxruntime-web's WebAssembly build in Node — what a plain `npm install` falls back to.
// Each block sets the process-wide backend in its own `before` hook (tests in a file run in
// order), so models created inside the block compile their sessions on that backend.
import { describe, before, after } from 'node:test';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { setBackend } from '../src/runtime/backend.ts';

export interface Backend {
  name: 'onnxruntime-node' | 'wasm';
  use(): void;
}

export const NATIVE: Backend = { name: 'onnxruntime-node', use: () => setBackend(ortNode as never) };
export const WASM: Backend = {
  name: 'wasm',
  use: () => {
    ortWeb.env.wasm.numThreads = 1;
    setBackend(ortWeb as never, ['wasm']);
  },
};
export const BACKENDS: readonly Backend[] = [NATIVE, WASM];

/** describe(`${title} [backend]`, body) for each backend; the native backend is restored after. */
export function perBackend(title: string, body: (b: Backend) => void, backends: readonly Backend[] = BACKENDS): void {
  for (const b of backends) {
    describe(`${title} [${b.name}]`, () => {
      before(() => b.use());
      after(() => NATIVE.use());
      body(b);
    });
  }
}
