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
// `stages` (default 3, factor 8: the layout above) generalises the depth for VAEs of other
// factors 2^stages (distill_preview.ts trains such decoders): the decoder repeats
// "3 Blocks, Upsample, conv" `stages` times, the encoder "stride-2 conv, 3 Blocks", so the
// keys of a 3-stage part are the original ones and the last index tells the stage count.
import type { Tensor } from '../../graph/ir.ts';
import * as o from '../../ops/core.ts';
import * as nn from '../../ops/nn.ts';
import type { ParamView, ShapeTree } from '../../nn/params.ts';

export type TAESDPart = 'encoder' | 'decoder';

const W = 64;
/** Sequential layout: 'c' conv 3×3 with bias, 'n' conv 3×3 without bias, 's' stride-2 conv without bias, 'b' Block, 'u' 2× nearest upsample, '-' a parameter-free layer (Clamp, ReLU). */
export function taesdLayout(part: TAESDPart, stages = 3): string {
  if (!Number.isInteger(stages) || stages < 0) throw new Error(`TAESD: stages must be a whole number ≥ 0, got ${stages}`);
  return part === 'decoder' ? `-c-${'bbbun'.repeat(stages)}bc` : `cb${'sbbb'.repeat(stages)}c`; // 3: '-c-bbbunbbbunbbbunbc', 'cbsbbbsbbbsbbbc'
}

/**
 * The stage count of a part from its keys (the index of its last layer: 5·stages + 4 for a
 * decoder, 4·stages + 2 for an encoder); 3 when the keys fit no stage count (the shape check
 * then names what is missing).
 */
export function taesdStages(part: TAESDPart, keys: Iterable<string>): number {
  let last = -1;
  for (const k of keys) {
    const m = /^(\d+)\./.exec(k);
    if (m) last = Math.max(last, Number(m[1]));
  }
  const s = part === 'decoder' ? (last - 4) / 5 : (last - 2) / 4;
  return Number.isInteger(s) && s >= 0 ? s : 3;
}

function convShapes(shapes: Record<string, number[]>, key: string, cin: number, cout: number, bias: boolean) {
  shapes[`${key}.weight`] = [cout, cin, 3, 3];
  if (bias) shapes[`${key}.bias`] = [cout];
}

/** Parameter shapes of one part, keyed as the original taesd_{encoder,decoder}.pth (stages 3). */
export function taesdShapes(part: TAESDPart, latentChannels: number, stages = 3): ShapeTree {
  const s: Record<string, number[]> = {};
  const layout = taesdLayout(part, stages);
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

function run(p: ParamView, part: TAESDPart, x: Tensor, stages: number): Tensor {
  const layout = taesdLayout(part, stages);
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

/** Scaled latents [B, C, h, w] → images [B, 3, 2^stages·h, 2^stages·w] (8h × 8w by default) in ≈[0, 1] (unclamped, as the original). */
export function taesdDecode(p: ParamView, z: Tensor, stages = 3): Tensor {
  return run(p, 'decoder', z, stages);
}

/** Images [B, 3, H, W] in [0, 1] → scaled latents [B, C, H/2^stages, W/2^stages] (H/8 by default). */
export function taesdEncode(p: ParamView, x: Tensor, stages = 3): Tensor {
  return run(p, 'encoder', x, stages);
}

/** taesdDecode in the library's image convention: scaled latents → images in ≈[−1, 1] (TAESD's [0, 1] mapped). */
export function taesdDecodeImage(p: ParamView, z: Tensor, stages = 3): Tensor {
  return o.sub(o.mul(taesdDecode(p, z, stages), 2), 1);
}

/** taesdEncode in the library's image convention: images in [−1, 1] → scaled latents. */
export function taesdEncodeImage(p: ParamView, x: Tensor, stages = 3): Tensor {
  return taesdEncode(p, o.div(o.add(x, 1), 2), stages);
}
