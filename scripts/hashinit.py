"""Deterministic "hash weights": every parameter value is a pure function of (key name, flat
index, shape), so the TypeScript side regenerates the exact same float32 tensors and the
parity fixtures never have to ship model weights. Run with Debian's python3 (numpy; torch
only for hash_state_dict / load_hash_weights).

Formula (all integer arithmetic on uint32, wrapping mod 2^32):
    seed = FNV-1a-32(utf8(key))          offset 2166136261, prime 16777619
    for flat index i (row-major, 0 ≤ i < n):
        x = i * 0x9E3779B1 + seed
        x ^= x >> 16;  x = x * 0x85EBCA6B
        x ^= x >> 13;  x = x * 0xC2B2AE35
        x ^= x >> 16
        u = (x >> 8) / 16777216.0          float64 in [0, 1), exact (24-bit integer / 2^24)
        s = 2*u - 1                         float64, exact
    value (float64 arithmetic, then one rounding to float32):
        key ends with ".bias"                      0.1 * s
        key ends with ".weight" and ndim == 1      1 + 0.2 * s      (GroupNorm/BatchNorm)
        key ends with "embedding.weight"           s                (codebook)
        otherwise                                  sqrt(3 / fan_in) * s,
                                                   fan_in = prod(shape[1:]) (1 when ndim ≤ 1),
                                                   scale = sqrt(3.0 / fan_in) computed first.
Non-floating tensors (e.g. BatchNorm num_batches_tracked) are left as they are.

    python3 scripts/hashinit.py --kat test/fixtures/vqgan/hashinit_kat.json
"""

import json
import math
import sys
from collections import OrderedDict

import numpy as np

FNV_OFFSET = 2166136261
FNV_PRIME = 16777619
_U = np.uint32
_CHUNK = 1 << 20  # elements per vectorized chunk (bounds temporary memory)


def fnv1a32(key):
    h = FNV_OFFSET
    for b in key.encode("utf-8"):
        h ^= b
        h = (h * FNV_PRIME) & 0xFFFFFFFF
    return h


def hash_uniform(seed, start, stop):
    """s = 2u − 1 in float64 for flat indices [start, stop)."""
    with np.errstate(over="ignore"):
        x = np.arange(start, stop, dtype=np.uint32)
        x = x * _U(0x9E3779B1) + _U(seed)
        x ^= x >> _U(16)
        x = x * _U(0x85EBCA6B)
        x ^= x >> _U(13)
        x = x * _U(0xC2B2AE35)
        x ^= x >> _U(16)
    u = (x >> _U(8)).astype(np.float64) / 16777216.0
    return 2.0 * u - 1.0


def value_rule(key, shape):
    """Returns (kind, scale, offset): value = offset + scale * s."""
    if key.endswith(".bias"):
        return "bias", 0.1, 0.0
    if key.endswith(".weight") and len(shape) == 1:
        return "norm", 0.2, 1.0
    if key.endswith("embedding.weight"):
        return "embedding", 1.0, 0.0
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    return "fan_in", math.sqrt(3.0 / fan_in), 0.0


def hash_array(key, shape):
    """The float32 ndarray for one key/shape."""
    shape = tuple(int(d) for d in shape)
    n = int(np.prod(shape)) if shape else 1
    if n >= 2 ** 32:
        raise ValueError(f"{key}: {n} elements exceed the uint32 index range")
    seed = fnv1a32(key)
    kind, scale, offset = value_rule(key, shape)
    out = np.empty(n, dtype=np.float32)
    for a in range(0, n, _CHUNK):
        b = min(n, a + _CHUNK)
        s = hash_uniform(seed, a, b)
        if kind == "norm":
            v = 1.0 + 0.2 * s
        elif kind == "fan_in":
            v = scale * s
        elif kind == "bias":
            v = 0.1 * s
        else:
            v = s
        out[a:b] = v.astype(np.float32)
    return out.reshape(shape)


def hash_state_dict(model_or_sd):
    """OrderedDict with the keys/shapes of model.state_dict(), filled with hash values
    (torch float32 tensors; non-floating entries are cloned unchanged)."""
    import torch

    sd = model_or_sd.state_dict() if hasattr(model_or_sd, "state_dict") else model_or_sd
    out = OrderedDict()
    for k, v in sd.items():
        if torch.is_floating_point(v):
            out[k] = torch.from_numpy(hash_array(k, tuple(v.shape)))
        else:
            out[k] = v.clone()
    return out


