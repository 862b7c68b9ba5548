// TAESD ("Tiny AutoEncoder for Stable Diffusion", madebyollin/taesd): a small conv encoder
// and decoder that speak a KL VAE's latent API, used for instant previews. Each is an
// nn.Sequential in the original files, so parameters are keyed by Sequential index:
//   decoder: 0 Clamp (tanh(x/3)·3), 1 conv(C→64), 2 ReLU, 3–5 Block, 6 Upsample, 7 conv (no
//            bias), 8–10 Block, 11 Up, 12 conv, 13–15 Block, 16 Up, 17 conv, 18 Block, 19 conv(64→3)
//   encoder: 0 conv(3→64), 1 Block, 2 conv s2 (no bias), 3–5 Block, 6 conv s2, 7–9 Block,
//            10 conv s2, 11–13 Block, 14 conv(64→C)
// Block(x) = ReLU(conv(ReLU(conv(ReLU(conv(x))))) + x), convs 3×3 padding 1 ("conv.0/2/4").
// Images are [0, 1]; latents are the diffusion-space (scaled) latents of the matching VAE
// (C = 4 for taesd / taesdxl, 16 for taesd3 / taef1).
import type { Tensor } from '../../graph/ir.ts';
import * as o from '../../ops/core.ts';
import * as nn from '../../ops/nn.ts';
import type { ParamView, ShapeTree } from '../../nn/params.ts';

export type TAESDPart = 'encoder' | 'decoder';

const W = 64;
/** Sequential layout: 'c' conv 3×3 with bias, 'n' conv 3×3 without bias, 's' stride-2 conv without bias, 'b' Block, 'u' 2× nearest upsample, '-' a parameter-free layer (Clamp, ReLU). */
const LAYOUT: Record<TAESDPart, string> = {
  decoder: '-c-bbbunbbbunbbbunbc',
  encoder: 'cbsbbbsbbbsbbbc',
};

function convShapes(shapes: Record<string, number[]>, key: string, cin: number, cout: number, bias: boolean) {
  shapes[`${key}.weight`] = [cout, cin, 3, 3];
  if (bias) shapes[`${key}.bias`] = [cout];
}

/** Parameter shapes of one part, keyed as the original taesd_{encoder,decoder}.pth. */
export function taesdShapes(part: TAESDPart, latentChannels: number): ShapeTree {
  const s: Record<string, number[]> = {};
  const layout = LAYOUT[part];
  [...layout].forEach((l, i) => {
    const first = i === layout.indexOf('c');
    const last = i === layout.length - 1;
    const cin = first ? (part === 'decoder' ? latentChannels : 3) : W;
    const cout = last ? (part === 'decoder' ? 3 : latentChannels) : W;
    if (l === 'c') convShapes(s, String(i), cin, cout, true);
    else if (l === 'n' || l === 's') convShapes(s, String(i), W, W, false);
    else if (l === 'b') for (const j of [0, 2, 4]) convShapes(s, `${i}.conv.${j}`, W, W, true);
  });
  return s;
}

const conv3 = (p: ParamView, x: Tensor, stride = 1): Tensor => o.conv2d(x, p.get('weight'), p.opt('bias'), { padding: 1, stride });

/** Block: ReLU(conv·ReLU·conv·ReLU·conv(x) + x) — all TAESD blocks are 64→64, so the skip is identity. */
function block(p: ParamView, x: Tensor): Tensor {
  let h = o.relu(conv3(p.sub('conv.0'), x));
  h = o.relu(conv3(p.sub('conv.2'), h));
  h = conv3(p.sub('conv.4'), h);
  return o.relu(o.add(h, x));
}

function run(p: ParamView, part: TAESDPart, x: Tensor): Tensor {
  const layout = LAYOUT[part];
  let h = x;
  [...layout].forEach((l, i) => {
    const q = p.sub(i);
    if (l === 'c' || l === 'n') h = conv3(q, h);
    else if (l === 's') h = conv3(q, h, 2);
    else if (l === 'b') h = block(q, h);
    else if (l === 'u') h = nn.upsampleNearest2x(h);
    else if (part === 'decoder') h = i === 0 ? o.mul(o.tanh(o.div(h, 3)), 3) : o.relu(h); // Clamp, ReLU
  });
  return h;
}

/** Scaled latents [B, C, h, w] → images [B, 3, 8h, 8w] in ≈[0, 1] (unclamped, as the original). */
export function taesdDecode(p: ParamView, z: Tensor): Tensor {
  return run(p, 'decoder', z);
}

/** Images [B, 3, H, W] in [0, 1] → scaled latents [B, C, H/8, W/8]. */
export function taesdEncode(p: ParamView, x: Tensor): Tensor {
  return run(p, 'encoder', x);
}
