"""Writes the AutoencoderKL (Stable Diffusion VAE) parity fixtures into test/fixtures/kl/
(run with Debian's torch: `/usr/bin/python3 scripts/make_kl_fixtures.py`). Tests never need
Python.

The reference model below follows latent-diffusion's ldm/models/autoencoder.py
(AutoencoderKL), ldm/modules/diffusionmodules/model.py (Encoder/Decoder, vanilla AttnBlock)
and ldm/modules/distributions/distributions.py (DiagonalGaussianDistribution): the same
modules and state-dict names. One liberty: GroupNorm's group count is a parameter (diffusers'
norm_num_groups; ldm always uses 32) so the random-weight models can be small enough to
commit (channels 4 and 8, 2 groups). The diffusers names come from `to_diffusers` below,
written from diffusers' conversion rules (convert_ldm_vae_checkpoint: nin_shortcut →
conv_shortcut, mid.attn_1 → mid_block.attentions.0 with q/k/v/proj_out → to_q/to_k/to_v/
to_out.0 as [C, C] linear weights, mid.block_{1,2} → mid_block.resnets.{0,1}, up.{L−1−i} →
up_blocks.{i}, norm_out → conv_norm_out).

Files (all weights random, PyTorch default init with a fixed seed; biases and norm affine
parameters perturbed so that every parameter matters):
  sd_tiny.ckpt            SD-style checkpoint {'state_dict': first_stage_model.* (fp32) +
                          fake model.diffusion_model.* / cond_stage_model.* keys, global_step}
  sd_tiny.yaml            its latent-diffusion config (first_stage_config inside a
                          LatentDiffusion config, with scale_factor 0.18215)
  diffusers_tiny/         the same model as a diffusers vae/ folder: config.json +
                          diffusion_pytorch_model.safetensors (fp32)
  diffusers_fp16/         the same model in float16: config.json +
                          diffusion_pytorch_model.fp16.safetensors
  flux16.safetensors      a 16-channel model without quant convs (SD3 / FLUX layout), ldm
                          names, standalone, stored in bfloat16 like FLUX's ae.safetensors
  flux16.yaml             its config (use_quant_conv / use_post_quant_conv false)
  io.safetensors          x [1,3,16,12] in [-1,1]; per model m in (tiny, fp16, flux16):
                          m.mean, m.logvar (clamped), m.kl, m.rec (decode of the mode), the
                          fp16 / bf16 models computed in fp32 from the rounded weights;
                          tiny.eps / tiny.sample (mean + std * eps)
  klf8_keys.json          SD's kl-f8 architecture (ch 128, ch_mult [1,2,4,4], 2 blocks,
                          z 4): [[ldm key, shape, diffusers key, diffusers shape], …] in
                          state_dict order (248 keys)

Round trip (what `AutoencoderKL.save` writes, loaded back into this reference strictly):
  --roundtrip PATH [--ref tiny|fp16|flux16]
      PATH a diffusers folder (config.json + diffusion_pytorch_model[.fp16].safetensors) or an
      ldm-named .safetensors with latentkit's config metadata; load_state_dict(strict=True),
      then decode the fixture's latents (io.safetensors REF.mean) and print OK when the
      reconstruction matches REF.rec within 1e-4 relative (FAIL otherwise). A trained model
      (a decoder fine-tune) decodes differently: `--expect FILE.safetensors` (tensor "rec",
      latentkit's decode of the same latents) is compared instead.
"""

import argparse
import copy
import json
import os
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402

OUT = os.path.normpath(os.path.join(HERE, "..", "test", "fixtures", "kl"))
BUDGET = 300e3


# ---- latent-diffusion's modules (semantics of ldm/modules/diffusionmodules/model.py) ----

def swish(x):
    return x * torch.sigmoid(x)


def Normalize(c, groups):
    return nn.GroupNorm(num_groups=groups, num_channels=c, eps=1e-6, affine=True)


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(torch.nn.functional.pad(x, (0, 1, 0, 1), mode="constant", value=0))


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = Normalize(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = Normalize(cout, groups)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1, 1, 0)
        self.cin, self.cout = cin, cout

    def forward(self, x):
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        if self.cin != self.cout:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = Normalize(c, groups)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        b, c, hh, ww = q.shape
        q = q.reshape(b, c, hh * ww).permute(0, 2, 1)  # b, hw, c
        k = k.reshape(b, c, hh * ww)  # b, c, hw
        w = torch.softmax(torch.bmm(q, k) * (int(c) ** (-0.5)), dim=2)
        v = v.reshape(b, c, hh * ww)
        h = torch.bmm(v, w.permute(0, 2, 1)).reshape(b, c, hh, ww)
        return x + self.proj_out(h)


