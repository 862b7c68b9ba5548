// The VQGAN commands' branch for Stable Diffusion-style latent autoencoders: KL VAEs (SD
// 1.x/2.x, SDXL, SD3, FLUX — ldm .ckpt/.safetensors, diffusers vae/ folders) and TAESD
// previews. `encode` writes latents.safetensors (tensor `latents` [B, C, h, w], scaled as
// the diffusion pipelines use them); `decode` reads them with a KL model or a TAESD;
// `reconstruct`, `info`, `convert` (diffusers folder / SD single file) and `export-onnx`
// (SD's ONNX names) as for the VQGAN. Large images tile automatically (whole-image GroupNorm
// statistics, so tiles leave no seams).
import fs from 'node:fs';
import path from 'node:path';
import { AutoencoderKL, type KLLoadOptions } from '../models/autoencoder_kl/load.ts';
import { TAESD } from '../models/taesd/load.ts';
import { FAMILY_SCALING, type KLFamily } from '../models/autoencoder_kl/config.ts';
import type { LatentModelKind } from '../models/load_model.ts';
import { loadImage, saveImage } from '../io/image.ts';
import { readSafetensorsFile, writeSafetensorsFile } from '../io/formats/safetensors.ts';
import { writeTorchCheckpoint } from '../io/formats/torch_write.ts';
import { psnr } from '../eval/metrics.ts';
import { klOnnx, taesdOnnx } from '../models/export_onnx.ts';
import { writeOnnxExport } from './gpt.ts';
import { HostTensor } from '../tensor.ts';
import { MAX_IMAGE_SIDE } from '../io/limits.ts';
import { CliError, parseIntOpt, progressBar, resolveInputs } from './util.ts';
import { configsBeside } from '../io/model_path.ts';
import { checkImageHeader, parseSideOpt } from './limits.ts';

/** Latents above this many positions (h·w) decode in tiles unless --tile says otherwise: 96² latents = 768² pixels at f=8. */
export const AUTO_TILE_POSITIONS = 96 * 96;
/** The tile size chosen automatically (latent pixels). */
export const AUTO_TILE = 64;

export interface KLCliOptions {
  model: string;
  config?: string;
  threads?: string;
  scale?: string;
  shift?: string;
  noScale?: boolean;
  family?: string;
  tile?: string;
}

function number(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new CliError(`${name} must be a number, got '${v}'`);
  return n;
}

export function loadLatentModel(kind: LatentModelKind, o: KLCliOptions, quiet = false): AutoencoderKL | TAESD {
  const session = { threads: o.threads ? parseIntOpt(o.threads, '--threads') : undefined };
  let m: AutoencoderKL | TAESD;
  if (kind === 'taesd') {
    if (o.scale !== undefined || o.shift !== undefined || o.family !== undefined) throw new CliError('--scale / --shift / --family are for KL models; a TAESD works on the scaled latents directly');
    m = TAESD.load(o.model, { session });
  } else {
    if (o.family !== undefined && !(o.family in FAMILY_SCALING)) throw new CliError(`--family must be one of ${Object.keys(FAMILY_SCALING).join(', ')}, got '${o.family}'`);
    const file = klWeightsPath(o.model);
    const opts: KLLoadOptions = { config: o.config ?? klConfigBeside(file), session, scale: number(o.scale, '--scale'), shift: number(o.shift, '--shift'), noScale: o.noScale, family: o.family as KLFamily | undefined };
    m = AutoencoderKL.load(file, opts);
  }
  if (!quiet) for (const n of m.notes) console.error(`note: ${n}`);
  return m;
}

/** What AutoencoderKL.load takes for `p`: a latentkit model/run directory (model.safetensors + config.yaml, no config.json) by its weights file; anything else as given. */
export function klWeightsPath(p: string): string {
  const dir = fs.existsSync(p) && fs.statSync(p).isDirectory() && !fs.existsSync(path.join(p, 'config.json')) && fs.existsSync(path.join(p, 'model.safetensors'));
  return dir ? path.join(p, 'model.safetensors') : p;
}

