// Codebook options ablation: the same small VQGAN trained on 32×32 emoji for N steps with
// taming's plain codebook and with each latentkit option (k-means init, dead-code restart,
// l2-normalized codes, EMA updates). Prints validation PSNR, codebook usage and perplexity.
//
//   node --import tsx bench/codebook_ablation.ts [--steps 400] [--threads 2]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseTrainConfig } from '../src/train/config.ts';
import { trainVQGAN } from '../src/train/vqgan_run.ts';

const VARIANTS: Record<string, { codebook?: Record<string, unknown>; model?: Record<string, unknown> }> = {
  'taming (plain VQ)': {},
  '+ k-means init': { codebook: { kmeans_init: true } },
  '+ dead-code restart': { codebook: { restart_dead: true } },
  '+ k-means + restart': { codebook: { kmeans_init: true, restart_dead: true } },
  '+ l2 codes': { model: { l2_codes: true } },
  '+ EMA codebook': { model: { ema_decay: 0.99 } },
};

async function main() {
  const args = process.argv.slice(2);
  const get = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
  const steps = Number(get('--steps', '400'));
  const threads = Number(get('--threads', '2'));
  const rows: Record<string, unknown>[] = [];
  console.log(`variant | val PSNR (dB, whole val split) | SSIM | codebook usage | perplexity | s/step   (${steps} steps, 32×32 emoji, 256 codes, no discriminator)`);
  for (const [name, v] of Object.entries(VARIANTS)) {
    const cfg = parseTrainConfig({
      model: {
        params: {
          embed_dim: 32,
          n_embed: 256,
          ...(v.model ?? {}),
          ddconfig: { double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0 },
          lossconfig: { params: { disc_start: 1e9, disc_num_layers: 1, disc_ndf: 8 } },
        },
      },
      data: { params: { batch_size: 16 } },
      latentkit: { data: 'emoji', size: 32, max_steps: steps, lr: 5e-4, log_every: 50, image_every: steps, ckpt_every: steps, codebook: { restart_every: 100, kmeans_steps: 20, ...(v.codebook ?? {}) } },
    });
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-ablation-'));
    let val: Record<string, number> = {};
    const t0 = performance.now();
    await trainVQGAN({ config: cfg, out, threads, events: { onLog: (l) => { if (l.split === 'val_full') val = l as Record<string, number>; } } });
    const sps = (performance.now() - t0) / 1000 / steps;
    console.log(`${name} | ${val.psnr!.toFixed(2)} | ${val.ssim!.toFixed(3)} | ${(val.usage! * 100).toFixed(1)}% | ${val.perplexity!.toFixed(1)} | ${sps.toFixed(3)}`);
    rows.push({ variant: name, ...val, s_per_step: sps });
    fs.rmSync(out, { recursive: true, force: true });
  }
  fs.mkdirSync(path.join(import.meta.dirname ?? '.', 'results'), { recursive: true });
  fs.writeFileSync(path.join(import.meta.dirname ?? '.', 'results', `codebook-ablation-${new Date().toISOString().slice(0, 10)}.json`), JSON.stringify(rows, null, 2) + '\n');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
