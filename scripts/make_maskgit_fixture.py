"""Writes test/fixtures/maskgit/loss_io.safetensors (run with Debian's torch:
`/usr/bin/python3 scripts/make_maskgit_fixture.py`): MaskGIT's training loss as PyTorch
computes it — cross-entropy with label smoothing 0.1 over the codebook's logits (the first V of
a head that also has the [MASK] token) at the masked positions only:
F.cross_entropy(logits[..., :V][mask], target[mask], label_smoothing=0.1) — and its gradient
with respect to the logits. logits [2, 10, 8] (V = 7 codes + [MASK]), random targets and mask."""
import os
import numpy as np
import torch
import torch.nn.functional as F
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402  (the project's small safetensors writer)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "test", "fixtures", "maskgit")
g = torch.Generator().manual_seed(0)
logits = (2 * torch.randn(2, 10, 8, generator=g)).requires_grad_(True)
target = torch.randint(0, 7, (2, 10), generator=g)
mask = torch.rand(2, 10, generator=g) < 0.5
loss = F.cross_entropy(logits[..., :7][mask], target[mask], label_smoothing=0.1)
loss.backward()
os.makedirs(OUT, exist_ok=True)
st.save(os.path.join(OUT, "loss_io.safetensors"), {
    "in.logits": logits.detach().numpy().astype(np.float32),
    "in.target": target.numpy().astype(np.int64),
    "in.mask": mask.numpy().astype(np.float32),
    "out.loss": np.array(loss.item(), dtype=np.float32),
    "out.grad": logits.grad.numpy().astype(np.float32),
}, {"made_by": "scripts/make_maskgit_fixture.py (torch %s)" % torch.__version__, "label_smoothing": "0.1", "vocab": "7"})
print("loss", loss.item(), "masked", int(mask.sum()))