/** A latent-diffusion YAML beside a checkpoint file (sd.ckpt + sd.yaml, as SD's releases ship), if one names an AutoencoderKL. */
export function klConfigBeside(model: string): string | undefined {
  if (!fs.existsSync(model) || fs.statSync(model).isDirectory()) return undefined;
  return configsBeside(model).find((f) => /AutoencoderKL|first_stage_config/.test(fs.readFileSync(f, 'utf8')));
}

/** A non-negative integer option (seeds). */
function seedOpt(v: string | undefined): number {
  if (v === undefined) return 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new CliError(`--seed must be a non-negative integer, got '${v}'`);
  return n;
}

/** --tile N, or automatic above AUTO_TILE_POSITIONS latent positions (said in a note). */
function tileFor(o: KLCliOptions, h: number, w: number): number | undefined {
  if (o.tile !== undefined) {
    const t = parseIntOpt(o.tile, '--tile');
    return t > 0 ? t : undefined; // --tile 0: never tile
  }
  if (h * w <= AUTO_TILE_POSITIONS) return undefined;
  console.error(`note: ${w}×${h} latents: decoding in ${AUTO_TILE}×${AUTO_TILE} tiles with whole-image GroupNorm statistics (same result as untiled; --tile N to choose, --tile 0 for one piece)`);
  return AUTO_TILE;
}

async function loadInput(file: string, size: number | undefined, f: number): Promise<HostTensor<'float32'>> {
  checkImageHeader(file);
  const img = await loadImage(file, { size });
  const [c, h, w] = img.shape as [number, number, number];
  if (h % f || w % f) throw new CliError(`${file} is ${w}×${h}, not a multiple of the model's downsampling factor ${f}; pass --size N (a multiple of ${f}) to resize and center-crop to N×N`);
  return img.reshape([1, c, h, w]);
}

function outFor(output: string, rel: string, ext: string, many: boolean): string {
  if (!many) return output;
  return path.join(output, rel.replace(/\.[^.]+$/, ext));
}

