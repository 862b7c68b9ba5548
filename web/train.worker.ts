// "Train in your browser": a tiny VQGAN trains in this Web Worker through onnxruntime-web.
// The step programs come from the server once (/api/train/onnx: train-ae's own warm-up and
// GAN steps, forward + losses + gradients + Adam in one graph); the loop is
// StandaloneVQGANTrainer. Images arrive as uint8 [N, 3, S, S]; batches are drawn by a seeded
// per-epoch shuffle. The page gets each step's losses and, every few steps, reconstructions
// of its held-out images; the model downloads as safetensors that `latentkit` loads.
import * as Comlink from 'comlink';
import { StandaloneVQGANTrainer, type TrainOnnxManifest, Rng, u8ToFloat } from '../src/browser.ts';
import { fetchExport, ort, pageUrl, setPageUrl, wasmThreads } from './ort_web.ts';

export interface TrainInfo {
  params: { ae: number; disc: number };
  batch: number;
  size: number;
  grid: [number, number];
  steps: number;
  discStart: number;
  threads: number;
}

export interface StepReport {
  step: number;
  program: string;
  lr: number;
  values: Record<string, number>;
  /** steps per second over the last 10 steps */
  rate: number;
}

export interface ReconReport {
  step: number;
  inputs: Float32Array;
  xrec: Float32Array;
  /** codebook entries used by the reconstructions */
  used: number;
}

let trainer: StandaloneVQGANTrainer | null = null;
let images: Uint8Array | null = null;
let count = 0;
let val: Float32Array<ArrayBuffer> | null = null;
let stopping = false;
let order: number[] = [];
let pos = 0;
const rng = new Rng(1);

function nextBatch(m: TrainOnnxManifest): Float32Array {
  const n = m.channels * m.image_size * m.image_size;
  const x = new Float32Array(m.batch * n);
  for (let b = 0; b < m.batch; b++) {
    if (pos >= order.length) {
      order = rng.shuffle(Array.from({ length: count }, (_, i) => i));
      pos = 0;
    }
    const k = order[pos++]!;
    u8ToFloat(images!.subarray(k * n, (k + 1) * n), x.subarray(b * n, (b + 1) * n));
  }
  return x;
}

const api = {
  /** Downloads the training export for `steps` and compiles it. */
  async load(url: string, steps: number, progress: (m: string) => void): Promise<TrainInfo> {
    setPageUrl(url);
    if (trainer) await trainer.release();
    trainer = null;
    const { manifest, read } = await fetchExport<TrainOnnxManifest>(pageUrl('./api/train/onnx'), 'the training graphs', progress, `?steps=${steps}`);
    trainer = await StandaloneVQGANTrainer.load((await ort()) as never, manifest, read, { executionProviders: ['wasm'] });
    const m = trainer.manifest;
    return { params: { ae: m.groups.ae.total, disc: m.groups.disc.total }, batch: m.batch, size: m.image_size, grid: m.grid, steps: m.max_steps, discStart: m.disc_start, threads: wasmThreads() };
  },

  /** Training images uint8 [n, 3, S, S] and the held-out batch shown as reconstructions. */
  setData(train: Uint8Array, n: number, heldOut: Uint8Array): void {
    const m = trainer!.manifest;
    const per = m.channels * m.image_size * m.image_size;
    if (train.length !== n * per || n < 1) throw new Error(`expected ${n} images of ${m.channels}×${m.image_size}×${m.image_size}, got ${train.length} bytes`);
    images = train;
    count = n;
    order = [];
    pos = 0;
    val = new Float32Array(m.batch * per);
    const held = heldOut.length / per;
    for (let b = 0; b < m.batch; b++) u8ToFloat(heldOut.subarray((b % held) * per, ((b % held) + 1) * per), val.subarray(b * per, (b + 1) * per));
  },

  /** Train until the export's step count (or stop()); reports every step and every `reconEvery` steps. */
  async train(onStep: (r: StepReport) => void, onRecon: (r: ReconReport) => void, reconEvery = 25): Promise<number> {
    const t = trainer;
    if (!t || !images) throw new Error('load() and setData() first');
    stopping = false;
    const m = t.manifest;
    const times: number[] = [];
    const recon = async () => {
      const { xrec, indices } = await t.reconstruct(val!);
      onRecon(Comlink.transfer({ step: t.step, inputs: val!.slice(), xrec, used: new Set(indices).size }, [xrec.buffer]));
    };
    await recon();
    while (t.step < m.max_steps && !stopping) {
      const r = await t.trainStep(nextBatch(m));
      times.push(performance.now());
      if (times.length > 11) times.shift();
      const rate = times.length > 1 ? ((times.length - 1) * 1000) / (times[times.length - 1]! - times[0]!) : 0;
      onStep({ step: r.step, program: r.program, lr: r.lr, values: r.values, rate });
      if (r.step % reconEvery === 0 || r.step === m.max_steps) await recon();
      await new Promise((res) => setTimeout(res, 0)); // let stop() in
    }
    return t.step;
  },

  stop(): void {
    stopping = true;
  },

  /** The autoencoder as a safetensors file (config and step in its metadata). */
  save(): Uint8Array {
    if (!trainer) throw new Error('nothing trained yet');
    const b = trainer.safetensors();
    return Comlink.transfer(b, [b.buffer]);
  },
};

export type TrainApi = typeof api;
Comlink.expose(api);
