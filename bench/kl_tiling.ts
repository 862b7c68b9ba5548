// Seamless tiling and bounded memory for SD's KL autoencoder (issue 18), SD's kl-f8
// architecture (ch 128, ch_mult [1, 2, 4, 4], 2 res blocks, z 4, 32 groups; 83.7 M
// parameters) with hash weights, saved as an ldm .safetensors in .bench/.
//
//   node --import tsx bench/kl_tiling.ts            512² part: PyTorch untiled vs latentkit --tile 32 vs diffusers-style tiles
//        [--torch]  run bench/kl_tiling_torch.py again;  [--reuse]  latentkit's decodes from the last run (no CLI run)
//   node --import tsx bench/kl_tiling.ts --big      2048² part: `latentkit decode` of a 256×256×4 latent under /usr/bin/time -v
//
// 512² part: bench/kl_tiling_torch.py encodes a smooth gradient image (posterior mode) with the
// model and decodes its 64×64×4 latent whole (the reference) and as diffusers'
// AutoencoderKL.tiled_decode does (tiles of 32 latents, stride 24, own GroupNorm statistics,
// linear blends over 64 px). latentkit decodes the same latents untiled, with --tile 32 through
// the CLI (PNG), and through the API tiled with float32 and with float16 storage between stages.
// PSNR = 10·log10(peak² / MSE) on the float outputs, peak = the reference's max − min over all
// channels (random weights: the output is not confined to [−1, 1]); the CLI's PNG against
// the reference quantised the same way. Writes bench/results/kl_tiling.png: the three decodes
// and the amplified differences to the reference, each downscaled to 256².
//
// --big: the 64² latent bilinearly enlarged to 256² (smooth) → `latentkit decode` with its
// automatic tiling (no --tile), /usr/bin/time -v for wall time and peak RSS.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AutoencoderKL } from '../src/models/autoencoder_kl/load.ts';
import { klShapes } from '../src/models/autoencoder_kl/autoencoder.ts';
import type { KLConfig } from '../src/models/autoencoder_kl/config.ts';
import { hashStateDict } from '../src/nn/hashinit.ts';
import { readSafetensorsFile, writeSafetensorsFile } from '../src/io/formats/safetensors.ts';
import { imageGrid, loadImage, saveImage } from '../src/io/image.ts';
import { HostTensor } from '../src/tensor.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const work = path.join(root, '.bench');
const MODEL = path.join(work, 'kl_f8.safetensors');
const TORCH = path.join(work, 'kl_tiling_torch.safetensors');
const LATENTS = path.join(work, 'kl_tiling_latents.safetensors');
const BIG = path.join(work, 'kl_tiling_latents_256.safetensors');
const PNG = path.join(root, 'bench', 'results', 'kl_tiling.png');

const KL_F8: KLConfig = {
  embed_dim: 4,
  ddconfig: { double_z: true, z_channels: 4, resolution: 256, in_channels: 3, out_ch: 3, ch: 128, ch_mult: [1, 2, 4, 4], num_res_blocks: 2, attn_resolutions: [], dropout: 0 },
  use_quant_conv: true,
  use_post_quant_conv: true,
  scaling_factor: 0.18215,
};

function ensureModel(): void {
  if (fs.existsSync(MODEL)) return;
  fs.mkdirSync(work, { recursive: true });
  const m = new AutoencoderKL(KL_F8, hashStateDict(klShapes(KL_F8)), { scaling: { scale: 0.18215, shift: 0, source: 'bench' } });
  m.save(MODEL, { format: 'ldm' });
  console.log(`wrote ${path.relative(root, MODEL)} (${(fs.statSync(MODEL).size / 1e6).toFixed(0)} MB)`);
}

