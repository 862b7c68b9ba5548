"""PyTorch twin of latentkit's whole-process KL benchmark (bench/kl.ts): latent-diffusion's
AutoencoderKL (the reference in scripts/make_kl_fixtures.py) with SD's kl-f8 architecture,
weights from an ldm-named .safetensors, one 512x512 decode or encode under torch.no_grad(),
as a user's script would run it. Prints one JSON line; `first_result_s X` on stderr is the
time from the script's first line (before `import torch`) to the result.

    /usr/bin/python3 bench/kl_torch.py --weights W.safetensors --op decode --input latents.safetensors --threads 2
    /usr/bin/python3 bench/kl_torch.py --weights W.safetensors --op encode --input image.safetensors --threads 2

Inputs are safetensors files (tensor `latents` [1,4,64,64] scaled by 0.18215, or `image`
[1,3,512,512] in [-1,1]) so both sides start from the same numbers; the result is written
as a .npy beside nothing else (no image codec: that favours PyTorch slightly).
"""

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import st  # noqa: E402
from make_kl_fixtures import AutoencoderKL  # noqa: E402

KLF8 = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
        "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--op", choices=["decode", "encode"], required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", default=os.devnull)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model = AutoencoderKL(KLF8, 4).eval()
    tensors, _ = st.load(a.weights)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    del tensors
    inputs, _ = st.load(a.input)
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    with torch.no_grad():
        if a.op == "decode":
            out = model.decode(torch.from_numpy(inputs["latents"]) / 0.18215)
        else:
            out = model.encode(torch.from_numpy(inputs["image"])).mode() * 0.18215
    run_s = time.perf_counter() - t1
    print(f"first_result_s {time.perf_counter() - T_START:.3f}", file=sys.stderr)
    np.save(a.output if a.output != os.devnull else os.devnull, out.numpy()) if a.output != os.devnull else None
    print(json.dumps({"op": a.op, "threads": a.threads, "load_s": round(load_s, 3), "run_s": round(run_s, 3),
                      "shape": list(out.shape), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