const secs = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(2)} s`;
const peak = () => `peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`;

export async function klEncode(kind: LatentModelKind, o: KLCliOptions & { input: string; output: string; size?: string; sample?: boolean; seed?: string }): Promise<void> {
  const t0 = performance.now();
  const inputs = await resolveInputs(o.input);
  const many = inputs.length > 1 || fs.statSync(o.input).isDirectory();
  const size = o.size ? parseSideOpt(o.size) : undefined;
  const seed = seedOpt(o.seed);
  const m = loadLatentModel(kind, o);
  const bar = progressBar(inputs.length, 'encode');
  for (const it of inputs) {
    const x = await loadInput(it.file, size, m.factor);
    let latents: HostTensor<'float32'>;
    const meta: Record<string, string> = { format: 'latentkit-latents', model: path.basename(o.model), image: it.rel, image_size: JSON.stringify([x.shape[2], x.shape[3]]) };
    if (m instanceof TAESD) {
      if (o.sample) throw new CliError('--sample draws from a KL posterior; a TAESD encoder is deterministic');
      latents = await m.encode(x);
      meta.scaling = 'taesd (the scaled latents of its VAE family)';
    } else {
      const tile = tileFor(o, x.shape[2]! / m.factor, x.shape[3]! / m.factor);
      latents = (await m.encode(x, { sample: o.sample, seed, ...(tile ? { tile } : {}) })).latents;
      Object.assign(meta, { scale: String(m.scaling.scale), shift: String(m.scaling.shift), posterior: o.sample ? `sample (seed ${seed})` : 'mode' });
    }
    const out = outFor(o.output, it.rel, '.safetensors', many);
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    writeSafetensorsFile(out, new Map([['latents', latents]]), meta);
    bar.tick();
  }
  bar.stop();
  await m.release();
  console.error(`wrote ${many ? `${inputs.length} latent files to ${o.output}` : o.output} (latents [${'B, C, h, w'}] scaled; ${secs(t0)}, ${peak()})`);
}

/** A latents file → [B, C, h, w] float32, with one-line errors naming the file. */
export function readLatents(file: string): HostTensor<'float32'> {
  if (!fs.existsSync(file)) throw new CliError(`input not found: ${file}`);
  let tensors: Map<string, HostTensor>;
  try {
    tensors = readSafetensorsFile(file).tensors;
  } catch (e) {
    throw new CliError(`${file}: cannot read latents: ${(e as Error).message}`);
  }
  const t = tensors.get('latents') ?? (tensors.size === 1 ? [...tensors.values()][0] : undefined);
  if (!t) throw new CliError(`${file}: no 'latents' tensor (has ${[...tensors.keys()].slice(0, 5).join(', ')})`);
  if (t.dtype !== 'float32') throw new CliError(`${file}: latents must be floating point, got ${t.dtype}`);
  if (t.shape.length === 3) return t.reshape([1, ...t.shape]) as HostTensor<'float32'>;
  if (t.shape.length !== 4) throw new CliError(`${file}: latents must be [B, C, h, w] (or [C, h, w]), got [${t.shape.join(', ')}]`);
  return t as HostTensor<'float32'>;
}

function sliceBatch(x: HostTensor<'float32'>, i: number): HostTensor<'float32'> {
  const [, c, h, w] = x.shape as [number, number, number, number];
  const n = c * h * w;
  return HostTensor.float32([1, c, h, w], x.data.slice(i * n, (i + 1) * n));
}

export async function klDecode(kind: LatentModelKind, o: KLCliOptions & { input: string; output: string }): Promise<void> {
  const t0 = performance.now();
  const z = readLatents(o.input);
  const m = loadLatentModel(kind, o);
  const [b, c, h, w] = z.shape as [number, number, number, number];
  if (c !== m.latentChannels) throw new CliError(`${o.input}: latents have ${c} channels, but ${o.model} ${m instanceof TAESD ? 'decodes' : 'has a latent space of'} ${m.latentChannels} (latents [${z.shape.join(', ')}])`);
  if (h * m.factor > MAX_IMAGE_SIDE || w * m.factor > MAX_IMAGE_SIDE) throw new CliError(`${o.input}: ${w}×${h} latents decode to ${w * m.factor}×${h * m.factor} pixels, over the limit of ${MAX_IMAGE_SIDE} pixels a side`);
  const tile = m instanceof TAESD ? undefined : tileFor(o, h, w);
  const outs: string[] = [];
  for (let i = 0; i < b; i++) {
    const img = m instanceof TAESD ? await m.decode(sliceBatch(z, i)) : await m.decode(sliceBatch(z, i), tile ? { tile } : {});
    const out = b === 1 ? o.output : o.output.replace(/(\.[^./]+)?$/, (ext) => `-${String(i).padStart(3, '0')}${ext || '.png'}`);
    await saveImage(out, img);
    outs.push(out);
  }
  await m.release();
  console.error(`wrote ${outs.length === 1 ? outs[0] : `${outs.length} images (${outs[0]} …)`} (${w * m.factor}×${h * m.factor}${tile ? `, tiles of ${tile} latents` : ''}; ${secs(t0)}, ${peak()})`);
}

export async function klReconstruct(kind: LatentModelKind, o: KLCliOptions & { input: string; output: string; size?: string; sample?: boolean; seed?: string }): Promise<void> {
  const t0 = performance.now();
  const inputs = await resolveInputs(o.input);
  const many = inputs.length > 1 || fs.statSync(o.input).isDirectory();
  const size = o.size ? parseSideOpt(o.size) : undefined;
  const m = loadLatentModel(kind, o);
  if (m instanceof TAESD && !(m.parts.encoder && m.parts.decoder)) throw new CliError(`reconstruct needs both halves of the TAESD (${m.files.join(', ')})`);
  const bar = progressBar(inputs.length, 'reconstruct');
  const scores: number[] = [];
  for (const it of inputs) {
    const x = await loadInput(it.file, size, m.factor);
    let image: HostTensor<'float32'>;
    if (m instanceof TAESD) image = await m.decode(await m.encode(x));
    else {
      const tile = tileFor(o, x.shape[2]! / m.factor, x.shape[3]! / m.factor);
      image = (await m.reconstruct(x, { sample: o.sample, seed: seedOpt(o.seed), ...(tile ? { tile } : {}) })).image;
    }
    scores.push(psnr(x, image)[0]!);
    await saveImage(outFor(o.output, it.rel, '.png', many), image);
    bar.tick();
  }
  bar.stop();
  await m.release();
  const mean = scores.reduce((a, v) => a + v, 0) / scores.length;
  console.error(`wrote ${many ? `${inputs.length} images to ${o.output}` : o.output} (PSNR ${mean.toFixed(2)} dB${many ? ' mean' : ''}; ${secs(t0)}, ${peak()})`);
}

/** info lines and JSON for a KL model or a TAESD. */
export function describeLatentModel(kind: LatentModelKind, o: KLCliOptions): { info: Record<string, unknown>; lines: string[] } {
  const m = loadLatentModel(kind, o, true);
  const M = (n: number) => `${(n / 1e6).toFixed(2)} M`;
  const lines = [o.model];
  let info: Record<string, unknown>;
  if (m instanceof TAESD) {
    const parts = (['encoder', 'decoder'] as const).filter((p) => m.parts[p]);
    lines.push(`  TAESD preview autoencoder (${parts.join(' + ')}), ${M(m.paramCount)} parameters, f=${m.factor}, ${m.latentChannels} latent channels; images [0, 1] inside, [−1, 1] at the API`);
    info = { file: o.model, kind: 'taesd', parts, parameters: m.paramCount, downsampling_factor: m.factor, latent_channels: m.latentChannels, layout: m.layout, files: m.files };
    lines.push(`  files: ${m.files.join(', ')}`);
  } else {
    const dd = m.config.ddconfig;
    const s = m.scaling;
    lines.push(`  AutoencoderKL, ${M(m.paramCount)} parameters, f=${m.factor}, ${m.latentChannels} latent channels${m.config.use_quant_conv ? '' : ', no quant convs (SD3/FLUX layout)'}`);
    lines.push(`  latent scaling: z' = (z − ${s.shift}) · ${s.scale} (${s.source})`);
    lines.push(`  ddconfig: ch=${dd.ch} ch_mult=[${dd.ch_mult}] num_res_blocks=${dd.num_res_blocks} z_channels=${dd.z_channels} norm groups=${dd.norm_num_groups ?? 32}`);
    lines.push(`  a ${512}×${512} image ↔ ${512 / m.factor}×${512 / m.factor}×${m.latentChannels} latents; above ${Math.sqrt(AUTO_TILE_POSITIONS)}² latents decode tiles automatically`);
    lines.push(`  file: ${m.source}`);
    info = { file: o.model, kind: 'kl', parameters: m.paramCount, downsampling_factor: m.factor, latent_channels: m.latentChannels, scaling: s, config: m.config, files: [m.source] };
  }
  for (const n of m.notes) lines.push(`  note: ${n}`);
  info.notes = m.notes;
  void m.release();
  return { info, lines };
}

