"""A plain PyTorch training loop of the tiny taming recipe (bench/train_step.ts --config tiny
runs it side by side with `latentkit train-ae` on the same data and config).

    /usr/bin/python3 bench/train_tiny_torch.py --config tiny.json --train train.npy --val val.npy
        --threads 2 [--steps 400 | --time-steps 10] [--out dir]

What a PyTorch user would write for taming's recipe (taming_ref's VQModel, taming's
NLayerDiscriminator with BatchNorm, Adam(lr = base_learning_rate × batch, betas (0.5, 0.9)),
L1 reconstruction + codebook loss (β 0.25, legacy), hinge GAN loss with taming's adaptive
weight λ = ‖∇rec‖ / (‖∇g‖ + 1e-4) on decoder.conv_out.weight, times disc_weight, from
disc_start on; before it the discriminator is not run). Default PyTorch initialisation, the
discriminator's convs N(0, 0.02) and BatchNorm N(1, 0.02) as taming's weights_init. Batches
are drawn by a per-epoch shuffle. At the end: validation PSNR over val.npy and a checkpoint.
Prints one JSON line. --time-steps K: 2 warm-up steps then the median of K GAN steps (autoencoder-only
steps with --time-warmup).
"""

import argparse
import json
import os
import statistics
import sys
import time

t_start = time.perf_counter()
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import taming_ref  # noqa: E402
from make_train_fixture import NLayerDiscriminator, hinge_d_loss  # noqa: E402


def weights_init(m):
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--time-steps", type=int, default=0)
    ap.add_argument("--time-warmup", action="store_true", help="time the autoencoder-only steps before disc_start")
    ap.add_argument("--out", default="")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    with open(a.config) as f:
        cfg = json.load(f)
    mp = cfg["model"]["params"]
    lp = mp["lossconfig"]["params"]
    bs = cfg["data"]["params"]["batch_size"]
    lr = cfg["model"]["base_learning_rate"] * bs
    disc_start = lp["disc_start"]
    train = torch.from_numpy(np.load(a.train))
    val = torch.from_numpy(np.load(a.val))

    model = taming_ref.VQModel.from_config(mp).train()
    disc = NLayerDiscriminator(input_nc=3, ndf=lp["disc_ndf"], n_layers=lp["disc_num_layers"]).train()
    disc.apply(weights_init)
    opt_g = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.9))
    last = model.decoder.conv_out.weight

    order, pos = torch.randperm(len(train)), 0

    def batch():
        nonlocal order, pos
        if pos + bs > len(order):
            order, pos = torch.randperm(len(train)), 0
        idx = order[pos:pos + bs]
        pos += bs
        return train[idx]

    def step(i):
        x = batch()
        xrec, qloss = model(x)
        rec = torch.mean(torch.abs(x - xrec))
        if i < disc_start:
            loss = rec + lp["codebook_weight"] * qloss
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            return
        for p in disc.parameters():
            p.requires_grad_(False)
        g_loss = -torch.mean(disc(xrec))
        g_rec = torch.autograd.grad(rec, last, retain_graph=True)[0]
        g_gan = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
        lam = torch.clamp(torch.norm(g_rec) / (torch.norm(g_gan) + 1e-4), 0.0, 1e4).detach() * lp["disc_weight"]
        loss = rec + lam * g_loss + lp["codebook_weight"] * qloss
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        for p in disc.parameters():
            p.requires_grad_(True)
        d_loss = hinge_d_loss(disc(x), disc(xrec.detach()))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

    if a.time_steps:
        which = 0 if a.time_warmup else disc_start
        for _ in range(2):
            step(which)
        ts = []
        for _ in range(a.time_steps):
            t = time.perf_counter()
            step(which)
            ts.append(time.perf_counter() - t)
        print(json.dumps({"threads": a.threads, "s_per_step": statistics.median(ts)}))
        return

    t_loop = time.perf_counter()
    for i in range(a.steps):
        step(i)
    loop_s = time.perf_counter() - t_loop
    model.eval()
    with torch.no_grad():
        se = []
        for j in range(0, len(val), 16):
            v = val[j:j + 16]
            r = model(v)[0]
            # PSNR of [0, 1] images (both clamped), per image, averaged: latentkit's metric
            mse = ((((r + 1) / 2).clamp(0, 1) - ((v + 1) / 2).clamp(0, 1)) ** 2).flatten(1).mean(1)
            se += [100.0 if m == 0 else 10 * float(torch.log10(1 / m)) for m in mse]
    psnr = sum(se) / len(se)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        tmp = os.path.join(a.out, "last.pt.tmp")
        torch.save({"model": model.state_dict(), "disc": disc.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict()}, tmp)
        os.replace(tmp, os.path.join(a.out, "last.pt"))
    print(json.dumps({"threads": a.threads, "steps": a.steps, "loop_s": loop_s, "s_per_step": loop_s / a.steps,
                      "val_psnr": psnr, "process_s": time.perf_counter() - t_start}))


if __name__ == "__main__":
    main()
