#!/usr/bin/python3
"""PyTorch twin of bench/engine.ts: VQGAN-like layers, forward and forward+backward.

Run with Debian's interpreter (torch 1.13):  /usr/bin/python3 bench/engine_torch.py --threads 1
Prints one JSON object on stdout: {"torch": version, "threads": n, "layers": [...]}, each
layer with median forward / forward+backward milliseconds over --reps repetitions after
--warmup warm-up runs. The layer list must match LAYERS in bench/engine_layers.ts.

--serve (used by bench/engine.ts, so that PyTorch and latentkit measurements of one layer
are taken back to back): prints {"ready": ...}, then answers each stdin line
"<fwd|fwd_bwd>\t<layer name>" with one JSON line {"ms": median, "all": [...], "cpu_s": ...}
(cpu_s: this process's CPU seconds so far, so the caller can tell foreign load apart).

forward          = y = layer(x) under torch.no_grad()
forward+backward = loss = sum(y * c) for a fixed random cotangent c, then
                   torch.autograd.grad(loss, [x, weights..., biases...])
"""
import argparse
import json
import os
import statistics
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", type=str, default="", help="comma-separated layer names")
    ap.add_argument("--serve", action="store_true", help="answer timing requests on stdin")
    args = ap.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch  # noqa: E402  (after OMP_NUM_THREADS)
    import torch.nn.functional as F  # noqa: E402

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)

    def conv_layer(n, c, o, hw, k, stride=1, pad=0, taming_down=False):
        x = torch.randn(n, c, hw, hw)
        w = torch.randn(o, c, k, k) * (1.0 / (c * k * k) ** 0.5)
        b = torch.randn(o) * 0.1

        def f(x, w, b):
            if taming_down:  # taming Downsample(with_conv=True): pad (0,1,0,1), 3x3 stride 2, no padding
                x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0)
                return F.conv2d(x, w, b, stride=2)
            return F.conv2d(x, w, b, stride=stride, padding=pad)

        return f, [x, w, b]

    def attn_layer(n, c, hw):
        x = torch.randn(n, c, hw, hw)
        params = []
        for _ in range(4):  # q, k, v, proj_out
            params.append(torch.randn(c, c, 1, 1) * (1.0 / c ** 0.5))
            params.append(torch.randn(c) * 0.1)

        def f(x, wq, bq, wk, bk, wv, bv, wp, bp):
            # taming AttnBlock minus norm and residual
            q = F.conv2d(x, wq, bq)
            k = F.conv2d(x, wk, bk)
            v = F.conv2d(x, wv, bv)
            b_, c_, h_, w_ = q.shape
            q = q.reshape(b_, c_, h_ * w_).permute(0, 2, 1)  # b,hw,c
            k = k.reshape(b_, c_, h_ * w_)  # b,c,hw
            a = torch.bmm(q, k) * (int(c_) ** (-0.5))  # b,hw,hw
            a = F.softmax(a, dim=2)
            v = v.reshape(b_, c_, h_ * w_)
            a = a.permute(0, 2, 1)
            h = torch.bmm(v, a).reshape(b_, c_, h_, w_)
            return F.conv2d(h, wp, bp)

        return f, [x] + params

    layers = {
        "conv3x3 C128 64²": lambda: conv_layer(8, 128, 128, 64, 3, pad=1),
        "conv3x3 C256 32²": lambda: conv_layer(8, 256, 256, 32, 3, pad=1),
        "conv3x3 C512 16²": lambda: conv_layer(8, 512, 512, 16, 3, pad=1),
        "down s2 C128 64²": lambda: conv_layer(8, 128, 128, 64, 3, taming_down=True),
        "conv1x1 C512 16²": lambda: conv_layer(8, 512, 512, 16, 1),
        "attn C512 16²": lambda: attn_layer(8, 512, 16),
    }
    only = [s for s in args.only.split(",") if s]

    def timeit(fn):
        for _ in range(args.warmup):
            fn()
        ts = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(ts), ts

    built = {}

    def runners(name):
        if name not in built:
            f, ins = layers[name]()
            y0 = f(*ins)
            c = torch.randn_like(y0)
            leaves = [t.detach().requires_grad_(True) for t in ins]

            def fwd():
                with torch.no_grad():
                    return f(*ins)

            def fwd_bwd():
                y = f(*leaves)
                loss = (y * c).sum()
                return torch.autograd.grad(loss, leaves)

            built[name] = {"fwd": fwd, "fwd_bwd": fwd_bwd}
        return built[name]

    if args.serve:
        print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
        for line in sys.stdin:
            line = line.rstrip("\n")
            if not line:
                continue
            mode, name = line.split("\t", 1)
            try:
                ms, ts = timeit(runners(name)[mode])
                print(json.dumps({"ms": ms, "all": ts, "cpu_s": time.process_time()}), flush=True)
            except Exception as e:  # report, keep serving
                print(json.dumps({"error": repr(e)}), flush=True)
        return

    out = []
    for name in layers:
        if only and name not in only:
            continue
        r = runners(name)
        fm, fts = timeit(r["fwd"])
        bm, bts = timeit(r["fwd_bwd"])
        out.append({"layer": name, "fwd_ms": fm, "fwd_bwd_ms": bm, "fwd_all": fts, "fwd_bwd_all": bts})
        print(f"# torch {name}: fwd {fm:.2f} ms, fwd+bwd {bm:.2f} ms", file=sys.stderr)

    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "num_threads": torch.get_num_threads(), "layers": out}))

if __name__ == "__main__":
    main()
