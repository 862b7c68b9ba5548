// The primitive table: every primitive latentkit knows, by family. A primitive missing a
// shape rule or lowering is a type error here.
import { elementwisePrims } from './elementwise.ts';
import { movementPrims } from './movement.ts';
import { reducePrims } from './reduce.ts';
import { indexingPrims } from './indexing.ts';
import { convPrims } from './conv.ts';
import { fusedNormPrims, normPrims, siluPrims } from './norm.ts';
import type { PrimDef } from './types.ts';

export const PRIMS = {
  ...elementwisePrims,
  ...movementPrims,
  ...reducePrims,
  ...indexingPrims,
  ...convPrims,
  ...normPrims,
  ...siluPrims,
  ...fusedNormPrims,
} satisfies Record<string, PrimDef>;

export type PrimName = keyof typeof PRIMS;

export function primDef(name: string): PrimDef {
  const d = (PRIMS as Record<string, PrimDef>)[name];
  if (!d) throw new Error(`unknown primitive '${name}'`);
  return d;
}
