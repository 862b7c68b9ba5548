// Training-step benchmark: latentkit's fused VQGAN step (G + D, one forward, adaptive λ,
// Adam) vs taming's step in PyTorch (bench/train_step_torch.py, run side by side), plus
// where latentkit's time goes by op group (ORT profile).
//
//   node --import tsx bench/train_step.ts [--threads 1,2] [--steps 5] [--config bench|emoji|tiny] [--no-torch]
//   node --import tsx bench/train_step.ts --config tiny --whole [--threads 1,2]
//
// --config tiny is taming's recipe on a tiny VQGAN (TINY_RECIPE); its PyTorch twin is the
// plain loop bench/train_tiny_torch.py on the same images (dumped from latentkit's own data
// split). --whole times the whole `latentkit train-ae` process for 400 steps (start-up,
// validation, grids and checkpoints included) against the whole PyTorch loop process, and
// compares their final validation PSNR.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTrainConfig, EMOJI_PRESET } from '../src/train/config.ts';
import { createVQGANTrainer, defineVQGANPrograms, loadTrainingData } from '../src/train/vqgan_run.ts';
import { InitRng } from '../src/nn/params.ts';
import { formatProfile, profileProgram } from '../src/runtime/profile.ts';
import { HostTensor } from '../src/tensor.ts';
import { u8ToFloat } from '../src/io/pixels.ts';
import { convLowering } from '../src/prims/conv.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The design doc's reference step: 64×64, ch 64, ch_mult [1,2,2,4], 2 res blocks, attn at 8, 512 codes, 2-layer D, batch 8. */
export const BENCH_CONFIG = {
  model: {
    params: {
      embed_dim: 64,
      n_embed: 512,
      ddconfig: { double_z: false, z_channels: 64, resolution: 64, in_channels: 3, out_ch: 3, ch: 64, ch_mult: [1, 2, 2, 4], num_res_blocks: 2, attn_resolutions: [8], dropout: 0 },
      lossconfig: { params: { disc_start: 0, disc_weight: 0.8, disc_num_layers: 2, disc_ndf: 64, disc_loss: 'hinge' } },
    },
  },
  data: { params: { batch_size: 8 } },
  latentkit: { size: 64, lr: 1e-4 },
};

/**
 * taming's recipe (VQLPIPSWithDiscriminator values without LPIPS, lr = base_learning_rate ×
 * batch, Adam (0.5, 0.9), δ = 1e-4) on a tiny VQGAN, with base_learning_rate 5e-5 instead of
 * taming's 4.5e-6 (lr 4e-4: at 3.6e-5 neither implementation gets past ~10–12 dB in 400
 * steps, where init noise decides the PSNR): 32×32, ch 32, ch_mult [1,2,2], 1 res
 * block, attention at 8, 128 codes, 2-layer D, batch 8, GAN from step 200, 400 steps.
 */
export const TINY_RECIPE = {
  model: {
    base_learning_rate: 5e-5,
    target: 'taming.models.vqgan.VQModel',
    params: {
      embed_dim: 32,
      n_embed: 128,
      ddconfig: { double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2, 2], num_res_blocks: 1, attn_resolutions: [8], dropout: 0.0 },
      lossconfig: {
        target: 'taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator',
        params: { disc_conditional: false, disc_in_channels: 3, disc_start: 200, disc_weight: 0.8, codebook_weight: 1.0, perceptual_weight: 0.0, disc_num_layers: 2, disc_ndf: 64, disc_loss: 'hinge' },
      },
    },
  },
  data: { params: { batch_size: 8 } },
  latentkit: { data: 'emoji', size: 32, max_steps: 400, rec_loss: 'l1', adaptive_delta: 1e-4 },
};

function writeNpy(file: string, t: HostTensor<'float32'>): void {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${t.shape.join(', ')}${t.shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const pre = new Uint8Array(10);
  pre.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(pre.buffer).setUint16(8, header.length, true);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)]));
}

/** The tiny recipe's data as latentkit splits it, dumped for the PyTorch loop. */
async function tinyData(dir: string): Promise<{ train: string; val: string; config: string }> {
  fs.mkdirSync(dir, { recursive: true });
  const files = { train: path.join(dir, 'train-pm1.npy'), val: path.join(dir, 'val-pm1.npy'), config: path.join(dir, 'tiny.json') };
  fs.writeFileSync(files.config, JSON.stringify(TINY_RECIPE, null, 2));
  if (fs.existsSync(files.train) && fs.existsSync(files.val)) return files;
  const cfg = parseTrainConfig(TINY_RECIPE);
  const d = await loadTrainingData(cfg.run.data, cfg.run.size, cfg.run.val_fraction);
  const pick = (idx: number[]) => {
    const [, c, h, w] = d.images.shape as number[];
    const n = c! * h! * w!;
    const out = HostTensor.float32([idx.length, c!, h!, w!]);
    // the dataset holds uint8 pixels; the model sees x/127.5 − 1, as BatchLoader gives it
    idx.forEach((k, i) => u8ToFloat(d.images.data.subarray(k * n, (k + 1) * n), out.data.subarray(i * n, (i + 1) * n) as Float32Array<ArrayBuffer>));
    return out;
  };
  writeNpy(files.train, pick(d.trainIdx));
  writeNpy(files.val, pick(d.valIdx));
  return files;
}

