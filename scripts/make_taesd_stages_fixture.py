"""Writes test/fixtures/taesd/taesd_stages.safetensors (run with Debian's torch:
`/usr/bin/python3 scripts/make_taesd_stages_fixture.py`): TAESD with fewer 2x resampling
stages than the published 3, as distill-preview trains for f2 / f4 VAEs. The decoder repeats
"3 Blocks, Upsample, conv (no bias)" `stages` times between its first conv and its last Block,
the encoder "stride-2 conv, 3 Blocks" after its first Block; 3 stages is TAESD itself. Hash
weights (scripts/hashinit.py) from the key names, so only inputs, outputs and key lists ship.

  s{k}.latents [1,4,3,5] -> s{k}.decoded [1,3,3*2^k,5*2^k] (decoder output, [0,1] scale)
  s{k}.image [1,3,3*2^k,5*2^k] in [0,1] -> s{k}.encoded [1,4,3,5]         for k = 1, 2
  metadata keys.decoder.s{k} / keys.encoder.s{k}: [[key, shape], ...] in state_dict order
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
from make_taesd_fixtures import Block, Clamp, conv  # noqa: E402


def encoder(c, stages):
    layers = [conv(3, 64), Block(64, 64)]
    for _ in range(stages):
        layers += [conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64)]
    return nn.Sequential(*layers, conv(64, c))


def decoder(c, stages):
    layers = [Clamp(), conv(c, 64), nn.ReLU()]
    for _ in range(stages):
        layers += [Block(64, 64), Block(64, 64), Block(64, 64), nn.Upsample(scale_factor=2), conv(64, 64, bias=False)]
    return nn.Sequential(*layers, Block(64, 64), conv(64, 3))


def main():
    out = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "taesd", "taesd_stages.safetensors")
    rng = np.random.default_rng(11)
    tensors, meta = {}, {}
    torch.set_grad_enabled(False)
    for s in (1, 2):
        dec = hashinit.load_hash_weights(decoder(4, s)).eval()
        enc = hashinit.load_hash_weights(encoder(4, s)).eval()
        meta[f"keys.decoder.s{s}"] = json.dumps([[k, list(v.shape)] for k, v in dec.state_dict().items()])
        meta[f"keys.encoder.s{s}"] = json.dumps([[k, list(v.shape)] for k, v in enc.state_dict().items()])
        lat = (rng.standard_normal((1, 4, 3, 5)) * 1.5).astype(np.float32)
        img = rng.uniform(0, 1, (1, 3, 3 * 2**s, 5 * 2**s)).astype(np.float32)
        tensors[f"s{s}.latents"] = lat
        tensors[f"s{s}.decoded"] = dec(torch.from_numpy(lat)).numpy()
        tensors[f"s{s}.image"] = img
        tensors[f"s{s}.encoded"] = enc(torch.from_numpy(img)).numpy()
    st.save(out, tensors, meta)
    print("wrote", out)


if __name__ == "__main__":
    main()