def load_hash_weights(model):
    """Fills the model's parameters/buffers in place, one tensor at a time."""
    import torch

    with torch.no_grad():
        for k, v in model.state_dict().items():
            if torch.is_floating_point(v):
                v.copy_(torch.from_numpy(hash_array(k, tuple(v.shape))))
    return model


KAT_CASES = [
    ("encoder.conv_in.weight", [4, 3, 3, 3]),
    ("encoder.conv_in.bias", [5]),
    ("encoder.norm_out.weight", [6]),
    ("quantize.embedding.weight", [3, 2]),
]


def known_answers():
    cases = []
    for key, shape in KAT_CASES:
        arr = hash_array(key, shape)
        cases.append({
            "key": key,
            "shape": shape,
            "seed": fnv1a32(key),
            "rule": value_rule(key, shape)[0],
            # float32 values printed as the shortest decimal that round-trips to float32
            # written via float64 repr (exact float32 value)
            "values": [float(v) for v in arr.reshape(-1)],
            # first raw uint32 hashes (x before >> 8) to localize mismatches
            "raw_x": [int(v) for v in _raw(fnv1a32(key), min(4, arr.size))],
            "float32_bits": [int(b) for b in arr.reshape(-1).view(np.uint32)],
        })
    return {"description": "hashinit known answers (scripts/hashinit.py); values are the exact "
                           "float32 numbers (printed as float64), float32_bits their bit patterns",
            "fnv1a32": {"": fnv1a32(""), "a": fnv1a32("a"), "encoder.conv_in.weight": fnv1a32("encoder.conv_in.weight")},
            "cases": cases}


def write_kat(path):
    """Known answers as JSON with one case per block and each array on one line."""
    kat = known_answers()
    lines = ["{", f' "description": {json.dumps(kat["description"])},',
             f' "fnv1a32": {json.dumps(kat["fnv1a32"])},', ' "cases": [']
    for j, c in enumerate(kat["cases"]):
        body = ",\n".join(f'   "{k}": {json.dumps(v)}' for k, v in c.items())
        lines.append("  {\n" + body + "\n  }" + ("," if j + 1 < len(kat["cases"]) else ""))
    lines += [" ]", "}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _raw(seed, n):
    with np.errstate(over="ignore"):
        x = np.arange(0, n, dtype=np.uint32)
        x = x * _U(0x9E3779B1) + _U(seed)
        x ^= x >> _U(16)
        x = x * _U(0x85EBCA6B)
        x ^= x >> _U(13)
        x = x * _U(0xC2B2AE35)
        x ^= x >> _U(16)
    return x


def _selftest():
    # scalar re-implementation with Python ints, to cross-check the vectorized path
    def scalar(key, shape):
        seed = fnv1a32(key)
        n = int(np.prod(shape))
        kind, scale, _ = value_rule(key, shape)
        vals = []
        for i in range(n):
            x = (i * 0x9E3779B1 + seed) & 0xFFFFFFFF
            x ^= x >> 16
            x = (x * 0x85EBCA6B) & 0xFFFFFFFF
            x ^= x >> 13
            x = (x * 0xC2B2AE35) & 0xFFFFFFFF
            x ^= x >> 16
            s = 2.0 * ((x >> 8) / 16777216.0) - 1.0
            v = {"bias": 0.1 * s, "norm": 1.0 + 0.2 * s, "embedding": s, "fan_in": scale * s}[kind]
            vals.append(v)
        return np.array(vals, dtype=np.float64).astype(np.float32).reshape(shape)

    assert fnv1a32("") == 2166136261 and fnv1a32("a") == 0xE40C292C
    for key, shape in KAT_CASES + [("decoder.up.1.block.0.conv1.weight", [7, 5, 3, 3]),
                                   ("x.weight", [3000])]:
        assert np.array_equal(scalar(key, shape), hash_array(key, shape)), key
    # chunk boundary
    # chunk boundaries: chunked result == one-shot vectorized result
    n = 2 * _CHUNK + 7
    a = hash_array("big.weight", [n, 1]).reshape(-1)
    b = (math.sqrt(3.0) * hash_uniform(fnv1a32("big.weight"), 0, n)).astype(np.float32)
    assert np.array_equal(a, b)
    print("hashinit selftest OK")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--kat", help="write the known-answer JSON here")
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args()
    if a.selftest or not a.kat:
        _selftest()
    if a.kat:
        write_kat(a.kat)
        print("wrote", a.kat)
