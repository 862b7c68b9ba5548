"""Writes test/fixtures/train/step.safetensors: ONE VQGAN + PatchGAN training step with
taming's loss formulas and latentkit's scheduling, computed by PyTorch (Debian's python3-torch:
`/usr/bin/python3 scripts/make_train_fixture.py`). Tests never need Python.

Model: scripts/taming_ref.py VQModel (embed_dim 8, n_embed 16, ddconfig below) and taming's
NLayerDiscriminator(input_nc=3, ndf=8, n_layers=2, use_actnorm=False) under the key prefix
`loss.discriminator.`. All floating weights are hash weights (scripts/hashinit.py, keyed by
the full name, e.g. `loss.discriminator.main.3.weight` → 1 + 0.2·s); BatchNorm running_mean
= 0, running_var = 1, num_batches_tracked = 0 (NOT hash values).

Step ("gan", disc_factor 1), all modules in train mode:
    x            torch.manual_seed(0); torch.rand(4, 3, 16, 16) * 2 - 1
    xrec, qloss  = model(x)              VectorQuantizer2 legacy, β = 0.25
    rec          = mean|x − xrec|        (L1; perceptual_weight 0, no LPIPS)
    logits_real  = D(x)                  FIRST (BatchNorm running stats update #1)
    logits_fake  = D(xrec)               then; xrec NOT detached (update #2)
    g_loss       = −mean(logits_fake)
    gN = ∂rec/∂W, gG = ∂g_loss/∂W,       W = decoder.conv_out.weight
    λ            = clamp(‖gN‖ / (‖gG‖ + δ), 0, 1e4).detach() · disc_weight,  δ = 1e-6, disc_weight 0.8
    ae_loss      = rec + λ · disc_factor · g_loss + codebook_weight(1) · qloss
    d_loss       = disc_factor · 0.5 · (mean relu(1 − logits_real) + mean relu(1 + logits_fake))
    ae grads     = ∂ae_loss/∂θ_VQModel   (g_loss's gradient flows through D into xrec)
    disc grads   = ∂d_loss/∂θ_D          (same forward; logits_fake not recomputed)
    Adam(lr 1e-3, betas (0.5, 0.9), eps 1e-8), one step for each group (torch.optim.Adam).
Deviation from taming (documented): taming runs the model forward twice per step (once per
optimizer_idx, the second after G's update, D on detached inputs) and also runs D(xrec) in the
generator pass, so its BatchNorm stats move three times per step; here one forward serves
both updates and the stats move twice (real, then fake). Note taming's own code uses
δ = 1e-4 in calculate_adaptive_weight; this fixture uses δ = 1e-6 (recorded in metadata;
`lambda_delta_1e-4` gives the value with taming's δ for reference).

Warm-up scenario (`warmup.*`, before disc_start): fresh hash weights, same x,
ae_loss = rec + qloss, one Adam step on the VQModel params only (no D anywhere).

Stored (see the file's metadata for the same list):
    x, xrec, indices (int64, flat [B·h·w]), scalars rec, qloss, g_loss, lambda, ae_loss,
    d_loss, logits_real_mean, logits_fake_mean, gN_norm, gG_norm, lambda_delta_1e-4
    param.<k> / grad.<k> / after.<k>     for all D params and the model SUBSET below
    buffer.<k> / after_buffer.<k>        BatchNorm running_mean, running_var (f32),
                                         num_batches_tracked (int64)
    warmup.{rec,qloss,ae_loss}, warmup.grad.<k> / warmup.after.<k> for the model SUBSET
Why a subset: the VQModel has ~0.7 M params (2.8 MB per copy of all of them), the fixture
budget is 400 KB; the initial model params are hash weights the tests regenerate anyway.
"""

import argparse
import json
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hashinit  # noqa: E402
import st  # noqa: E402
import taming_ref  # noqa: E402

