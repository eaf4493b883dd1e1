"""Read safetensors files into NumPy, including bfloat16 (which NumPy has no dtype for).

Real checkpoints (ERNIE 4.5, Qwen2, Llama) are stored in bfloat16; `safetensors`' NumPy
backend refuses them. The format is simple (an 8-byte header length, a JSON header, raw
little-endian data), so tensors are memory-mapped and bfloat16 is widened to float32
exactly (it is float32's upper half).
"""

import json
import struct
from pathlib import Path

import numpy as np

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
_MAX_HEADER = 100 << 20


class SafetensorsFormatError(ValueError):
    """The file is not a readable safetensors file."""


def read_header(path: Path) -> tuple[int, dict]:
    """(offset of the data section, {name: {dtype, shape, data_offsets}})."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise SafetensorsFormatError(f"{path}: too short for a safetensors header")
        (size,) = struct.unpack("<Q", raw)
        if size > _MAX_HEADER:
            raise SafetensorsFormatError(f"{path}: header of {size} bytes is implausible")
        try:
            header = json.loads(f.read(size))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SafetensorsFormatError(f"{path}: header is not JSON: {e}") from e
    header.pop("__metadata__", None)
    return 8 + size, header


def load_numpy(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the file; bfloat16 comes back as float32, the rest as stored."""
    path = Path(path)
    start, header = read_header(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        dtype = info.get("dtype")
        if dtype not in _DTYPES:
            raise SafetensorsFormatError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        begin, end = info["data_offsets"]
        flat = data[start + begin : start + end].view(_DTYPES[dtype])
        array = flat.reshape(info["shape"])
        if dtype == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        out[name] = array
    return out
