"""Writes test/fixtures/train/kl_step.safetensors: ONE KL-autoencoder training step with
latent-diffusion's LPIPSWithDiscriminator formulas (ldm/modules/losses/contperceptual.py) and
latentkit's scheduling, computed by PyTorch (Debian's python3-torch:
`/usr/bin/python3 scripts/make_kl_train_fixture.py`). Tests never need Python.

Model: scripts/make_kl_fixtures.py's AutoencoderKL (ldm's modules and state-dict names) with
KL_DD below, and make_train_fixture.py's NLayerDiscriminator (taming's PatchGAN, ndf 8,
n_layers 2) under `loss.discriminator.`. All floating weights are hash weights
(scripts/hashinit.py keyed by the full name); BatchNorm running_mean 0, running_var 1.

Step ("gan", global_step >= disc_start, so disc_factor = adopt_weight(1.0) = 1), train mode:
    x            torch.manual_seed(0); torch.rand(4, 3, 16, 16) * 2 - 1
    eps          torch.manual_seed(1); torch.randn(4, 4, 8, 8)   (posterior.sample()'s noise, given)
    q            = DiagonalGaussian(quant_conv(encoder(x)))   logvar clamped to [-30, 20]
    z            = q.mean + exp(0.5 q.logvar) * eps
    xrec         = decoder(post_quant_conv(z))
    rec_map      = |x - xrec| + perceptual_weight * P(x, xrec)      P: [B,1,1,1], broadcast
    nll          = sum(rec_map / exp(logvar) + logvar) / B            (logvar = logvar_init, constant)
    kl           = sum(q.kl()) / B,  q.kl() = 0.5 sum_{C,h,w}(mean^2 + var - 1 - logvar)
    logits_real  = D(x) FIRST, then logits_fake = D(xrec) (not detached)
    g_loss       = -mean(logits_fake)
    d_weight     = clamp(||d nll/dW|| / (||d g_loss/dW|| + 1e-4), 0, 1e4).detach() * disc_weight,
                   W = decoder.conv_out.weight
    loss         = nll + kl_weight * kl + d_weight * disc_factor * g_loss
    disc_loss    = disc_factor * 0.5 * (mean relu(1 - logits_real) + mean relu(1 + logits_fake))
    ae grads     = d loss / d (encoder, decoder, quant_conv, post_quant_conv)  (ldm's opt_ae list)
    disc grads   = d disc_loss / d D from the SAME forward
    Adam(lr 1e-3, betas (0.5, 0.9), eps 1e-8) one step per group (ldm's configure_optimizers).

The perceptual term: P is a stand-in, P(x, y) = mean_{C,H,W}((x - y)^2) per item, shape
[B,1,1,1], in place of LPIPS (whose VGG16 would dominate the fixture and whose ReLU kinks make
1e-4 gradient parity fragile); it checks ldm's broadcast of a per-image perceptual distance
onto every pixel of rec_loss, which is what the loss adds around LPIPS.

Deviation from ldm (documented, as in make_train_fixture.py): ldm runs the model forward
twice per step (one per optimizer_idx) and D(xrec) in the generator pass; here one forward
serves both updates and BatchNorm stats move twice (real, then fake).

Warm-up (`warmup.*`, global_step < disc_start): fresh weights, same x and eps,
loss = nll + kl_weight * kl (ldm multiplies the GAN term by adopt_weight = 0), one Adam
step on the autoencoder only.
"""

import argparse
import json
import os
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hashinit  # noqa: E402
import st  # noqa: E402
from make_kl_fixtures import AutoencoderKL  # noqa: E402
from make_train_fixture import NLayerDiscriminator, hinge_d_loss  # noqa: E402

OUT = os.path.normpath(os.path.join(HERE, "..", "test", "fixtures", "train", "kl_step.safetensors"))
BUDGET = 300_000
MADE_BY = "scripts/make_kl_train_fixture.py (Debian python3, torch %s, numpy %s)" % (
    torch.__version__, np.__version__)

KL_DD = OrderedDict(double_z=True, z_channels=4, resolution=16, in_channels=3, out_ch=3, ch=16,
                    ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[8], dropout=0.0, norm_num_groups=8)
EMBED_DIM = 4
DISC = {"input_nc": 3, "ndf": 8, "n_layers": 2, "use_actnorm": False}
DPREFIX = "loss.discriminator."
LOSS = {"logvar_init": 0.25, "kl_weight": 0.05, "perceptual_weight": 0.5, "disc_weight": 0.5,
        "disc_factor": 1.0, "adaptive_delta": 1e-4, "disc_loss": "hinge", "disc_start": 0}
ADAM = {"lr": 1e-3, "betas": (0.5, 0.9), "eps": 1e-8}
X_SHAPE = (4, 3, 16, 16)
EPS_SHAPE = (4, EMBED_DIM, 8, 8)

MODEL_SUBSET = [
    "decoder.conv_out.weight", "decoder.conv_out.bias",
    "post_quant_conv.weight", "quant_conv.weight", "quant_conv.bias",
    "encoder.conv_in.weight", "encoder.conv_out.weight",
    "encoder.down.1.attn.0.q.weight", "decoder.norm_out.weight",
]


