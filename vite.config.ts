// The web page (web/), built to web/dist and served by `latentkit serve`.
import { defineConfig } from 'vite';

export default defineConfig({
  root: 'web',
  base: './',
  build: { outDir: 'dist', emptyOutDir: true },
  // the inference / training workers import onnxruntime-web lazily: ES module workers
  worker: { format: 'es' },
  // onnxruntime-web without its WebAssembly inlined: the page loads the .wasm from the
  // server's /ort/ (the installed package), so web/dist stays small
  resolve: { conditions: ['onnxruntime-web-use-extern-wasm', 'module', 'browser', 'production'] },
  server: { proxy: { '/api': 'http://127.0.0.1:8080', '/ort': 'http://127.0.0.1:8080' } },
});
