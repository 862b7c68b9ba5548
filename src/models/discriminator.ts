// pix2pix PatchGAN discriminator (taming's NLayerDiscriminator): 4×4 convs, LeakyReLU 0.2,
// BatchNorm (train mode with running stats) or ActNorm; keys as in taming's `main` Sequential.
import type { Tensor } from '../graph/ir.ts';
import * as o from '../ops/core.ts';
import * as nn from '../ops/nn.ts';
import { ParamView, type InitRng, fill, normalTensor, uniformTensor, type ShapeTree, type StateDict, type TensorTree } from '../nn/params.ts';

export interface DiscConfig {
  in_channels: number;
  ndf: number;
  n_layers: number;
  /** ActNorm instead of BatchNorm (taming `use_actnorm`). */
  actnorm: boolean;
}

interface Layer {
  idx: number;
  cin: number;
  cout: number;
  stride: number;
  bias: boolean;
  norm: number | null;
  act: boolean;
}

/** The Sequential's layers with their indices in `main` (LeakyReLU slots keep their numbers). */
export function discLayers(c: DiscConfig): Layer[] {
  const layers: Layer[] = [];
  let i = 0;
  const useBias = c.actnorm; // taming: bias only when the norm is not BatchNorm
  layers.push({ idx: i, cin: c.in_channels, cout: c.ndf, stride: 2, bias: true, norm: null, act: true });
  i += 2;
  let mult = 1;
  for (let n = 1; n < c.n_layers; n++) {
    const prev = mult;
    mult = Math.min(2 ** n, 8);
    layers.push({ idx: i, cin: c.ndf * prev, cout: c.ndf * mult, stride: 2, bias: useBias, norm: i + 1, act: true });
    i += 3;
  }
  const prev = mult;
  mult = Math.min(2 ** c.n_layers, 8);
  layers.push({ idx: i, cin: c.ndf * prev, cout: c.ndf * mult, stride: 1, bias: useBias, norm: i + 1, act: true });
  i += 3;
  layers.push({ idx: i, cin: c.ndf * mult, cout: 1, stride: 1, bias: true, norm: null, act: false });
  return layers;
}

/** taming's weights_init: conv weights N(0, 0.02) (bias: PyTorch default), norm weight N(1, 0.02), bias 0. */
export function initDiscriminator(c: DiscConfig, rng: InitRng | null, prefix = ''): { params: StateDict; buffers: StateDict } {
  const params: StateDict = new Map();
  const buffers: StateDict = new Map();
  for (const l of discLayers(c)) {
    const k = `${prefix}main.${l.idx}`;
    params.set(`${k}.weight`, normalTensor(rng, [l.cout, l.cin, 4, 4], 0.02));
    if (l.bias) params.set(`${k}.bias`, uniformTensor(rng, [l.cout], 1 / Math.sqrt(l.cin * 16)));
    if (l.norm !== null) {
      const nk = `${prefix}main.${l.norm}`;
      if (c.actnorm) {
        params.set(`${nk}.loc`, fill([1, l.cout, 1, 1], 0));
        params.set(`${nk}.scale`, fill([1, l.cout, 1, 1], 1));
      } else {
        params.set(`${nk}.weight`, normalTensor(rng, [l.cout], 0.02, 1));
        params.set(`${nk}.bias`, fill([l.cout], 0));
        buffers.set(`${nk}.running_mean`, fill([l.cout], 0));
        buffers.set(`${nk}.running_var`, fill([l.cout], 1));
      }
    }
  }
  return { params, buffers };
}

export function discShapes(c: DiscConfig, prefix = ''): { params: ShapeTree; buffers: ShapeTree } {
  const { params, buffers } = initDiscriminator(c, null, prefix);
  const s = (m: StateDict) => Object.fromEntries([...m].map(([k, v]) => [k, v.shape]));
  return { params: s(params), buffers: s(buffers) };
}

/**
 * Logits [B, 1, h, w]. In training mode BatchNorm uses batch statistics and the updated
 * running statistics are returned (keyed like the buffers).
 */
export function discriminator(p: ParamView, c: DiscConfig, x: Tensor, training: boolean, buffers: TensorTree = {}): { logits: Tensor; buffers: TensorTree } {
  const updated: TensorTree = {};
  let h = x;
  for (const l of discLayers(c)) {
    h = o.conv2d(h, p.get(`main.${l.idx}.weight`), p.opt(`main.${l.idx}.bias`), { stride: l.stride, padding: 1 });
    if (l.norm !== null) {
      const np = p.sub(`main.${l.norm}`);
      if (c.actnorm) {
        h = o.mul(np.get('scale'), o.add(h, np.get('loc')));
      } else {
        const rmKey = np.key('running_mean');
        const rvKey = np.key('running_var');
        const r = nn.batchNorm(h, { weight: np.get('weight'), bias: np.get('bias'), runningMean: buffers[rmKey]!, runningVar: buffers[rvKey]! }, { training });
        h = r.y;
        if (r.runningMean) {
          updated[rmKey] = r.runningMean;
          updated[rvKey] = r.runningVar!;
        }
      }
    }
    if (l.act) h = o.leakyRelu(h, 0.2);
  }
  return { logits: h, buffers: updated };
}

