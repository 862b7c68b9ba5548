// moved to io/formats/npy.ts; this re-export goes once no import uses the old path
export * from './formats/npy.ts';