def build(dtype):
    model = AutoencoderKL(KL_DD, EMBED_DIM)
    hashinit.load_hash_weights(model)
    disc = NLayerDiscriminator(**DISC)
    with torch.no_grad():
        for k, v in disc.state_dict().items():
            name = k.rsplit(".", 1)[1]
            if name == "running_mean" or name == "num_batches_tracked":
                v.zero_()
            elif name == "running_var":
                v.fill_(1.0)
            else:
                v.copy_(torch.from_numpy(hashinit.hash_array(DPREFIX + k, tuple(v.shape))))
    return model.to(dtype).train(), disc.to(dtype).train()


def inputs(dtype):
    torch.manual_seed(0)
    x = torch.rand(*X_SHAPE) * 2 - 1
    torch.manual_seed(1)
    eps = torch.randn(*EPS_SHAPE)
    return x.to(dtype), eps.to(dtype)


def perceptual(x, y):
    """Stand-in for LPIPS: one distance per image, [B,1,1,1] like LPIPS' output."""
    return torch.mean((x - y) ** 2, dim=[1, 2, 3], keepdim=True)


def adam(params):
    return torch.optim.Adam(params, lr=ADAM["lr"], betas=ADAM["betas"], eps=ADAM["eps"])


def nll_and_kl(model, x, eps, dtype):
    q = model.encode(x)
    z = q.sample(eps)
    xrec = model.decode(z)
    rec_loss = torch.abs(x.contiguous() - xrec.contiguous())
    rec_loss = rec_loss + LOSS["perceptual_weight"] * perceptual(x.contiguous(), xrec.contiguous())
    logvar = torch.ones(size=(), dtype=dtype) * LOSS["logvar_init"]  # nn.Parameter in ldm, never optimised
    nll_map = rec_loss / torch.exp(logvar) + logvar
    nll = torch.sum(nll_map) / nll_map.shape[0]
    kl = q.kl()
    kl = torch.sum(kl) / kl.shape[0]
    return xrec, rec_loss, nll, kl, q


def gan_step(dtype):
    model, disc = build(dtype)
    x, eps = inputs(dtype)
    init_params = {k: v.detach().clone() for k, v in model.named_parameters()}
    init_params.update({DPREFIX + k: v.detach().clone() for k, v in disc.named_parameters()})
    init_buffers = {DPREFIX + k: v.detach().clone() for k, v in disc.named_buffers()}
    mparams = [p for _, p in model.named_parameters()]
    dparams = [p for _, p in disc.named_parameters()]

    xrec, rec_loss, nll, kl, q = nll_and_kl(model, x, eps, dtype)
    logits_real = disc(x.contiguous())
    logits_fake = disc(xrec.contiguous())
    g_loss = -torch.mean(logits_fake)
    last = model.decoder.conv_out.weight
    nll_grads = torch.autograd.grad(nll, last, retain_graph=True)[0]
    g_grads = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
    d_weight = torch.norm(nll_grads) / (torch.norm(g_grads) + LOSS["adaptive_delta"])
    d_weight = torch.clamp(d_weight, 0.0, 1e4).detach() * LOSS["disc_weight"]
    df = LOSS["disc_factor"]  # adopt_weight(disc_factor, global_step >= disc_start)
    loss = nll + LOSS["kl_weight"] * kl + d_weight * df * g_loss
    disc_loss = df * hinge_d_loss(logits_real, logits_fake)
    ae_grads = torch.autograd.grad(loss, mparams, retain_graph=True)
    d_grads = torch.autograd.grad(disc_loss, dparams)

    opt_ae, opt_d = adam(mparams), adam(dparams)
    for p, g in zip(mparams, ae_grads):
        p.grad = g.detach().clone()
    for p, g in zip(dparams, d_grads):
        p.grad = g.detach().clone()
    opt_ae.step()
    opt_d.step()

    names_m = [k for k, _ in model.named_parameters()]
    names_d = [DPREFIX + k for k, _ in disc.named_parameters()]
    sc = {
        "nll": nll, "kl": kl, "rec_loss": rec_loss.mean(), "g_loss": g_loss, "d_weight": d_weight,
        "loss": loss, "disc_loss": disc_loss, "logits_real_mean": logits_real.mean(),
        "logits_fake_mean": logits_fake.mean(), "nll_grad_norm": torch.norm(nll_grads),
        "g_grad_norm": torch.norm(g_grads),
    }
    return {
        "scalars": {k: v.detach() for k, v in sc.items()},
        "x": x, "eps": eps, "xrec": xrec.detach(), "mean": q.mean.detach(), "logvar": q.logvar.detach(),
        "param": init_params, "buffer": init_buffers,
        "grad": dict(zip(names_m + names_d, [g.detach() for g in list(ae_grads) + list(d_grads)])),
        "after": {**{k: v.detach().clone() for k, v in model.named_parameters()},
                  **{DPREFIX + k: v.detach().clone() for k, v in disc.named_parameters()}},
        "after_buffer": {DPREFIX + k: v.detach().clone() for k, v in disc.named_buffers()},
        "d_keys": names_d,
    }