class Encoder(nn.Module):
    def __init__(self, *, ch, ch_mult, num_res_blocks, attn_resolutions, in_channels, resolution,
                 z_channels, double_z=True, groups=32, **ignore):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        curr_res = resolution
        in_ch_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        for i in range(self.num_resolutions):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_in, block_out = ch * in_ch_mult[i], ch * ch_mult[i]
            for _ in range(num_res_blocks):
                block.append(ResnetBlock(block_in, block_out, groups))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in, groups))
            down = nn.Module()
            down.block, down.attn = block, attn
            if i != self.num_resolutions - 1:
                down.downsample = Downsample(block_in)
                curr_res //= 2
            self.down.append(down)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, groups)
        self.mid.attn_1 = AttnBlock(block_in, groups)
        self.mid.block_2 = ResnetBlock(block_in, block_in, groups)
        self.norm_out = Normalize(block_in, groups)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for i in range(self.num_resolutions):
            for j in range(self.num_res_blocks):
                h = self.down[i].block[j](h)
                if len(self.down[i].attn) > 0:
                    h = self.down[i].attn[j](h)
            if i != self.num_resolutions - 1:
                h = self.down[i].downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, *, ch, out_ch, ch_mult, num_res_blocks, attn_resolutions, resolution,
                 z_channels, groups=32, **ignore):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        block_in = ch * ch_mult[-1]
        curr_res = resolution // 2 ** (self.num_resolutions - 1)
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, 1, 1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, groups)
        self.mid.attn_1 = AttnBlock(block_in, groups)
        self.mid.block_2 = ResnetBlock(block_in, block_in, groups)
        self.up = nn.ModuleList()
        for i in reversed(range(self.num_resolutions)):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i]
            for _ in range(num_res_blocks + 1):
                block.append(ResnetBlock(block_in, block_out, groups))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in, groups))
            up = nn.Module()
            up.block, up.attn = block, attn
            if i != 0:
                up.upsample = Upsample(block_in)
                curr_res *= 2
            self.up.insert(0, up)  # checkpoint order
        self.norm_out = Normalize(block_in, groups)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, 1, 1)

    def forward(self, z):
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for i in reversed(range(self.num_resolutions)):
            for j in range(self.num_res_blocks + 1):
                h = self.up[i].block[j](h)
                if len(self.up[i].attn) > 0:
                    h = self.up[i].attn[j](h)
            if i != 0:
                h = self.up[i].upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class DiagonalGaussianDistribution:
    def __init__(self, parameters):
        self.mean, self.logvar = torch.chunk(parameters, 2, dim=1)
        self.logvar = torch.clamp(self.logvar, -30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, eps):
        return self.mean + self.std * eps

    def mode(self):
        return self.mean

    def kl(self):
        return 0.5 * torch.sum(torch.pow(self.mean, 2) + self.var - 1.0 - self.logvar, dim=[1, 2, 3])


class AutoencoderKL(nn.Module):
    """ldm's AutoencoderKL without the loss; quant convs optional (SD3 / FLUX)."""

    def __init__(self, ddconfig, embed_dim, use_quant_conv=True, use_post_quant_conv=True):
        super().__init__()
        groups = ddconfig.get("norm_num_groups", 32)
        self.encoder = Encoder(**ddconfig, groups=groups)
        self.decoder = Decoder(**ddconfig, groups=groups)
        assert ddconfig["double_z"]
        z = ddconfig["z_channels"]
        if use_quant_conv:
            self.quant_conv = nn.Conv2d(2 * z, 2 * embed_dim, 1)
        if use_post_quant_conv:
            self.post_quant_conv = nn.Conv2d(embed_dim, z, 1)
        self.uq, self.upq = use_quant_conv, use_post_quant_conv

    def encode(self, x):
        h = self.encoder(x)
        return DiagonalGaussianDistribution(self.quant_conv(h) if self.uq else h)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z) if self.upq else z)


