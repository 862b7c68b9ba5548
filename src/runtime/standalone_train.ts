// Training a VQGAN from its standalone export (train/export_train.ts) with any ONNX Runtime
// build — onnxruntime-web in a browser or a Web Worker, or onnxruntime-node. The step
// programs are train-ae's own (forward, losses, gradients and Adam in one graph); this is
// the host loop around them, the same as train/vqgan_run.ts without its files: the warm-up
// program before disc_start then the GAN program, the schedule's learning rate, per-group
// Adam step counts (the discriminator's advances during warm-up, as taming's does). No Node
// modules: the page's "train in your browser" runs it in a Web Worker.
import type * as OrtNs from 'onnxruntime-common';
import type { FlatLayout, TrainOnnxManifest } from '../train/train_manifest.ts';
import { scheduleFromSpec, type Schedule } from '../train/schedule.ts';
import { writeSafetensors } from '../io/formats/safetensors_bytes.ts';
import { HostTensor } from '../tensor.ts';
import { createSession, type ReadFile, type StandaloneOptions } from './standalone.ts';

type Ort = typeof OrtNs;

export interface TrainStepResult {
  /** 1-based step just taken. */
  step: number;
  program: string;
  lr: number;
  /** Scalar outputs without their 'loss.' / 'metric.' prefix: ae, disc, rec, qloss, g_loss, d_loss, … */
  values: Record<string, number>;
  /** Code indices of the batch [B·h·w]. */
  indices: Int32Array;
}

export class StandaloneVQGANTrainer {
  /** Steps taken so far. */
  step = 0;
  private readonly lrAt: Schedule;
  private groupSteps: Record<string, number> = { ae: 0, disc: 0 };

  private constructor(
    readonly manifest: TrainOnnxManifest,
    private ort: Ort,
    private sessions: Record<string, OrtNs.InferenceSession>,
    /** Per group: params and the optimizer slots s0, s1…; plus 'buffers'. */
    private state: Record<string, Record<string, Float32Array>>,
    private buffers: Float32Array,
  ) {
    this.lrAt = scheduleFromSpec(manifest.schedule);
  }

  static async load(ort: Ort, manifest: TrainOnnxManifest, read: ReadFile, o: StandaloneOptions = {}): Promise<StandaloneVQGANTrainer> {
    if (manifest?.format !== 'latentkit-vqgan-train-onnx') throw new Error(`expected a latentkit-vqgan-train-onnx manifest, got format ${JSON.stringify(manifest?.format)}`);
    const files = { ...Object.fromEntries(Object.entries(manifest.programs).map(([k, p]) => [k, p.file])), recon: manifest.recon.file };
    const entries = await Promise.all(Object.entries(files).map(async ([k, f]) => [k, await createSession(ort, await read(f), f, o)] as const));
    const init = await read(manifest.init);
    const { ae, disc } = manifest.groups;
    const want = ae.total + disc.total + manifest.buffers.total;
    if (init.byteLength !== 4 * want) throw new Error(`${manifest.init}: expected ${want} float32 values, got ${init.byteLength / 4}`);
    const all = new Float32Array(init.buffer.slice(init.byteOffset, init.byteOffset + init.byteLength));
    const group = (lay: FlatLayout & { slots: number }, off: number) => {
      const g: Record<string, Float32Array> = { params: all.slice(off, off + lay.total) };
      for (let k = 0; k < lay.slots; k++) g[`s${k}`] = new Float32Array(lay.total);
      return g;
    };
    const state = { ae: group(ae, 0), disc: group(disc, ae.total) };
    const buffers = all.slice(ae.total + disc.total);
    return new StandaloneVQGANTrainer(manifest, ort, Object.fromEntries(entries), state, buffers);
  }

  /** The learning rate of the next step. */
  get lr(): number {
    return this.lrAt(this.step);
  }

  private tensor(data: Float32Array, dims: readonly number[]): OrtNs.Tensor {
    return new this.ort.Tensor('float32', data, dims);
  }

