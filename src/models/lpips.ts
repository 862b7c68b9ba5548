// LPIPS (Zhang et al. 2018), VGG16 variant, as taming's VQLPIPSWithDiscriminator uses it
// (taming/modules/losses/lpips.py):
//   d(x, y) = Σ_k mean_hw( lin_k( (n(f_k(s(x))) − n(f_k(s(y))))² ) )      → [B, 1, 1, 1]
// s: ScalingLayer (x − shift)/scale; f_k: VGG16 `features` up to relu1_2 … relu5_3;
// n: unit-normalize over channels (eps 1e-10); lin_k: 1×1 conv, 1 output, no bias.
// Parameters: two flat trees keyed like the files they come from — torchvision's vgg16
// state dict (`features.{i}.weight|bias`) and LPIPS' vgg.pth (`lin{k}.model.1.weight`).
import type { Tensor } from '../graph/ir.ts';
import * as o from '../ops/core.ts';
import { maxPool2d } from '../ops/pool.ts';
import { scoped } from '../graph/trace.ts';
import { loadStateDict } from '../io/formats/checkpoint.ts';
import { ParamView, checkStateDict, type ShapeTree, type StateDict } from '../nn/params.ts';
import { HostTensor } from '../tensor.ts';

/** torchvision's VGG16 configuration 'D': conv widths, 'M' = 2×2 max-pool. */
const VGG16_CFG: readonly (number | 'M')[] = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'];
/** Channels of relu1_2 … relu5_3 (taming `chns`). */
export const LPIPS_CHANNELS: readonly number[] = [64, 128, 256, 512, 512];
/** `features` indices after which taming's slices end: [0:4], [4:9], [9:16], [16:23], [23:30]. */
const SLICE_ENDS = [4, 9, 16, 23, 30];

type Layer = { kind: 'conv'; idx: number; cin: number; cout: number } | { kind: 'relu' | 'pool'; idx: number };

/** `features` as torchvision numbers it: conv, relu (a slot each), pool. */
function vggLayers(): Layer[] {
  const layers: Layer[] = [];
  let cin = 3;
  for (const v of VGG16_CFG) {
    if (v === 'M') layers.push({ kind: 'pool', idx: layers.length });
    else {
      layers.push({ kind: 'conv', idx: layers.length, cin, cout: v });
      layers.push({ kind: 'relu', idx: layers.length });
      cin = v;
    }
  }
  return layers;
}

export function lpipsShapes(): { vgg: ShapeTree; lin: ShapeTree } {
  const vgg: Record<string, number[]> = {};
  for (const l of vggLayers().slice(0, SLICE_ENDS[4])) {
    if (l.kind !== 'conv') continue;
    vgg[`features.${l.idx}.weight`] = [l.cout, l.cin, 3, 3];
    vgg[`features.${l.idx}.bias`] = [l.cout];
  }
  const lin: Record<string, number[]> = {};
  LPIPS_CHANNELS.forEach((c, k) => (lin[`lin${k}.model.1.weight`] = [1, c, 1, 1]));
  return { vgg, lin };
}

/** ScalingLayer: (x − shift)/scale per channel, for inputs in [−1, 1]. */
function scaling(x: Tensor): Tensor {
  const shift = o.constant(HostTensor.float32([1, 3, 1, 1], [-0.03, -0.088, -0.188]));
  const scale = o.constant(HostTensor.float32([1, 3, 1, 1], [0.458, 0.448, 0.45]));
  return o.div(o.sub(x, shift), scale);
}

/** VGG16 features at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (taming's `vgg16.forward`). */
export function vgg16Features(p: ParamView, x: Tensor): Tensor[] {
  const outs: Tensor[] = [];
  let h = x;
  let slice = 0;
  for (const l of vggLayers().slice(0, SLICE_ENDS[4])) {
    if (l.kind === 'conv') h = o.conv2d(h, p.get(`features.${l.idx}.weight`), p.get(`features.${l.idx}.bias`), { padding: 1 });
    else if (l.kind === 'relu') h = o.relu(h);
    else h = maxPool2d(h, 2);
    if (l.idx + 1 === SLICE_ENDS[slice]) {
      outs.push(h);
      slice++;
    }
  }
  return outs;
}

