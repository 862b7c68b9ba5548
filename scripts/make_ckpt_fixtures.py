"""Writes the checkpoint-reader fixtures into test/fixtures/ckpt/ (run with Debian's torch:
`/usr/bin/python3 scripts/make_ckpt_fixtures.py`). Tests never need Python.

  tiny_lightning.ckpt    Lightning-style dict: state_dict (f32/f16/bf16/f64/int/bool tensors,
                         transposed / strided / expanded views, scalars, shared storage, a
                         Parameter) + optimizer_states (Adam), callbacks, hyper_parameters
                         (incl. argparse.Namespace and a __main__ class), epoch, global_step
  tiny_plain.pt          model.state_dict() of a small module (OrderedDict with _metadata)
  tiny_plain_repacked.pt the same archive re-zipped by Python's zipfile: prefix 'archive',
                         unaligned storages, data.pkl DEFLATE-compressed
  legacy.pt              pre-1.6 non-zip torch.save format (must be rejected)
  expected.safetensors   float32/int64/int32/bool values of every state-dict tensor above,
                         keyed '<fixture stem>/<key>' (written with scripts/st.py)
  data_p{0,2,4,5}.pkl    one plain-data object pickled with protocols 0, 2, 4, 5
  evil_os_system.pt      hand-assembled data.pkl: REDUCE(os.system, ('touch …',)) at top level
  evil_builtins_eval.ckpt  hand-assembled protocol-4 data.pkl: a real state_dict plus
                         hyper_parameters = builtins.eval('…') (STACK_GLOBAL + REDUCE)
The malicious pickles are assembled opcode by opcode; no real callable is ever pickled.
"""

import argparse
import io
import os
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import torch

sys.dont_write_bytecode = True  # no scripts/__pycache__ from importing st
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "ckpt")
PWN_OS = "/tmp/latentkit_pwned_os_system"
PWN_EVAL = "/tmp/latentkit_pwned_eval"


class TinyConfig:
    """Pickled by reference as __main__.TinyConfig: the reader must keep it inert."""

    def __init__(self):
        self.lr = 4.5e-6
        self.ch_mult = (1, 2)


def lightning_checkpoint():
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    w = r(3, 5)
    base = torch.arange(20, dtype=torch.float32)
    sd = OrderedDict()
    sd["encoder.conv_in.weight"] = r(4, 3, 3, 3)
    sd["encoder.conv_in.bias"] = r(4)
    sd["encoder.norm.weight"] = torch.nn.Parameter(r(4))  # _rebuild_parameter
    sd["half.weight"] = r(3, 5).half()
    sd["half.weight_t"] = r(4, 2).half().t()  # non-contiguous float16
    sd["bf16.weight"] = r(2, 3).bfloat16()
    sd["f64.weight"] = r(2, 2).double() / 3
    sd["proj.weight_t"] = w.t()  # [5, 3], stride (1, 5)
    sd["strided.every_other"] = r(3, 6)[:, ::2]  # stride (6, 2)
    sd["expand.row"] = r(1, 4).expand(3, 4)  # stride (0, 1)
    sd["shared.a"] = base[2:8].view(2, 3)  # offset 2, shares storage with shared.b
    sd["shared.b"] = base[10:].view(2, 5)  # offset 10
    sd["scalar.temp"] = torch.tensor(0.5)
    sd["bn.num_batches_tracked"] = torch.tensor(7)
    sd["codes.int64"] = torch.arange(-3, 3).view(2, 3)
    sd["codes.int32"] = torch.tensor([[-(2**31), 2**31 - 1], [0, 5]], dtype=torch.int32)
    sd["codes.int16"] = torch.tensor([-32768, 1, 32767], dtype=torch.int16)
    sd["codes.int8"] = torch.tensor([-128, 0, 127], dtype=torch.int8)
    sd["codes.uint8"] = torch.tensor([0, 128, 255], dtype=torch.uint8)
    sd["mask.bool"] = torch.tensor([[True, False, True]])
    sd["empty"] = torch.zeros(0, 3)

    params = [torch.nn.Parameter(r(3, 2)), torch.nn.Parameter(r(2))]
    opt = torch.optim.Adam(params, lr=1e-3)
    (params[0].sum() * 2 + params[1].pow(2).sum()).backward()
    opt.step()
    ckpt_cb = ("ModelCheckpoint{'monitor': 'val/rec_loss', 'mode': 'min', 'every_n_train_steps': 0, "
               "'every_n_epochs': 1, 'train_time_interval': None, 'save_on_train_epoch_end': True}")
    return {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "1.9.0",
        "state_dict": sd,
        "loops": {},
        "callbacks": {ckpt_cb: {
            "monitor": "val/rec_loss", "best_model_score": torch.tensor(0.25),
            "best_model_path": "/runs/x/checkpoints/last.ckpt", "current_score": torch.tensor(0.3),
            "dirpath": "/runs/x/checkpoints", "best_k_models": {}, "kth_best_model_path": "",
            "kth_value": torch.tensor(float("inf")), "last_model_path": "",
        }},
        "optimizer_states": [opt.state_dict()],
        "lr_schedulers": [],
        "hyper_parameters": {
            "ddconfig": {"ch": 4, "ch_mult": [1, 2], "attn_resolutions": (8,), "dropout": 0.0},
            "n_embed": 8, "embed_dim": 4, "ignore_keys": set(), "big": 2**70, "blob": b"\x00\xffab",
            "args": argparse.Namespace(base="configs/x.yaml", lr=4.5e-6), "cfg": TinyConfig(),
        },
    }


