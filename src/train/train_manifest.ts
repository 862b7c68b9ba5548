// The manifest of a training export (train/export_train.ts → runtime/standalone_train.ts):
// plain data, no Node modules, so a browser bundle can import its type.
import type { ScheduleSpec } from './schedule.ts';

export interface FlatLayout {
  names: string[];
  shapes: number[][];
  offsets: number[];
  total: number;
}

export interface TrainOnnxManifest {
  format: 'latentkit-vqgan-train-onnx';
  batch: number;
  channels: number;
  image_size: number;
  /** Code grid [h, w] of one image. */
  grid: [number, number];
  disc_start: number;
  disc_factor: number;
  max_steps: number;
  seed: number;
  schedule: ScheduleSpec;
  groups: Record<'ae' | 'disc', FlatLayout & { slots: number }>;
  buffers: FlatLayout;
  /** Step programs: inputs `<g>.params`, `<g>.s<k>`, `<g>.lr`, `<g>.step`, `buffers`, `x`, `disc_factor`. */
  programs: Record<string, { file: string; train: string[]; inputs: string[]; outputs: string[] }>;
  /** `ae.params` + `x` → `xrec`, `indices`. */
  recon: { file: string };
  /** float32: ae params, disc params, buffers, back to back. */
  init: string;
  /** safetensors metadata of a model file (the step is added when saving). */
  metadata: Record<string, string>;
}
