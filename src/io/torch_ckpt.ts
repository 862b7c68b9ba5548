// moved to io/formats/torch_ckpt.ts; this re-export goes once no import uses the old path
export * from './formats/torch_ckpt.ts';
