// moved to io/formats/safetensors_bytes.ts; this re-export goes once no import uses the old path
export * from './formats/safetensors_bytes.ts';
