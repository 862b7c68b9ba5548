// The CLI on onnxruntime-web's WebAssembly build (LATENTKIT_BACKEND=wasm — the same path as a
// plain `npm install` where onnxruntime-node could not install): `latentkit sample` writes the
// same images as on onnxruntime-node (issue 17 §1: it drew multicoloured noise).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadImageU8 } from '../../src/io/image.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-cli-wasm-'));

function sample(backend: 'node' | 'wasm') {
  const out = path.join(tmp, backend);
  const args = ['sample', '--model', path.join(root, 'models/emoji-class'), '--class', 'Flags', '-n', '1', '--greedy', '--seed', '1', '--out', out];
  const r = spawnSync(process.execPath, [path.join(root, 'bin/latentkit.js'), ...args], { encoding: 'utf8', env: { ...process.env, LATENTKIT_THREADS: '1', LATENTKIT_BACKEND: backend } });
  assert.equal(r.status, 0, r.stderr);
  return { png: path.join(out, 'sample-000.png'), err: r.stderr };
}

it('latentkit sample: the same greedy image on WASM as on onnxruntime-node, and WASM says so', async () => {
  const native = sample('node');
  const wasm = sample('wasm');
  assert.match(wasm.err, /WebAssembly/);
  assert.doesNotMatch(native.err, /WebAssembly/);
  // the same tokens decode to the same image up to float rounding (a pixel may round ±1)
  const [a, b] = [(await loadImageU8(native.png)).data, (await loadImageU8(wasm.png)).data];
  assert.equal(a.length, b.length);
  let differ = 0;
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i]! - b[i]!) <= 1, `pixel value ${i}: ${a[i]} vs ${b[i]}`);
    if (a[i] !== b[i]) differ++;
  }
  assert.ok(differ < a.length / 100, `${differ} of ${a.length} values differ`);
  fs.rmSync(tmp, { recursive: true, force: true });
});