function time(cmd: string, args: string[]): { wall: number; rssMb: number; stderr: string } {
  const tf = path.join(work, `time-${process.pid}.txt`);
  const r = spawnSync('/usr/bin/time', ['-v', '-o', tf, cmd, ...args], { stdio: ['ignore', 'inherit', 'pipe'], maxBuffer: 1 << 26 });
  const stderr = r.stderr?.toString() ?? '';
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${stderr.slice(-600)}`);
  const t = fs.readFileSync(tf, 'utf8');
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)/.exec(t)![1]!.split(':').reduce((s, v) => s * 60 + Number(v), 0);
  const rssMb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(t)![1]) / 1024;
  fs.rmSync(tf);
  return { wall, rssMb, stderr };
}

function psnr(a: Float32Array, ref: Float32Array, peak: number): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - ref[i]!) ** 2;
  return 10 * Math.log10((peak * peak) / (se / a.length));
}

const range = (d: Float32Array): [number, number] => d.reduce(([lo, hi], v) => [Math.min(lo, v), Math.max(hi, v)], [Infinity, -Infinity]);

/** [1, C, H, W] → [C, H/k, W/k] by k×k box averages. */
function shrink(t: HostTensor, k: number): HostTensor<'float32'> {
  const [, c, H, W] = t.shape as [number, number, number, number];
  const [h, w] = [H / k, W / k];
  const out = HostTensor.float32([c, h, w]);
  const d = t.data as Float32Array;
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) s += d[(ch * H + y * k + i) * W + x * k + j]!;
        out.data[(ch * h + y) * w + x] = s / (k * k);
      }
    }
  }
  return out;
}

/** Per channel, the reference's 2nd and 98th percentiles (the display range: random weights put a few extreme values at the borders). */
function displayRange(ref: HostTensor<'float32'>): [number, number][] {
  const [, c, H, W] = ref.shape as [number, number, number, number];
  return Array.from({ length: c }, (_, ch) => {
    const v = ref.data.slice(ch * H * W, (ch + 1) * H * W).sort();
    return [v[Math.floor(v.length * 0.02)]!, v[Math.floor(v.length * 0.98)]!];
  });
}

/** [C, H, W] with channel ch mapped affinely so its display range → [−1, 1] (the PNG range). */
function show(t: HostTensor<'float32'>, r: [number, number][]): HostTensor<'float32'> {
  const [c, h, w] = t.shape as [number, number, number];
  return HostTensor.float32(t.shape, t.data.map((v, i) => {
    const [lo, hi] = r[Math.floor(i / (h * w)) % c]!;
    return ((v - lo) / (hi - lo)) * 2 - 1;
  }));
}

/** |a − ref| · gain / peak per pixel (max over channels), grey, as [3, H, W] in [−1, 1]. */
function diffMap(a: Float32Array, ref: Float32Array, c: number, H: number, W: number, gain: number, peak: number): HostTensor<'float32'> {
  const out = HostTensor.float32([1, 3, H, W]);
  for (let i = 0; i < H * W; i++) {
    let m = 0;
    for (let ch = 0; ch < c; ch++) m = Math.max(m, Math.abs(a[ch * H * W + i]! - ref[ch * H * W + i]!));
    const v = Math.min(1, (m * gain) / peak) * 2 - 1;
    for (let ch = 0; ch < 3; ch++) out.data[ch * H * W + i] = v;
  }
  return out;
}

async function small(): Promise<void> {
  ensureModel();
  if (!fs.existsSync(TORCH) || process.argv.includes('--torch')) {
    const r = spawnSync('/usr/bin/python3', [path.join(here, 'kl_tiling_torch.py'), '--model', MODEL, '--out', TORCH], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('bench/kl_tiling_torch.py failed');
  }
  const ref = readSafetensorsFile(TORCH);
  const get = (k: string) => ref.tensors.get(k) as HostTensor<'float32'>;
  const [untiled, dif, latents] = [get('untiled'), get('diffusers'), get('latents')];
  writeSafetensorsFile(LATENTS, { latents });
  const [lo, hi] = range(untiled.data);
  const peak = hi - lo;
  console.log(`reference: PyTorch untiled decode of the gradient's ${latents.shape.slice(2).join('×')}×${latents.shape[1]} latent, output range [${lo.toFixed(3)}, ${hi.toFixed(3)}] (PSNR peak ${peak.toFixed(3)})`);

  // latentkit's decodes, each kept in .bench/ so the table and picture can be redone (--reuse) without decoding again
  const cases = [
    ['latentkit untiled', {}],
    ['latentkit tile 32, float32 storage', { tile: 32 }],
    ['latentkit tile 32, float16 storage', { tile: 32, storage: 'float16' as const }],
    ['latentkit tile 32, float16 storage, recompute (the 2048² path)', { tile: 32, storage: 'float16' as const, recompute: true }],
  ] as const;
  const rows: [string, HostTensor<'float32'>, number][] = [];
  const m = AutoencoderKL.load(MODEL);
  for (const [i, [name, opts]] of cases.entries()) {
    const file = path.join(work, `kl_tiling_latentkit_${i}.safetensors`);
    if (process.argv.includes('--reuse') && fs.existsSync(file)) {
      const st = readSafetensorsFile(file);
      rows.push([name, st.tensors.get('y') as HostTensor<'float32'>, Number(st.metadata.seconds)]);
      continue;
    }
    const t0 = performance.now();
    const y = await m.decode(latents, opts);
    rows.push([name, y, (performance.now() - t0) / 1000]);
    writeSafetensorsFile(file, { y }, { seconds: String(rows.at(-1)![2]) });
  }
  await m.release();
  const H = untiled.shape[2]!;
  const W = untiled.shape[3]!;
  const c = untiled.shape[1]!;
  console.log(`diffusers-style tiles (PyTorch): ${ref.metadata.diffusers_tiles ?? '?'} tiles, stride ${ref.metadata.diffusers_stride ?? '?'} latents, blend ${ref.metadata.diffusers_blend ?? '?'} px`);
  // PSNR two ways: on the raw float outputs (peak = the reference's range), and as the pipelines show them (clamped to [−1, 1], peak 2)
  const clamp = (d: Float32Array) => d.map((v) => Math.min(1, Math.max(-1, v)));
  const refC = clamp(untiled.data);
  const both = (d: Float32Array) => `${psnr(d, untiled.data, peak).toFixed(1)} dB | ${psnr(clamp(d), refC, 2).toFixed(1)} dB`;
  const table: string[] = ['| decode of the 512² gradient\'s latent | PSNR vs PyTorch untiled (raw, peak = range) | PSNR, clamped to [−1, 1] | time |', '|---|--:|--:|--:|'];
  for (const [name, y, s] of rows) table.push(`| ${name} | ${both(y.data)} | ${s.toFixed(1)} s |`);
  table.push(`| diffusers-style tiles (PyTorch re-implementation) | ${both(dif.data)} | |`);

  // the CLI with --tile 32: its PNG against the reference quantised to 8 bits the same way ([-1, 1] clamped)
  if (!process.argv.includes('--reuse')) {
  const cliPng = path.join(work, 'kl_tiling_cli.png');
  const cli = time(process.execPath, [path.join(root, 'bin', 'latentkit.js'), 'decode', '-m', MODEL, '-i', LATENTS, '-o', cliPng, '--tile', '32']);
  const png = await loadImage(cliPng);
  const q = (d: Float32Array) => d.map((v) => Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5) / 127.5 - 1);
  const inRange = untiled.data.filter((v) => v >= -1 && v <= 1).length / untiled.data.length;
  table.push(`| \`latentkit decode --tile 32\` (8-bit PNG vs the reference clamped to [−1, 1] and quantised; ${(inRange * 100).toFixed(0)} % of values inside) | | ${psnr(png.data as Float32Array, q(untiled.data), 2).toFixed(1)} dB | ${cli.wall.toFixed(1)} s wall, ${cli.rssMb.toFixed(0)} MB peak RSS |`);
  console.log(cli.stderr.trim().split('\n').slice(-2).join('\n'));
  }
  console.log(table.join('\n'));

  // picture: decodes on top, amplified differences below (×10 of the peak, white = ≥ 1/10 of the peak)
  const k = H / 256;
  const gain = 10;
  const lk = rows[1]![1];
  const dr = displayRange(untiled);
  const tiles = [
    show(shrink(untiled, k), dr), show(shrink(lk, k), dr), show(shrink(dif, k), dr),
    shrink(get('image'), k), shrink(diffMap(lk.data, untiled.data, c, H, W, gain, peak), k), shrink(diffMap(dif.data, untiled.data, c, H, W, gain, peak), k),
  ];
  fs.mkdirSync(path.dirname(PNG), { recursive: true });
  await saveImage(PNG, imageGrid(tiles, { cols: 3, pad: 4 }));
  console.log(`wrote ${path.relative(root, PNG)}: top: PyTorch untiled | latentkit --tile 32 | diffusers-style tiles (each channel's 2nd–98th percentile of the reference stretched to black–white); bottom: the input gradient | |latentkit − untiled|·${gain}/peak | |diffusers − untiled|·${gain}/peak`);
}

