// VQGAN inference commands: info, reconstruct, encode, decode, convert, export-onnx.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { VQGAN } from '../models/vqgan/load.ts';
import { loadImage, saveImage } from '../io/image.ts';
import { writeSafetensorsFile } from '../io/formats/safetensors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { HostTensor } from '../tensor.ts';
import { countParams } from '../nn/params.ts';
import { downFactor } from '../models/vqgan/config.ts';
import { latentModelKind, loadAnyModel, type AnyModel, type LoadedModel } from '../models/load_model.ts';
import { MODEL_PATH_HELP } from '../io/model_path.ts';
import { MAX_IMAGE_SIDE } from '../io/limits.ts';
import { convertNet2Net, exportNet2Net, writeOnnxExport } from './gpt.ts';
import { vqganOnnx } from '../models/export_onnx.ts';
import { CliError, action, parseIntOpt, progressBar, resolveInputs } from './util.ts';
import { checkImageHeader, parseSideOpt } from './limits.ts';

interface ModelOpts {
  model: string;
  config?: string;
  threads?: string;
}

function modelOptions(c: Command): Command {
  return c
    .requiredOption('-m, --model <dir|file>', MODEL_PATH_HELP)
    .option('-c, --config <file>', "taming YAML (or JSON) config; default: the directory's config.yaml, the file's metadata, a config beside the file, or inferred from the keys")
    .option('-t, --threads <n>', 'CPU threads (default: all cores)');
}

/** Options of the KL / TAESD branch (src/cli/kl.ts); VQGANs and transformers refuse them. */
function klOptions(c: Command, what: { sample?: boolean; tile?: boolean } = {}): Command {
  c.option('--scale <x>', 'KL models: latent scaling factor (default: the file\'s config, else by family)')
    .option('--shift <x>', 'KL models: latent shift (SD3 0.0609, FLUX 0.1159)')
    .option('--no-scale', 'KL models: unscaled latents (scale 1, shift 0)')
    .option('--family <name>', 'KL models: sd | sdxl | sd3 | flux, for the scaling when the file does not say');
  if (what.tile) c.option('--tile <n>', 'KL models: tile size in latent pixels (default: automatic above 96×96 latents; 0 = never)');
  if (what.sample) c.option('--sample', 'KL models: draw from the posterior instead of taking its mode').option('--seed <n>', 'seed for --sample', '0');
  return c;
}

type KLFlags = { scale?: string | boolean; shift?: string; family?: string; tile?: string; sample?: boolean; seed?: string };

/** A KL model or TAESD at o.model → its kind; for other models, the KL-only flags are refused. */
function latentKind(o: ModelOpts & KLFlags): 'kl' | 'taesd' | null {
  const kind = latentModelKind(o.model);
  if (!kind) {
    const given = [typeof o.scale === 'string' ? '--scale' : '', o.scale === false ? '--no-scale' : '', o.shift !== undefined ? '--shift' : '', o.family ? '--family' : '', o.tile ? '--tile' : '', o.sample ? '--sample' : ''].filter(Boolean);
    if (given.length) throw new CliError(`${given.join(', ')}: for KL autoencoders (Stable Diffusion VAEs); ${o.model} is not one`);
  }
  return kind;
}

/** commander's --scale/--no-scale pair → kl.ts' options. */
function klOpts<T extends ModelOpts & KLFlags>(o: T): T & { scale?: string; noScale?: boolean } {
  return { ...o, scale: typeof o.scale === 'string' ? o.scale : undefined, noScale: o.scale === false };
}

function loadModel(o: ModelOpts, quiet = false): VQGAN {
  const m = VQGAN.load(o.model, { config: o.config, session: { threads: o.threads ? parseIntOpt(o.threads, '--threads') : undefined } });
  if (!quiet) for (const n of m.notes) console.error(`note: ${n}`);
  return m;
}

