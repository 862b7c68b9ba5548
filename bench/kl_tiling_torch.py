"""PyTorch side of bench/kl_tiling.ts: the reference untiled decode and diffusers' tiled decode.

Loads the kl-f8 model that bench/kl_tiling.ts wrote (an ldm-named .safetensors with the config
in its metadata) into the latent-diffusion AutoencoderKL of scripts/make_kl_fixtures.py
(strict load), encodes a smooth gradient image (posterior mode), then decodes the latent
  - whole (the reference), and
  - as diffusers' AutoencoderKL.tiled_decode does it (re-implemented here from its documented
    behaviour: tiles of TILE latents every int(TILE·(1 − 0.25)) latents, each decoded alone
    with its own GroupNorm statistics; each tile blended into the one above (blend_v) and the
    one to its left (blend_h) linearly over int(8·TILE·0.25) output pixels, in place, in row-
    major order; each tile then keeps its first 8·TILE − blend pixels per side).
Writes OUT (safetensors): latents (scaled by 0.18215, [1, 4, h, w], the CLI's input), z
(unscaled), image (the gradient), untiled, diffusers.

  /usr/bin/python3 bench/kl_tiling_torch.py --model .bench/kl_f8.safetensors --out .bench/kl_tiling_torch.safetensors [--size 512] [--tile 32]
"""
import argparse
import json
import os
import sys
import time
from collections import OrderedDict

import numpy as np
import torch

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import st  # noqa: E402
from make_kl_fixtures import AutoencoderKL  # noqa: E402

SCALE = 0.18215  # SD 1.x / 2.x latent scaling


def load(path):
    tensors, meta = st.load(path)
    c = json.loads(meta["config"])
    model = AutoencoderKL(c["ddconfig"], c["embed_dim"], c.get("use_quant_conv", True), c.get("use_post_quant_conv", True))
    sd = OrderedDict((k, torch.from_numpy(np.asarray(v, dtype=np.float32))) for k, v in tensors.items())
    model.load_state_dict(sd, strict=True)
    return model.eval()


def gradient(size):
    """A smooth 3-channel image in [−1, 1]: red left→right, green top→bottom, blue along the other diagonal."""
    u = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    return torch.stack([2 * xx - 1, 2 * yy - 1, 1 - (xx + yy)])[None]


def blend_v(a, b, extent):
    extent = min(a.shape[2], b.shape[2], extent)
    for y in range(extent):
        b[:, :, y, :] = a[:, :, -extent + y, :] * (1 - y / extent) + b[:, :, y, :] * (y / extent)
    return b


def blend_h(a, b, extent):
    extent = min(a.shape[3], b.shape[3], extent)
    for x in range(extent):
        b[:, :, :, x] = a[:, :, :, -extent + x] * (1 - x / extent) + b[:, :, :, x] * (x / extent)
    return b


def diffusers_tiled_decode(model, z, tile, overlap=0.25, factor=8):
    stride = int(tile * (1 - overlap))
    sample = tile * factor
    extent = int(sample * overlap)
    keep = sample - extent
    rows = []
    for i in range(0, z.shape[2], stride):
        rows.append([model.decode(z[:, :, i:i + tile, j:j + tile]) for j in range(0, z.shape[3], stride)])
    out_rows = []
    for i, row in enumerate(rows):
        out = []
        for j, t in enumerate(row):
            if i > 0:
                t = blend_v(rows[i - 1][j], t, extent)
            if j > 0:
                t = blend_h(row[j - 1], t, extent)
            out.append(t[:, :, :keep, :keep])
        out_rows.append(torch.cat(out, dim=3))
    return torch.cat(out_rows, dim=2), dict(stride=stride, blend=extent, keep=keep, tiles=sum(len(r) for r in rows))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--tile", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    model = load(a.model)
    x = gradient(a.size)
    with torch.no_grad():
        t0 = time.time()
        z = model.encode(x).mean
        t1 = time.time()
        untiled = model.decode(z)
        t2 = time.time()
        dif, info = diffusers_tiled_decode(model, z, a.tile)
        t3 = time.time()
    print(f"encode {t1 - t0:.1f} s, untiled decode {t2 - t1:.1f} s, diffusers-style tiled decode {t3 - t2:.1f} s "
          f"({info['tiles']} tiles of {a.tile} latents, stride {info['stride']}, blend {info['blend']} px, keep {info['keep']} px)", file=sys.stderr)
    print(f"z {tuple(z.shape)} mean {z.mean():.3f} std {z.std():.3f}; untiled range [{untiled.min():.3f}, {untiled.max():.3f}]", file=sys.stderr)
    st.save(a.out, {"latents": (z * SCALE).numpy(), "z": z.numpy(), "image": x.numpy(), "untiled": untiled.numpy(), "diffusers": dif.numpy()},
            {"diffusers_stride": str(info["stride"]), "diffusers_blend": str(info["blend"]), "diffusers_tiles": str(info["tiles"])})


if __name__ == "__main__":
    main()