def warmup_step(dtype):
    model, _ = build(dtype)
    x, eps = inputs(dtype)
    mparams = [p for _, p in model.named_parameters()]
    _, _, nll, kl, _ = nll_and_kl(model, x, eps, dtype)
    loss = nll + LOSS["kl_weight"] * kl
    grads = torch.autograd.grad(loss, mparams)
    opt = adam(mparams)
    for p, g in zip(mparams, grads):
        p.grad = g.detach().clone()
    opt.step()
    names = [k for k, _ in model.named_parameters()]
    return {
        "scalars": {"nll": nll.detach(), "kl": kl.detach(), "loss": loss.detach()},
        "grad": dict(zip(names, [g.detach() for g in grads])),
        "after": {k: v.detach().clone() for k, v in model.named_parameters()},
    }


def np32(t):
    a = t.detach().cpu().numpy()
    return a.astype(np.float32) if a.dtype == np.float64 else a


def compare(r32, r64, keys):
    worst_after, worst_grad_rel, flips = 0.0, 0.0, 0
    for k in keys:
        worst_after = max(worst_after, float((r32["after"][k].double() - r64["after"][k]).abs().max()))
        g32, g64 = r32["grad"][k].double(), r64["grad"][k]
        scale = float(g64.abs().max()) or 1.0
        worst_grad_rel = max(worst_grad_rel, float((g32 - g64).abs().max()) / scale)
        flips += int(((torch.sign(g32) != torch.sign(g64)) & (g64 != 0)).sum())
    return {"max_abs_after_f32_vs_f64": worst_after, "max_grad_err_rel_to_tensor_max": worst_grad_rel,
            "grad_sign_flips_f32_vs_f64": flips}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args()
    torch.set_num_threads(1)

    g32, g64 = gan_step(torch.float32), gan_step(torch.float64)
    w32, w64 = warmup_step(torch.float32), warmup_step(torch.float64)
    stored_keys = MODEL_SUBSET + g32["d_keys"]
    for k in MODEL_SUBSET:
        assert k in g32["after"], k

    T = OrderedDict()
    for k in ("x", "eps", "xrec", "mean", "logvar"):
        T[k] = np32(g32[k])
    for k, v in g32["scalars"].items():
        T[k] = np32(v)
    for k in stored_keys:
        if k.startswith(DPREFIX):
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
        T["warmup.after." + k] = np32(w32["after"][k])

    info = {
        "gan": compare(g32, g64, stored_keys),
        "warmup": compare(w32, w64, MODEL_SUBSET),
        "scalar_rel_err_f32_vs_f64": {k: abs(float(g32["scalars"][k]) - float(g64["scalars"][k])) / abs(float(g64["scalars"][k]))
                                      for k in g32["scalars"]},
    }
    meta = {
        "made_by": MADE_BY,
        "config": json.dumps({"embed_dim": EMBED_DIM, "ddconfig": KL_DD}),
        "disc": json.dumps(DISC) + " keys prefixed " + DPREFIX,
        "loss": json.dumps(LOSS),
        "adam": json.dumps({"lr": ADAM["lr"], "betas": list(ADAM["betas"]), "eps": ADAM["eps"]}),
        "weights": "hashinit hash weights for every floating param (D keys with the loss.discriminator. "
                   "prefix); BN running_mean 0, running_var 1, num_batches_tracked 0",
        "x": "torch.manual_seed(0); torch.rand(4,3,16,16)*2-1",
        "eps": "torch.manual_seed(1); torch.randn(4,4,8,8)",
        "perceptual": "stand-in for LPIPS: mean over C,H,W of (x-xrec)^2 per image, [B,1,1,1], broadcast onto rec_loss",
        "formulas": "see the script's docstring (ldm LPIPSWithDiscriminator, one forward for both updates)",
        "stored": "x, eps, xrec, mean, logvar (clamped); scalars nll, kl, rec_loss (mean of rec_map), g_loss, "
                  "d_weight, loss, disc_loss, logits_{real,fake}_mean, nll_grad_norm, g_grad_norm; "
                  "grad./after. for the model keys " + ",".join(MODEL_SUBSET) + " and all D params "
                  "(param. for D only: the model's initial weights are regenerated by hashinit); "
                  "buffer./after_buffer. BN stats; warmup.{nll,kl,loss}, warmup.after.<model subset>",
        "info": json.dumps(info),
    }
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    st.save(a.out, T, meta)
    size = os.path.getsize(a.out)
    print(f"wrote {a.out}: {size} bytes, {len(T)} tensors")
    print(json.dumps(info, indent=1))
    for k in g32["scalars"]:
        print(f"  {k} = {float(T[k]):.8g}")
    for k in w32["scalars"]:
        print(f"  warmup.{k} = {float(T['warmup.' + k]):.8g}")
    if size > BUDGET:
        raise SystemExit(f"fixture {size} bytes exceeds the {BUDGET}-byte budget")


if __name__ == "__main__":
    main()
