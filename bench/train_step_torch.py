"""PyTorch twin of latentkit's training-step benchmark: taming's VQGAN step (VQModel +
VQLPIPSWithDiscriminator without LPIPS, hinge loss, discriminator active) on the design doc's
reference config, timed on CPU. Prints one JSON line.

    /usr/bin/python3 bench/train_step_torch.py --threads 1 [--steps 5] [--mode taming|single]
                                               [--z-channels 64]

Config: 64×64 input, batch 8, ch 64, ch_mult [1,2,2,4], num_res_blocks 2, attn_resolutions [8],
resolution 64, n_embed 512, z_channels = embed_dim = 64 by default: the same as latentkit's
bench/train_step.ts BENCH_CONFIG (which runs this script side by side without --z-channels),
and the config whose timings match the design doc's reference (2.15 s / 1.51 s). taming's own
shipped VQGAN configs (imagenet, faceshq, custom_vqgan) all use embed_dim = z_channels = 256:
`--z-channels 256` for that (≈5–10 % slower here: bigger encoder conv_out / decoder conv_in),
NLayerDiscriminator(ndf 64, n_layers 2, BatchNorm), Adam(lr 1e-4, betas (0.5, 0.9)),
disc_weight 0.8, disc_factor 1, codebook_weight 1, adaptive δ 1e-4 (taming's code).
Weights are hash weights (scripts/hashinit.py); their values do not matter for timing.

Modes:
  taming  what taming + PyTorch Lightning (automatic optimization, two optimizers) run per step:
          optimizer_idx 0: Lightning's toggle_optimizer sets requires_grad=False on the D params;
            xrec, qloss = model(x); logits_fake = D(xrec); g_loss; λ via two autograd.grad on
            decoder.conv_out.weight; loss.backward(); G Adam step.
          optimizer_idx 1: toggle → G params frozen, D trainable; xrec, qloss = model(x) AGAIN
            (with the updated G; no graph is built since no G param requires grad); rec is
            computed (taming's loss always does); logits_real = D(x.detach()),
            logits_fake = D(xrec.detach()); hinge d_loss; backward; D Adam step.
          (BatchNorm running stats move three times per step: fake, real, fake.)
  single  latentkit's scheduling: ONE forward of G, D(x) then D(xrec) (non-detached), λ, then
          ae grads = ∂ae_loss/∂θ_G and disc grads = ∂d_loss/∂θ_D from that same graph, two
          Adam steps.
Timing: 2 warm-up steps, then the median of K steps (wall clock, time.perf_counter).
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import hashinit  # noqa: E402
import taming_ref  # noqa: E402
from make_train_fixture import NLayerDiscriminator  # noqa: E402  (taming's D structure)

LR = 1e-4
BETAS = (0.5, 0.9)
DISC_WEIGHT = 0.8
DISC_FACTOR = 1.0
CODEBOOK_WEIGHT = 1.0
DELTA = 1e-4


def config(z):
    return {
        "embed_dim": z, "n_embed": 512,
        "ddconfig": {"double_z": False, "z_channels": z, "resolution": 64, "in_channels": 3,
                     "out_ch": 3, "ch": 64, "ch_mult": [1, 2, 2, 4], "num_res_blocks": 2,
                     "attn_resolutions": [8], "dropout": 0.0},
        "disc": {"input_nc": 3, "ndf": 64, "n_layers": 2, "use_actnorm": False},
        "batch": 8, "size": 64, "lpips": False, "disc_loss": "hinge",
        "adam": {"lr": LR, "betas": list(BETAS)}, "disc_weight": DISC_WEIGHT, "adaptive_delta": DELTA,
    }


def hash_fill(module, prefix=""):
    with torch.no_grad():
        for k, v in module.state_dict().items():
            name = k.rsplit(".", 1)[-1]
            if name == "running_mean":
                v.zero_()
            elif name == "running_var":
                v.fill_(1.0)
            elif torch.is_floating_point(v):
                v.copy_(torch.from_numpy(hashinit.hash_array(prefix + k, tuple(v.shape))))


def hinge_d_loss(logits_real, logits_fake):
    return 0.5 * (torch.mean(F.relu(1.0 - logits_real)) + torch.mean(F.relu(1.0 + logits_fake)))


def adaptive_weight(nll_loss, g_loss, last):
    # taming's calculate_adaptive_weight
    nll_grads = torch.autograd.grad(nll_loss, last, retain_graph=True)[0]
    g_grads = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
    d_weight = torch.norm(nll_grads) / (torch.norm(g_grads) + DELTA)
    return torch.clamp(d_weight, 0.0, 1e4).detach() * DISC_WEIGHT


def toggle(trainable, frozen):
    # Lightning's toggle_optimizer: only the current optimizer's params require grad
    for p in frozen:
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)


def step_taming(model, disc, x, opt_ae, opt_d, gparams, dparams):
    # optimizer_idx 0: generator
    toggle(gparams, dparams)
    xrec, qloss = model(x)
    rec = torch.mean(torch.abs(x.contiguous() - xrec.contiguous()))
    logits_fake = disc(xrec.contiguous())
    g_loss = -torch.mean(logits_fake)
    d_weight = adaptive_weight(rec, g_loss, model.decoder.conv_out.weight)
    loss = rec + d_weight * DISC_FACTOR * g_loss + CODEBOOK_WEIGHT * qloss.mean()
    opt_ae.zero_grad()
    loss.backward()
    opt_ae.step()
    # optimizer_idx 1: discriminator (training_step runs the model again)
    toggle(dparams, gparams)
    xrec, qloss = model(x)
    rec = torch.mean(torch.abs(x.contiguous() - xrec.contiguous()))  # taming computes it regardless
    logits_real = disc(x.contiguous().detach())
    logits_fake = disc(xrec.contiguous().detach())
    d_loss = DISC_FACTOR * hinge_d_loss(logits_real, logits_fake)
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    return float(loss), float(d_loss)


def step_single(model, disc, x, opt_ae, opt_d, gparams, dparams):
    xrec, qloss = model(x)
    rec = torch.mean(torch.abs(x - xrec))
    logits_real = disc(x)
    logits_fake = disc(xrec)
    g_loss = -torch.mean(logits_fake)
    d_weight = adaptive_weight(rec, g_loss, model.decoder.conv_out.weight)
    ae_loss = rec + d_weight * DISC_FACTOR * g_loss + CODEBOOK_WEIGHT * qloss
    d_loss = DISC_FACTOR * hinge_d_loss(logits_real, logits_fake)
    ae_grads = torch.autograd.grad(ae_loss, gparams, retain_graph=True)
    d_grads = torch.autograd.grad(d_loss, dparams)
    for p, g in zip(gparams, ae_grads):
        p.grad = g
    for p, g in zip(dparams, d_grads):
        p.grad = g
    opt_ae.step()
    opt_d.step()
    return float(ae_loss), float(d_loss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--mode", default="taming", choices=["taming", "single"])
    ap.add_argument("--z-channels", type=int, default=64, help="z_channels = embed_dim")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    cfg = config(a.z_channels)
    model = taming_ref.VQModel.from_config(cfg).train()
    disc = NLayerDiscriminator(**cfg["disc"]).train()
    hash_fill(model)
    hash_fill(disc, "loss.discriminator.")
    gparams = list(model.parameters())
    dparams = list(disc.parameters())
    opt_ae = torch.optim.Adam(gparams, lr=LR, betas=BETAS)
    opt_d = torch.optim.Adam(dparams, lr=LR, betas=BETAS)
    torch.manual_seed(0)
    x = torch.rand(cfg["batch"], 3, cfg["size"], cfg["size"]) * 2 - 1
    step = step_taming if a.mode == "taming" else step_single

    times, losses = [], None
    for i in range(a.warmup + a.steps):
        t = time.perf_counter()
        losses = step(model, disc, x, opt_ae, opt_d, gparams, dparams)
        dt = time.perf_counter() - t
        if i >= a.warmup:
            times.append(dt)
    med = statistics.median(times)
    print(json.dumps({
        "mode": a.mode, "threads": a.threads, "s_per_step_median": round(med, 4),
        "images_per_s": round(cfg["batch"] / med, 3), "steps": a.steps,
        "s_per_step_all": [round(t, 4) for t in times],
        "last_losses": {"ae": losses[0], "d": losses[1]},
        "params": {"vqmodel": sum(p.numel() for p in gparams), "disc": sum(p.numel() for p in dparams)},
        "torch": torch.__version__, "config": cfg,
    }))


if __name__ == "__main__":
    main()
