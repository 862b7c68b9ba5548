// The manifests of the standalone ONNX exports (models/export_onnx.ts), as types only: the
// browser entry imports them without the model code.

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
}
