"""Writes the GPT / Net2NetTransformer parity fixtures into test/fixtures/gpt/ (run with
Debian's torch: `/usr/bin/python3 scripts/make_gpt_fixtures.py`). Tests never need Python.

  gpt_io.safetensors   a small taming GPT (vocab 37, block 24, 2 layers, 2 heads, width 16,
                       n_unmasked 3) with random weights (param.*): tokens cz = cat(c, z),
                       full logits, taming's forward_with_past logits for the same sequence
                       (prefill of c, then one token at a time), the Net2Net loss
                       (logits of GPT(cz[:, :-1])[:, len(c)-1:] against z) and every parameter
                       gradient, and the parameters after 3 AdamW steps (β 0.9/0.95, weight
                       decay 0.01 on Linear weights only, lr 1e-3) on that loss (adamw.*).
  net2net_class.ckpt   a Lightning-style checkpoint of a class-conditional Net2NetTransformer
  net2net_class.yaml   (Labelator, 5 classes; a one-level VQGAN over 4×4 images: 16 codes of
                       16 entries, first-stage weights rounded to float16 to keep the file
                       small): state_dict with transformer.* (incl. attn.mask buffers) and
                       first_stage_model.* keys.
  net2net_io.safetensors  greedy samples of taming's sample_with_past for classes 0..4
                       (tokens [5, 16]), the same by taming's uncached loop, the decoded
                       images, and the smallest top-1/top-2 logit gap met while sampling.

  bidir_io.safetensors the gpt_io model's weights with every position unmasked (n_unmasked =
                       block_size: taming's GPT as the bidirectional transformer MaskGIT uses),
                       its logits over the same tokens (`--bidir` writes only this file)

Run with `--roundtrip FILE.ckpt` to load a checkpoint written by `latentkit convert` into
the reference Net2Net with load_state_dict(strict=True) and compare greedy samples with the
fixture's: prints OK or FAIL.
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
import st  # noqa: E402
import taming_gpt_ref as ref  # noqa: E402
import taming_ref  # noqa: E402

OUT = os.path.normpath(os.path.join(HERE, "..", "test", "fixtures", "gpt"))
MADE_BY = "scripts/make_gpt_fixtures.py (Debian python3, torch %s)" % torch.__version__

GPT_CFG = dict(vocab_size=37, block_size=24, n_layer=2, n_head=2, n_embd=16, n_unmasked=3)
N2N_GPT = dict(vocab_size=16, block_size=17, n_layer=2, n_head=4, n_embd=32)
N2N_VQ = {
    "embed_dim": 4,
    "n_embed": 16,
    "ddconfig": {"double_z": False, "z_channels": 4, "resolution": 4, "in_channels": 3, "out_ch": 3, "ch": 32,
                 "ch_mult": [1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0},
}
N_CLASSES = 5


def randomize(model, seed, std):
    """Weights with a spread large enough for decisive logits (taming's init is near-uniform)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln1.weight") or name.endswith("ln2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def np32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def gpt_io():
    torch.manual_seed(0)
    m = ref.GPT(**GPT_CFG)
    randomize(m, 1, 0.3)
    g = torch.Generator().manual_seed(2)
    c = torch.randint(0, 37, (2, 3), generator=g)
    z = torch.randint(0, 37, (2, 17), generator=g)
    cz = torch.cat((c, z), 1)
    out = {f"param.{k}": np32(v) for k, v in m.state_dict().items() if not k.endswith("attn.mask")}
    out["in.c"] = c.numpy().astype(np.int64)
    out["in.z"] = z.numpy().astype(np.int64)
    m.eval()
    with torch.no_grad():
        out["out.logits"] = np32(m(cz)[0])
        # forward_with_past over the same sequence: prefill c, then one token per call
        logits, _, present = m.forward_with_past(cz[:, :3])
        past = [present]
        steps = [logits]
        for n in range(3, cz.shape[1]):
            lg, _, present = m.forward_with_past(cz[:, n:n + 1], past=past, past_length=n)
            past.append(present)
            steps.append(lg)
        out["out.past_logits"] = np32(torch.cat(steps, 1))
    m.zero_grad()
    logits, loss = ref.net2net_loss(m, c, z)
    loss.backward()
    out["out.cut_logits"] = np32(logits)
    out["out.loss"] = np.array(loss.item(), dtype=np.float32)
    for k, p in m.named_parameters():
        out[f"grad.{k}"] = np32(p.grad)
    # 3 AdamW steps, taming's groups
    decay, no_decay = ref.decay_groups(m)
    params = dict(m.named_parameters())
    opt = torch.optim.AdamW([{"params": [params[n] for n in decay], "weight_decay": 0.01},
                             {"params": [params[n] for n in no_decay], "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.95))
    for _ in range(3):
        opt.zero_grad()
        ref.net2net_loss(m, c, z)[1].backward()
        opt.step()
    for k, p in m.named_parameters():
        out[f"adamw.{k}"] = np32(p)
    meta = {"config": json.dumps(GPT_CFG), "decay": json.dumps(decay), "made_by": MADE_BY}
    st.save(os.path.join(OUT, "gpt_io.safetensors"), out, meta)
    print("gpt_io:", len(out), "tensors, loss", loss.item())


def bidir_io():
    torch.manual_seed(0)
    m = ref.GPT(**dict(GPT_CFG, n_unmasked=GPT_CFG["block_size"]))
    randomize(m, 1, 0.3)  # the same draws as gpt_io: the same weights
    g = torch.Generator().manual_seed(2)
    c = torch.randint(0, 37, (2, 3), generator=g)
    z = torch.randint(0, 37, (2, 17), generator=g)
    m.eval()
    with torch.no_grad():
        logits = m(torch.cat((c, z), 1))[0]
    out = {"out.logits": np32(logits), "check.head.weight": np32(m.head.weight)}
    st.save(os.path.join(OUT, "bidir_io.safetensors"), out, {"n_unmasked": str(GPT_CFG["block_size"]), "made_by": MADE_BY})
    print("bidir_io: logits", tuple(logits.shape))


def greedy_gap(m, c, steps):
    """Smallest top-1/top-2 logit gap along the greedy (uncached) path."""
    x = c
    gap = float("inf")
    with torch.no_grad():
        for _ in range(steps):
            lg = m(x)[0][:, -1, :]
            top = torch.topk(lg, 2, dim=-1).values
            gap = min(gap, float((top[:, 0] - top[:, 1]).min()))
            x = torch.cat((x, lg.argmax(-1, keepdim=True)), 1)
    return gap


def build_net2net(seed):
    torch.manual_seed(seed)
    gpt = ref.GPT(**N2N_GPT)
    randomize(gpt, seed, 0.5)
    vq = taming_ref.VQModel.from_config(N2N_VQ)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in vq.named_parameters():
            if name.startswith("quantize.embedding"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            p.copy_(p.half().float())  # the checkpoint stores the first stage in float16
    return gpt.eval(), vq.eval()


def net2net_yaml():
    def block(d, ind):
        lines = []
        for k, v in d.items():
            if isinstance(v, dict):
                lines.append(" " * ind + f"{k}:")
                lines.extend(block(v, ind + 2))
            else:
                lines.append(" " * ind + f"{k}: {json.dumps(v) if not isinstance(v, bool) else str(v).lower()}")
        return lines
    cfg = {"model": {"base_learning_rate": 4.5e-06, "target": "taming.models.cond_transformer.Net2NetTransformer", "params": {
        "first_stage_key": "image", "cond_stage_key": "class_label",
        "transformer_config": {"target": "taming.modules.transformer.mingpt.GPT", "params": N2N_GPT},
        "first_stage_config": {"target": "taming.models.vqgan.VQModel", "params": {**N2N_VQ, "lossconfig": {"target": "taming.modules.losses.DummyLoss"}}},
        "cond_stage_config": {"target": "taming.modules.util.Labelator", "params": {"n_classes": N_CLASSES}},
    }}}
    return "# a tiny class-conditional Net2NetTransformer (" + MADE_BY + ")\n" + "\n".join(block(cfg, 0)) + "\n"


def net2net():
    for seed in range(10, 60):
        gpt, vq = build_net2net(seed)
        c = torch.arange(N_CLASSES).view(-1, 1)
        gap = greedy_gap(gpt, c, 16)
        if gap > 1e-2:
            break
    print("net2net seed", seed, "min greedy gap", gap)
    tokens = ref.sample_with_past(c, gpt, steps=16, sample_logits=False)
    full = ref.sample_full_recompute(c, gpt, 16)[:, 1:]
    assert torch.equal(tokens, full)
    with torch.no_grad():
        images = vq.decode_code(tokens.view(-1, 4, 4))
    sd = OrderedDict()
    for k, v in gpt.state_dict().items():
        sd[f"transformer.{k}"] = v
    for k, v in vq.state_dict().items():
        sd[f"first_stage_model.{k}"] = v.half() if v.is_floating_point() else v
    ckpt = {"epoch": 7, "global_step": 4321, "pytorch-lightning_version": "1.0.8", "state_dict": sd}
    torch.save(ckpt, os.path.join(OUT, "net2net_class.ckpt"))
    with open(os.path.join(OUT, "net2net_class.yaml"), "w") as f:
        f.write(net2net_yaml())
    st.save(os.path.join(OUT, "net2net_io.safetensors"), {
        "classes": c.view(-1).numpy().astype(np.int64),
        "tokens": tokens.numpy().astype(np.int64),
        "tokens_full": full.numpy().astype(np.int64),
        "images": np32(images),
        "min_gap": np.array(gap, dtype=np.float32),
    }, {"made_by": MADE_BY})


def roundtrip(path):
    """Load a converted checkpoint strictly into the reference Net2Net parts; compare samples."""
    sd = torch.load(path, map_location="cpu")
    sd = sd.get("state_dict", sd)
    gpt, vq = build_net2net(0)
    tsd = OrderedDict((k[len("transformer."):], v.float() if v.is_floating_point() else v) for k, v in sd.items() if k.startswith("transformer."))
    fsd = OrderedDict((k[len("first_stage_model."):], v.float() if v.is_floating_point() else v) for k, v in sd.items() if k.startswith("first_stage_model."))
    other = [k for k in sd if not k.startswith(("transformer.", "first_stage_model."))]
    gpt.load_state_dict(tsd, strict=True)
    vq.load_state_dict(fsd, strict=True)
    io, _ = st.load(os.path.join(OUT, "net2net_io.safetensors"))
    c = torch.from_numpy(io["classes"]).view(-1, 1)
    tokens = ref.sample_with_past(c, gpt, steps=16, sample_logits=False).numpy()
    ok = np.array_equal(tokens, io["tokens"]) and not other
    print("OK" if ok else f"FAIL (unexpected keys {other[:5]})" if other else "FAIL (tokens differ)")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--roundtrip")
    ap.add_argument("--bidir", action="store_true")
    a = ap.parse_args()
    if a.roundtrip:
        sys.exit(roundtrip(a.roundtrip))
    if a.bidir:
        return bidir_io()
    os.makedirs(OUT, exist_ok=True)
    gpt_io()
    bidir_io()
    net2net()
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)), "bytes")


if __name__ == "__main__":
    main()
