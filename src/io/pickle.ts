// moved to io/formats/pickle.ts; this re-export goes once no import uses the old path
export * from './formats/pickle.ts';