function timed(cmd: string, argv: string[], env: Record<string, string>, timeFile: string): { wall: number; rssMb: number; stdout: string } {
  const stdout = execFileSync('/usr/bin/time', ['-o', timeFile, '-f', '%e %M', cmd, ...argv], { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const [wall, kb] = fs.readFileSync(timeFile, 'utf8').trim().split(/\s+/).map(Number);
  return { wall: wall!, rssMb: kb! / 1024, stdout };
}

/** Whole processes: `latentkit train-ae` on the tiny recipe for 400 steps vs the PyTorch loop. */
async function wholeTiny(threadsList: number[], reps: number): Promise<void> {
  const work = path.join(here, '..', '.bench', 'tiny');
  const files = await tinyData(work);
  const yaml = path.join(work, 'tiny.yaml');
  fs.writeFileSync(yaml, JSON.stringify(TINY_RECIPE)); // JSON is YAML
  const rows: Record<string, unknown>[] = [];
  console.log('tiny recipe, 400 steps, whole process (min wall of reps): latentkit train-ae vs plain PyTorch loop');
  for (const t of threadsList) {
    let best: { wall: number; rssMb: number; psnr: number } | null = null;
    for (let r = 0; r < reps; r++) {
      const out = path.join(work, `run-${t}`);
      fs.rmSync(out, { recursive: true, force: true });
      const res = timed(process.execPath, [path.join(here, '..', 'bin', 'latentkit.js'), 'train-ae', '-c', yaml, '-o', out, '-t', String(t)], {}, path.join(work, 'time.txt'));
      const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>);
      const psnr = Number(lines.filter((l) => l.split === 'val_full').pop()!.psnr);
      if (!best || res.wall < best.wall) best = { wall: res.wall, rssMb: res.rssMb, psnr };
    }
    let pt: { wall: number; rssMb: number; psnr: number } | null = null;
    for (let r = 0; r < reps; r++) {
      const res = timed('/usr/bin/python3', [path.join(here, 'train_tiny_torch.py'), '--config', files.config, '--train', files.train, '--val', files.val, '--threads', String(t), '--steps', '400', '--out', path.join(work, `torch-${t}`)], { OMP_NUM_THREADS: String(t) }, path.join(work, 'time.txt'));
      const j = JSON.parse(res.stdout.trim().split('\n').pop()!) as { val_psnr: number };
      if (!pt || res.wall < pt.wall) pt = { wall: res.wall, rssMb: res.rssMb, psnr: j.val_psnr };
    }
    console.log(`${t} thread(s): latentkit ${best!.wall.toFixed(1)} s, val PSNR ${best!.psnr.toFixed(2)} dB, ${best!.rssMb.toFixed(0)} MB | PyTorch ${pt!.wall.toFixed(1)} s, ${pt!.psnr.toFixed(2)} dB, ${pt!.rssMb.toFixed(0)} MB | speed ratio (torch/lk) ${(pt!.wall / best!.wall).toFixed(2)}×, ΔPSNR ${(best!.psnr - pt!.psnr).toFixed(2)} dB`);
    rows.push({ threads: t, latentkit: best, torch: pt });
  }
  fs.mkdirSync(path.join(here, 'results'), { recursive: true });
  fs.writeFileSync(path.join(here, 'results', `train-tiny-whole-${new Date().toISOString().slice(0, 10)}.json`), JSON.stringify(rows, null, 2) + '\n');
}

async function main() {
  const args = process.argv.slice(2);
  const get = (k: string, d: string) => {
    const i = args.indexOf(k);
    return i >= 0 ? args[i + 1]! : d;
  };
  const threadsList = get('--threads', '1,2').split(',').map(Number);
  const steps = Number(get('--steps', '5'));
  const which = get('--config', 'bench');
  // A/B of the conv weight-gradient lowering: --im2col-max 0 forces per-tap products
  if (args.includes('--im2col-max')) convLowering.im2colMaxPatch = Number(get('--im2col-max', '0'));
  if (which === 'tiny' && args.includes('--whole')) return wholeTiny(threadsList, Number(get('--reps', '1')));
  const base = structuredClone(which === 'emoji' ? EMOJI_PRESET : which === 'tiny' ? TINY_RECIPE : BENCH_CONFIG) as typeof EMOJI_PRESET;
  const override = get('--ddconfig', '');
  if (override) Object.assign(base.model.params.ddconfig, JSON.parse(override));
  const cfg = parseTrainConfig(base);
  const B = cfg.run.batch_size;
  const S = cfg.run.size;
  const x = HostTensor.float32([B, 3, S, S]);
  const r = new InitRng(7);
  for (let i = 0; i < x.size; i++) x.data[i] = r.uniform() * 2 - 1;
  const rows: Record<string, unknown>[] = [];
  for (const threads of threadsList) {
    const { trainer: tr } = createVQGANTrainer(cfg);
    tr.session = { threads, ...(args.includes('--ort-opt') ? { optimization: get('--ort-opt', 'all') as 'all' } : {}) };
    const t0 = performance.now();
    defineVQGANPrograms(tr, cfg);
    // --program warmup: the autoencoder-only step run before disc_start
    const pname = get('--program', 'gan');
    const prog = tr.program(pname);
    const traceMs = performance.now() - t0;
    const t1 = performance.now();
    await tr.compile(pname);
    const compileMs = performance.now() - t1;
    const gan = pname === 'gan';
    const feeds: Record<string, HostTensor> = gan ? { x, disc_factor: HostTensor.scalar(1) } : { x };
    const lrs: Record<string, number> = gan ? { ae: 1e-4, disc: 1e-4 } : { ae: 1e-4 };
    await tr.run(pname, feeds, lrs);
    await tr.run(pname, feeds, lrs);
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t = performance.now();
      await tr.run(pname, feeds, lrs);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const med = times[Math.floor(times.length / 2)]! / 1000;
    console.log(`latentkit ${pname}, ${threads} thread(s): ${med.toFixed(3)} s/step (${(B / med).toFixed(1)} images/s); graph ${prog.graph.nodes.length} nodes → ${prog.lower().stats.onnxNodes} ONNX nodes, traced in ${traceMs.toFixed(0)} ms, session in ${compileMs.toFixed(0)} ms`);
    const row: Record<string, unknown> = { threads, latentkit_s: med };
    if (!args.includes('--no-torch') && fs.existsSync('/usr/bin/python3') && which === 'tiny') {
      const files = await tinyData(path.join(here, '..', '.bench', 'tiny'));
      const outp = execFileSync('/usr/bin/python3', [path.join(here, 'train_tiny_torch.py'), '--config', files.config, '--train', files.train, '--val', files.val, '--threads', String(threads), '--time-steps', String(Math.max(steps, 10)), ...(gan ? [] : ['--time-warmup'])], {
        env: { ...process.env, OMP_NUM_THREADS: String(threads) },
        encoding: 'utf8',
      });
      const j = JSON.parse(outp.trim().split('\n').pop()!) as { s_per_step: number };
      row.torch_plain_s = j.s_per_step;
      console.log(`  PyTorch plain loop, ${threads} thread(s): ${j.s_per_step.toFixed(4)} s/step → latentkit is ${(j.s_per_step / med).toFixed(2)}× its speed`);
    }
    if (!args.includes('--no-torch') && fs.existsSync('/usr/bin/python3') && which === 'bench') {
      for (const mode of ['taming', 'single']) {
        try {
          const outp = execFileSync('/usr/bin/python3', [path.join(here, 'train_step_torch.py'), '--threads', String(threads), '--mode', mode, '--steps', String(steps)], {
            env: { ...process.env, OMP_NUM_THREADS: String(threads) },
            encoding: 'utf8',
          });
          const j = JSON.parse(outp.trim().split('\n').pop()!) as { s_per_step_median: number };
          row[`torch_${mode}_s`] = j.s_per_step_median;
          console.log(`  PyTorch (${mode}), ${threads} thread(s): ${j.s_per_step_median.toFixed(3)} s/step → latentkit is ${(j.s_per_step_median / med).toFixed(2)}× its images/s`);
        } catch (e) {
          console.log(`  PyTorch (${mode}) failed: ${(e as Error).message.split('\n')[0]}`);
        }
      }
    }
    if (args.includes('--profile')) {
      const prof = await profileProgram(prog, tr.feeds(pname, feeds, lrs).feeds, { threads, reps: 2 }).catch((e: Error) => {
        console.log(`  profile failed: ${e.message}`);
        return null;
      });
      if (prof) console.log(formatProfile(prof).replace(/^/gm, '  '));
    }
    rows.push(row);
  }
  fs.mkdirSync(path.join(here, 'results'), { recursive: true });
  fs.writeFileSync(path.join(here, 'results', `train-step-${which}-${new Date().toISOString().slice(0, 10)}.json`), JSON.stringify(rows, null, 2) + '\n');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