# ---- diffusers names (from diffusers' conversion rules) ----

def to_diffusers(key, levels):
    """ldm AutoencoderKL key -> diffusers AutoencoderKL key; (name, squeeze_to_linear)."""
    parts = key.split(".")
    lin = False
    if parts[0] in ("encoder", "decoder") and len(parts) > 2:
        e, rest = parts[0], parts[1:]
        if rest[0] == "down":
            i, kind = rest[1], rest[2]
            if kind == "block":
                rest = ["down_blocks", i, "resnets"] + rest[3:]
            else:  # downsample.conv.*
                rest = ["down_blocks", i, "downsamplers", "0"] + rest[3:]
        elif rest[0] == "up":
            i = str(levels - 1 - int(rest[1]))
            kind = rest[2]
            if kind == "block":
                rest = ["up_blocks", i, "resnets"] + rest[3:]
            else:
                rest = ["up_blocks", i, "upsamplers", "0"] + rest[3:]
        elif rest[0] == "mid":
            if rest[1] in ("block_1", "block_2"):
                rest = ["mid_block", "resnets", str(int(rest[1][-1]) - 1)] + rest[2:]
            else:  # attn_1
                ren = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
                lin = rest[2] != "norm" and rest[-1] == "weight"
                rest = ["mid_block", "attentions", "0", ren[rest[2]], rest[3]]
        elif rest[0] == "norm_out":
            rest = ["conv_norm_out"] + rest[1:]
        name = ".".join([e] + rest)
        name = name.replace("nin_shortcut", "conv_shortcut")
        return name, lin
    return key, False


def diffusers_state_dict(sd, levels):
    out = OrderedDict()
    for k, v in sd.items():
        n, lin = to_diffusers(k, levels)
        out[n] = v[:, :, 0, 0] if lin else v
    return out


def diffusers_config(dd, embed_dim, uq=True, upq=True, scaling=None, shift=None):
    L = len(dd["ch_mult"])
    assert embed_dim == dd["z_channels"]
    c = OrderedDict(_class_name="AutoencoderKL", _diffusers_version="0.27.0", act_fn="silu",
                    block_out_channels=[dd["ch"] * m for m in dd["ch_mult"]],
                    down_block_types=["DownEncoderBlock2D"] * L, force_upcast=True,
                    in_channels=dd["in_channels"], latent_channels=dd["z_channels"],
                    layers_per_block=dd["num_res_blocks"], norm_num_groups=dd.get("norm_num_groups", 32),
                    out_channels=dd["out_ch"], sample_size=dd["resolution"],
                    up_block_types=["UpDecoderBlock2D"] * L, use_quant_conv=uq, use_post_quant_conv=upq)
    if scaling is not None:
        c["scaling_factor"] = scaling
    if shift is not None:
        c["shift_factor"] = shift
    return c


# ---- writing ----

BF16 = "BF16"


