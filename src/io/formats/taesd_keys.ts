// TAESD's key layouts. The original files (taesd_decoder.pth, taesdxl_encoder.safetensors, …)
// are one nn.Sequential each, keyed by layer index ("3.conv.0.weight"); a TAESD module's own
// state dict prefixes them with "encoder." / "decoder."; diffusers' AutoencoderTiny keeps
// the Sequentials as encoder.layers / decoder.layers, its decoder without the leading Clamp
// (diffusers applies tanh(x/3)·3 in forward), so decoder.layers.{i} = original decoder {i+1}.
import type { StateDict } from '../../nn/params.ts';

export type TAESDPart = 'encoder' | 'decoder';
export type TAESDLayout = 'taesd' | 'taesd-module' | 'diffusers';

/** Offset of diffusers' layer index against the original Sequential index, per part. */
const DIFFUSERS_SHIFT: Record<TAESDPart, number> = { encoder: 0, decoder: 1 };

/** A diffusers AutoencoderTiny key → [part, original key], or null for other keys. */
export function fromDiffusersKey(k: string): [TAESDPart, string] | null {
  const m = /^(encoder|decoder)\.layers\.(\d+)\.(.+)$/.exec(k);
  if (!m) return null;
  const part = m[1] as TAESDPart;
  return [part, `${Number(m[2]) + DIFFUSERS_SHIFT[part]}.${m[3]}`];
}

/** An original key of `part` → its diffusers AutoencoderTiny key. */
export function toDiffusersKey(part: TAESDPart, k: string): string {
  const m = /^(\d+)\.(.+)$/.exec(k);
  if (!m || Number(m[1]) < DIFFUSERS_SHIFT[part]) throw new Error(`not a TAESD ${part} key: ${k}`);
  return `${part}.layers.${Number(m[1]) - DIFFUSERS_SHIFT[part]}.${m[2]}`;
}

/**
 * Split a state dict in any of the three layouts into per-part dicts keyed as the original
 * files. A bare Sequential (no prefix) is returned under `bare`: which part it is follows
 * from its shapes (see load.ts).
 */
export function splitTAESD(sd: StateDict): { layout: TAESDLayout; parts: Partial<Record<TAESDPart, StateDict>>; bare?: StateDict } {
  const keys = [...sd.keys()];
  if (keys.some((k) => /^(encoder|decoder)\.layers\./.test(k))) {
    const parts: Partial<Record<TAESDPart, StateDict>> = {};
    for (const [k, v] of sd) {
      const r = fromDiffusersKey(k);
      if (!r) throw new Error(`unexpected key '${k}' in a diffusers AutoencoderTiny state dict`);
      (parts[r[0]] ??= new Map()).set(r[1], v);
    }
    return { layout: 'diffusers', parts };
  }
  if (keys.some((k) => /^(encoder|decoder)\.\d+\./.test(k))) {
    const parts: Partial<Record<TAESDPart, StateDict>> = {};
    for (const [k, v] of sd) {
      const m = /^(encoder|decoder)\.(\d+\..+)$/.exec(k);
      if (!m) throw new Error(`unexpected key '${k}' in a TAESD state dict (expected encoder.N.* / decoder.N.*)`);
      (parts[m[1] as TAESDPart] ??= new Map()).set(m[2]!, v);
    }
    return { layout: 'taesd-module', parts };
  }
  return { layout: 'taesd', parts: {}, bare: sd };
}