function stack(images: HostTensor[]): HostTensor<'float32'> {
  const [c, h, w] = images[0]!.shape as [number, number, number];
  const out = HostTensor.float32([images.length, c, h, w]);
  images.forEach((t, i) => out.data.set(t.data as Float32Array, i * c * h * w));
  return out;
}

function slice(batch: HostTensor, i: number): HostTensor<'float32'> {
  const [, c, h, w] = batch.shape as [number, number, number, number];
  const n = c * h * w;
  return HostTensor.float32([c, h, w], (batch.data as Float32Array).slice(i * n, (i + 1) * n));
}

/** Load inputs in same-size groups of ≤ batch images (each checked against the pixel limit and the factor f). */
async function* imageBatches(inputs: { file: string; rel: string }[], size: number | undefined, batch: number, f: number) {
  let cur: { items: { file: string; rel: string }[]; images: HostTensor[] } = { items: [], images: [] };
  for (const it of inputs) {
    checkImageHeader(it.file);
    const img = await loadImage(it.file, { size });
    const [, h, w] = img.shape as [number, number, number];
    if (h % f || w % f) throw new CliError(`${it.file} is ${w}×${h}, not a multiple of the model's downsampling factor ${f}; pass --size N (a multiple of ${f}) to resize and center-crop to N×N`);
    const first = cur.images[0];
    if (first && (first.shape[1] !== img.shape[1] || first.shape[2] !== img.shape[2] || cur.items.length >= batch)) {
      yield { items: cur.items, x: stack(cur.images) };
      cur = { items: [], images: [] };
    }
    cur.items.push(it);
    cur.images.push(img);
  }
  if (cur.items.length) yield { items: cur.items, x: stack(cur.images) };
}

/** RGB [B, 3, H, W] → luminance [B, 1, H, W] (Rec. 601 weights), for 1-channel models (sketches, depth). */
function toGray(x: HostTensor<'float32'>): HostTensor<'float32'> {
  const [b, , h, w] = x.shape as [number, number, number, number];
  const p = h * w;
  const out = HostTensor.float32([b, 1, h, w]);
  const d = x.data as Float32Array;
  for (let i = 0; i < b; i++) for (let j = 0; j < p; j++) out.data[i * p + j] = 0.299 * d[(i * 3) * p + j]! + 0.587 * d[(i * 3 + 1) * p + j]! + 0.114 * d[(i * 3 + 2) * p + j]!;
  return out;
}

function outputPath(output: string, rel: string, ext: string, many: boolean): string {
  if (!many && !(fs.existsSync(output) && fs.statSync(output).isDirectory())) return output;
  const base = rel.replace(/\.[^.]+$/, ext);
  return path.join(output, base);
}

type ImageJob = ModelOpts & { input: string; output: string; size?: string; batch: string };
type Item = { file: string; rel: string };

/** Load the model and the inputs, run `fn` per same-size batch with a progress bar. */
async function eachBatch(
  o: ImageJob,
  label: string,
  fn: (m: VQGAN, items: Item[], x: HostTensor<'float32'>, out: (rel: string, ext: string) => string) => Promise<void>,
): Promise<{ count: number; many: boolean; timing: string }> {
  const inputs = await resolveInputs(o.input);
  const many = inputs.length > 1 || fs.statSync(o.input).isDirectory();
  const size = o.size ? parseSideOpt(o.size) : undefined;
  const batch = parseIntOpt(o.batch, '--batch');
  const m = loadModel(o);
  if (size !== undefined && size % m.factor) throw new CliError(`--size ${size} is not a multiple of the model's downsampling factor ${m.factor} (try ${nearMultiples(size, m.factor)})`);
  const bar = progressBar(inputs.length, label);
  const gray = m.config.ddconfig.in_channels === 1;
  // time from process start (what a user waits for: module loading, checkpoint, session, first batch)
  let first: { ms: number; n: number } | null = null;
  for await (const { items, x } of imageBatches(inputs, size, batch, m.factor)) {
    await fn(m, items, gray ? toGray(x) : x, (rel, ext) => outputPath(o.output, rel, ext, many));
    first ??= { ms: performance.now(), n: items.length };
    bar.tick(items.length);
  }
  bar.stop();
  const end = performance.now();
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  let timing = first ? `first ${first.n > 1 ? `batch of ${first.n}` : 'image'} after ${s(first.ms)} from start` : '';
  if (first && inputs.length > first.n) timing += `, then ${s((end - first.ms) / (inputs.length - first.n))} per image`;
  return { count: inputs.length, many, timing };
}

