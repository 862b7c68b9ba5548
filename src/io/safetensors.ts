// moved to io/formats/safetensors.ts; this re-export goes once no import uses the old path
export * from './formats/safetensors.ts';