OUT = os.path.normpath(os.path.join(HERE, "..", "test", "fixtures", "train", "step.safetensors"))
BUDGET = 400_000
MADE_BY = "scripts/make_train_fixture.py (Debian python3, torch %s, numpy %s)" % (
    torch.__version__, np.__version__)

CONFIG = {
    "embed_dim": 8, "n_embed": 16,
    "ddconfig": {"double_z": False, "z_channels": 8, "resolution": 16, "in_channels": 3,
                 "out_ch": 3, "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1,
                 "attn_resolutions": [8], "dropout": 0.0},
}
DISC = {"input_nc": 3, "ndf": 8, "n_layers": 2, "use_actnorm": False}
DPREFIX = "loss.discriminator."
LOSS = {"disc_weight": 0.8, "disc_factor": 1.0, "codebook_weight": 1.0, "adaptive_delta": 1e-6,
        "disc_loss": "hinge", "rec_loss": "l1", "perceptual_weight": 0.0}
ADAM = {"lr": 1e-3, "betas": (0.5, 0.9), "eps": 1e-8}
X_SHAPE = (4, 3, 16, 16)

# model keys whose param/grad/after are stored (all D params are stored too)
MODEL_SUBSET = [
    "decoder.conv_out.weight", "decoder.conv_out.bias",
    "quantize.embedding.weight",
    "encoder.conv_in.weight", "encoder.conv_in.bias",
    # 3 others: the straight-through/commitment path, a GroupNorm affine, attention backward
    "quant_conv.weight",
    "decoder.norm_out.weight",
    "encoder.mid.attn_1.q.weight",
]


class NLayerDiscriminator(nn.Module):
    """taming/modules/discriminator/model.py, verbatim structure (PatchGAN of pix2pix)."""

    def __init__(self, input_nc=3, ndf=64, n_layers=3, use_actnorm=False):
        super().__init__()
        assert not use_actnorm
        norm_layer = nn.BatchNorm2d
        use_bias = False  # norm_layer == BatchNorm2d
        kw, padw = 4, 1
        seq = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2 ** n, 8)
            seq += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kw, 2, padw, bias=use_bias),
                    norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        nf_mult_prev, nf_mult = nf_mult, min(2 ** n_layers, 8)
        seq += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kw, 1, padw, bias=use_bias),
                norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.main = nn.Sequential(*seq)

    def forward(self, x):
        return self.main(x)


def hinge_d_loss(logits_real, logits_fake):
    return 0.5 * (torch.mean(F.relu(1.0 - logits_real)) + torch.mean(F.relu(1.0 + logits_fake)))


def build(dtype):
    model = taming_ref.VQModel.from_config(CONFIG)
    hashinit.load_hash_weights(model)
    disc = NLayerDiscriminator(**DISC)
    with torch.no_grad():
        for k, v in disc.state_dict().items():
            name = k.rsplit(".", 1)[1]
            if name == "running_mean":
                v.zero_()
            elif name == "running_var":
                v.fill_(1.0)
            elif name == "num_batches_tracked":
                v.zero_()
            else:
                v.copy_(torch.from_numpy(hashinit.hash_array(DPREFIX + k, tuple(v.shape))))
    model, disc = model.to(dtype).train(), disc.to(dtype).train()
    return model, disc


def make_x():
    torch.manual_seed(0)
    return torch.rand(*X_SHAPE) * 2 - 1


def adam(params):
    return torch.optim.Adam(params, lr=ADAM["lr"], betas=ADAM["betas"], eps=ADAM["eps"])


def quant_margin(model, x):
    """Smallest relative gap between the best and second-best codebook distance."""
    with torch.no_grad():
        h = model.encode_pre_quant(x)
        z = h.permute(0, 2, 3, 1).reshape(-1, CONFIG["embed_dim"]).double()
        e = model.quantize.embedding.weight.double()
        d = ((z[:, None, :] - e[None]) ** 2).sum(-1)
        s, _ = d.sort(dim=1)
        return float(((s[:, 1] - s[:, 0]) / s[:, 1].clamp_min(1e-12)).min())


