"""Reference for test/models/lpips.test.ts: taming's LPIPS (taming/modules/losses/lpips.py)
with VGG16 `features` laid out as torchvision numbers them, all weights from hash init
(scripts/hashinit.py, keyed `features.{i}.weight|bias` and `lin{k}.model.1.weight`), so only
inputs and outputs are stored. torchvision is not needed (nor installed): the Sequential
below reproduces vgg16().features' layer indices; the slices are taming's.

Writes test/fixtures/lpips/:
  lpips_io.safetensors  x, y [2,3,64,64] in [-1,1]; value [2,1,1,1]; layers [5,2] (per-layer
                        terms); grad_y = d value.sum() / d y; grad_x likewise.
                        Reference computed in float64 from the float32 weights and inputs
                        (metadata: float32 torch's own error against it).
  lin.pth               an LPIPS vgg.pth look-alike (torch.save of an OrderedDict with keys
                        lin0.model.1.weight ... lin4.model.1.weight, hash values), to test the
                        loader on the real file layout.

    /usr/bin/python3 scripts/make_lpips_fixture.py
"""
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402
from hashinit import hash_array  # noqa: E402

CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
CHNS = [64, 128, 256, 512, 512]
SLICES = [(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)]


def vgg16_features():
    """torchvision.models.vgg16().features: conv 3x3 pad 1, ReLU, MaxPool2d(2, 2)."""
    layers, cin = [], 3
    for v in CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(cin, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers)


class NetLinLayer(nn.Module):
    def __init__(self, chn_in):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(chn_in, 1, 1, stride=1, padding=0, bias=False))


class LPIPS(nn.Module):
    """taming's LPIPS.forward, with the VGG kept as `features` (slices applied in forward)."""

    def __init__(self):
        super().__init__()
        self.features = vgg16_features()
        for k, c in enumerate(CHNS):
            setattr(self, f"lin{k}", NetLinLayer(c))
        self.register_buffer("shift", torch.tensor([-.030, -.088, -.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([.458, .448, .450])[None, :, None, None])

    def vgg(self, x):
        outs, h = [], x
        for a, b in SLICES:
            for i in range(a, b):
                h = self.features[i](h)
            outs.append(h)
        return outs

    def forward(self, x, y):
        def norm(t, eps=1e-10):
            return t / (torch.sqrt(torch.sum(t ** 2, dim=1, keepdim=True)) + eps)

        f0 = self.vgg((x - self.shift) / self.scale)
        f1 = self.vgg((y - self.shift) / self.scale)
        res = [getattr(self, f"lin{k}").model((norm(f0[k]) - norm(f1[k])) ** 2).mean([2, 3], keepdim=True)
               for k in range(len(CHNS))]
        val = res[0]
        for r in res[1:]:
            val = val + r
        return val, res


def hash_model():
    m = LPIPS().eval()  # eval: Dropout is the identity, as in taming (LPIPS().eval())
    with torch.no_grad():
        for k, p in m.named_parameters():
            p.copy_(torch.from_numpy(hash_array(k, tuple(p.shape))))
    return m


def run(m, x, y, dtype):
    m = m.to(dtype)
    xx = x.to(dtype).clone().requires_grad_(True)
    yy = y.to(dtype).clone().requires_grad_(True)
    val, res = m(xx, yy)
    gx, gy = torch.autograd.grad(val.sum(), [xx, yy])
    return val.detach(), torch.stack([r.detach().reshape(-1) for r in res]), gx, gy


def rel(a, b):
    return float(torch.linalg.norm((a.double() - b.double()).reshape(-1)) / torch.linalg.norm(b.double().reshape(-1)))


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    # smooth-ish images in [-1, 1] and a perturbed copy (a realistic reconstruction pair)
    base = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    x = torch.nn.functional.interpolate(base, size=(64, 64), mode="bilinear", align_corners=False)
    x = (x + 0.15 * torch.randn(2, 3, 64, 64, generator=g)).clamp(-1, 1).float()
    y = (x + 0.2 * torch.randn(2, 3, 64, 64, generator=g)).clamp(-1, 1).float()

    m = hash_model()
    v64, l64, gx64, gy64 = run(m, x, y, torch.float64)
    v32, l32, gx32, gy32 = run(hash_model(), x, y, torch.float32)
    meta = {
        "torch": torch.__version__,
        "script": "scripts/make_lpips_fixture.py",
        "reference": "float64 from float32 hash weights and inputs",
        "torch_float32_relerr_value": f"{rel(v32, v64):.3e}",
        "torch_float32_relerr_grad_y": f"{rel(gy32, gy64):.3e}",
        "torch_float32_relerr_grad_x": f"{rel(gx32, gx64):.3e}",
    }
    out = {
        "x": x.numpy(), "y": y.numpy(),
        "value": v64.float().numpy(), "layers": l64.float().numpy(),
        "grad_y": gy64.float().numpy(), "grad_x": gx64.float().numpy(),
    }
    d = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "lpips")
    os.makedirs(d, exist_ok=True)
    st.save(os.path.join(d, "lpips_io.safetensors"), out, meta)
    lin = OrderedDict((f"lin{k}.model.1.weight", torch.from_numpy(hash_array(f"lin{k}.model.1.weight", (1, c, 1, 1))))
                      for k, c in enumerate(CHNS))
    torch.save(lin, os.path.join(d, "lin.pth"))
    print("value", v64.reshape(-1).tolist(), "layers", l64.tolist())
    print(meta)
    for f in sorted(os.listdir(d)):
        print(f, os.path.getsize(os.path.join(d, f)), "bytes")


if __name__ == "__main__":
    main()
