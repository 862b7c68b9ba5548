// Training-step benchmark: latentkit's fused VQGAN step (G + D, one forward, adaptive λ,
// Adam) vs taming's step in PyTorch (bench/train_step_torch.py, run side by side), plus
// where latentkit's time goes by op group (ORT profile).
//
//   node --import tsx bench/train_step.ts [--threads 1,2] [--steps 5] [--config bench|emoji] [--no-torch]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTrainConfig, EMOJI_PRESET } from '../src/train/config.ts';
import { createVQGANTrainer, defineVQGANPrograms } from '../src/train/vqgan_run.ts';
import { InitRng } from '../src/nn/params.ts';
import { formatProfile, profileProgram } from '../src/runtime/profile.ts';
import { HostTensor } from '../src/tensor.ts';

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

async function main() {
  const args = process.argv.slice(2);
  const get = (k: string, d: string) => {
    const i = args.indexOf(k);
    return i >= 0 ? args[i + 1]! : d;
  };
  const threadsList = get('--threads', '1,2').split(',').map(Number);
  const steps = Number(get('--steps', '5'));
  const which = get('--config', 'bench');
  const base = structuredClone(which === 'emoji' ? EMOJI_PRESET : BENCH_CONFIG) as typeof EMOJI_PRESET;
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
    tr.session = { threads };
    const t0 = performance.now();
    defineVQGANPrograms(tr, cfg);
    const prog = tr.program('gan');
    const traceMs = performance.now() - t0;
    const t1 = performance.now();
    await tr.compile('gan');
    const compileMs = performance.now() - t1;
    const feeds = { x, disc_factor: HostTensor.scalar(1) };
    await tr.run('gan', feeds, { ae: 1e-4, disc: 1e-4 });
    await tr.run('gan', feeds, { ae: 1e-4, disc: 1e-4 });
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t = performance.now();
      await tr.run('gan', feeds, { ae: 1e-4, disc: 1e-4 });
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const med = times[Math.floor(times.length / 2)]! / 1000;
    console.log(`latentkit, ${threads} thread(s): ${med.toFixed(3)} s/step (${(B / med).toFixed(1)} images/s); graph ${prog.graph.nodes.length} nodes → ${prog.lower().stats.onnxNodes} ONNX nodes, traced in ${traceMs.toFixed(0)} ms, session in ${compileMs.toFixed(0)} ms`);
    const row: Record<string, unknown> = { threads, latentkit_s: med };
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
      const prof = await profileProgram(prog, tr.feeds('gan', feeds, { ae: 1e-4, disc: 1e-4 }).feeds, { threads, reps: 2 }).catch((e: Error) => {
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