/** 'a or b': the multiples of f on either side of n. */
function nearMultiples(n: number, f: number): string {
  const lo = Math.floor(n / f) * f;
  return lo > 0 ? `${lo} or ${lo + f}` : `${f}`;
}

function codesJson(indices: HostTensor, i: number, source: string): string {
  const [, h, w] = indices.shape as [number, number, number];
  const all = indices.toArray();
  return JSON.stringify({ shape: [h, w], indices: all.slice(i * h * w, (i + 1) * h * w), source }) + '\n';
}

export function registerVqganCommands(program: Command): void {
  modelOptions(program.command('info').description('describe a model (VQGAN, transformer, KL VAE or TAESD): kind, parameters, code grid or latents, classes, scaling, the files read'))
    .option('--json', 'print JSON')
    .action(
      action(async (o: ModelOpts & { json?: boolean }) => {
        const kind = latentModelKind(o.model);
        const d = kind ? (await import('./kl.ts')).describeLatentModel(kind, o) : describeModel(o.model, loadAnyModel(o.model, { config: o.config }));
        if (o.json) return void console.log(JSON.stringify(d.info, null, 2));
        for (const l of d.lines) console.log(l);
      }),
    );

  klOptions(modelOptions(program.command('reconstruct').description('encode + decode images (VQGAN: quantized; KL VAE / TAESD: through the latents, PSNR printed)')), { sample: true, tile: true })
    .requiredOption('-i, --input <file|dir>', 'image or folder of images')
    .requiredOption('-o, --output <file|dir>', 'output image, or folder (for folder input)')
    .option('-s, --size <n>', 'resize the shorter side to n and center-crop n×n')
    .option('-b, --batch <n>', 'images per batch', '4')
    .action(
      action(async (o: ImageJob & KLFlags) => {
        const kind = latentKind(o);
        if (kind) return (await import('./kl.ts')).klReconstruct(kind, klOpts(o));
        const n = await eachBatch(o, 'reconstruct', async (m, items, x, out) => {
          const r = await m.reconstruct(x);
          for (let i = 0; i < items.length; i++) await saveImage(out(items[i]!.rel, '.png'), slice(r.image, i));
        });
        console.error(`wrote ${n.many ? `${n.count} images to ${o.output}` : o.output} (${n.timing})`);
      }),
    );

  klOptions(modelOptions(program.command('encode').description('image(s) → VQGAN code indices JSON ({"shape":[h,w],"indices":[…]}), or KL VAE / TAESD latents (latents.safetensors: tensor `latents` [B, C, h, w], scaled)')), { sample: true, tile: true })
    .requiredOption('-i, --input <file|dir>', 'image or folder of images')
    .requiredOption('-o, --output <file|dir>', 'codes.json or latents.safetensors, or a folder (one file per image)')
    .option('-s, --size <n>', 'resize the shorter side to n and center-crop n×n')
    .option('-b, --batch <n>', 'images per batch', '4')
    .action(
      action(async (o: ImageJob & KLFlags) => {
        const kind = latentKind(o);
        if (kind) return (await import('./kl.ts')).klEncode(kind, klOpts(o));
        const n = await eachBatch(o, 'encode', async (m, items, x, out) => {
          const r = await m.encode(x);
          items.forEach((it, i) => writeFileAtomicSync(out(it.rel, '.json'), codesJson(r.indices, i, it.rel)));
        });
        console.error(`wrote ${n.many ? `${n.count} code files to ${o.output}` : o.output} (${n.timing})`);
      }),
    );

  klOptions(modelOptions(program.command('decode').description('VQGAN code indices JSON → image; KL VAE or TAESD: latents.safetensors → image')), { tile: true })
    .requiredOption('-i, --input <codes.json|latents.safetensors>', 'codes or latents written by `encode`')
    .requiredOption('-o, --output <image>', 'output image (.png/.jpg/.webp; a batch of latents writes name-000.png …)')
    .action(
      action(async (o: ModelOpts & KLFlags & { input: string; output: string }) => {
        const kind = latentKind(o);
        if (kind) return (await import('./kl.ts')).klDecode(kind, klOpts(o));
        let codes: { shape?: unknown; indices?: unknown };
        try {
          codes = JSON.parse(fs.readFileSync(o.input, 'utf8'));
        } catch (e) {
          throw new CliError(`cannot read codes ${o.input}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
        const shape = codes.shape;
        const idx = codes.indices;
        if (!Array.isArray(shape) || shape.length !== 2 || !Array.isArray(idx) || idx.length !== shape[0] * shape[1] || idx.some((v) => !Number.isInteger(v))) {
          throw new CliError(`${o.input}: expected {"shape":[h,w],"indices":[h·w integers]}`);
        }
        const m = loadModel(o);
        const [h, w] = [shape[0] * m.factor, shape[1] * m.factor];
        if (h > MAX_IMAGE_SIDE || w > MAX_IMAGE_SIDE) throw new CliError(`${o.input}: a ${shape[0]}×${shape[1]} code grid decodes to ${w}×${h} pixels, over the limit of ${MAX_IMAGE_SIDE} pixels a side (the server's limit too)`);
        const img = await m.decode(HostTensor.int64([1, shape[0], shape[1]], idx as number[]));
        await saveImage(o.output, img);
        console.error(`wrote ${o.output}`);
      }),
    );

  program
    .command('convert')
    .description('VQGAN: write a checkpoint as safetensors (config in the metadata); transformer: write a taming Net2NetTransformer checkpoint (.ckpt + .yaml, loads with strict=True) or a single .safetensors; KL VAE: a diffusers vae/ folder (output without extension), an SD single-file .safetensors or a .ckpt')
    .requiredOption('-m, --model <dir|file>', MODEL_PATH_HELP)
    .requiredOption('-o, --output <file>', 'output: .safetensors, or .ckpt (transformers: torch.save format for PyTorch)')
    .option('-c, --config <file>', 'taming YAML/JSON config')
    .option('--inference-only', "drop 'loss.*' keys (discriminator, LPIPS)")
    .option('--float16', 'KL models: store the weights as float16')
    .action(
      action(async (o: { model: string; output: string; config?: string; inferenceOnly?: boolean; float16?: boolean }) => {
        const kind = latentModelKind(o.model);
        if (kind) return (await import('./kl.ts')).klConvert(kind, o);
        const loaded = loadAnyModel(o.model, { config: o.config });
        if (loaded.kind === 'transformer') return convertNet2Net(o, loaded.model);
        for (const n of loaded.model.notes) console.error(`note: ${n}`);
        const keep = new Map([...loaded.stored.stateDict].filter(([k]) => !(o.inferenceOnly && k.startsWith('loss.'))));
        writeSafetensorsFile(o.output, keep, { format: 'latentkit-vqgan', config: JSON.stringify(loaded.model.config), source: path.basename(loaded.where.directory ? loaded.where.given : loaded.where.weights) });
        console.error(`wrote ${o.output} (${keep.size} tensors${o.inferenceOnly ? ', loss.* dropped' : ''})`);
      }),
    );

  modelOptions(program.command('export-onnx').description('standalone ONNX graphs (weights inside) for plain onnxruntime: VQGAN encoder/decoder; transformers: step/prefill/decoder + transformer.json'))
    .requiredOption('-o, --output <dir>', 'output folder')
    .option('-s, --size <n>', 'image size the graphs are built for (default: config resolution; KL models: any size, batch and height/width free)')
    .option('-b, --batch <n>', 'batch size (KL models: with --size)', '1')
    .option('--float16', 'KL models: weights stored as float16 (computed in float32)')
    .action(
      action(async (o: ModelOpts & { output: string; size?: string; batch: string; float16?: boolean }) => {
        const kind = latentModelKind(o.model);
        if (kind) return (await import('./kl.ts')).klExportOnnx(kind, o);
        if (o.float16) throw new CliError('--float16 is for KL models; VQGAN exports store weights float16 holds exactly as float16 already');
        const size0 = o.size ? parseSideOpt(o.size) : undefined;
        const batch = parseIntOpt(o.batch, '--batch');
        const loaded = loadAnyModel(o.model, { config: o.config, session: { threads: o.threads ? parseIntOpt(o.threads, '--threads') : undefined } });
        if (loaded.kind === 'transformer') {
          if (size0 !== undefined) throw new CliError('--size is for VQGAN exports; a transformer exports its training grid (sample larger sizes with `latentkit sample --size`)');
          return exportNet2Net({ ...o, batch: String(batch) }, loaded.model);
        }
        const m = loaded.model;
        for (const n of m.notes) console.error(`note: ${n}`);
        const size = size0 ?? m.config.ddconfig.resolution;
        if (size % m.factor) throw new CliError(`--size ${size} is not a multiple of the downsampling factor ${m.factor}`);
        writeOnnxExport(vqganOnnx(m, { size, batch }), o.output);
      }),
    );
}

/** Key groups of a state dict: the first name (two for a Net2Net's prefixed keys and loss.*). */
function keyGroups(stateDict: Map<string, HostTensor>): Map<string, { keys: number; params: number }> {
  const groups = new Map<string, { keys: number; params: number }>();
  for (const [k, v] of stateDict) {
    const two = /^(loss|transformer|first_stage_model|cond_stage_model)\./.test(k);
    const g = k.split('.').slice(0, two ? 2 : 1).join('.');
    const e = groups.get(g) ?? { keys: 0, params: 0 };
    e.keys++;
    e.params += v.size;
    groups.set(g, e);
  }
  return groups;
}

const M = (n: number) => `${(n / 1e6).toFixed(2)} M`;

/** `info`: what latentkit loaded — kind, parameters, code grid, classes, the files it read — as lines and as JSON. */
export function describeModel(given: string, loaded: AnyModel & LoadedModel): { info: Record<string, unknown>; lines: string[] } {
  const groups = keyGroups(loaded.stored.stateDict);
  const files = [...new Set(loaded.model.files)];
  const lines = [given];
  let info: Record<string, unknown>;
  if (loaded.kind === 'vqgan') {
    const m = loaded.model;
    const dd = m.config.ddconfig;
    const g = dd.resolution / m.factor;
    lines.push(`  VQGAN, ${M(m.paramCount)} parameters, f=${m.factor}, codebook ${m.config.n_embed}×${m.config.embed_dim}${m.used ? ` (remapped to ${m.used.length})` : ''}`);
    lines.push(`  code grid: ${g}×${g} for ${dd.resolution}×${dd.resolution} images (any size that is a multiple of ${m.factor}); ${dd.in_channels} channel${dd.in_channels > 1 ? 's' : ''}`);
    lines.push(`  ddconfig: ch=${dd.ch} ch_mult=[${dd.ch_mult}] num_res_blocks=${dd.num_res_blocks} attn_resolutions=[${dd.attn_resolutions}] resolution=${dd.resolution} z_channels=${dd.z_channels}`);
    info = {
      file: given,
      kind: 'vqgan',
      files,
      parameters: m.paramCount,
      downsampling_factor: m.factor,
      codebook: { n_embed: m.config.n_embed, embed_dim: m.config.embed_dim, remapped_to: m.used?.length ?? null },
      grid: [g, g],
      image_size: [dd.resolution, dd.resolution],
      channels: dd.in_channels,
      config: m.config,
    };
  } else {
    const m = loaded.model;
    const t = m.config.transformer;
    const gpt = countParams(Object.fromEntries([...m.weights].map(([k, v]) => [k, v.shape])));
    const first = m.firstStage;
    const condVq = m.condStage && m.condStage !== first ? m.condStage : null;
    const total = gpt + first.paramCount + (condVq?.paramCount ?? 0);
    const f = downFactor(m.config.first_stage);
    const [gh, gw] = m.grid;
    const cs = m.config.cond_stage;
    const condKind = cs.kind === 'label' ? 'class' : cs.kind === 'sos' ? 'none' : m.config.cond_input === 'sketch' ? 'sketch' : 'image';
    const cg = m.condGrid;
    const condText =
      cs.kind === 'label' ? `class-conditional, ${cs.n_classes} classes${m.config.null_class ? ' (+ a null class: --cfg works)' : ''}`
        : cs.kind === 'sos' ? 'unconditional'
          : `conditioned on ${condKind === 'sketch' ? 'a sketch' : 'an image'} (${cg![0]}×${cg![1]} codes${condVq ? `, its own VQGAN: ${M(condVq.paramCount)} parameters, codebook ${condVq.config.n_embed}` : ', the first stage'})`;
    lines.push(`  Net2Net transformer, ${condText}; ${M(total)} parameters`);
    lines.push(`  GPT: ${M(gpt)} parameters, ${t.n_layer} layers × ${t.n_embd}, ${t.n_head} heads, vocab ${t.vocab_size}, block ${t.block_size}`);
    lines.push(`  first stage: VQGAN, ${M(first.paramCount)} parameters, f=${f}, codebook ${first.config.n_embed}×${first.config.embed_dim}`);
    lines.push(`  code grid: ${gh}×${gw} for ${gh * f}×${gw * f} images (larger sizes by a sliding window)`);
    const classes = m.classes;
    if (classes) lines.push(`  classes: ${classes.map((c, i) => `${i} ${c}`).join(', ')}`);
    info = {
      file: given,
      kind: 'transformer',
      files,
      condition: condKind,
      parameters: total,
      transformer: { parameters: gpt, n_layer: t.n_layer, n_head: t.n_head, n_embd: t.n_embd, vocab_size: t.vocab_size, block_size: t.block_size },
      first_stage: { parameters: first.paramCount, downsampling_factor: f, codebook: { n_embed: first.config.n_embed, embed_dim: first.config.embed_dim } },
      ...(condVq ? { cond_stage: { parameters: condVq.paramCount, downsampling_factor: condVq.factor, codebook: { n_embed: condVq.config.n_embed, embed_dim: condVq.config.embed_dim } } } : {}),
      ...(cg ? { cond_grid: cg } : {}),
      grid: [gh, gw],
      image_size: [gh * f, gw * f],
      classes,
      ...(cs.kind === 'label' ? { classifier_free_guidance: !!m.config.null_class } : {}),
    };
  }
  lines.push(`  files: ${files.join(', ')}`);
  for (const n of loaded.model.notes) lines.push(`  note: ${n}`);
  lines.push('  keys:');
  for (const [g, e] of groups) lines.push(`    ${g.padEnd(34)} ${String(e.keys).padStart(5)} tensors ${(e.params / 1e6).toFixed(3).padStart(10)} M${g.startsWith('loss') ? '  (ignored for inference)' : ''}`);
  info.notes = loaded.model.notes;
  info.keys = Object.fromEntries(groups);
  return { info, lines };
}