  /** One step on a batch x [B·C·S·S] in [−1, 1] (planar, the manifest's batch and size). */
  async trainStep(x: Float32Array): Promise<TrainStepResult> {
    const m = this.manifest;
    const need = m.batch * m.channels * m.image_size * m.image_size;
    if (x.length !== need) throw new Error(`trainStep: expected a batch of ${m.batch}×${m.channels}×${m.image_size}×${m.image_size} = ${need} values, got ${x.length}`);
    const name = this.step >= m.disc_start ? 'gan' : 'warmup';
    const prog = m.programs[name]!;
    const lr = this.lrAt(this.step);
    const feeds: Record<string, OrtNs.Tensor> = {};
    for (const input of prog.inputs) {
      const [g, k] = input.split('.') as [string, string | undefined];
      if (input === 'x') feeds.x = this.tensor(x, [m.batch, m.channels, m.image_size, m.image_size]);
      else if (input === 'disc_factor') feeds.disc_factor = this.tensor(Float32Array.of(m.disc_factor), []);
      else if (input === 'buffers') feeds.buffers = this.tensor(this.buffers, [this.buffers.length]);
      else if (k === 'lr') feeds[input] = this.tensor(Float32Array.of(lr), []);
      else if (k === 'step') feeds[input] = this.tensor(Float32Array.of(this.groupSteps[g]! + 1), []);
      else if (this.state[g]?.[k!]) feeds[input] = this.tensor(this.state[g]![k!]!, [this.state[g]![k!]!.length]);
      else throw new Error(`trainStep: the ${name} program wants an input '${input}' this trainer does not know`);
    }
    const out = await this.sessions[name]!.run(feeds);
    for (const g of prog.train) {
      for (const k of Object.keys(this.state[g]!)) this.state[g]![k] = out[`${g}.${k}.out`]!.data as Float32Array;
      this.groupSteps[g]!++;
    }
    if (!prog.train.includes('disc')) this.groupSteps.disc!++; // taming steps D's optimizer with zero gradients during warm-up
    if (out['buffers.out']) this.buffers = out['buffers.out'].data as Float32Array;
    this.step++;
    const values: Record<string, number> = {};
    for (const [k, t] of Object.entries(out)) {
      if ((k.startsWith('loss.') || k.startsWith('metric.')) && t.size === 1) values[k.replace(/^(loss|metric)\./, '')] = Number(t.data[0]);
    }
    if (!Number.isFinite(values.ae!)) throw new Error(`the autoencoder's loss became ${values.ae} at step ${this.step}; try a lower learning rate`);
    const idx = out['metric.indices'];
    return { step: this.step, program: name, lr, values, indices: idx ? Int32Array.from(idx.data as BigInt64Array, Number) : new Int32Array() };
  }

  /** Reconstructions of a batch x [B·C·S·S] with the current weights. */
  async reconstruct(x: Float32Array): Promise<{ xrec: Float32Array; indices: Int32Array }> {
    const m = this.manifest;
    const r = await this.sessions.recon!.run({
      'ae.params': this.tensor(this.state.ae!.params!, [m.groups.ae.total]),
      x: this.tensor(x, [m.batch, m.channels, m.image_size, m.image_size]),
    });
    return { xrec: r.xrec!.data as Float32Array, indices: Int32Array.from(r.indices!.data as BigInt64Array, Number) };
  }

  /** The autoencoder's weights by their taming names (copies). */
  aeWeights(): Map<string, HostTensor> {
    const { names, shapes, offsets } = this.manifest.groups.ae;
    const p = this.state.ae!.params!;
    return new Map(names.map((n, i) => [n, HostTensor.float32(shapes[i]!, p.slice(offsets[i]!, offsets[i]! + shapes[i]!.reduce((a, b) => a * b, 1)))]));
  }

  /** A model file `latentkit` loads (config in the metadata), as safetensors bytes. */
  safetensors(): Uint8Array {
    return writeSafetensors(this.aeWeights(), { ...this.manifest.metadata, step: String(this.step) });
  }

  async release(): Promise<void> {
    for (const s of Object.values(this.sessions)) await s.release();
  }
}
