"""Writes the TAESD parity fixture test/fixtures/taesd/taesd_io.safetensors (run with Debian's
torch: `/usr/bin/python3 scripts/make_taesd_fixtures.py`). Tests never need Python.

The networks are a PyTorch re-implementation of TAESD's published architecture (madebyollin/
taesd: an nn.Sequential encoder and decoder of 64-channel 3x3 convs and residual Blocks),
filled with hash weights (scripts/hashinit.py), so the TypeScript side regenerates the
weights from the key names and only inputs, outputs and the state-dict key lists ship.

  c4.* / c16.*       latent channels 4 (taesd, taesdxl) and 16 (taesd3, taef1):
                     latents [1,C,4,6] -> decoded [1,3,32,48] (decoder output, [0,1] scale)
                     image [1,3,32,48] in [0,1] -> encoded [1,C,4,6]
  metadata           keys.decoder / keys.encoder: [[key, shape], ...] in state_dict order
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
import hashinit  # noqa: E402
import st  # noqa: E402


def conv(cin, cout, **kw):
    return nn.Conv2d(cin, cout, 3, padding=1, **kw)


class Clamp(nn.Module):
    def forward(self, x):
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Sequential(conv(cin, cout), nn.ReLU(), conv(cout, cout), nn.ReLU(), conv(cout, cout))
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x):
        return self.fuse(self.conv(x) + self.skip(x))


def encoder(c):
    b = lambda: Block(64, 64)  # noqa: E731
    down = lambda: conv(64, 64, stride=2, bias=False)  # noqa: E731
    return nn.Sequential(conv(3, 64), b(), down(), b(), b(), b(), down(), b(), b(), b(), down(), b(), b(), b(), conv(64, c))


def decoder(c):
    b = lambda: Block(64, 64)  # noqa: E731
    up = lambda: [nn.Upsample(scale_factor=2), conv(64, 64, bias=False)]  # noqa: E731
    return nn.Sequential(Clamp(), conv(c, 64), nn.ReLU(), b(), b(), b(), *up(), b(), b(), b(), *up(), b(), b(), b(), *up(), b(), conv(64, 3))


def main():
    out_dir = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "taesd")
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(5)
    tensors = {}
    meta = {}
    torch.set_grad_enabled(False)
    for c in (4, 16):
        dec = hashinit.load_hash_weights(decoder(c)).eval()
        enc = hashinit.load_hash_weights(encoder(c)).eval()
        if c == 4:
            meta["keys.decoder"] = json.dumps([[k, list(v.shape)] for k, v in dec.state_dict().items()])
            meta["keys.encoder"] = json.dumps([[k, list(v.shape)] for k, v in enc.state_dict().items()])
        lat = (rng.standard_normal((1, c, 4, 6)) * 1.5).astype(np.float32)
        # a smooth image in [0, 1] with a little texture
        yy, xx = np.meshgrid(np.linspace(0, 1, 32), np.linspace(0, 1, 48), indexing="ij")
        img = np.stack([xx, yy, 0.5 + 0.4 * np.sin(6 * xx + 3 * yy)])[None].astype(np.float32)
        img = np.clip(img + 0.03 * rng.standard_normal(img.shape), 0, 1).astype(np.float32)
        tensors[f"c{c}.latents"] = lat
        tensors[f"c{c}.decoded"] = dec(torch.from_numpy(lat)).numpy()
        tensors[f"c{c}.image"] = img
        tensors[f"c{c}.encoded"] = enc(torch.from_numpy(img)).numpy()
    st.save(os.path.join(out_dir, "taesd_io.safetensors"), tensors, meta)
    print("wrote", os.path.join(out_dir, "taesd_io.safetensors"))


if __name__ == "__main__":
    main()
