// TAESD previews for inference: load the original per-part files (taesd_decoder.pth, …), a
// TAESD module state dict or a diffusers AutoencoderTiny folder, and run encode / decode
// through cached per-shape ONNX sessions. The library's image convention holds: images are
// [B, 3, H, W] in [−1, 1] (TAESD itself works in [0, 1]); latents are the scaled latents a
// KL model's encode returns (z − shift)·scale, which is what TAESD was distilled on.
import fs from 'node:fs';
import path from 'node:path';
import { ParamView, checkStateDict, countParams, type StateDict } from '../../nn/params.ts';
import { Program, type CompiledProgram } from '../../runtime/program.ts';
import type { SessionOptions } from '../../runtime/backend.ts';
import { HostTensor } from '../../tensor.ts';
import type { Tensor } from '../../graph/ir.ts';
import { loadStateDict } from '../../io/formats/checkpoint.ts';
import { splitTAESD, type TAESDLayout } from '../../io/formats/taesd_keys.ts';
import { taesdDecodeImage, taesdEncodeImage, taesdShapes, taesdStages, type TAESDPart } from './taesd.ts';

export interface TAESDLoadOptions {
  session?: SessionOptions;
}

const PART_FILE = /^(.*)_(encoder|decoder)\.(pth|pt|safetensors)$/;
const DIFFUSERS_WEIGHTS = ['diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.bin'];

/** Which part a bare Sequential is, and its latent channels, from its shapes. */
function identifyBare(sd: StateDict, source: string): { part: TAESDPart; channels: number } {
  const w0 = sd.get('0.weight');
  const w1 = sd.get('1.weight');
  if (w0?.shape.length === 4 && w0.shape[1] === 3 && w0.shape[0] === 64) return { part: 'encoder', channels: sd.get('14.weight')?.shape[0] ?? 0 };
  if (!w0 && w1?.shape.length === 4 && w1.shape[0] === 64) return { part: 'decoder', channels: w1.shape[1]! };
  const hint = [...sd.keys()].some((k) => /^(first_stage_model\.|quant_conv\.|post_quant_conv\.|(encoder|decoder)\.(conv_in|down|up|mid))/.test(k))
    ? ' (it looks like a KL/VQ autoencoder, not a TAESD)'
    : [...sd.keys()].some((k) => k.startsWith('model.diffusion_model.') || k.startsWith('down_blocks.')) ? ' (it looks like a UNet)' : '';
  throw new Error(`${source}: not a TAESD encoder or decoder: expected '0.weight' [64, 3, 3, 3] (encoder) or '1.weight' [64, C, 3, 3] (decoder)${hint}`);
}

function checkPart(part: TAESDPart, sd: StateDict, channels: number, source: string, stages: number): void {
  if ([...sd.keys()].some((k) => /\.pool\./.test(k))) throw new Error(`${source}: a TAESD ${part} with mid-block GroupNorm (taef2) — not supported; taesd, taesdxl, taesd3 and taef1 are`);
  checkStateDict(sd, taesdShapes(part, channels, stages), { source: `${source} (TAESD ${part})` });
}

export class TAESD {
  readonly parts: Partial<Record<TAESDPart, StateDict>>;
  readonly latentChannels: number;
  /** 2× resampling stages (3 for every published TAESD; fewer for previews of f2 / f4 VAEs, distill_preview.ts) */
  readonly stages: number;
  readonly layout: TAESDLayout;
  readonly notes: string[];
  readonly files: string[];
  readonly session: SessionOptions;
  private programs = new Map<string, Promise<CompiledProgram>>();

  constructor(parts: Partial<Record<TAESDPart, StateDict>>, opts: { layout?: TAESDLayout; notes?: string[]; files?: string[]; session?: SessionOptions; source?: string } = {}) {
    const source = opts.source ?? '<memory>';
    const ds = parts.decoder ? taesdStages('decoder', parts.decoder.keys()) : undefined;
    const es = parts.encoder ? taesdStages('encoder', parts.encoder.keys()) : undefined;
    if (ds !== undefined && es !== undefined && ds !== es) throw new Error(`${source}: the encoder has ${es} downsampling stages, the decoder ${ds} upsampling stages`);
    const dec = parts.decoder?.get('1.weight');
    const enc = parts.encoder?.get(`${4 * (es ?? 3) + 2}.weight`);
    const channels = dec?.shape[1] ?? enc?.shape[0];
    if (!channels) throw new Error(`${source}: no TAESD encoder or decoder weights found`);
    if (dec && enc && dec.shape[1] !== enc.shape[0]) throw new Error(`${source}: the encoder makes ${enc.shape[0]} latent channels, the decoder reads ${dec.shape[1]}`);
    this.stages = ds ?? es ?? 3;
    for (const [part, sd] of Object.entries(parts) as [TAESDPart, StateDict][]) checkPart(part, sd, channels, source, this.stages);
    this.parts = parts;
    this.latentChannels = channels;
    this.layout = opts.layout ?? 'taesd';
    this.notes = opts.notes ?? [];
    this.files = opts.files ?? [];
    this.session = opts.session ?? {};
  }

