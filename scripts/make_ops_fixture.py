"""Reference values for composite ops and SGD: torch layer_norm, batch_norm (train, with
running-stat update, and eval), gelu, log_softmax, and 5 SGD steps (momentum, nesterov,
weight decay) on a quadratic. Writes test/fixtures/engine/ops.safetensors.
Run: /usr/bin/python3 scripts/make_ops_fixture.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402

torch.manual_seed(1)
out = {}
x = torch.randn(4, 3, 5, 5)
out["x"] = x.numpy()
w, b = torch.randn(3), torch.randn(3)
out["w"], out["b"] = w.numpy(), b.numpy()
rm, rv = torch.randn(3), torch.rand(3) + 0.5
out["rm"], out["rv"] = rm.numpy().copy(), rv.numpy().copy()
rm2, rv2 = rm.clone(), rv.clone()
out["bn_train"] = F.batch_norm(x, rm2, rv2, w, b, training=True, momentum=0.1, eps=1e-5).numpy()
out["bn_rm"], out["bn_rv"] = rm2.numpy(), rv2.numpy()
out["bn_eval"] = F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-5).numpy()
lw, lb = torch.randn(5), torch.randn(5)
out["lw"], out["lb"] = lw.numpy(), lb.numpy()
out["ln"] = F.layer_norm(x, (5,), lw, lb, eps=1e-5).numpy()
out["gelu"] = F.gelu(x).numpy()
out["log_softmax"] = F.log_softmax(x, dim=1).numpy()

# SGD on f(p) = sum(a * p^2) + sum(c * p)
a, c = torch.rand(6) + 0.5, torch.randn(6)
p0 = torch.randn(6)
out["sgd_a"], out["sgd_c"], out["sgd_p0"] = a.numpy(), c.numpy(), p0.numpy()
for tag, kw in [("plain", dict(lr=0.1)),
                ("momentum", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
                ("nesterov", dict(lr=0.1, momentum=0.9, nesterov=True))]:
    p = p0.clone().requires_grad_(True)
    opt = torch.optim.SGD([p], **kw)
    for _ in range(5):
        opt.zero_grad()
        (a * p * p + c * p).sum().backward()
        opt.step()
    out["sgd_" + tag] = p.detach().numpy().copy()

path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "engine", "ops.safetensors")
st.save(path, out, {"torch": torch.__version__, "script": "scripts/make_ops_fixture.py"})
print("wrote", os.path.normpath(path), os.path.getsize(path), "bytes")
