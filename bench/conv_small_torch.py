"""PyTorch twin of bench/conv_small.ts: the same single convolutions, median of 30, ms (JSON list)."""
import json
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]))
SHAPES = [(8, 128, 256, 8, 4, 1, 1), (8, 64, 128, 16, 4, 2, 1), (8, 64, 64, 16, 3, 1, 1), (8, 32, 32, 32, 3, 1, 1), (8, 64, 64, 8, 3, 1, 1)]
out = []
with torch.no_grad():
    for n, c, o, h, k, s, p in SHAPES:
        x, w = torch.randn(n, c, h, h), torch.randn(o, c, k, k)
        for _ in range(3):
            torch.nn.functional.conv2d(x, w, stride=s, padding=p)
        ts = []
        for _ in range(30):
            t = time.perf_counter()
            torch.nn.functional.conv2d(x, w, stride=s, padding=p)
            ts.append(time.perf_counter() - t)
        out.append(sorted(ts)[15] * 1e3)
print(json.dumps(out))
