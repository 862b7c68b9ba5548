"""PyTorch twin of latentkit's sampling benchmark (bench/sample.ts): a class-conditional taming
GPT (scripts/taming_gpt_ref.py, weights from a latentkit model directory's
model.safetensors, `transformer.*` keys) samples B × 256 tokens after one class token, then
the first-stage VQGAN (scripts/taming_ref.py, emoji-f4's weights) decodes them — the whole
job of `latentkit sample`. One JSON line on stdout.

  --mode taming     taming's sample_with_past / forward_with_past (re-concatenates the cache
                    list every token)
  --mode recompute  taming's uncached loop: one full forward over the prefix per token
  --mode static     a preallocated KV cache written in place, attention over a view of it

    /usr/bin/python3 bench/sample_torch.py --model DIR --vq emoji-f4.safetensors --mode taming --threads 1 --batch 4
"""

import argparse
import json
import math
import os
import resource
import sys
import time

T0 = time.time()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import st  # noqa: E402
import taming_gpt_ref as ref  # noqa: E402
import taming_ref  # noqa: E402


def top_k(logits, k):
    v, _ = torch.topk(logits, k)
    return logits.masked_fill(logits < v[:, [-1]], float("-inf"))


@torch.no_grad()
def sample_recompute(gpt, c, steps, k):
    x = c
    for _ in range(steps):
        logits, _ = gpt(x)
        probs = F.softmax(top_k(logits[:, -1, :], k), dim=-1)
        x = torch.cat((x, torch.multinomial(probs, 1)), 1)
    return x[:, c.shape[1]:]


@torch.no_grad()
def sample_static(gpt, c, steps, k):
    """A static cache [n_layer, 2, B, nh, L, hs] filled in place; attention reads a view."""
    B = c.shape[0]
    nh, C = gpt.n_head, gpt.n_embd
    hs = C // nh
    L = c.shape[1] + steps
    cache = torch.zeros(len(gpt.blocks), 2, B, nh, L, hs)
    tok = c[:, 0]
    out = []
    for pos in range(L - 1):
        x = gpt.tok_emb(tok) + gpt.pos_emb[0, pos]
        for i, blk in enumerate(gpt.blocks):
            h = blk.ln1(x)
            a = blk.attn
            cache[i, 0, :, :, pos] = a.key(h).view(B, nh, hs)
            cache[i, 1, :, :, pos] = a.value(h).view(B, nh, hs)
            q = a.query(h).view(B, nh, 1, hs)
            kk = cache[i, 0, :, :, : pos + 1]
            vv = cache[i, 1, :, :, : pos + 1]
            att = F.softmax((q @ kk.transpose(-2, -1)) / math.sqrt(hs), dim=-1)
            x = x + a.proj((att @ vv).view(B, C))
            x = x + blk.mlp(blk.ln2(x))
        logits = gpt.head(gpt.ln_f(x))
        probs = F.softmax(top_k(logits, k), dim=-1)
        tok = torch.multinomial(probs, 1)[:, 0]
        out.append(tok)
    return torch.stack(out, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--vq", required=True)
    ap.add_argument("--mode", choices=["taming", "recompute", "static"], required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--top-k", type=int, default=100)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(os.path.join(a.model, "config.yaml")) as f:
        cfg = yaml.safe_load(f)["model"]["params"]
    gp = cfg["transformer_config"]["params"]
    gpt = ref.GPT(**{k: gp[k] for k in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "n_unmasked")}).eval()
    tensors, _ = st.load(os.path.join(a.model, "model.safetensors"))
    sd = {k[len("transformer."):]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith("transformer.")}
    sd.update({k: v for k, v in gpt.state_dict().items() if k.endswith("attn.mask")})
    gpt.load_state_dict(sd, strict=True)
    vqsd, meta = st.load(a.vq)
    vq = taming_ref.VQModel.from_config(json.loads(meta["config"])).eval()
    vq.load_state_dict({k: torch.from_numpy(v) for k, v in vqsd.items()}, strict=True)
    setup = time.time() - T0
    c = torch.zeros(a.batch, 1, dtype=torch.long)
    t1 = time.time()
    with torch.no_grad():
        if a.mode == "taming":
            tokens = ref.sample_with_past(c, gpt, a.steps, top_k=a.top_k)
        elif a.mode == "recompute":
            tokens = sample_recompute(gpt, c, a.steps, a.top_k)
        else:
            tokens = sample_static(gpt, c, a.steps, a.top_k)
    sample_s = time.time() - t1
    t2 = time.time()
    with torch.no_grad():
        g = int(math.isqrt(a.steps))
        images = vq.decode_code(tokens.view(a.batch, g, g))
    decode_s = time.time() - t2
    assert images.shape[0] == a.batch
    print(json.dumps({"mode": a.mode, "threads": a.threads, "batch": a.batch, "setup_s": setup, "sample_s": sample_s,
                      "per_token_ms": 1000 * sample_s / a.steps, "decode_s": decode_s, "total_s": time.time() - T0,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