def save_safetensors(path, tensors, dtype=None):
    """st.save, plus float16 / bfloat16 storage (bfloat16 written from torch's own rounding)."""
    if dtype != BF16:
        st.save(path, {k: v.to(dtype or torch.float32).numpy() for k, v in tensors.items()})
        return
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        b = tensors[k].to(torch.bfloat16).contiguous().view(torch.int16).numpy().astype("<i2").tobytes()
        header[k] = {"dtype": "BF16", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((-(8 + len(hb))) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


def perturb(model, seed):
    """Default init leaves biases small and norms at 1/0; give every parameter a visible value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.copy_(0.1 * (2 * torch.rand(p.shape, generator=g) - 1))
            elif p.ndim == 1:  # GroupNorm weight
                p.copy_(1 + 0.2 * (2 * torch.rand(p.shape, generator=g) - 1))


def reference(model, x, eps=None):
    with torch.no_grad():
        q = model.encode(x)
        out = {"mean": q.mean, "logvar": q.logvar, "kl": q.kl(), "rec": model.decode(q.mode())}
        if eps is not None:
            out["eps"] = eps
            out["sample"] = q.sample(eps)
    return out


def rounded(model, dtype):
    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    return m


TINY_DD = OrderedDict(double_z=True, z_channels=4, resolution=16, in_channels=3, out_ch=3, ch=4,
                      ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[], dropout=0.0, norm_num_groups=2)
FLUX_DD = OrderedDict(TINY_DD, z_channels=16)
KLF8_DD = OrderedDict(double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=128,
                      ch_mult=[1, 2, 4, 4], num_res_blocks=2, attn_resolutions=[], dropout=0.0)


def yaml_text(dd, embed_dim, extra=(), full_sd=False):
    """A latent-diffusion config; full_sd nests it as a LatentDiffusion's first_stage_config."""
    def fmt(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(str(x) for x in v) + "]"
        return str(v)
    ae = ["target: ldm.models.autoencoder.AutoencoderKL", "params:", f"  embed_dim: {embed_dim}"]
    ae += [f"  {k}: {fmt(v)}" for k, v in extra]
    ae += ["  ddconfig:"] + [f"    {k}: {fmt(v)}" for k, v in dd.items()]
    ae += ["  lossconfig:", "    target: torch.nn.Identity"]
    lines = ["# written by scripts/make_kl_fixtures.py (torch %s). norm_num_groups (diffusers' name) and" % torch.__version__,
             "# use_quant_conv / use_post_quant_conv are latentkit extensions; ldm itself always uses 32 groups.", "model:"]
    if full_sd:
        lines += ["  target: ldm.models.diffusion.ddpm.LatentDiffusion", "  params:", "    scale_factor: 0.18215",
                  "    first_stage_config:"] + ["      " + line for line in ae]
    else:
        lines += ["  base_learning_rate: 4.5e-06"] + ["  " + line for line in ae]
    return "\n".join(lines) + "\n"


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)

    tiny = AutoencoderKL(TINY_DD, 4).eval()
    perturb(tiny, 1)
    flux = AutoencoderKL(FLUX_DD, 16, use_quant_conv=False, use_post_quant_conv=False).eval()
    perturb(flux, 2)
    sd = tiny.state_dict()
    print("tiny params:", sum(p.numel() for p in tiny.parameters()), "flux16 params:", sum(p.numel() for p in flux.parameters()))

    # SD-style full checkpoint: the VAE among (fake, tiny) UNet and text-encoder tensors
    full = OrderedDict()
    g = torch.Generator().manual_seed(3)
    for k, s in [("model.diffusion_model.input_blocks.0.0.weight", (8, 4, 3, 3)),
                 ("model.diffusion_model.time_embed.0.weight", (16, 8)),
                 ("model.diffusion_model.out.2.weight", (4, 8, 3, 3))]:
        full[k] = torch.randn(s, generator=g)
    full.update(("first_stage_model." + k, v.clone()) for k, v in sd.items())
    for k, s in [("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", (10, 8)),
                 ("cond_stage_model.transformer.text_model.final_layer_norm.weight", (8,))]:
        full[k] = torch.randn(s, generator=g)
    full["model_ema.decay"] = torch.tensor(0.9999)
    torch.save({"state_dict": full, "global_step": 0, "epoch": 0}, os.path.join(OUT, "sd_tiny.ckpt"))
    with open(os.path.join(OUT, "sd_tiny.yaml"), "w") as f:
        f.write(yaml_text(TINY_DD, 4, full_sd=True))

    # diffusers folders (fp32 and fp16)
    L = len(TINY_DD["ch_mult"])
    dsd = diffusers_state_dict(sd, L)
    for name, fname, dt in [("diffusers_tiny", "diffusion_pytorch_model.safetensors", None),
                            ("diffusers_fp16", "diffusion_pytorch_model.fp16.safetensors", torch.float16)]:
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(diffusers_config(TINY_DD, 4, scaling=0.18215), f, indent=2)
        save_safetensors(os.path.join(d, fname), dsd, dt)

    # 16 channels, no quant convs, ldm names, standalone safetensors
    save_safetensors(os.path.join(OUT, "flux16.safetensors"), flux.state_dict(), BF16)
    with open(os.path.join(OUT, "flux16.yaml"), "w") as f:
        f.write(yaml_text(FLUX_DD, 16, extra=[("use_quant_conv", False), ("use_post_quant_conv", False)]))

    # reference outputs
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 12), indexing="ij")
    x = torch.stack([torch.sin(3 * xx + 1.3 * yy), torch.cos(2 * yy - xx), xx * yy]).unsqueeze(0).float()
    eps = torch.randn((1, 4, 8, 6), generator=torch.Generator().manual_seed(5))
    io = {"x": x}
    for name, m, e in [("tiny", tiny, eps), ("fp16", rounded(tiny, torch.float16), None),
                       ("flux16", rounded(flux, torch.bfloat16), None)]:
        for k, v in reference(m, x, e).items():
            io[f"{name}.{k}"] = v
    st.save(os.path.join(OUT, "io.safetensors"), {k: v.numpy() for k, v in io.items()},
            {"made_by": f"scripts/make_kl_fixtures.py (torch {torch.__version__})"})

    # SD's kl-f8 layout, every key, both namings
    klf8 = AutoencoderKL(KLF8_DD, 4)  # 83.7 M parameters, random init (only names and shapes are kept)
    rows = []
    for k, v in klf8.state_dict().items():
        n, lin = to_diffusers(k, len(KLF8_DD["ch_mult"]))
        shape = list(v.shape)
        rows.append([k, shape, n, shape[:2] if lin else shape])
    with open(os.path.join(OUT, "klf8_keys.json"), "w") as f:
        json.dump({"config": KLF8_DD, "embed_dim": 4, "keys": rows}, f, separators=(",", ":"))
    print("kl-f8 keys:", len(rows))

    total = 0
    for root, _, files in os.walk(OUT):
        for fn in files:
            total += os.path.getsize(os.path.join(root, fn))
    print(f"fixtures: {total / 1e3:.1f} kB (budget {BUDGET / 1e3:.0f} kB)")
    if total > BUDGET:
        sys.exit("over budget")


