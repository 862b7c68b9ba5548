// Whole-process reconstruct benchmark: `latentkit reconstruct` (the CLI) vs taming's VQModel in
// PyTorch (bench/reconstruct_torch.py), both loading the same file, taming's ImageNet
// f16/16384 architecture (76 M parameters, hash weights), 256×256 images, 1 and 2 threads.
// Two weight files (--format): `safetensors` (our file, config in its metadata) and `ckpt`, a
// Lightning-style torch.save checkpoint ({state_dict, epoch, global_step}, 64-byte aligned
// STORED entries as torch writes them) + taming's YAML — the files taming's users have; the
// PyTorch side then loads it as taming's init_from_ckpt does (torch.load(…)["state_dict"]).
// Each process is timed with /usr/bin/time (wall, peak RSS) for 1 and for K images; the
// per-image cost is the marginal (T_K − T_1)/(K − 1), the rest is start-up (imports, loading,
// session creation).
//
//   node --import tsx bench/reconstruct.ts [--threads 1,2] [--images 6] [--reps 2] [--format safetensors,ckpt]
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseVQConfig } from '../src/models/vqgan/config.ts';
import { vqShapes } from '../src/models/vqgan/vqmodel.ts';
import { hashStateDict } from '../src/nn/hashinit.ts';
import { writeSafetensorsFile } from '../src/io/formats/safetensors.ts';
import { writeTorchCheckpoint, type TorchValue } from '../src/io/formats/torch_write.ts';
import { saveImage } from '../src/io/image.ts';
import { HostTensor } from '../src/tensor.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const work = path.join(root, '.bench');

const IMAGENET = { embed_dim: 256, n_embed: 16384, ddconfig: { double_z: false, z_channels: 256, resolution: 256, in_channels: 3, out_ch: 3, ch: 128, ch_mult: [1, 1, 2, 2, 4], num_res_blocks: 2, attn_resolutions: [16], dropout: 0 } };

