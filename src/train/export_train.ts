// A VQGAN training run as standalone ONNX files, for training where only an ONNX Runtime
// build is at hand (the page's "train in your browser", through onnxruntime-web): the same
// warm-up and GAN step programs `latentkit train-ae` runs (forward, losses, gradients and
// Adam in one graph), a reconstruction graph over the flat parameters, the seeded initial
// weights, and a manifest with the layouts, schedule and metadata a host loop needs
// (runtime/standalone_train.ts is that loop).
import { Program } from '../runtime/program.ts';
import { ParamView } from '../nn/params.ts';
import { vqForward } from '../models/vqgan/vqmodel.ts';
import { splitFlat } from './step.ts';
import { createVQGANTrainer, defineVQGANPrograms } from './vqgan_run.ts';
import { scheduleSpec, toTamingObject, type TrainConfig } from './config.ts';
import type { TrainOnnxManifest } from './train_manifest.ts';

export type { TrainOnnxManifest } from './train_manifest.ts';

/**
 * Export `cfg`'s training programs. Refused where the host loop would differ from
 * train-ae's: LPIPS (weights the user must pass), codebook care (k-means, restarts: host-side
 * steps) and EMA codebooks.
 */
export function trainOnnx(cfg: TrainConfig): { files: Map<string, Uint8Array>; manifest: TrainOnnxManifest } {
  if (cfg.loss.perceptual_weight > 0) throw new Error('trainOnnx: configs with LPIPS (perceptual_weight > 0) are not exported');
  if (cfg.run.codebook.kmeans_init || cfg.run.codebook.restart_dead) throw new Error('trainOnnx: codebook k-means / dead-code restarts run on the host; use a config without them');
  if (cfg.model.ema_decay) throw new Error('trainOnnx: EMA codebooks are not exported');
  const { trainer } = createVQGANTrainer(cfg);
  defineVQGANPrograms(trainer, cfg);
  const files = new Map<string, Uint8Array>();
  const programs: TrainOnnxManifest['programs'] = {};
  for (const [name, train] of [['warmup', ['ae']], ['gan', ['ae', 'disc']]] as const) {
    const p = trainer.program(name);
    files.set(`${name}.onnx`, p.toOnnx());
    programs[name] = { file: `${name}.onnx`, train: [...train], inputs: p.inputs.map((i) => i.name), outputs: p.outputs.map((o) => o.name) };
  }
  // reconstruction: flat autoencoder parameters + images → reconstructions and code indices
  const ae = trainer.layouts.ae!;
  const [c, s] = [cfg.model.ddconfig.in_channels, cfg.run.size];
  const recon = Program.trace(
    (ins) => {
      const r = vqForward(new ParamView(splitFlat(ins['ae.params']!, ae)), cfg.model, ins.x!);
      return { xrec: r.xrec, indices: r.indices };
    },
    { 'ae.params': { shape: [ae.total], dtype: 'float32' }, x: { shape: [cfg.run.batch_size, c, s, s], dtype: 'float32' } },
  );
  files.set('recon.onnx', recon.toOnnx());
  // initial state: ae params, disc params, buffers, one flat float32 file
  const snap = trainer.snapshot().tensors;
  const parts = [snap['ae.params']!, snap['disc.params']!, ...(snap.buffers ? [snap.buffers] : [])];
  const init = new Float32Array(parts.reduce((a, t) => a + t.size, 0));
  let o = 0;
  for (const t of parts) {
    init.set(t.data as Float32Array, o);
    o += t.size;
  }
  files.set('init.f32', new Uint8Array(init.buffer));
  const r = cfg.run;
  const manifest: TrainOnnxManifest = {
    format: 'latentkit-vqgan-train-onnx',
    batch: r.batch_size,
    channels: c,
    image_size: s,
    grid: recon.outputs.find((x) => x.name === 'indices')!.tensor.shape.slice(1) as [number, number],
    disc_start: cfg.loss.disc_start,
    disc_factor: cfg.loss.disc_factor,
    max_steps: r.max_steps,
    seed: r.seed,
    schedule: scheduleSpec(cfg),
    groups: { ae: { ...ae, slots: 2 }, disc: { ...trainer.layouts.disc!, slots: 2 } },
    buffers: trainer.bufferLayout,
    programs,
    recon: { file: 'recon.onnx' },
    init: 'init.f32',
    metadata: { format: 'latentkit-vqgan', config: JSON.stringify(cfg.model), train_config: JSON.stringify(toTamingObject(cfg)) },
  };
  return { files, manifest };
}
