"""PyTorch twin of latentkit's whole-process reconstruct benchmark: builds taming's VQModel
(scripts/taming_ref.py), fills it with hash weights (scripts/hashinit.py), reconstructs K
random images one at a time under torch.no_grad(), and prints one JSON line.

    /usr/bin/python3 bench/reconstruct_torch.py --threads 1 --size 256 --images 3 [--arch imagenet]
        [--weights FILE.safetensors | --ckpt FILE.ckpt]

  --ckpt loads a Lightning .ckpt as taming's VQModel.init_from_ckpt does:
  torch.load(path, map_location="cpu")["state_dict"], then load_state_dict(strict=False).

  setup_s      model construction + hash-weight copy-in, *excluding* hash generation
  hash_s       time spent generating hash weights (numpy), reported separately
  per_image_s  median wall time of decode(quantize(encode(x))) for one [1,3,S,S] image
  peak_rss_mb  process peak resident set size (ru_maxrss) at the end
Also prints `first_image_s X` to stderr: seconds from the script's first line (before
`import torch`) to the first reconstructed image.
"""

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import hashinit  # noqa: E402
import taming_ref  # noqa: E402

ARCHS = {
    # taming's ImageNet f16/16384 VQGAN (76.1 M params)
    "imagenet": {"embed_dim": 256, "n_embed": 16384,
                 "ddconfig": {"double_z": False, "z_channels": 256, "resolution": 256,
                              "in_channels": 3, "out_ch": 3, "ch": 128, "ch_mult": [1, 1, 2, 2, 4],
                              "num_res_blocks": 2, "attn_resolutions": [16], "dropout": 0.0}},
    # fixtures' small config, for a quick smoke run
    "small": {"embed_dim": 8, "n_embed": 32,
              "ddconfig": {"double_z": False, "z_channels": 16, "resolution": 16, "in_channels": 3,
                           "out_ch": 3, "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1,
                           "attn_resolutions": [8], "dropout": 0.0}},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--arch", default="imagenet", choices=sorted(ARCHS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", help="load this safetensors state dict instead of generating hash weights")
    ap.add_argument("--ckpt", help="load this Lightning .ckpt (its state_dict) as taming's init_from_ckpt does")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    t0 = time.perf_counter()
    model = taming_ref.VQModel.from_config(ARCHS[a.arch]).eval()
    hash_s = 0.0
    if a.ckpt:
        sd = torch.load(a.ckpt, map_location="cpu")["state_dict"]
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing:
            raise SystemExit(f"{a.ckpt}: missing keys {missing[:5]}")
        del sd
    elif a.weights:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
        import st  # noqa: E402
        tensors, _ = st.load(a.weights)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    else:
        with torch.no_grad():
            for k, v in model.state_dict().items():
                th = time.perf_counter()
                arr = hashinit.hash_array(k, tuple(v.shape))
                hash_s += time.perf_counter() - th
                v.copy_(torch.from_numpy(arr))
    setup_s = time.perf_counter() - t0 - hash_s

    g = torch.Generator().manual_seed(a.seed)
    times = []
    with torch.no_grad():
        for _ in range(a.images):
            x = torch.rand(1, 3, a.size, a.size, generator=g) * 2 - 1
            t = time.perf_counter()
            quant, _, _ = model.encode(x)
            xrec = model.decode(quant)
            times.append(time.perf_counter() - t)
            if len(times) == 1:
                print(f"first_image_s {time.perf_counter() - T_START:.3f}", file=sys.stderr)
            assert xrec.shape == x.shape
    print(json.dumps({
        "arch": a.arch, "threads": a.threads, "size": a.size, "images": a.images,
        "params": sum(p.numel() for p in model.parameters()),
        "setup_s": round(setup_s, 4), "hash_s": round(hash_s, 4),
        "per_image_s": round(statistics.median(times), 4),
        "per_image_all_s": [round(t, 4) for t in times],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
