"""Reference PyTorch reimplementation of taming-transformers' VQModel inference path
(taming/modules/diffusionmodules/model.py Encoder/Decoder, taming/modules/vqvae/quantize.py
VectorQuantizer2, taming/models/vqgan.py VQModel), written for latentkit's parity fixtures.

Module and parameter names are identical to taming's, so `state_dict()` keys match real
taming checkpoints (`encoder.down.0.block.1.norm1.weight`, `quantize.embedding.weight`, …).
Only inference is covered: no loss module, no Lightning. Run with Debian's python3-torch.

    import taming_ref
    cfg = taming_ref.load_config("model.yaml")        # the `model.params` dict
    model = taming_ref.VQModel.from_config(cfg).eval()
    quant, qloss, (_, _, indices) = model.encode(x)
    xrec = model.decode(quant)

Facts about taming worth knowing (all reproduced here):
  * Attention placement is decided by `curr_res`, computed from the config `resolution`,
    never from the input's size: a 64×64 input through the ImageNet config (resolution 256,
    attn_resolutions [16]) still gets attention at the lowest level (4×4 there).
  * Encoder level i has `num_res_blocks` blocks, decoder level i has `num_res_blocks + 1`;
    decoder `up` is stored in checkpoint order (up.0 = highest resolution) but run from the
    last level down. Attention modules, when present, follow each block of the level.
  * Downsample pads (left 0, right 1, top 0, bottom 1) then runs a 3×3 stride-2 conv with
    no padding; Upsample is nearest 2× then a 3×3 conv.
  * ResnetBlock with temb_channels=0 has no temb_proj; nin_shortcut (1×1) exists only when
    in != out channels (conv_shortcut is never used by Encoder/Decoder).
  * VectorQuantizer2's `legacy=True` (the default, and what VQModel always uses) puts β on the
    codebook term instead of the commitment term. In the forward value both terms equal
    mean((zq - z)²), so qloss = (1 + β)·mse either way; only the gradients differ.
  * The straight-through output is computed as z + (zq − z), which in float32 is not bit-equal
    to the codebook rows.
  * Indices come back flat ([B·H·W], row-major over b, h, w) unless sane_index_shape.
  * taming's VQModel.decode_code calls `self.quantize.embed_code`, which VectorQuantizer2 does
    not have (it would raise AttributeError); the working path used by the transformers is
    `quantize.get_codebook_entry(indices, (b, h, w, c))` + `decode`. decode_code here does that.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def swish(x):
    # x · σ(x)
    return x * torch.sigmoid(x)


def Normalize(channels):
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class Upsample(nn.Module):
    def __init__(self, channels, with_conv=True):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.with_conv else x


class Downsample(nn.Module):
    def __init__(self, channels, with_conv=True):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x):
        if not self.with_conv:
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        # asymmetric zero pad: (left, right, top, bottom) = (0, 1, 0, 1)
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class ResnetBlock(nn.Module):
    def __init__(self, in_channels, out_channels=None, dropout=0.0):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = Normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = Normalize(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x):
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1×1 conv projections and a residual."""

    def __init__(self, channels):
        super().__init__()
        self.norm = Normalize(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        hn = self.norm(x)
        q, k, v = self.q(hn), self.k(hn), self.v(hn)
        b, c, h, w = q.shape
        q = q.reshape(b, c, h * w).permute(0, 2, 1)  # [b, hw, c]
        k = k.reshape(b, c, h * w)  # [b, c, hw]
        att = torch.bmm(q, k) * (int(c) ** (-0.5))  # [b, hw_q, hw_k]
        att = F.softmax(att, dim=2)
        v = v.reshape(b, c, h * w)  # [b, c, hw_k]
        out = torch.bmm(v, att.permute(0, 2, 1)).reshape(b, c, h, w)  # Σ_k v[c,k]·att[q,k]
        return x + self.proj_out(out)


class Encoder(nn.Module):
    def __init__(self, *, ch, ch_mult=(1, 2, 4, 8), num_res_blocks, attn_resolutions,
                 dropout=0.0, resamp_with_conv=True, in_channels, resolution, z_channels,
                 double_z=True, **ignore):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        in_ch_mult = (1,) + tuple(ch_mult)
        curr_res = resolution
        self.down = nn.ModuleList()
        block_in = ch
        for i_level in range(self.num_resolutions):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_in = ch * in_ch_mult[i_level]
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks):
                block.append(ResnetBlock(block_in, block_out, dropout))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in))
            level = nn.Module()
            level.block, level.attn = block, attn
            if i_level != self.num_resolutions - 1:
                level.downsample = Downsample(block_in, resamp_with_conv)
                curr_res //= 2
            self.down.append(level)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, dropout)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in, dropout)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for i_level in range(self.num_resolutions):
            level = self.down[i_level]
            for i_block in range(self.num_res_blocks):
                h = level.block[i_block](h)
                if len(level.attn) > 0:
                    h = level.attn[i_block](h)
            if i_level != self.num_resolutions - 1:
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, *, ch, out_ch, ch_mult=(1, 2, 4, 8), num_res_blocks, attn_resolutions,
                 dropout=0.0, resamp_with_conv=True, resolution, z_channels, give_pre_end=False,
                 **ignore):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.give_pre_end = give_pre_end
        block_in = ch * ch_mult[-1]
        curr_res = resolution // 2 ** (self.num_resolutions - 1)
        self.z_shape = (1, z_channels, curr_res, curr_res)
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, 1, 1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, dropout)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in, dropout)
        levels = []
        for i_level in reversed(range(self.num_resolutions)):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks + 1):
                block.append(ResnetBlock(block_in, block_out, dropout))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in))
            level = nn.Module()
            level.block, level.attn = block, attn
            if i_level != 0:
                level.upsample = Upsample(block_in, resamp_with_conv)
                curr_res *= 2
            levels.insert(0, level)  # checkpoint order: up.0 is the highest resolution
        self.up = nn.ModuleList(levels)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, 1, 1)

    def forward(self, z):
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for i_level in reversed(range(self.num_resolutions)):
            level = self.up[i_level]
            for i_block in range(self.num_res_blocks + 1):
                h = level.block[i_block](h)
                if len(level.attn) > 0:
                    h = level.attn[i_block](h)
            if i_level != 0:
                h = level.upsample(h)
        if self.give_pre_end:
            return h
        return self.conv_out(swish(self.norm_out(h)))