/** Bilinear (align-corners) enlargement of [1, C, h, w] by an integer factor. */
function enlarge(t: HostTensor<'float32'>, f: number): HostTensor<'float32'> {
  const [b, c, h, w] = t.shape as [number, number, number, number];
  const [H, W] = [h * f, w * f];
  const out = HostTensor.float32([b, c, H, W]);
  for (let ch = 0; ch < b * c; ch++) {
    for (let y = 0; y < H; y++) {
      const sy = (y * (h - 1)) / (H - 1);
      const y0 = Math.floor(sy);
      const y1 = Math.min(h - 1, y0 + 1);
      for (let x = 0; x < W; x++) {
        const sx = (x * (w - 1)) / (W - 1);
        const x0 = Math.floor(sx);
        const x1 = Math.min(w - 1, x0 + 1);
        const at = (yy: number, xx: number) => t.data[(ch * h + yy) * w + xx]!;
        const top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * (sx - x0);
        const bot = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * (sx - x0);
        out.data[(ch * H + y) * W + x] = top + (bot - top) * (sy - y0);
      }
    }
  }
  return out;
}

async function big(): Promise<void> {
  ensureModel();
  if (!fs.existsSync(TORCH)) throw new Error('run the 512² part first (it makes the latents)');
  const lat = readSafetensorsFile(TORCH).tensors.get('latents') as HostTensor<'float32'>;
  writeSafetensorsFile(BIG, { latents: enlarge(lat, 4) });
  const out = path.join(work, 'kl_tiling_2048.png');
  const r = time(process.execPath, [path.join(root, 'bin', 'latentkit.js'), 'decode', '-m', MODEL, '-i', BIG, '-o', out]);
  console.log(r.stderr.trim());
  console.log(`2048² decode (256×256×4 latent): ${r.wall.toFixed(0)} s wall, peak RSS ${r.rssMb.toFixed(0)} MB (/usr/bin/time -v)`);
}

await (process.argv.includes('--big') ? big() : small());