def plain_state_dict():
    torch.manual_seed(1)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.GroupNorm(2, 4), torch.nn.BatchNorm2d(4),
        torch.nn.Conv2d(4, 2, 1), torch.nn.Flatten(), torch.nn.Linear(8, 3))
    m.eval()
    return m.state_dict()


def expected_arrays(stem, sd):
    out = {}
    for k, t in sd.items():
        t = t.detach()
        if t.dtype in (torch.float16, torch.bfloat16, torch.float64, torch.float32):
            a = t.float().numpy()
        elif t.dtype == torch.int64:
            a = t.numpy()
        elif t.dtype == torch.bool:
            a = t.numpy()
        else:
            a = t.to(torch.int32).numpy()
        out[f"{stem}/{k}"] = np.array(a, order="C")
    return out


def repack(src, dst, prefix):
    """Re-zips a torch archive with zipfile: new prefix, no alignment, DEFLATE data.pkl."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            name = prefix + info.filename[info.filename.index("/"):]
            method = zipfile.ZIP_DEFLATED if name.endswith("data.pkl") else zipfile.ZIP_STORED
            zout.writestr(zipfile.ZipInfo(name), zin.read(info), compress_type=method)


# ---- hand-assembled pickles (opcode by opcode; nothing callable is ever pickled) ----

def sbu(s):  # SHORT_BINUNICODE
    b = s.encode("utf-8")
    return b"\x8c" + bytes([len(b)]) + b


def binunicode(s):  # BINUNICODE
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


def write_zip(path, entries):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name), data)


def evil_os_system_pickle():
    # Protocol 2, classic exploit shape: GLOBAL 'os system', ('touch …',), REDUCE.
    return (b"\x80\x02" + b"cos\nsystem\n" + b"q\x00" + binunicode("touch " + PWN_OS)
            + b"q\x01" + b"\x85" + b"q\x02" + b"R" + b"q\x03" + b".")


def evil_eval_pickle():
    body = b"".join([
        b"}\x94(",  # EMPTY_DICT MEMOIZE MARK
        sbu("state_dict"), b"\x94", b"}\x94(",
        sbu("w"), sbu("torch._utils"), sbu("_rebuild_tensor_v2"), b"\x93\x94",
        b"(",  # args
        b"(", sbu("storage"), sbu("torch"), sbu("FloatStorage"), b"\x93", sbu("0"), sbu("cpu"), b"K\x04", b"t", b"Q",
        b"K\x00", b"K\x02K\x02\x86", b"K\x02K\x01\x86", b"\x89",
        sbu("collections"), sbu("OrderedDict"), b"\x93", b")R",
        b"tR",
        b"u",  # SETITEMS (state_dict)
        sbu("hyper_parameters"), sbu("builtins"), sbu("eval"), b"\x93\x94",
        sbu("__import__('os').system('touch %s')" % PWN_EVAL), b"\x85R",
        sbu("epoch"), b"K\x01",
        b"u.",
    ])
    return b"\x80\x04" + b"\x95" + struct.pack("<Q", len(body)) + body


class _Inert:
    def __init__(self, name):
        self.name, self.args = name, None

    def __call__(self, *args):
        self.args = args
        return self


class _CheckUnpickler(pickle.Unpickler):
    """Structural check of the hand-written pickles without importing or running anything."""

    def find_class(self, module, name):
        return _Inert(f"{module}.{name}")

    def persistent_load(self, pid):
        return ("persistent", pid)


def check_pickle(data):
    return _CheckUnpickler(io.BytesIO(data)).load()


def plain_data():
    shared = [1, 2]
    return {
        "none": None, "t": True, "f": False,
        "ints": [0, 1, 255, 256, 65535, 65536, -1, -(2**31), 2**31 - 1, 2**31, 2**63, -(2**70)],
        "floats": [1.5, -0.0, float("inf"), -2.25e-300],
        "strs": ["", "héllo ✓", "a\\b\nc", "x" * 300],
        "bytes": b"\x00\xffab",
        "tuple": (1, "two", 3.0), "empty_tuple": (), "nested": [[1, [2, [3]]], {"k": (4,)}],
        "intkeys": {0: "zero", 7: "seven"}, "set": {3}, "fset": frozenset({4}),
        "shared1": shared, "shared2": shared, "od": OrderedDict([("b", 1), ("a", 2)]),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    p = lambda name: os.path.join(OUT, name)  # noqa: E731
    expected = {}

    ck = lightning_checkpoint()
    torch.save(ck, p("tiny_lightning.ckpt"))
    expected.update(expected_arrays("tiny_lightning", ck["state_dict"]))

    sd = plain_state_dict()
    torch.save(sd, p("tiny_plain.pt"))
    expected.update(expected_arrays("tiny_plain", sd))
    repack(p("tiny_plain.pt"), p("tiny_plain_repacked.pt"), "archive")

    torch.save({"w": torch.ones(2)}, p("legacy.pt"), _use_new_zipfile_serialization=False)
    st.save(p("expected.safetensors"), expected, {"generator": "scripts/make_ckpt_fixtures.py",
                                                 "torch": torch.__version__})

    for proto in (0, 2, 4, 5):
        with open(p(f"data_p{proto}.pkl"), "wb") as f:
            f.write(pickle.dumps(plain_data(), protocol=proto))

    evil = evil_os_system_pickle()
    assert check_pickle(evil).name == "os.system"
    write_zip(p("evil_os_system.pt"), [("archive/data.pkl", evil), ("archive/version", b"3\n")])
    evil = evil_eval_pickle()
    got = check_pickle(evil)
    assert got["hyper_parameters"].name == "builtins.eval" and got["epoch"] == 1, got
    write_zip(p("evil_builtins_eval.ckpt"), [
        ("archive/data.pkl", evil), ("archive/data/0", np.arange(1, 5, dtype="<f4").tobytes()),
        ("archive/version", b"3\n")])

    # Sanity: torch reads back what we wrote (not the evil ones, obviously).
    back = torch.load(p("tiny_lightning.ckpt"))["state_dict"]
    assert all(torch.equal(back[k], v.detach()) for k, v in ck["state_dict"].items())
    total = 0
    for name in sorted(os.listdir(OUT)):
        size = os.path.getsize(p(name))
        total += size
        print(f"{size:8d}  {name}")
    print(f"{total:8d}  total")


if __name__ == "__main__":
    main()