/** normalize_tensor: x / (‖x‖₂ over channels + eps). */
function normalizeChannels(x: Tensor, eps = 1e-10): Tensor {
  return o.div(x, o.add(o.sqrt(o.sum(o.mul(x, x), 1, true)), eps));
}

/**
 * Per-layer LPIPS terms, each [B, 1, 1, 1]: mean_hw lin_k((n(f_k(x)) − n(f_k(y)))²).
 * x, y: [B, 3, H, W] images in [−1, 1] (H, W ≥ 16 so relu5_3 is not empty).
 */
export function lpipsLayers(p: { vgg: ParamView; lin: ParamView }, x: Tensor, y: Tensor): Tensor[] {
  if (x.rank !== 4 || x.shape[1] !== 3) throw new Error(`lpips: expected images [B, 3, H, W], got [${x.shape.join(', ')}]`);
  if (x.shape.join() !== y.shape.join()) throw new Error(`lpips: input shapes differ: [${x.shape.join(', ')}] vs [${y.shape.join(', ')}]`);
  if (x.shape[2]! < 16 || x.shape[3]! < 16) throw new Error(`lpips: images must be at least 16×16, got ${x.shape[3]}×${x.shape[2]}`);
  const fx = scoped('lpips.vgg.input', () => vgg16Features(p.vgg, scaling(x)));
  const fy = scoped('lpips.vgg.target', () => vgg16Features(p.vgg, scaling(y)));
  return fx.map((a, k) =>
    scoped(`lpips.lin${k}`, () => {
      const d = o.square(o.sub(normalizeChannels(a), normalizeChannels(fy[k]!)));
      return o.mean(o.conv2d(d, p.lin.get(`lin${k}.model.1.weight`)), [2, 3], true); // [B, 1, 1, 1]
    }),
  );
}

/** LPIPS distance d(x, y): [B, 1, 1, 1] (taming keeps the dims). */
export function lpips(p: { vgg: ParamView; lin: ParamView }, x: Tensor, y: Tensor): Tensor {
  return lpipsLayers(p, x, y).reduce((a, b) => o.add(a, b));
}

// ---- loading weights ----

export interface LpipsWeights {
  /** `features.{i}.weight|bias` for the 13 convs of VGG16 `features`. */
  vgg: StateDict;
  /** `lin{k}.model.1.weight` [1, C_k, 1, 1]. */
  lin: StateDict;
  /** How keys were found (prefix, renaming), for logs. */
  notes: string[];
}

interface Pick {
  canon: string;
  prefix: string;
}

/** Groups a state dict's keys by the prefix in front of the recognized part. */
function collect(sd: StateDict, match: (k: string) => Pick | null): Map<string, Map<string, string>> {
  const byPrefix = new Map<string, Map<string, string>>(); // prefix → canonical → original
  for (const k of sd.keys()) {
    const m = match(k);
    if (!m) continue;
    let g = byPrefix.get(m.prefix);
    if (!g) byPrefix.set(m.prefix, (g = new Map()));
    // lpips' LPIPS module holds lin{k} twice (lin0 and lins.0): keep the lin{k} spelling
    if (!g.has(m.canon) || /(^|\.)lin\d/.test(k)) g.set(m.canon, k);
  }
  return byPrefix;
}

/** torchvision `features.{i}.*`, or taming / lpips `net.slice{s}.{i}.*` (same indices). */
function matchVgg(k: string): Pick | null {
  let m = /(^|\.)features\.(\d+)\.([A-Za-z_]+)$/.exec(k);
  if (m) return { canon: `features.${m[2]}.${m[3]}`, prefix: k.slice(0, m.index + m[1]!.length) };
  m = /(^|\.)net\.slice[1-5]\.(\d+)\.([A-Za-z_]+)$/.exec(k);
  if (m) return { canon: `features.${m[2]}.${m[3]}`, prefix: k.slice(0, m.index + m[1]!.length) + 'net.' };
  return null;
}