def gan_step(dtype, delta=LOSS["adaptive_delta"]):
    model, disc = build(dtype)
    x = make_x().to(dtype)
    init_params = {k: v.detach().clone() for k, v in model.named_parameters()}
    init_params.update({DPREFIX + k: v.detach().clone() for k, v in disc.named_parameters()})
    init_buffers = {DPREFIX + k: v.detach().clone() for k, v in disc.named_buffers()}
    margin = quant_margin(model, x)

    mparams = [p for _, p in model.named_parameters()]
    dparams = [p for _, p in disc.named_parameters()]
    quant, qloss, (_, _, indices) = model.encode(x)  # = model(x), keeping the indices
    xrec = model.decode(quant)
    rec = torch.mean(torch.abs(x.contiguous() - xrec.contiguous()))
    logits_real = disc(x.contiguous())
    logits_fake = disc(xrec.contiguous())
    g_loss = -torch.mean(logits_fake)
    last = model.decoder.conv_out.weight
    gN = torch.autograd.grad(rec, last, retain_graph=True)[0]
    gG = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
    nN, nG = torch.norm(gN), torch.norm(gG)
    lam = torch.clamp(nN / (nG + delta), 0.0, 1e4).detach() * LOSS["disc_weight"]
    lam_taming = torch.clamp(nN / (nG + 1e-4), 0.0, 1e4).detach() * LOSS["disc_weight"]
    df = LOSS["disc_factor"]
    ae_loss = rec + lam * df * g_loss + LOSS["codebook_weight"] * qloss.mean()
    d_loss = df * hinge_d_loss(logits_real, logits_fake)
    ae_grads = torch.autograd.grad(ae_loss, mparams, retain_graph=True)
    d_grads = torch.autograd.grad(d_loss, dparams)

    opt_ae, opt_d = adam(mparams), adam(dparams)
    for p, g in zip(mparams, ae_grads):
        p.grad = g.detach().clone()
    for p, g in zip(dparams, d_grads):
        p.grad = g.detach().clone()
    opt_ae.step()
    opt_d.step()

    names_m = [k for k, _ in model.named_parameters()]
    names_d = [DPREFIX + k for k, _ in disc.named_parameters()]
    out = {
        "x": x, "xrec": xrec.detach(), "indices": indices.reshape(-1),
        "rec": rec, "qloss": qloss, "g_loss": g_loss, "lambda": lam, "ae_loss": ae_loss,
        "d_loss": d_loss, "logits_real_mean": logits_real.mean(), "logits_fake_mean": logits_fake.mean(),
        "gN_norm": nN, "gG_norm": nG, "lambda_delta_1e-4": lam_taming,
    }
    out = {k: v.detach() for k, v in out.items()}
    return {
        "scalars": out,
        "param": init_params, "buffer": init_buffers,
        "grad": dict(zip(names_m + names_d, [g.detach() for g in list(ae_grads) + list(d_grads)])),
        "after": {**{k: v.detach().clone() for k, v in model.named_parameters()},
                  **{DPREFIX + k: v.detach().clone() for k, v in disc.named_parameters()}},
        "after_buffer": {DPREFIX + k: v.detach().clone() for k, v in disc.named_buffers()},
        "logits_real": logits_real.detach(), "logits_fake": logits_fake.detach(),
        "margin": margin, "d_keys": names_d,
    }


def warmup_step(dtype):
    model, _ = build(dtype)
    x = make_x().to(dtype)
    mparams = [p for _, p in model.named_parameters()]
    xrec, qloss = model(x)
    rec = torch.mean(torch.abs(x - xrec))
    ae_loss = rec + LOSS["codebook_weight"] * qloss
    grads = torch.autograd.grad(ae_loss, mparams)
    opt = adam(mparams)
    for p, g in zip(mparams, grads):
        p.grad = g.detach().clone()
    opt.step()
    names = [k for k, _ in model.named_parameters()]
    return {
        "scalars": {"rec": rec.detach(), "qloss": qloss.detach(), "ae_loss": ae_loss.detach()},
        "grad": dict(zip(names, [g.detach() for g in grads])),
        "after": {k: v.detach().clone() for k, v in model.named_parameters()},
    }


