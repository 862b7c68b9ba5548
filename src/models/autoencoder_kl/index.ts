// latent-diffusion's KL autoencoder (Stable Diffusion's VAE): config, graph functions, loading.
export { AutoencoderKL, type KLLoadOptions, type EncodeOptions, type EncodeResult } from './load.ts';
export { FAMILY_SCALING, guessFamily, inferKLConfig, klFactor, parseDiffusersVaeConfig, parseKLConfig, toDiffusersVaeConfig, type KLConfig, type KLFamily, type LatentScaling } from './config.ts';
export { decodeLatents, encodePosterior, initAutoencoderKL, klDivergence, klShapes, samplePosterior, type Posterior } from './autoencoder.ts';
export { KL_IGNORED_KEYS, describeWeights, readKLWeights, type KLWeights } from './weights.ts';