  /**
   * A TAESD from: an original part file (taesd_decoder.pth / .safetensors — its sibling
   * *_encoder file is loaded too when present), a TAESD module state dict, a diffusers
   * AutoencoderTiny folder (config.json + diffusion_pytorch_model.safetensors) or its weights
   * file, or a folder holding *_encoder / *_decoder files.
   */
  static load(given: string, opts: TAESDLoadOptions = {}): TAESD {
    if (!fs.existsSync(given)) throw new Error(`model not found: ${given}`);
    const notes: string[] = [];
    const files: string[] = [];
    let weights: string[];
    if (fs.statSync(given).isDirectory()) {
      const diff = DIFFUSERS_WEIGHTS.map((f) => path.join(given, f)).find((f) => fs.existsSync(f));
      const pairs = fs.readdirSync(given).filter((f) => PART_FILE.test(f)).sort();
      if (diff) {
        if (!fs.existsSync(path.join(given, 'config.json'))) throw new Error(`${given}: a diffusers folder needs config.json beside ${path.basename(diff)}`);
        weights = [diff];
      } else if (pairs.length) weights = pairs.map((f) => path.join(given, f));
      else throw new Error(`${given}: no TAESD weights here (expected diffusion_pytorch_model.safetensors + config.json, or *_encoder / *_decoder .pth/.safetensors files)`);
    } else {
      weights = [given];
      const m = PART_FILE.exec(path.basename(given));
      const other = m ? path.join(path.dirname(given), `${m[1]}_${m[2] === 'encoder' ? 'decoder' : 'encoder'}.${m[3]}`) : null;
      if (other && fs.existsSync(other)) weights.push(other);
    }
    const parts: Partial<Record<TAESDPart, StateDict>> = {};
    let layout: TAESDLayout = 'taesd';
    for (const f of weights) {
      const { stateDict } = loadStateDict(f);
      files.push(f);
      const s = splitTAESD(stateDict); // fp16 / bf16 files are read as float32
      layout = s.layout;
      if (s.bare) {
        const { part } = identifyBare(s.bare, f);
        if (parts[part]) throw new Error(`${f}: a second TAESD ${part}`);
        parts[part] = s.bare;
      } else Object.assign(parts, s.parts);
    }
    const m = new TAESD(parts, { layout, notes, files, session: opts.session, source: weights[0] });
    const which = (['encoder', 'decoder'] as const).filter((p) => m.parts[p]).join(' + ');
    notes.push(`TAESD ${which}, ${m.latentChannels} latent channels (${m.stages !== 3 ? `factor ${m.factor}: a preview decoder for an f${m.factor} VAE` : m.latentChannels === 4 ? 'taesd / taesdxl: SD 1.x, 2.x, SDXL latents' : m.latentChannels === 16 ? 'taesd3 / taef1: SD3, FLUX latents' : 'unknown family'}), ${layout === 'diffusers' ? 'diffusers AutoencoderTiny' : 'original'} key names, from ${files.join(', ')}`);
    return m;
  }

  get paramCount(): number {
    return Object.values(this.parts).reduce((a, sd) => a + countParams(Object.fromEntries([...sd].map(([k, v]) => [k, v.shape]))), 0);
  }

  /** Spatial factor between images and latents. */
  get factor(): number {
    return 2 ** this.stages;
  }

  private program(part: TAESDPart, shape: readonly number[]): Promise<CompiledProgram> {
    const key = `${part}:${shape.join('x')}`;
    let p = this.programs.get(key);
    if (!p) {
      const sd = this.parts[part]!;
      const specs = Object.fromEntries([...sd].map(([k, v]) => [k, { shape: v.shape, dtype: v.dtype }]));
      const prog = Program.trace((ins): Record<string, Tensor> => {
        const pv = new ParamView(ins);
        if (part === 'decoder') return { image: taesdDecodeImage(pv, ins.latents!, this.stages) };
        return { latents: taesdEncodeImage(pv, ins.image!, this.stages) };
      }, { ...specs, [part === 'decoder' ? 'latents' : 'image']: { shape, dtype: 'float32' } });
      p = prog.compile({ ...this.session, bake: Object.fromEntries(sd) });
      this.programs.set(key, p);
      p.catch(() => this.programs.delete(key));
    }
    return p;
  }

  private need(part: TAESDPart): void {
    if (!this.parts[part]) throw new Error(`this TAESD has no ${part} (${this.files.join(', ') || 'in memory'}); give the *_${part} file or a folder with both`);
  }

  /** Scaled latents [B, C, h, w] → images [B, 3, 8h, 8w] in ≈[−1, 1]. */
  async decode(latents: HostTensor): Promise<HostTensor<'float32'>> {
    this.need('decoder');
    if (latents.dtype !== 'float32' || latents.shape.length !== 4 || latents.shape[1] !== this.latentChannels) {
      throw new Error(`latents: expected float32 [B, ${this.latentChannels}, h, w] for this TAESD decoder, got ${latents.dtype}[${latents.shape.join(', ')}]`);
    }
    return (await (await this.program('decoder', latents.shape)).run({ latents })).image as HostTensor<'float32'>;
  }

  /** Images [B, 3, H, W] in [−1, 1] (H, W multiples of 8) → scaled latents [B, C, H/8, W/8]. */
  async encode(image: HostTensor): Promise<HostTensor<'float32'>> {
    this.need('encoder');
    if (image.dtype !== 'float32' || image.shape.length !== 4 || image.shape[1] !== 3) throw new Error(`expected images as float32 [B, 3, H, W], got ${image.dtype}[${image.shape.join(', ')}]`);
    if (image.shape[2]! % this.factor || image.shape[3]! % this.factor) throw new Error(`image size ${image.shape[3]}×${image.shape[2]} is not a multiple of TAESD's factor ${this.factor}`);
    return (await (await this.program('encoder', image.shape)).run({ image })).latents as HostTensor<'float32'>;
  }

  async release(): Promise<void> {
    for (const p of this.programs.values()) await (await p).release();
    this.programs.clear();
  }
}