def from_diffusers_config(c):
    boc = c["block_out_channels"]
    dd = OrderedDict(double_z=True, z_channels=c["latent_channels"], resolution=c.get("sample_size", 32),
                     in_channels=c.get("in_channels", 3), out_ch=c.get("out_channels", 3), ch=boc[0],
                     ch_mult=[b // boc[0] for b in boc], num_res_blocks=c["layers_per_block"],
                     attn_resolutions=[], dropout=0.0, norm_num_groups=c.get("norm_num_groups", 32))
    return dd, c["latent_channels"], c.get("use_quant_conv", True), c.get("use_post_quant_conv", True)


def roundtrip(path, ref, expect=None):
    if os.path.isdir(path):
        with open(os.path.join(path, "config.json")) as f:
            dd, e, uq, upq = from_diffusers_config(json.load(f))
        wf = [os.path.join(path, n) for n in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")]
        tensors, _ = st.load(next(p for p in wf if os.path.exists(p)))
        model = AutoencoderKL(dd, e, uq, upq)
        names = {to_diffusers(k, len(dd["ch_mult"]))[0]: (k, to_diffusers(k, len(dd["ch_mult"]))[1]) for k in model.state_dict()}
        sd = OrderedDict()
        for k, v in tensors.items():
            ldm, lin = names[k]  # KeyError = a name diffusers would not have written
            t = torch.from_numpy(np.asarray(v, dtype=np.float32))
            sd[ldm] = t[:, :, None, None] if lin else t
    else:
        tensors, meta = st.load(path)
        c = json.loads(meta["config"])
        model = AutoencoderKL(c["ddconfig"], c["embed_dim"], c.get("use_quant_conv", True), c.get("use_post_quant_conv", True))
        sd = OrderedDict((k, torch.from_numpy(np.asarray(v, dtype=np.float32))) for k, v in tensors.items())
    model.load_state_dict(sd, strict=True)
    io, _ = st.load(os.path.join(OUT, "io.safetensors"))
    with torch.no_grad():
        rec = model.decode(torch.from_numpy(io[ref + ".mean"])).numpy()
    # a trained model (a fine-tune) decodes differently from the fixture: compare with what
    # latentkit decodes from the same latents (--expect FILE with tensor "rec") instead
    want = st.load(expect)[0]["rec"] if expect else io[ref + ".rec"]
    err = float(np.linalg.norm(rec - want) / np.linalg.norm(want))
    print(("OK" if err < 1e-4 else "FAIL") + f" {path}: strict load, decode vs {expect or ref + '.rec'} relative error {err:.2e}")
    return err < 1e-4


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--roundtrip")
    ap.add_argument("--ref", default="tiny")
    ap.add_argument("--expect")
    a = ap.parse_args()
    if a.roundtrip:
        sys.exit(0 if roundtrip(a.roundtrip, a.ref, a.expect) else 1)
    main()
