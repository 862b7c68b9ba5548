// The one key map between latent-diffusion's AutoencoderKL state dict (ldm names, as in SD's
// `first_stage_model.*`) and diffusers' AutoencoderKL (`vae/diffusion_pytorch_model.*`).
// Each row pairs an ldm prefix with a diffusers prefix; {i} is a level, {j} a block index,
// {e} is encoder|decoder. diffusers numbers the decoder's up blocks from the lowest
// resolution (up_blocks.0 = ldm up.{L−1}), so decoder rows convert the level index.
// Attention projections are 1×1 convs in ldm ([C, C, 1, 1]) and Linear layers in diffusers
// ([C, C]); older diffusers files name them query/key/value/proj_attn (read, never written).
import { HostTensor } from '../../tensor.ts';

interface Row {
  ldm: string;
  diffusers: string;
  /** older diffusers spellings of the same prefix (accepted when reading) */
  legacy?: string[];
  /** weight is [C, C, 1, 1] in ldm and [C, C] in diffusers */
  linear?: boolean;
  /** {i} counts levels from the lowest resolution in diffusers (decoder up blocks) */
  reversed?: boolean;
}

/** ldm prefix ↔ diffusers prefix; the parameter name (weight/bias) follows unchanged. */
export const KL_KEY_TABLE: readonly Row[] = [
  { ldm: '{e}.conv_in', diffusers: '{e}.conv_in' },
  { ldm: 'encoder.down.{i}.block.{j}.nin_shortcut', diffusers: 'encoder.down_blocks.{i}.resnets.{j}.conv_shortcut' },
  { ldm: 'encoder.down.{i}.block.{j}.{r}', diffusers: 'encoder.down_blocks.{i}.resnets.{j}.{r}' },
  { ldm: 'encoder.down.{i}.downsample.conv', diffusers: 'encoder.down_blocks.{i}.downsamplers.0.conv' },
  { ldm: 'decoder.up.{i}.block.{j}.nin_shortcut', diffusers: 'decoder.up_blocks.{i}.resnets.{j}.conv_shortcut', reversed: true },
  { ldm: 'decoder.up.{i}.block.{j}.{r}', diffusers: 'decoder.up_blocks.{i}.resnets.{j}.{r}', reversed: true },
  { ldm: 'decoder.up.{i}.upsample.conv', diffusers: 'decoder.up_blocks.{i}.upsamplers.0.conv', reversed: true },
  { ldm: '{e}.mid.block_1.{r}', diffusers: '{e}.mid_block.resnets.0.{r}' },
  { ldm: '{e}.mid.block_2.{r}', diffusers: '{e}.mid_block.resnets.1.{r}' },
  { ldm: '{e}.mid.attn_1.norm', diffusers: '{e}.mid_block.attentions.0.group_norm' },
  { ldm: '{e}.mid.attn_1.q', diffusers: '{e}.mid_block.attentions.0.to_q', legacy: ['{e}.mid_block.attentions.0.query'], linear: true },
  { ldm: '{e}.mid.attn_1.k', diffusers: '{e}.mid_block.attentions.0.to_k', legacy: ['{e}.mid_block.attentions.0.key'], linear: true },
  { ldm: '{e}.mid.attn_1.v', diffusers: '{e}.mid_block.attentions.0.to_v', legacy: ['{e}.mid_block.attentions.0.value'], linear: true },
  { ldm: '{e}.mid.attn_1.proj_out', diffusers: '{e}.mid_block.attentions.0.to_out.0', legacy: ['{e}.mid_block.attentions.0.proj_attn'], linear: true },
  { ldm: '{e}.norm_out', diffusers: '{e}.conv_norm_out' },
  { ldm: '{e}.conv_out', diffusers: '{e}.conv_out' },
  { ldm: 'quant_conv', diffusers: 'quant_conv' },
  { ldm: 'post_quant_conv', diffusers: 'post_quant_conv' },
];