def np32(t):
    a = t.detach().cpu().numpy()
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    return a


def compare(r32, r64, keys, lr):
    """Float32-vs-float64 agreement: max |Δ| of after.* (sign flips of near-zero grads show as
    ~2·lr), max relative grad error, and the count of sign-fragile grad entries."""
    worst_after, worst_grad_rel, flips = 0.0, 0.0, 0
    for k in keys:
        a32, a64 = r32["after"][k].double(), r64["after"][k]
        worst_after = max(worst_after, float((a32 - a64).abs().max()))
        g32, g64 = r32["grad"][k].double(), r64["grad"][k]
        scale = float(g64.abs().max()) or 1.0
        worst_grad_rel = max(worst_grad_rel, float((g32 - g64).abs().max()) / scale)
        flips += int(((torch.sign(g32) != torch.sign(g64)) & (g64 != 0)).sum())
    return {"max_abs_after_f32_vs_f64": worst_after, "max_grad_err_rel_to_tensor_max": worst_grad_rel,
            "grad_sign_flips_f32_vs_f64": flips, "lr": lr}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args()
    torch.set_num_threads(1)  # reproducible reductions

    g32, g64 = gan_step(torch.float32), gan_step(torch.float64)
    w32, w64 = warmup_step(torch.float32), warmup_step(torch.float64)
    d_keys = g32["d_keys"]
    stored_keys = MODEL_SUBSET + d_keys
    for k in MODEL_SUBSET:
        assert k in g32["after"], k

    T = OrderedDict()
    for k, v in g32["scalars"].items():
        T[k] = np32(v)
    T["indices"] = g32["scalars"]["indices"].numpy().astype(np.int64)
    T["logits_real"] = np32(g32["logits_real"])
    T["logits_fake"] = np32(g32["logits_fake"])
    for k in stored_keys:
        T["param." + k] = np32(g32["param"][k])
        T["grad." + k] = np32(g32["grad"][k])
        T["after." + k] = np32(g32["after"][k])
    for k, v in g32["buffer"].items():
        T["buffer." + k] = v.numpy() if v.dtype == torch.int64 else np32(v)
    for k, v in g32["after_buffer"].items():
        T["after_buffer." + k] = v.numpy() if v.dtype == torch.int64 else np32(v)
    for k, v in w32["scalars"].items():
        T["warmup." + k] = np32(v)
    for k in MODEL_SUBSET:
        T["warmup.grad." + k] = np32(w32["grad"][k])
        T["warmup.after." + k] = np32(w32["after"][k])

    idx_match = bool(torch.equal(g32["scalars"]["indices"], g64["scalars"]["indices"]))
    scal_err = {k: abs(float(g32["scalars"][k]) - float(g64["scalars"][k]))
                for k in ("rec", "qloss", "g_loss", "lambda", "ae_loss", "d_loss")}
    info = {
        "quant_min_margin_rel": g32["margin"],
        "indices_f32_match_f64": idx_match,
        "codes_used": int(torch.unique(g32["scalars"]["indices"]).numel()),
        "gan": compare(g32, g64, stored_keys, ADAM["lr"]),
        "warmup": compare(w32, w64, MODEL_SUBSET, ADAM["lr"]),
        "scalar_abs_err_f32_vs_f64": scal_err,
        "lambda_f32": float(g32["scalars"]["lambda"]),
        "lambda_delta_1e-4_f32": float(g32["scalars"]["lambda_delta_1e-4"]),
    }
    meta = {
        "made_by": MADE_BY,
        "config": json.dumps(CONFIG),
        "disc": json.dumps(DISC) + " keys prefixed " + DPREFIX,
        "loss": json.dumps(LOSS),
        "adam": json.dumps({"lr": ADAM["lr"], "betas": list(ADAM["betas"]), "eps": ADAM["eps"],
                            "impl": "torch.optim.Adam (torch 1.13 single-tensor), one step from zero state"}),
        "weights": "hashinit hash weights for every floating param (model keys as-is, D keys with the "
                   "loss.discriminator. prefix); BN running_mean 0, running_var 1, num_batches_tracked 0",
        "x": "torch.manual_seed(0); torch.rand(4,3,16,16)*2-1",
        "forward": "train mode. xrec,qloss = model(x) (VectorQuantizer2 legacy beta 0.25); "
                   "rec = mean|x-xrec|; logits_real = D(x) FIRST, then logits_fake = D(xrec) (not detached); "
                   "BN: batch stats (biased var) for normalization, running stats momentum 0.1 with "
                   "unbiased var, updated real-then-fake (num_batches_tracked += 2)",
        "lambda": "clamp(||d rec/dW|| / (||d g_loss/dW|| + 1e-6), 0, 1e4).detach() * 0.8, "
                  "W = decoder.conv_out.weight, g_loss = -mean(logits_fake). "
                  "lambda_delta_1e-4 = same with taming's code delta 1e-4 (reference only)",
        "ae_loss": "rec + lambda*disc_factor(1)*g_loss + 1.0*qloss; grads wrt VQModel params "
                   "(g_loss flows through D into xrec)",
        "d_loss": "disc_factor(1) * 0.5*(mean relu(1-logits_real) + mean relu(1+logits_fake)); "
                  "grads wrt D params from the SAME forward (one forward for both updates: "
                  "latentkit's scheduling, not taming's two passes)",
        "stored": "param./grad./after. for all D params and model keys " + ",".join(MODEL_SUBSET) +
                  " (other model params not stored: regenerate with hashinit); buffer./after_buffer. "
                  "for BN stats; warmup.{rec,qloss,ae_loss}, warmup.grad./warmup.after. for the same "
                  "model subset; indices int64 flat [B*8*8]",
        "warmup": "before disc_start: ae_loss = rec + qloss, one Adam step on VQModel params only, "
                  "fresh hash weights, same x; no D",
        "adam_first_step": "after = p - lr*g/(|g|+eps) up to rounding (torch: m=0.5g, v=0.1g^2, "
                           "p -= (lr/0.5) * m / (sqrt(v)/sqrt(0.1) + eps)): only grad SIGNS matter "
                           "where |g| >> 1e-8, so compare grad.* (relative to each tensor's max) for "
                           "gradient values and after.* with atol ~1e-5: f32 vs f64 differ by up to "
                           "7e-6 where |g| ~ 1e-7 (encoder.mid.attn_1.q.weight). Exact-zero grads "
                           "(unused codebook rows; loss.discriminator.main.8.bias, since all |logits| < 1 "
                           "makes the hinge terms cancel) leave the param unchanged",
        "info": json.dumps(info),
    }
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    st.save(a.out, T, meta)
    size = os.path.getsize(a.out)
    print(f"wrote {a.out}: {size} bytes, {len(T)} tensors")
    print(json.dumps(info, indent=1))
    for k in ("rec", "qloss", "g_loss", "lambda", "ae_loss", "d_loss", "logits_real_mean",
              "logits_fake_mean", "gN_norm", "gG_norm", "lambda_delta_1e-4"):
        print(f"  {k} = {float(T[k]):.8g}")
    print(f"  warmup.ae_loss = {float(T['warmup.ae_loss']):.8g}")
    if size > BUDGET:
        raise SystemExit(f"fixture {size} bytes exceeds the {BUDGET}-byte budget")


if __name__ == "__main__":
    main()