/**
 * convert: a KL model → a diffusers vae/ folder (output without an extension, or ending in
 * '/'), an SD single-file VAE (.safetensors, ldm names, config in the metadata) or a torch
 * .ckpt ({state_dict}, ldm names); --float16 stores F16 weights (safetensors outputs).
 */
export async function klConvert(kind: LatentModelKind, o: KLCliOptions & { output: string; float16?: boolean }): Promise<void> {
  if (kind === 'taesd') throw new CliError('convert: TAESD models are used as they are (their .pth/.safetensors or a diffusers AutoencoderTiny folder); nothing to convert');
  const m = loadLatentModel(kind, o) as AutoencoderKL;
  const ext = path.extname(o.output).toLowerCase();
  if (ext === '' || o.output.endsWith('/')) {
    const files = m.save(o.output, { format: 'diffusers', float16: o.float16 });
    console.error(`wrote ${files.join(', ')} (diffusers AutoencoderKL${o.float16 ? ', float16' : ''}, ${m.weights.size} tensors)`);
  } else if (ext === '.safetensors') {
    m.save(o.output, { format: 'ldm', float16: o.float16 });
    console.error(`wrote ${o.output} (SD single-file VAE, latent-diffusion names${o.float16 ? ', float16' : ''}, ${m.weights.size} tensors)`);
  } else if (ext === '.ckpt' || ext === '.pt' || ext === '.pth') {
    if (o.float16) throw new CliError('--float16 is for .safetensors and diffusers outputs');
    writeTorchCheckpoint(o.output, new Map([['state_dict', new Map(m.weights)]]));
    console.error(`wrote ${o.output} (torch.save {state_dict}: latent-diffusion names, loads into ldm's AutoencoderKL with strict=True)`);
  } else throw new CliError(`convert: output '${o.output}' — give a folder (diffusers), .safetensors (SD single file) or .ckpt`);
  await m.release();
}