const PLACEHOLDER: Record<string, string> = { '{e}': '(encoder|decoder)', '{i}': '(\\d+)', '{j}': '(\\d+)', '{r}': '(norm1|conv1|norm2|conv2)' };

interface Compiled {
  row: Row;
  from: RegExp;
  names: string[];
  to: string;
}

function compile(row: Row, from: string, to: string): Compiled {
  const names: string[] = [];
  const src = from.replace(/\./g, '\\.').replace(/\{[eijr]\}/g, (m) => {
    names.push(m);
    return PLACEHOLDER[m]!;
  });
  return { row, from: new RegExp(`^${src}\\.(weight|bias)$`), names, to };
}

const TO_DIFFUSERS = KL_KEY_TABLE.map((r) => compile(r, r.ldm, r.diffusers));
const TO_LDM = KL_KEY_TABLE.flatMap((r) => [r.diffusers, ...(r.legacy ?? [])].map((d) => compile(r, d, r.ldm)));

function apply(rules: readonly Compiled[], key: string, levels: number): { key: string; row: Row } | null {
  for (const c of rules) {
    const m = c.from.exec(key);
    if (!m) continue;
    let out = c.to;
    c.names.forEach((n, k) => {
      let v = m[k + 1]!;
      if (n === '{i}' && c.row.reversed) v = String(levels - 1 - Number(v));
      out = out.replace(n, v);
    });
    return { key: `${out}.${m[m.length - 1]}`, row: c.row };
  }
  return null;
}

/** ldm key → diffusers key (null when the key has no diffusers counterpart, e.g. level attention). */
export function ldmToDiffusersKey(key: string, levels: number): string | null {
  return apply(TO_DIFFUSERS, key, levels)?.key ?? null;
}

/** diffusers key (current or legacy attention names) → ldm key, or null when unknown. */
export function diffusersToLdmKey(key: string, levels: number): string | null {
  return apply(TO_LDM, key, levels)?.key ?? null;
}

/** True for keys laid out like diffusers' AutoencoderKL (down_blocks / up_blocks / mid_block). */
export const isDiffusersVaeKey = (k: string): boolean => /^(encoder|decoder)\.(down_blocks|up_blocks|mid_block|conv_norm_out)\./.test(k);

/** [C, C] ↔ [C, C, 1, 1] without reading the data now (a lazy tensor stays lazy, its file origin kept). */
function reshapeLazy(t: HostTensor, shape: readonly number[]): HostTensor {
  return HostTensor.lazy(t.dtype, shape, () => t.data, t.origin);
}

/**
 * Renames a diffusers AutoencoderKL state dict to ldm keys (linear attention weights become
 * 1×1 convs). Unknown keys are returned in `unknown` so the caller can name them.
 */
export function diffusersToLdm(sd: Map<string, HostTensor>, levels: number): { stateDict: Map<string, HostTensor>; unknown: string[] } {
  const out = new Map<string, HostTensor>();
  const unknown: string[] = [];
  for (const [k, t] of sd) {
    const r = apply(TO_LDM, k, levels);
    if (!r) {
      unknown.push(k);
      continue;
    }
    const lin = r.row.linear && k.endsWith('.weight') && t.shape.length === 2;
    out.set(r.key, lin ? reshapeLazy(t, [...t.shape, 1, 1]) : t);
  }
  return { stateDict: out, unknown };
}

/** Renames an ldm AutoencoderKL state dict to diffusers keys (1×1 attention convs become [C, C]). */
export function ldmToDiffusers(sd: Map<string, HostTensor>, levels: number): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [k, t] of sd) {
    const r = apply(TO_DIFFUSERS, k, levels);
    if (!r) throw new Error(`'${k}' has no diffusers AutoencoderKL counterpart (diffusers' VAE blocks have no attention outside the mid block)`);
    const lin = r.row.linear && k.endsWith('.weight') && t.shape.length === 4;
    out.set(r.key, lin ? reshapeLazy(t, t.shape.slice(0, 2)) : t);
  }
  return out;
}
