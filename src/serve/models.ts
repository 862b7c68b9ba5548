// The models a server holds: VQGANs (reconstruct / encode / decode), transformers (sample) and
// Stable Diffusion's KL autoencoders / TAESD previews (reconstruct / encode / decode on
// latents, kl.ts), loaded once at start-up; their sessions are created on first use and
// shared by requests.
import fs from 'node:fs';
import path from 'node:path';
import type { VQGAN } from '../models/vqgan/load.ts';
import type { Net2Net } from '../models/cond_transformer/load.ts';
import { latentModelKind, loadAnyModel } from '../models/load_model.ts';
import { downFactor } from '../models/vqgan/config.ts';
import type { SessionOptions } from '../runtime/backend.ts';
import { describeLatent, loadLatentServed, type LatentServedModel } from './kl.ts';

export type ServedModel =
  | { name: string; kind: 'vqgan'; source: string; vqgan: VQGAN }
  | { name: string; kind: 'transformer'; source: string; net: Net2Net }
  | LatentServedModel;

/**
 * A model's default name from its path: the file name without its extension; a diffusers
 * weights file is named by its folder, a diffusers `vae` folder by its parent
 * (stable-diffusion-v1-5/vae → stable-diffusion-v1-5-vae), TAESD part files without the part
 * (taesd_decoder.pth → taesd).
 */
export function defaultModelName(p: string): string {
  const abs = path.resolve(p);
  let name = path.basename(abs).replace(/\.(safetensors|ckpt|pt|pth|bin)$/, '');
  let dir = abs;
  if (/^diffusion_pytorch_model(\.fp16)?$/.test(name)) {
    dir = path.dirname(abs);
    name = path.basename(dir);
  }
  if (name === 'vae') name = `${path.basename(path.dirname(dir))}-vae`;
  return name.replace(/_(encoder|decoder)$/, '');
}

/** A model directory (config.yaml + model.safetensors) or a checkpoint file. */
export function loadServedModel(spec: string, session: SessionOptions = {}): ServedModel {
  const eq = spec.indexOf('=');
  // "name=path" names a model explicitly
  const [givenName, p] = eq > 0 && !fs.existsSync(spec) ? [spec.slice(0, eq), spec.slice(eq + 1)] : [null, spec];
  if (!fs.existsSync(p)) throw new Error(`model not found: ${p}`);
  const name = givenName ?? defaultModelName(p);
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`model name '${name}' must be letters, digits, '.', '_' or '-' (use name=path)`);
  // Stable Diffusion VAEs and TAESDs as the CLI recognises them (folder layout, keys)
  const latent = latentModelKind(p);
  if (latent) return loadLatentServed(name, p, latent, session);
  // the kind and the files by the one rule every command uses (io/model_path.ts)
  const m = loadAnyModel(p, { session });
  return m.kind === 'vqgan' ? { name, kind: 'vqgan', source: p, vqgan: m.model } : { name, kind: 'transformer', source: p, net: m.model };
}

/** What GET /api/models/:name answers. */
export function describe(m: ServedModel): Record<string, unknown> {
  if (m.kind === 'kl' || m.kind === 'taesd') return describeLatent(m);
  if (m.kind === 'vqgan') {
    const v = m.vqgan;
    const dd = v.config.ddconfig;
    return {
      name: m.name,
      kind: 'vqgan',
      parameters: v.paramCount,
      downsampling_factor: v.factor,
      codebook_size: v.codebookSize,
      embed_dim: v.config.embed_dim,
      channels: dd.in_channels,
      resolution: dd.resolution,
      endpoints: ['reconstruct', 'encode', 'decode'],
    };
  }
  const n = m.net;
  const cs = n.config.cond_stage;
  const f = downFactor(n.config.first_stage);
  return {
    name: m.name,
    kind: 'transformer',
    condition: cs.kind === 'label' ? 'class' : cs.kind === 'sos' ? 'none' : n.config.cond_input === 'sketch' ? 'sketch' : 'image',
    classes: n.classes,
    grid: n.grid,
    image_size: [n.grid[0] * f, n.grid[1] * f],
    vocab_size: n.config.transformer.vocab_size,
    // 'maskgit': parallel decoding, edits repaint exactly the masked cells; 'autoregressive': one code at a time
    decoding: n.isMaskGit ? 'maskgit' : 'autoregressive',
    guidance: !!n.config.null_class,
    sampling: n.config.sampling ?? null,
    endpoints: ['sample', 'edit'],
  };
}

/** Frees a served model's sessions. */
export function releaseServed(m: ServedModel): Promise<void> {
  if (m.kind === 'kl') return Promise.all([m.kl.release(), m.preview?.release()]).then(() => undefined);
  return m.kind === 'vqgan' ? m.vqgan.release() : m.kind === 'transformer' ? m.net.release() : m.taesd.release();
}