function run(cmd: string, args: string[], env: Record<string, string>): { wall: number; rssMb: number; firstS?: number } {
  // stdout ignored, stderr captured (execFileSync returns null when stdout is ignored)
  const r = spawnSync('/usr/bin/time', ['-o', path.join(work, 'time.txt'), '-f', '%e %M', cmd, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr = r.stderr?.toString() ?? '';
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}): ${stderr.slice(0, 400)}`);
  const [wall, kb] = fs.readFileSync(path.join(work, 'time.txt'), 'utf8').trim().split(/\s+/).map(Number);
  // latentkit prints "first image after X s from start"; bench/reconstruct_torch.py "first_image_s X"
  const first = /first (?:image|batch of \d+) after ([\d.]+) s|first_image_s ([\d.]+)/.exec(stderr);
  return { wall: wall!, rssMb: kb! / 1024, ...(first ? { firstS: Number(first[1] ?? first[2]) } : {}) };
}

async function main() {
  const args = process.argv.slice(2);
  const get = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
  const threadsList = get('--threads', '1,2').split(',').map(Number);
  const K = Number(get('--images', '6'));
  const reps = Number(get('--reps', '2'));
  const formats = get('--format', 'safetensors,ckpt').split(',');
  for (const f of formats) if (f !== 'safetensors' && f !== 'ckpt') throw new Error(`--format: unknown format '${f}' (safetensors or ckpt)`);
  if (!(K >= 2)) throw new Error(`--images must be at least 2 (the per-image cost is (T_K − T_1)/(K − 1)), got ${K}`);
  fs.mkdirSync(path.join(work, 'images'), { recursive: true });
  const cfg = parseVQConfig(IMAGENET);
  const stFile = path.join(work, 'imagenet-f16-16384-hash.safetensors');
  if (formats.includes('safetensors') && !fs.existsSync(stFile)) {
    writeSafetensorsFile(stFile, hashStateDict(vqShapes(cfg)), { config: JSON.stringify(cfg), format: 'latentkit-vqgan' });
  }
  const ckptFile = path.join(work, 'imagenet-f16-16384-hash.ckpt');
  const yamlFile = path.join(work, 'imagenet-f16-16384.yaml');
  if (formats.includes('ckpt') && !fs.existsSync(ckptFile)) {
    const sd = new Map<string, TorchValue>(hashStateDict(vqShapes(cfg)));
    writeTorchCheckpoint(ckptFile, new Map<string, TorchValue>([['epoch', 0], ['global_step', 0], ['state_dict', sd]]));
    // taming's YAML (JSON is YAML)
    fs.writeFileSync(yamlFile, JSON.stringify({ model: { base_learning_rate: 4.5e-6, target: 'taming.models.vqgan.VQModel', params: IMAGENET } }, null, 2) + '\n');
  }
  for (const n of [1, K]) {
    const dir = path.join(work, `images-${n}`);
    if (fs.existsSync(dir)) continue;
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < n; i++) {
      const x = HostTensor.float32([3, 256, 256]);
      for (let j = 0; j < x.size; j++) x.data[j] = Math.sin(j * 0.013 + i) * 0.8;
      await saveImage(path.join(dir, `img${i}.png`), x);
    }
  }
  const hasTorch = fs.existsSync('/usr/bin/python3') && (() => {
    try {
      execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  const rows: Record<string, unknown>[] = [];
  console.log(`taming ImageNet f16/16384 (76.1 M params), 256×256, whole process; per-image = (T_${K} − T_1)/${K - 1}; min of ${reps} runs`);
  console.log(`format | threads | latentkit start-up | first image | per image | peak RSS || PyTorch start-up | first image | per image | peak RSS || per-image ratio (torch/lk) | 1-image process | ${K}-image process | RSS (lk/torch)`);
  for (const [format, t] of formats.flatMap((f) => threadsList.map((n) => [f, n] as const))) {
    const lkModel = format === 'ckpt' ? ['-m', ckptFile, '-c', yamlFile] : ['-m', stFile];
    const pyModel = format === 'ckpt' ? ['--ckpt', ckptFile] : ['--weights', stFile];
    const lk = (n: number) =>
      Array.from({ length: reps }, () =>
        run(process.execPath, [path.join(root, 'bin/latentkit.js'), 'reconstruct', ...lkModel, '-i', path.join(work, `images-${n}`), '-o', path.join(work, 'out'), '-b', '1', '-t', String(t)], {}),
      ).sort((a, b) => a.wall - b.wall)[0]!;
    const py = (n: number) =>
      Array.from({ length: reps }, () =>
        run('/usr/bin/python3', [path.join(here, 'reconstruct_torch.py'), '--threads', String(t), '--images', String(n), ...pyModel], { OMP_NUM_THREADS: String(t) }),
      ).sort((a, b) => a.wall - b.wall)[0]!;
    const l1 = lk(1);
    const lK = lk(K);
    const lPer = (lK.wall - l1.wall) / (K - 1);
    const row: Record<string, unknown> = { format, threads: t, images: K, lk_1: l1, lk_K: lK, lk_per_image: lPer, lk_startup: l1.wall - lPer };
    const f = (r: { firstS?: number }) => (r.firstS !== undefined ? `${r.firstS.toFixed(2)} s` : '?');
    let line = `${format} | ${t} | ${(l1.wall - lPer).toFixed(2)} s | ${f(l1)} | ${lPer.toFixed(3)} s | ${lK.rssMb.toFixed(0)} MB`;
    if (hasTorch) {
      const p1 = py(1);
      const pK = py(K);
      const pPer = (pK.wall - p1.wall) / (K - 1);
      Object.assign(row, { torch_1: p1, torch_K: pK, torch_per_image: pPer, torch_startup: p1.wall - pPer });
      line += ` || ${(p1.wall - pPer).toFixed(2)} s | ${f(p1)} | ${pPer.toFixed(3)} s | ${pK.rssMb.toFixed(0)} MB || ${(pPer / lPer).toFixed(2)}× | ${(p1.wall / l1.wall).toFixed(2)}× | ${(pK.wall / lK.wall).toFixed(2)}× | ${(lK.rssMb / pK.rssMb).toFixed(2)}×`;
    } else line += ' || (no /usr/bin/python3 with torch)';
    console.log(line);
    rows.push(row);
  }
  fs.mkdirSync(path.join(here, 'results'), { recursive: true });
  fs.writeFileSync(path.join(here, 'results', `reconstruct-${new Date().toISOString().slice(0, 10)}.json`), JSON.stringify(rows, null, 2) + '\n');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
