"""Reference for the engine parity test: a small taming-style conv net in PyTorch.

conv 3x3 -> GroupNorm -> SiLU -> pad (0,1,0,1) + conv 3x3 stride 2 -> AttnBlock ->
VectorQuantizer (legacy beta, straight-through) -> nearest 2x upsample -> conv 3x3 ->
GroupNorm -> SiLU -> conv 3x3 out. Loss = L1 + L2 reconstruction + codebook loss.
Writes test/fixtures/engine/smallnet.safetensors with the initial parameters, the input,
the loss, indices, every parameter gradient, and the trajectories of 5 Adam and 5 AdamW
steps (torch.optim). Run with Debian's interpreter: /usr/bin/python3 scripts/make_engine_fixture.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402

torch.manual_seed(0)
C, G, K, BETA = 8, 4, 16, 0.25


class AttnBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = nn.GroupNorm(G, c, eps=1e-6)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        b, c, hh, ww = q.shape
        q = q.reshape(b, c, hh * ww).permute(0, 2, 1)
        k = k.reshape(b, c, hh * ww)
        w = torch.bmm(q, k) * (c ** -0.5)
        w = F.softmax(w, dim=2)
        v = v.reshape(b, c, hh * ww)
        h = torch.bmm(v, w.permute(0, 2, 1)).reshape(b, c, hh, ww)
        return x + self.proj_out(h)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(3, C, 3, padding=1)
        self.norm1 = nn.GroupNorm(G, C, eps=1e-6)
        self.down = nn.Module()
        self.down.conv = nn.Conv2d(C, C, 3, stride=2, padding=0)
        self.attn = AttnBlock(C)
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Embedding(K, C)
        self.quantize.embedding.weight.data.uniform_(-1.0 / K, 1.0 / K)
        self.up = nn.Module()
        self.up.conv = nn.Conv2d(C, C, 3, padding=1)
        self.norm_out = nn.GroupNorm(G, C, eps=1e-6)
        self.conv_out = nn.Conv2d(C, 3, 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        h = F.silu(self.norm1(h))
        h = self.down.conv(F.pad(h, (0, 1, 0, 1)))
        z = self.attn(h)
        zf = z.permute(0, 2, 3, 1).reshape(-1, C)
        e = self.quantize.embedding.weight
        d = (zf ** 2).sum(1, keepdim=True) + (e ** 2).sum(1) - 2 * zf @ e.t()
        idx = torch.argmin(d, dim=1)
        zq = e[idx].view(z.shape[0], z.shape[2], z.shape[3], C).permute(0, 3, 1, 2)
        qloss = torch.mean((zq.detach() - z) ** 2) + BETA * torch.mean((zq - z.detach()) ** 2)
        zq = z + (zq - z).detach()
        h = F.interpolate(zq, scale_factor=2.0, mode="nearest")
        h = self.up.conv(h)
        h = F.silu(self.norm_out(h))
        xr = self.conv_out(h)
        loss = (x - xr).abs().mean() + ((x - xr) ** 2).mean() + qloss
        return loss, xr, idx


def main():
    out = {}
    net = Net()
    # make the codebook spread like real encoder outputs so argmin is not degenerate
    net.quantize.embedding.weight.data.normal_(0, 0.5)
    x = torch.randn(2, 3, 16, 16)
    init = {k: v.detach().clone() for k, v in net.state_dict().items()}
    for k, v in init.items():
        out["param." + k] = v.numpy()
    out["input.x"] = x.numpy()
    loss, xr, idx = net(x)
    loss.backward()
    out["out.loss"] = np.array([loss.item()], np.float32)
    out["out.xrec"] = xr.detach().numpy()
    out["out.indices"] = idx.numpy().astype(np.int64)
    for k, p in net.named_parameters():
        out["grad." + k] = p.grad.numpy().copy()

    def run(tag, make_opt):
        net.load_state_dict(init)
        opt = make_opt(net)
        losses = []
        for _ in range(5):
            opt.zero_grad()
            l, _, _ = net(x)
            l.backward()
            opt.step()
            losses.append(l.item())
        out[tag + ".loss"] = np.array(losses, np.float32)
        for k, v in net.state_dict().items():
            out[tag + ".param." + k] = v.detach().numpy().copy()

    run("adam", lambda n: torch.optim.Adam(n.parameters(), lr=1e-2, betas=(0.5, 0.9)))

    def adamw(n):
        decay = [p for k, p in n.named_parameters() if p.ndim > 1]
        nodecay = [p for k, p in n.named_parameters() if p.ndim <= 1]
        return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                  {"params": nodecay, "weight_decay": 0.0}], lr=1e-2)
    run("adamw", adamw)
    path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "engine", "smallnet.safetensors")
    st.save(path, out, {"torch": torch.__version__, "script": "scripts/make_engine_fixture.py"})
    print("wrote", os.path.normpath(path), os.path.getsize(path), "bytes; loss", loss.item())


if __name__ == "__main__":
    main()
