// latentkit/browser: what a page needs to run the exported models with onnxruntime-web —
// no tracing, no Node modules. Export a model with `latentkit export-onnx` (or fetch it from
// `latentkit serve` at /api/models/<name>/onnx/), then:
//   const ort = await import('onnxruntime-web');
//   const vq = await StandaloneVQGAN.load(ort, manifest, (f) => fetchBytes(f), { executionProviders: ['wasm'] });
export { StandaloneVQGAN, StandaloneNet2Net, StandaloneKL, type StandaloneOptions, type StandaloneSampleRequest, type ReadFile } from './runtime/standalone.ts';
export type { VQGANOnnxManifest, Net2NetOnnxManifest, KLOnnxManifest } from './models/onnx_manifest.ts';
export { interleavedToPlanar, u8ToFloat, floatToU8, planarFloatToRgba, rgbaOverWhite } from './io/pixels.ts';
export { normalizeDrawing, sketchToFloat } from './io/sketch.ts';
export { filteredDistribution, pickToken, makeChooser, type SamplingOptions } from './sample/filtering.ts';
export { Rng, sampleStreams } from './io/rng.ts';
export { HostTensor } from './tensor.ts';
export { lossCurveSvg, smoothEma, type Series, type PlotOptions } from './io/svg_plot.ts';
export { StandaloneVQGANTrainer, type TrainStepResult } from './runtime/standalone_train.ts';
export type { TrainOnnxManifest } from './train/train_manifest.ts';
export { writeSafetensors } from './io/formats/safetensors_bytes.ts';
