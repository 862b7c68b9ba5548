// moved to io/formats/checkpoint.ts; this re-export goes once no import uses the old path
export * from './formats/checkpoint.ts';