/** export-onnx: SD's ONNX names (models/export_onnx.ts klOnnx); batch, height and width free unless --size; --float16 weights. */
export async function klExportOnnx(kind: LatentModelKind, o: KLCliOptions & { output: string; size?: string; batch: string; float16?: boolean }): Promise<void> {
  const batch = parseIntOpt(o.batch, '--batch');
  if (kind === 'taesd') {
    if (o.size || batch !== 1 || o.float16) throw new CliError('export-onnx: a TAESD exports with batch, height and width free; --size, --batch and --float16 are for KL models');
    return taesdExportOnnx(o);
  }
  if (!o.size && batch !== 1) throw new CliError('--batch fixes the batch of a fixed-size export: give --size too (without --size, batch, height and width are all free)');
  const m = loadLatentModel(kind, o) as AutoencoderKL;
  const size = o.size ? parseSideOpt(o.size) : undefined;
  if (size !== undefined && size % m.factor) throw new CliError(`--size ${size} is not a multiple of the downsampling factor ${m.factor}`);
  const e = klOnnx(m, { size, batch, float16: o.float16 });
  const s = m.scaling;
  writeOnnxExport(e, o.output, `(latents unscaled: the diffusion model's are (z − ${s.shift}) · ${s.scale})`);
  await m.release();
}

/** export-onnx for a TAESD: taesd_encoder.onnx / taesd_decoder.onnx (the parts it has), free sizes, images in [−1, 1]. */
async function taesdExportOnnx(o: KLCliOptions & { output: string }): Promise<void> {
  const t = loadLatentModel('taesd', o) as TAESD;
  const parts = (['encoder', 'decoder'] as const).filter((p) => t.parts[p]);
  const files = new Map(parts.map((p) => [`taesd_${p}.onnx`, taesdOnnx(t, p)]));
  const io = { encoder: { inputs: { sample: ['float32', ['batch', 3, 'height', 'width'], `RGB in [-1, 1]; height and width multiples of ${t.factor}`] }, outputs: { latents: ['float32', ['batch', t.latentChannels, `height/${t.factor}`, `width/${t.factor}`], 'scaled latents (as its VAE family scales them)'] } }, decoder: { inputs: { latents: ['float32', ['batch', t.latentChannels, 'height', 'width'], 'scaled latents'] }, outputs: { sample: ['float32', ['batch', 3, `height*${t.factor}`, `width*${t.factor}`], 'RGB in ~[-1, 1]'] } } };
  const manifest = { format: 'latentkit-taesd-onnx', dynamic_axes: true, factor: t.factor, latent_channels: t.latentChannels, files: Object.fromEntries(parts.map((p) => [p, `taesd_${p}.onnx`])), ...Object.fromEntries(parts.map((p) => [p, io[p]])) };
  writeOnnxExport({ files, manifestName: 'taesd.json', manifest }, o.output, '(images in [-1, 1]; TAESD works in [0, 1] inside)');
  await t.release();
}
