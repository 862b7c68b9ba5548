// `latentkit distill-preview`: train a TAESD-architecture preview decoder for a KL autoencoder.
import path from 'node:path';
import type { Command } from 'commander';
import { distillPreview } from '../train/distill_preview.ts';
import type { AutoencoderKL } from '../models/autoencoder_kl/load.ts';
import { loadLatentModel } from './kl.ts';
import { CliError, LiveBar, action, parseIntOpt, removeIfFailedStart, stopOnSignal } from './util.ts';

const fmt = (v: number | undefined, d = 4) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(d));

function numberOpt(v: string, name: string, positive: boolean): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (positive && n === 0)) throw new CliError(`${name} must be a ${positive ? 'positive' : 'non-negative'} number, got '${v}'`);
  return n;
}

export function registerDistillCommands(program: Command): void {
  program
    .command('distill-preview')
    .description("train a TAESD-architecture preview decoder that imitates a KL autoencoder's decoder (on the VAE's own latents of your images); writes decoder.safetensors in taesd_decoder's layout")
    .requiredOption('-m, --model <vae>', 'the KL autoencoder: an SD .ckpt / .safetensors, an ldm VAE file, a diffusers vae/ folder or a train-ae run directory')
    .option('-c, --config <file>', 'latent-diffusion YAML/JSON for the VAE (default: its config.json, a YAML beside it, or inferred)')
    .option('--family <name>', 'sd | sdxl | sd3 | flux: the latent scaling when the file does not say (the preview learns the latents as scaled)')
    .option('--scale <x>', 'latent scaling factor override')
    .option('--shift <x>', 'latent shift override')
    .requiredOption('-d, --data <dir|emoji>', "a folder of images, or 'emoji' / 'emoji:google' / 'emoji:twitter' (bundled, 64×64)")
    .requiredOption('-o, --out <dir>', 'run directory (decoder.safetensors, samples/, metrics.jsonl, loss.png, checkpoints/)')
    .option('--steps <n>', 'training steps', '2000')
    .option('--batch-size <n>', 'batch size', '8')
    .option('--lr <x>', 'Adam learning rate (cosine-decayed to a tenth)', '1e-3')
    .option('--mse-weight <x>', 'add this weight × MSE to the L1 loss', '0')
    .option('-s, --size <n>', "image size the data is resized to (a multiple of the VAE's factor)", '64')
    .option('--seed <n>', 'seed of the initial weights and the batch order', '0')
    .option('--resume', 'continue the run in --out from its last checkpoint')
    .option('-t, --threads <n>', 'CPU threads (default: all cores)')
    .action(
      action(async (o: { model: string; config?: string; family?: string; scale?: string; shift?: string; data: string; out: string; steps: string; batchSize: string; lr: string; mseWeight: string; size: string; seed: string; resume?: boolean; threads?: string }) => {
        const steps = parseIntOpt(o.steps, '--steps');
        const seed = Number(o.seed);
        if (!Number.isInteger(seed) || seed < 0) throw new CliError(`--seed must be a whole number ≥ 0, got '${o.seed}'`);
        const threads = o.threads ? parseIntOpt(o.threads, '--threads') : undefined;
        const kl = loadLatentModel('kl', { model: o.model, config: o.config, family: o.family, scale: o.scale, shift: o.shift, threads: o.threads }) as AutoencoderKL;
        const opts = {
          model: kl,
          data: o.data,
          out: o.out,
          steps,
          batchSize: parseIntOpt(o.batchSize, '--batch-size'),
          lr: numberOpt(o.lr, '--lr', true),
          mseWeight: numberOpt(o.mseWeight, '--mse-weight', false),
          size: parseIntOpt(o.size, '--size'),
          seed,
          resume: o.resume,
          threads,
          logEvery: Math.max(1, Math.min(50, Math.floor(steps / 20))),
          sampleEvery: Math.max(1, Math.min(500, Math.floor(steps / 4))),
          ckptEvery: Math.max(1, Math.min(500, Math.floor(steps / 4))),
        };
        const bar = new LiveBar();
        const signals = stopOnSignal(bar);
        const t0 = Date.now();
        let first = 0;
        const r = await removeIfFailedStart(o.out, () =>
          distillPreview({
            ...opts,
            shouldStop: signals.stopRequested,
            events: {
              onMessage: (m) => bar.log(m),
              onStart: (i) => {
                first = i.startStep;
                console.error(`${i.resumed ? 'resuming' : 'distilling'} a preview decoder: ${(i.params.ae / 1e6).toFixed(2)} M parameters, ${i.trainImages} train / ${i.valImages} held-out images, steps ${i.startStep}→${i.maxSteps}`);
                console.error(`run directory: ${path.resolve(o.out)}`);
                bar.start('step {value}/{total} [{bar}] {eta_formatted} left | L1 {l1} MSE {mse}', i.maxSteps, i.startStep, { l1: '-', mse: '-' });
              },
              onStep: (step, m) => bar.update(step, { l1: fmt(m.l1), mse: fmt(m.mse, 5) }),
              onLog: (l) => {
                const s = (Date.now() - t0) / 1000;
                if (l.split === 'val_full') bar.log(`held-out (${l.images} images): preview vs the full decoder PSNR ${fmt(l.psnr as number, 2)} dB, L1 ${fmt(l.l1 as number)}`);
                else if (l.split === 'val') bar.log(`step ${l.step}: held-out PSNR ${fmt(l.psnr as number, 2)} dB vs the full decoder, L1 ${fmt(l.l1 as number)}`);
                else if (!process.stderr.isTTY) console.error(`step ${l.step}/${steps}: L1 ${fmt(l.l1 as number)} MSE ${fmt(l.mse as number, 5)} | ${(((l.step as number) - first) / s).toFixed(2)} steps/s`);
              },
              onSample: (f) => bar.log(`samples: ${f}`),
            },
          }),
        ).finally(async () => {
          bar.stop();
          await kl.release();
          signals.release();
        });
        const abs = path.resolve(r.out);
        console.error(`${r.stopped ? 'stopped' : 'finished'} at step ${r.step}; preview decoder: ${path.resolve(r.decoder)}`);
        if (r.final) console.error(`preview vs the full decoder on ${r.final.images} held-out images: PSNR ${r.final.psnr.toFixed(2)} dB`);
        console.error(`look at: ${path.join(abs, 'samples', 'latest.png')} (full decoder | preview), ${path.join(abs, 'loss.png')}, ${path.join(abs, 'metrics.jsonl')}`);
        if (r.stopped) process.exitCode = 130;
      }),
    );
}