class VectorQuantizer2(nn.Module):
    """Nearest-codebook quantizer; β on the codebook term when legacy (taming's default)."""

    def __init__(self, n_e, e_dim, beta, remap=None, unknown_index="random",
                 sane_index_shape=False, legacy=True):
        super().__init__()
        self.n_e, self.e_dim, self.beta, self.legacy = n_e, e_dim, beta, legacy
        self.embedding = nn.Embedding(n_e, e_dim)
        self.embedding.weight.data.uniform_(-1.0 / n_e, 1.0 / n_e)
        self.remap = remap
        if remap is not None:
            used = np.load(remap) if isinstance(remap, str) else np.asarray(remap)
            self.register_buffer("used", torch.tensor(used))
            self.re_embed = self.used.shape[0]
            self.unknown_index = unknown_index  # "random", "extra" or an int
            if unknown_index == "extra":
                self.unknown_index = self.re_embed
                self.re_embed += 1
        else:
            self.re_embed = n_e
        self.sane_index_shape = sane_index_shape

    def remap_to_used(self, inds):
        ishape = inds.shape
        inds = inds.reshape(ishape[0], -1)
        used = self.used.to(inds)
        match = (inds[:, :, None] == used[None, None, :]).long()
        new = match.argmax(-1)
        unknown = match.sum(2) < 1
        if self.unknown_index == "random":
            new[unknown] = torch.randint(0, self.re_embed, size=new[unknown].shape)
        else:
            new[unknown] = self.unknown_index
        return new.reshape(ishape)

    def unmap_to_all(self, inds):
        ishape = inds.shape
        inds = inds.reshape(ishape[0], -1).clone()
        used = self.used.to(inds)
        if self.re_embed > self.used.shape[0]:  # the "extra" token maps back to 0
            inds[inds >= self.used.shape[0]] = 0
        back = torch.gather(used[None, :].expand(inds.shape[0], -1), 1, inds)
        return back.reshape(ishape)

    def distances(self, z_flat):
        # ‖z − e‖² = ‖z‖² + ‖e‖² − 2 z·e   [N, n_e], same op order as taming
        e = self.embedding.weight
        return (torch.sum(z_flat ** 2, dim=1, keepdim=True) + torch.sum(e ** 2, dim=1)
                - 2 * torch.einsum("bd,dn->bn", z_flat, e.t()))

    def forward(self, z):
        z = z.permute(0, 2, 3, 1).contiguous()  # [b, h, w, c]
        z_flat = z.view(-1, self.e_dim)
        idx = torch.argmin(self.distances(z_flat), dim=1)
        z_q = self.embedding(idx).view(z.shape)
        if self.legacy:
            loss = torch.mean((z_q.detach() - z) ** 2) + self.beta * torch.mean((z_q - z.detach()) ** 2)
        else:
            loss = self.beta * torch.mean((z_q.detach() - z) ** 2) + torch.mean((z_q - z.detach()) ** 2)
        z_q = z + (z_q - z).detach()  # straight-through
        z_q = z_q.permute(0, 3, 1, 2).contiguous()
        if self.remap is not None:
            idx = self.remap_to_used(idx.reshape(z.shape[0], -1)).reshape(-1, 1)
        if self.sane_index_shape:
            idx = idx.reshape(z_q.shape[0], z_q.shape[2], z_q.shape[3])
        return z_q, loss, (None, None, idx)

    def get_codebook_entry(self, indices, shape):
        """indices (flat or any shape) → [b, c, h, w] given shape = (b, h, w, c)."""
        if self.remap is not None:
            indices = self.unmap_to_all(indices.reshape(shape[0], -1)).reshape(-1)
        z_q = self.embedding(indices)
        if shape is not None:
            z_q = z_q.view(shape).permute(0, 3, 1, 2).contiguous()
        return z_q