/** `lin{k}.model.{1|0}.weight` or `lins.{k}.model.{1|0}.weight` (model.0 when built without dropout). */
function matchLin(k: string): Pick | null {
  const m = /(^|\.)(?:lin(\d+)|lins\.(\d+))\.model\.([01])\.weight$/.exec(k);
  if (!m) return null;
  return { canon: `lin${m[2] ?? m[3]}.model.1.weight`, prefix: k.slice(0, m.index + m[1]!.length) };
}

function pick(sd: StateDict, match: (k: string) => Pick | null, expected: ShapeTree, what: string, source: string, notes: string[]): StateDict {
  const groups = collect(sd, match);
  if (groups.size === 0) {
    const sample = [...sd.keys()].slice(0, 5).join(', ');
    throw new Error(`${source}: no ${what} weights found (expected keys like '${Object.keys(expected)[0]}'; the file has ${sd.size} keys${sample ? `: ${sample}${sd.size > 5 ? ', …' : ''}` : ''})`);
  }
  if (groups.size > 1) {
    const ps = [...groups.keys()].map((p) => `'${p || '(none)'}'`).join(', ');
    throw new Error(`${source}: ${what} weights found under several prefixes (${ps}); pass a file with one set`);
  }
  const [prefix, g] = [...groups][0]!;
  const out: StateDict = new Map();
  let renamed = false;
  for (const [canon, orig] of g) {
    out.set(canon, sd.get(orig)!);
    if (orig !== prefix + canon) renamed = true;
  }
  checkStateDict(out, expected, { source: `${source} (${what}${prefix ? `, prefix '${prefix}'` : ''}${renamed ? ', keys renamed to the torchvision/LPIPS names' : ''})` });
  for (const k of Object.keys(expected)) {
    const t = out.get(k)!;
    if (t.dtype !== 'float32') throw new Error(`${source}: '${g.get(k)}' has dtype ${t.dtype}, expected a floating-point tensor`);
  }
  notes.push(`${what}: ${out.size} tensors from ${source}${prefix ? ` under '${prefix}'` : ''}${renamed ? ' (renamed)' : ''}`);
  return new Map(Object.keys(expected).map((k) => [k, out.get(k)!]));
}

/**
 * Extracts LPIPS weights from in-memory state dicts. Accepted layouts: torchvision vgg16
 * (`features.*`; `classifier.*` ignored), taming/lpips LPIPS modules (`net.slice{s}.{i}.*`,
 * `lin{k}.model.1.weight`, `lins.{k}…`), also under a prefix such as
 * `loss.perceptual_loss.` (a taming training checkpoint carries the whole LPIPS).
 */
export function lpipsWeightsFrom(vggSd: StateDict, linSd: StateDict, sources: { vgg?: string; lin?: string } = {}): LpipsWeights {
  const shapes = lpipsShapes();
  const notes: string[] = [];
  const vgg = pick(vggSd, matchVgg, shapes.vgg, 'VGG16 features', sources.vgg ?? '<vgg state dict>', notes);
  const lin = pick(linSd, matchLin, shapes.lin, 'LPIPS linear heads', sources.lin ?? '<lin state dict>', notes);
  return { vgg, lin, notes };
}

/**
 * Reads LPIPS weights from files (.pth / .pt / .ckpt / .safetensors, by content). `vggPath`:
 * torchvision's vgg16 state dict (e.g. vgg16-397923af.pth) or any file holding the LPIPS
 * VGG; `linPath`: LPIPS' vgg.pth (taming's `vgg_lpips`). With `linPath` omitted both come
 * from `vggPath` (e.g. a taming checkpoint with `loss.perceptual_loss.*`). Nothing downloads.
 */
export function loadLpipsWeights(vggPath: string, linPath?: string): LpipsWeights {
  const vggSd = loadStateDict(vggPath).stateDict;
  const linSd = linPath === undefined || linPath === vggPath ? vggSd : loadStateDict(linPath).stateDict;
  return lpipsWeightsFrom(vggSd, linSd, { vgg: vggPath, lin: linPath ?? vggPath });
}
