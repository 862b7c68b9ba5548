// The manifests of the standalone ONNX exports (models/export_onnx.ts), as types only: the
// browser entry imports them without the model code.
import type { SamplingDefaults } from './cond_transformer/config.ts';

/** The manifest of a VQGAN export (model.json). */
export interface VQGANOnnxManifest {
  format: 'latentkit-vqgan-onnx';
  batch: number;
  image_size: [number, number];
  channels: number;
  grid: [number, number];
  codebook_size: number;
  files: { encoder: string; decoder: string };
}

/** The manifest of a transformer export (transformer.json). */
export interface Net2NetOnnxManifest {
  format: 'latentkit-net2net-onnx';
  batch: number;
  grid: [number, number];
  image_size: [number, number];
  condition: { kind: 'label' | 'sos' | 'vqgan' | 'first_stage'; tokens: number; classes?: string[] | null; null_class?: number | null; sos_token?: number; input?: string; image_size?: [number, number]; channels?: number };
  vocab_size: number;
  n_layer: number;
  n_head: number;
  head_dim: number;
  cache_capacity: number;
  files: Record<string, string>;
  /**
   * MaskGIT models: parallel decoding through `bidir.onnx` (tokens → logits at every image
   * position) instead of the KV-cached step; `cond: 'add'` feeds the condition as `cond`
   * [B, Lz] beside `idx` [B, Lz], 'prefix' as the first tokens of `idx`.
   */
  maskgit?: { mask_token: number; cond: 'prefix' | 'add'; codes: number };
  /** the model's recommended sampling settings (config latentkit.sampling) */
  sampling?: SamplingDefaults;
}

/** The manifest of a KL autoencoder export (vae.json): SD's ONNX names, unscaled latents. */
export interface KLOnnxManifest {
  format: 'latentkit-kl-onnx';
  /** batch, height and width free (true) or fixed at `batch` / `image_size` */
  dynamic_axes: boolean;
  /** image pixels per latent pixel, per side */
  factor: number;
  batch?: number;
  image_size?: [number, number];
  /** the diffusion pipelines' latents are (z − shift_factor) · scaling_factor */
  scaling_factor: number;
  shift_factor: number;
  files: { encoder: string; decoder: string; preview?: string };
  config: { ddconfig: { in_channels: number; out_ch: number }; embed_dim: number };
  /** a preview decoder (TAESD architecture): scaled latents `latents` → `sample` in ≈[−1, 1] */
  preview?: { factor: number; parameters: number };
}