class VQModel(nn.Module):
    def __init__(self, ddconfig, n_embed, embed_dim, remap=None, sane_index_shape=False,
                 legacy=True, **ignore):
        super().__init__()
        self.encoder = Encoder(**ddconfig)
        self.decoder = Decoder(**ddconfig)
        self.quantize = VectorQuantizer2(n_embed, embed_dim, beta=0.25, remap=remap,
                                         sane_index_shape=sane_index_shape, legacy=legacy)
        self.quant_conv = nn.Conv2d(ddconfig["z_channels"], embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, ddconfig["z_channels"], 1)

    @classmethod
    def from_config(cls, params, **overrides):
        """params: taming's `model.params` dict ({embed_dim, n_embed, ddconfig, …})."""
        kw = {k: v for k, v in params.items()
              if k in ("ddconfig", "n_embed", "embed_dim", "remap", "sane_index_shape")}
        kw.update(overrides)
        return cls(**kw)

    def encode_pre_quant(self, x):
        return self.quant_conv(self.encoder(x))

    def encode(self, x):
        return self.quantize(self.encode_pre_quant(x))

    def decode(self, quant):
        return self.decoder(self.post_quant_conv(quant))

    def decode_code(self, code, shape=None):
        """code: [b, h, w] index grid (or flat with shape = (b, h, w, c))."""
        if shape is None:
            b, h, w = code.shape
            shape = (b, h, w, self.quantize.e_dim)
        return self.decode(self.quantize.get_codebook_entry(code.reshape(-1), shape))

    def forward(self, x):
        quant, diff, _ = self.encode(x)
        return self.decode(quant), diff


def load_config(yaml_path):
    """Reads a taming YAML and returns its `model.params` dict."""
    import yaml

    with open(yaml_path) as f:
        cfg = yaml.safe_load(f)
    return cfg["model"]["params"]


def count_params(model):
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    import sys

    for p in sys.argv[1:]:
        m = VQModel.from_config(load_config(p))
        print(p, f"{count_params(m):,} params", len(m.state_dict()), "tensors")
