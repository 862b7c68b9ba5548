// Single convolutions at the tiny recipe's shapes: ONNX Runtime's Conv (weights as an input,
// as in training graphs), the one-hot im2col + batched MatMul lowering, the same Conv with
// constant weights (ORT's NCHWc kernels) — against PyTorch (bench/conv_small_torch.py) run
// side by side. Median of 30 runs, ms.
//
//   node --import tsx bench/conv_small.ts [--threads 2]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as OrtNs from 'onnxruntime-common';
import { encodeModel, ATTR_TYPE, type ModelObj, type NodeObj, type TensorProtoObj } from '../src/onnx/proto.ts';
import { createSession, getOrt } from '../src/runtime/backend.ts';

export const SHAPES = [
  { n: 8, c: 128, o: 256, h: 8, k: 4, s: 1, p: 1 },
  { n: 8, c: 64, o: 128, h: 16, k: 4, s: 2, p: 1 },
  { n: 8, c: 64, o: 64, h: 16, k: 3, s: 1, p: 1 },
  { n: 8, c: 32, o: 32, h: 32, k: 3, s: 1, p: 1 },
  { n: 8, c: 64, o: 64, h: 8, k: 3, s: 1, p: 1 },
];

const f32 = (name: string, dims: number[], d: Float32Array): TensorProtoObj => ({ name, dims, dataType: 1, rawData: new Uint8Array(d.buffer, d.byteOffset, d.byteLength) });
const i64 = (name: string, v: number[]): TensorProtoObj => ({ name, dims: [v.length], dataType: 7, rawData: new Uint8Array(BigInt64Array.from(v, BigInt).buffer) });
const ints = (name: string, v: number[]) => ({ name, type: ATTR_TYPE.INTS, ints: v });
const int = (name: string, v: number) => ({ name, type: ATTR_TYPE.INT, i: v });
const vi = (name: string, shape: number[]) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: shape.map((d) => ({ dimValue: d })) } } } });

function model(nodes: NodeObj[], inits: TensorProtoObj[], ins: [string, number[]][], out: number[]): Uint8Array {
  const m: ModelObj = {
    irVersion: 10,
    producerName: 'bench',
    producerVersion: '0',
    opsetImport: [{ domain: '', version: 21 }],
    graph: { name: 'conv', node: nodes, initializer: inits, input: ins.map(([n, s]) => vi(n, s)), output: [vi('y', out)] },
  };
  return encodeModel(m);
}
const node = (opType: string, input: string[], output: string, attribute: NodeObj['attribute'] = []): NodeObj => ({ opType, input, output: [output], name: output, domain: '', attribute });

async function median(bytes: Uint8Array, feeds: Record<string, OrtNs.Tensor>, threads: number): Promise<number> {
  const s = await createSession(bytes, { threads });
  for (let i = 0; i < 3; i++) await s.run(feeds);
  const ts: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t = performance.now();
    await s.run(feeds);
    ts.push(performance.now() - t);
  }
  await s.release();
  return ts.sort((a, b) => a - b)[15]!;
}

async function main() {
  const args = process.argv.slice(2);
  const threads = Number(args[args.indexOf('--threads') + 1] ?? 2) || 2;
  const ort = await getOrt();
  const here = path.dirname(fileURLToPath(import.meta.url));
  const torch = fs.existsSync('/usr/bin/python3')
    ? (JSON.parse(execFileSync('/usr/bin/python3', [path.join(here, 'conv_small_torch.py'), String(threads)], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads) } })) as number[])
    : null;
  console.log(`${threads} thread(s), ms (median of 30): ORT Conv (w input) | one-hot im2col + MatMul | ORT Conv, w constant (NCHWc) | PyTorch`);
  for (const [i, sh] of SHAPES.entries()) {
    const ho = Math.floor((sh.h + 2 * sh.p - sh.k) / sh.s) + 1;
    const K = sh.k * sh.k;
    const rnd = (n: number) => Float32Array.from({ length: n }, (_, j) => Math.sin(j * 0.731) * 0.5);
    const [xd, wd] = [rnd(sh.n * sh.c * sh.h * sh.h), rnd(sh.o * sh.c * K)];
    const xs: [string, number[]] = ['x', [sh.n, sh.c, sh.h, sh.h]];
    const ws: [string, number[]] = ['w', [sh.o, sh.c, sh.k, sh.k]];
    const out = [sh.n, sh.o, ho, ho];
    const conv = [ints('strides', [sh.s, sh.s]), ints('pads', [sh.p, sh.p, sh.p, sh.p])];
    const x = new ort.Tensor('float32', xd, xs[1]);
    const w = new ort.Tensor('float32', wd, ws[1]);
    const direct = model([node('Conv', ['x', 'w'], 'y', conv)], [], [xs, ws], out);
    const onehot = new Float32Array(sh.c * K * K);
    for (let ch = 0; ch < sh.c; ch++) for (let t = 0; t < K; t++) onehot[(ch * K + t) * K + t] = 1;
    const im2col = model(
      [
        node('Conv', ['x', 'oh'], 'p', [...conv, int('group', sh.c), ints('kernel_shape', [sh.k, sh.k])]),
        node('Reshape', ['p', 'sp'], 'pm'),
        node('Reshape', ['w', 'sw'], 'wm'),
        node('MatMul', ['wm', 'pm'], 'ym'),
        node('Reshape', ['ym', 'sy'], 'y'),
      ],
      [f32('oh', [sh.c * K, 1, sh.k, sh.k], onehot), i64('sp', [sh.n, sh.c * K, ho * ho]), i64('sw', [sh.o, sh.c * K]), i64('sy', out)],
      [xs, ws],
      out,
    );
    const constant = model([node('Conv', ['x', 'w'], 'y', conv)], [f32('w', ws[1], wd)], [xs], out);
    const t = [await median(direct, { x, w }, threads), await median(im2col, { x, w }, threads), await median(constant, { x }, threads)];
    const gf = (2 * sh.n * sh.o * ho * ho * sh.c * K) / 1e9;
    console.log(`${sh.c}→${sh.o} ${sh.k}×${sh.k} s${sh.s} ${sh.h}²: ${t.map((v) => v.toFixed(2)).join(' | ')} | ${torch ? torch[i]!.toFixed(2) : '-'}  (ORT Conv ${(gf / t[0]! * 1e3).toFixed(0)} GFLOP/s${torch ? `, torch/ORT ${(torch[i]! / t[0]!).toFixed(2)}×` : ''})`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
