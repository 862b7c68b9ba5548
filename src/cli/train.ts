// `latentkit train-ae` and `latentkit eval`.
import path from 'node:path';
import type { Command } from 'commander';
import { PRESETS, loadTrainConfig, withMaxSteps } from '../train/config.ts';
import { loadTrainingData, trainVQGAN } from '../train/vqgan_run.ts';
import { KL_PRESETS, KL_TRAIN_PARTS, isKLTrainSpec, loadKLTrainConfig, type KLTrainPart } from '../train/kl_config.ts';
import { trainKL } from '../train/kl_run.ts';
import { VQGAN } from '../models/vqgan/load.ts';
import type { AutoencoderKL } from '../models/autoencoder_kl/load.ts';
import { latentModelKind } from '../models/load_model.ts';
import { BatchLoader } from '../io/datasets.ts';
import { evaluateBatches, evaluateKL, take } from '../eval/evaluate.ts';
import { loadLatentModel } from './kl.ts';
import { CliError, LiveBar, action, parseIntOpt, removeIfFailedStart, stopOnSignal } from './util.ts';

const fmt = (v: number | undefined, d = 3) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(d));

export function registerTrainCommands(program: Command): void {
  program
    .command('train-ae')
    .description("train a VQGAN (autoencoder + codebook + PatchGAN), or a KL autoencoder (Stable Diffusion's VAE: a config whose target is ldm.models.autoencoder.AutoencoderKL, or a KL preset), on a folder of images or the bundled emoji")
    .option('-d, --data <emoji|dir>', "'emoji' (bundled, 64×64), 'emoji:google', 'emoji:twitter', or a folder of images")
    .option('-c, --config <preset|file>', `preset (${Object.keys(PRESETS).join(', ')}; KL: ${Object.keys(KL_PRESETS).join(', ')}) or a taming / latent-diffusion YAML/JSON (default: emoji; with --init: kl-finetune)`)
    .option('--init <vae>', "start from this KL autoencoder (SD .ckpt/.safetensors, ldm VAE, diffusers vae/ folder, a KL run): its architecture and latent scaling are kept; --config gives the loss and run settings")
    .option('--train <all|decoder>', "what trains: all (default), or decoder (decoder + post_quant_conv; the encoder and quant_conv are frozen, so the latents stay bit-identical — SD's ft-EMA/ft-MSE VAEs were made so); needs --init")
    .requiredOption('-o, --out <dir>', 'run directory (checkpoints, samples, metrics.jsonl, loss.png)')
    .option('--max-steps <n>', "run n steps (default: the config's max_steps); rescales warm-up, cosine and the discriminator start to n")
    .option('--batch-size <n>', 'override data.params.batch_size')
    .option('--lr <x>', 'absolute learning rate (default: config lr, or base_learning_rate × batch size)')
    .option('--resume', 'continue the run in --out from its last checkpoint')
    .option('--perceptual-weight <x>', 'LPIPS weight (taming: 1.0; needs --lpips-vgg)')
    .option('--lpips-vgg <file>', 'torchvision vgg16 state dict (.pth/.safetensors) for LPIPS')
    .option('--lpips-lin <file>', "LPIPS linear heads (the 'vgg.pth' of the lpips package)")
    .option('-t, --threads <n>', 'CPU threads (default: all cores)')
    .action(
      action(async (o: { data?: string; config?: string; init?: string; train?: string; out: string; maxSteps?: string; batchSize?: string; lr?: string; resume?: boolean; threads?: string; perceptualWeight?: string; lpipsVgg?: string; lpipsLin?: string }) => {
        const spec = o.config ?? (o.init ? 'kl-finetune' : 'emoji');
        if (o.train !== undefined && !(KL_TRAIN_PARTS as readonly string[]).includes(o.train)) throw new CliError(`--train must be ${KL_TRAIN_PARTS.join(' or ')}, got '${o.train}'`);
        if (o.train === 'decoder' && !o.init) throw new CliError("--train decoder fine-tunes a given VAE's decoder: pass it with --init VAE (an SD .ckpt/.safetensors, ldm VAE or diffusers vae/ folder)");
        const kl = isKLTrainSpec(spec);
        if (o.init && !kl) throw new CliError(`--init is for KL autoencoders (Stable Diffusion's VAE); --config ${spec} is a VQGAN config`);
        let init: AutoencoderKL | undefined;
        if (o.init) {
          const { loadLatentModel } = await import('./kl.ts');
          if (latentModelKind(o.init) === 'taesd') throw new CliError(`--init ${o.init}: a TAESD tiny autoencoder, not a KL autoencoder (VAE)`);
          init = loadLatentModel('kl', { model: o.init }) as AutoencoderKL;
        }
        const cfg = kl ? loadKLTrainConfig(spec, init && { config: init.config, scaling: init.scaling, source: o.init! }) : loadTrainConfig(spec);
        if ('kind' in cfg && o.train) cfg.train = o.train as KLTrainPart;
        if (o.perceptualWeight) cfg.loss.perceptual_weight = Number(o.perceptualWeight);
        if (o.lpipsVgg) cfg.run.lpips = { vgg: o.lpipsVgg, lin: o.lpipsLin };
        if (o.data) cfg.run.data = o.data;
        if (o.batchSize) cfg.run.batch_size = parseIntOpt(o.batchSize, '--batch-size');
        if (o.lr) cfg.run.lr = Number(o.lr);
        const maxSteps = o.maxSteps ? parseIntOpt(o.maxSteps, '--max-steps') : cfg.run.max_steps;
        const rescaled = withMaxSteps(cfg, maxSteps);
        if (rescaled) console.error(`note: ${rescaled}; pass the same --max-steps to --resume`);
        const bar = new LiveBar();
        const signals = stopOnSignal(bar);
        const t0 = Date.now();
        let first = 0;
        // the bar is stopped (its line ended, the cursor shown) however the run ends, so an
        // error message starts on a line of its own
        const train = (events: Parameters<typeof trainVQGAN>[0]['events']) => {
          const common = { out: o.out, resume: o.resume, maxSteps, threads: o.threads ? parseIntOpt(o.threads, '--threads') : undefined, shouldStop: signals.stopRequested, events };
          return 'kind' in cfg ? trainKL({ ...common, config: cfg, init: init?.weights }) : trainVQGAN({ ...common, config: cfg });
        };
        const r = await removeIfFailedStart(o.out, () => train({
            onMessage: (m) => bar.log(m),
            onStart: (i) => {
              first = i.startStep;
              console.error(
                `${i.resumed ? 'resuming' : 'training'} ${kl ? 'KL autoencoder' : 'VQGAN'}${init ? ` from ${o.init}` : ''}: ${(i.params.ae / 1e6).toFixed(2)} M ${'kind' in cfg && cfg.train === 'decoder' ? 'decoder (encoder frozen)' : 'autoencoder'} + ${(i.params.disc / 1e6).toFixed(2)} M discriminator parameters, ` +
                  `${i.trainImages} train / ${i.valImages} val images, steps ${i.startStep}→${i.maxSteps}, discriminator from step ${cfg.loss.disc_start}`,
              );
              console.error(`run directory: ${path.resolve(o.out)}`);
              if (kl) bar.start('step {value}/{total} [{bar}] {eta_formatted} left | rec {rec} kl {q} λ {lam} d {d}', i.maxSteps, i.startStep, { rec: '-', q: '-', lam: '-', d: '-' });
              else bar.start('step {value}/{total} [{bar}] {eta_formatted} left | rec {rec} q {q} λ {lam} d {d} | codes {usage} ppl {ppl}', i.maxSteps, i.startStep, { rec: '-', q: '-', lam: '-', d: '-', usage: '-', ppl: '-' });
            },
            onStep: (step, m) => {
              if (kl) bar.update(step, { rec: fmt(m.rec_loss), q: fmt(m.kl, 1), lam: fmt(m.d_weight, 2), d: fmt(m.disc_loss) });
              else bar.update(step, { rec: fmt(m.rec), q: fmt(m.qloss), lam: fmt(m.lambda, 2), d: fmt(m.d_loss), usage: `${((m.usage ?? 0) * 100).toFixed(0)}%`, ppl: fmt(m.perplexity, 0) });
            },
            onLog: (l) => {
              const s = (Date.now() - t0) / 1000;
              const scores = () => `PSNR ${fmt(l.psnr as number, 2)} dB, SSIM ${fmt(l.ssim as number)}` + (kl ? '' : `, codebook usage ${((l.usage as number) * 100).toFixed(1)}%, perplexity ${fmt(l.perplexity as number, 1)}`);
              if (l.split === 'val_full') bar.log(`final validation on ${l.images} images: ${scores()}`);
              else if (l.split === 'val') bar.log(`step ${l.step}: val ${scores()}`);
              else if (!process.stderr.isTTY && kl) console.error(`step ${l.step}/${maxSteps}: rec ${fmt(l.rec_loss as number)} kl ${fmt(l.kl as number, 1)} λ ${fmt(l.d_weight as number, 2)} d_loss ${fmt(l.disc_loss as number)} | ${(((l.step as number) - first) / s).toFixed(2)} steps/s`);
              else if (!process.stderr.isTTY) console.error(`step ${l.step}/${maxSteps}: rec ${fmt(l.rec as number)} qloss ${fmt(l.qloss as number)} λ ${fmt(l.lambda as number, 2)} d_loss ${fmt(l.d_loss as number)} | ${(((l.step as number) - first) / s).toFixed(2)} steps/s`);
            },
            onSample: (f) => bar.log(`samples: ${f}`),
        })).finally(() => {
          bar.stop();
          signals.release();
        });
        const abs = path.resolve(r.out);
        console.error(`${r.stopped ? 'stopped' : 'finished'} at step ${r.step}; model: ${path.join(abs, 'model.safetensors')}`);
        console.error(`look at: ${path.join(abs, 'samples', 'latest.png')} (inputs | reconstructions), ${path.join(abs, 'loss.png')}, ${path.join(abs, 'metrics.jsonl')}`);
        if (r.stopped) process.exitCode = 130;
      }),
    );

  program
    .command('eval')
    .description('PSNR and SSIM of a VQGAN (with its codebook usage and perplexity) or a KL autoencoder (the posterior mode decoded) on a data split')
    .requiredOption('-m, --model <dir|file>', 'a model directory (model.safetensors + config.yaml) or a checkpoint file (.safetensors / .ckpt)')
    .option('-c, --config <file>', 'taming YAML/JSON config')
    .option('-d, --data <emoji|dir>', 'data', 'emoji')
    .option('--split <val|train|all>', 'which split', 'val')
    .option('-s, --size <n>', 'image size', '64')
    .option('-b, --batch <n>', 'batch size', '32')
    .option('--limit <n>', 'at most n images')
    .option('-t, --threads <n>', 'CPU threads')
    .action(
      action(async (o: { model: string; config?: string; data: string; split: string; size: string; batch: string; limit?: string; threads?: string }) => {
        const size = parseIntOpt(o.size, '--size');
        const kind = latentModelKind(o.model);
        if (kind === 'taesd') throw new CliError(`${o.model} is a TAESD (a decoder or encoder alone): eval takes a VQGAN or a KL autoencoder`);
        const m = kind === 'kl' ? loadLatentModel('kl', { model: o.model, config: o.config, threads: o.threads }) as AutoencoderKL : VQGAN.load(o.model, { config: o.config, session: { threads: o.threads ? parseIntOpt(o.threads, '--threads') : undefined } });
        if (!['val', 'train', 'all'].includes(o.split)) throw new CliError(`--split must be val, train or all, got '${o.split}'`);
        const d = await loadTrainingData(o.data, size, 0.05, (k, t) => {
          if (k === t || k % 1000 === 0) console.error(`decoding images: ${k}/${t}`);
        });
        if (d.note && o.split !== 'all') console.error(`note: ${d.note}`);
        let idx = o.split === 'val' ? d.valIdx : o.split === 'train' ? d.trainIdx : d.items.map((_, i) => i);
        if (o.limit) idx = idx.slice(0, parseIntOpt(o.limit, '--limit'));
        if (!idx.length) throw new CliError(`no images in the '${o.split}' split of ${o.data}`);
        console.error(`evaluating ${idx.length} ${o.split} image(s)…`);
        const bs = Math.min(parseIntOpt(o.batch, '--batch'), idx.length);
        const loader = new BatchLoader({ images: d.images, indices: idx, batchSize: bs, augment: false, shuffle: false, dropLast: false });
        const batches = take(() => loader.next(), Math.ceil(idx.length / bs));
        if (m instanceof VQGAN) {
          const r = await evaluateBatches(m, batches);
          console.log(JSON.stringify({ images: r.images, split: o.split, psnr: r.psnr, ssim: r.ssim, codebook_usage: r.usage, codes_used: r.used, perplexity: r.perplexity }, null, 2));
        } else {
          const r = await evaluateKL(m, batches);
          console.log(JSON.stringify({ images: r.images, split: o.split, psnr: r.psnr, ssim: r.ssim }, null, 2));
        }
        await m.release();
      }),
    );
}
