// moved to io/formats/zip.ts; this re-export goes once no import uses the old path
export * from './formats/zip.ts';
