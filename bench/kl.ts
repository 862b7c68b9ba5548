// Whole-process benchmark of SD's KL autoencoder (kl-f8: ch 128, ch_mult [1,2,4,4], 2 res
// blocks, 4 latent channels; hash weights, 83.7 M parameters): `latentkit decode` of a
// 64×64×4 latent to a 512×512 PNG and `latentkit encode` of a 512×512 PNG, against the same
// work in PyTorch (bench/kl_torch.py: latent-diffusion's AutoencoderKL, weights from the same
// .safetensors), 1 and 2 threads, paired runs (latentkit, PyTorch, latentkit, …), each timed
// by /usr/bin/time (wall, peak RSS). Medians; ratio = PyTorch wall / latentkit wall (> 1:
// latentkit faster) and latentkit RSS / PyTorch RSS.
//
//   node --import tsx bench/kl.ts [--threads 1,2] [--reps 3] [--ops decode,encode]
// Run `npm run build` first (the CLI then starts from dist/, as an installed package does).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AutoencoderKL } from '../src/models/autoencoder_kl/load.ts';
import { klShapes } from '../src/models/autoencoder_kl/autoencoder.ts';
import { parseKLConfig } from '../src/models/autoencoder_kl/config.ts';
import { hashStateDict } from '../src/nn/hashinit.ts';
import { writeSafetensorsFile } from '../src/io/formats/safetensors.ts';
import { loadImage, saveImage } from '../src/io/image.ts';
import { HostTensor } from '../src/tensor.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.join(root, '.bench', 'kl');
const KLF8 = { embed_dim: 4, ddconfig: { double_z: true, z_channels: 4, resolution: 256, in_channels: 3, out_ch: 3, ch: 128, ch_mult: [1, 2, 4, 4], num_res_blocks: 2, attn_resolutions: [], dropout: 0 } };

/** A smooth field: a few low-frequency sinusoids per channel (deterministic). */
function smooth(shape: [number, number, number, number], amp: number): HostTensor<'float32'> {
  const [, c, h, w] = shape;
  const t = HostTensor.float32(shape);
  for (let k = 0; k < c; k++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const u = x / w;
        const v = y / h;
        t.data[(k * h + y) * w + x] = amp * (0.6 * Math.sin(2 * Math.PI * (u + 0.3 * k)) * Math.cos(Math.PI * v * (1 + k * 0.5)) + 0.4 * (u - v));
      }
    }
  }
  return t;
}

function timed(cmd: string, args: string[], env: Record<string, string>): { wall: number; rssMb: number } {
  const tf = path.join(work, 'time.txt');
  const r = spawnSync('/usr/bin/time', ['-o', tf, '-f', '%e %M', cmd, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.toString().slice(0, 500)}`);
  const [wall, kb] = fs.readFileSync(tf, 'utf8').trim().split(/\s+/).map(Number);
  return { wall: wall!, rssMb: kb! / 1024 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  const args = process.argv.slice(2);
  const get = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
  const threads = get('--threads', '1,2').split(',').map(Number);
  const reps = Number(get('--reps', '3'));
  const ops = get('--ops', 'decode,encode').split(',');
  fs.mkdirSync(work, { recursive: true });
  const weights = path.join(work, 'kl-f8-hash.safetensors');
  if (!fs.existsSync(weights)) {
    const m = new AutoencoderKL(parseKLConfig(KLF8), hashStateDict(klShapes(parseKLConfig(KLF8))), { scaling: { scale: 0.18215, shift: 0, source: 'SD 1.x' } });
    m.save(weights, { format: 'ldm' });
  }
  const latents = path.join(work, 'latents-64.safetensors');
  writeSafetensorsFile(latents, new Map([['latents', smooth([1, 4, 64, 64], 1)]]));
  const png = path.join(work, 'image-512.png');
  await saveImage(png, smooth([1, 3, 512, 512], 0.8));
  const image = path.join(work, 'image-512.safetensors');
  writeSafetensorsFile(image, new Map([['image', (await loadImage(png)).reshape([1, 3, 512, 512])]]));
  const built = fs.existsSync(path.join(root, 'dist', '.built'));
  if (!built) console.error('note: dist/ is not built — the CLI runs through tsx (slower start); run `npm run build` first');
  const rows: string[] = [];
  for (const op of ops) {
    for (const t of threads) {
      const lk: { wall: number; rssMb: number }[] = [];
      const pt: { wall: number; rssMb: number }[] = [];
      const lkArgs = op === 'decode'
        ? [path.join(root, 'bin/latentkit.js'), 'decode', '-m', weights, '-i', latents, '-o', path.join(work, 'out.png'), '--threads', String(t)]
        : [path.join(root, 'bin/latentkit.js'), 'encode', '-m', weights, '-i', png, '-o', path.join(work, 'out.safetensors'), '--threads', String(t)];
      const ptArgs = [path.join(root, 'bench/kl_torch.py'), '--weights', weights, '--op', op, '--input', op === 'decode' ? latents : image, '--threads', String(t)];
      timed(process.execPath, lkArgs, {}); // warm the page cache
      for (let r = 0; r < reps; r++) {
        lk.push(timed(process.execPath, lkArgs, {}));
        pt.push(timed('/usr/bin/python3', ptArgs, { OMP_NUM_THREADS: String(t) }));
      }
      const [lw, pw, lr, pr] = [median(lk.map((x) => x.wall)), median(pt.map((x) => x.wall)), median(lk.map((x) => x.rssMb)), median(pt.map((x) => x.rssMb))];
      rows.push(`| ${op} 512² | ${t} | ${lw.toFixed(2)} s | ${pw.toFixed(2)} s | **${(pw / lw).toFixed(2)}×** | ${lr.toFixed(0)} MB | ${pr.toFixed(0)} MB | ${(lr / pr).toFixed(2)}× |`);
      console.error(rows.at(-1));
    }
  }
  const table = ['| op | threads | latentkit wall | PyTorch wall | speed (PyTorch / latentkit) | latentkit RSS | PyTorch RSS | RSS ratio |', '|---|---|---|---|---|---|---|---|', ...rows].join('\n');
  console.log(table);
  fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
  fs.writeFileSync(path.join(root, 'bench/results/kl.md'), `# bench/kl.ts — ${new Date().toISOString().slice(0, 10)}, reps ${reps}, medians\n\n${table}\n`);
}

await main();
