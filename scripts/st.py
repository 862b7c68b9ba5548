"""Tiny safetensors writer/reader in pure Python + numpy (the `safetensors` package is not
installed). Format: u64 little-endian header length N, N bytes of JSON header
({name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}), then the data section.

    import st
    st.save("out.safetensors", {"w": np.zeros((2, 3), np.float32)}, {"note": "hi"})
    tensors, metadata = st.load("out.safetensors")

Writes F64/F32/F16/I64/I32/I16/I8/U8/BOOL; reads those plus BF16 (returned as float32).
"""

import json
import os
import struct
import tempfile

import numpy as np

# numpy dtype name -> safetensors dtype code (stored little-endian).
_NP_TO_ST = {
    "float64": "F64", "float32": "F32", "float16": "F16",
    "int64": "I64", "int32": "I32", "int16": "I16", "uint16": "U16",
    "int8": "I8", "uint8": "U8", "bool": "BOOL",
}
_ST_TO_NP = {v: np.dtype(k).newbyteorder("<") for k, v in _NP_TO_ST.items()}
_ST_TO_NP["BF16"] = np.dtype("<u2")


def dumps(tensors, metadata=None):
    """Serializes {name: ndarray} (sorted by alignment, then name) to bytes."""
    items = []
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        if arr.dtype.name not in _NP_TO_ST:
            raise ValueError(f"{name}: unsupported dtype {arr.dtype}")
        # (not np.ascontiguousarray: it turns 0-d arrays into 1-d)
        items.append((name, np.array(arr, dtype=arr.dtype.newbyteorder("<"), order="C", copy=True)))
    items.sort(key=lambda kv: (-kv[1].dtype.itemsize, kv[0]))
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    off = 0
    for name, arr in items:
        header[name] = {"dtype": _NP_TO_ST[arr.dtype.name], "shape": list(arr.shape),
                        "data_offsets": [off, off + arr.nbytes]}
        off += arr.nbytes
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((-(8 + len(hb))) % 8)
    return struct.pack("<Q", len(hb)) + hb + b"".join(arr.tobytes() for _, arr in items)


def loads(data):
    """Parses bytes into ({name: ndarray}, metadata). BF16 is widened to float32."""
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"header length {n} exceeds file size {len(data)}")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, e in header.items():
        dt = _ST_TO_NP[e["dtype"]]
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[base + b:base + end], dtype=dt).reshape(e["shape"])
        if e["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.copy()
    return out, metadata


def save(path, tensors, metadata=None):
    """Atomic write: temp file in the same directory, fsync, rename."""
    data = dumps(tensors, metadata)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path):
    with open(path, "rb") as f:
        return loads(f.read())


if __name__ == "__main__":
    import sys

    for p in sys.argv[1:]:
        ts, md = load(p)
        print(p, md)
        for k, v in ts.items():
            print(f"  {k}: {v.dtype} {list(v.shape)}")
