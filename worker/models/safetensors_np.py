"""Read safetensors files into NumPy, including bfloat16 (which NumPy has no dtype for).

Real checkpoints (ERNIE 4.5, Qwen2, Llama) are stored in bfloat16; `safetensors`' NumPy
backend refuses them. The format is simple (an 8-byte header length, a JSON header, raw
little-endian data). A SafetensorsFile reads only its header up front; each tensor is read on
demand into its own array (bfloat16 widened to float32 exactly: it is float32's upper half;
a linear weight transposed on the way when asked),
so a loader that converts tensor by tensor holds one tensor's bytes at a time, not the file:
a memory map would keep every page it touched resident until the whole load ends.
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


class SafetensorsFile:
    """One file's tensor index; read(name) reads that tensor alone."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.data_start, self.header = read_header(self.path)
        for name, info in self.header.items():
            if info.get("dtype") not in _DTYPES:
                raise SafetensorsFormatError(
                    f"{self.path}: tensor {name!r} has unsupported dtype {info.get('dtype')!r}")

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.header[name]["shape"])

    def read(self, name: str, transpose: bool = False) -> np.ndarray:
        """bfloat16 comes back as float32, the rest as stored; transpose: a 2-D tensor's
        transpose, contiguous. A bfloat16 tensor is widened straight into its (transposed)
        float32 array, in place: one float32 array beside the raw bytes at any time (widening
        by expression held 2.5x the float32 size: a 65 MB embedding cost 162 MB)."""
        info = self.header[name]
        begin, end = info["data_offsets"]
        raw = np.fromfile(self.path, dtype=np.uint8, count=end - begin, offset=self.data_start + begin)
        if raw.size != end - begin:
            raise SafetensorsFormatError(f"{self.path}: tensor {name!r} is truncated")
        array = raw.view(_DTYPES[info["dtype"]]).reshape(info["shape"])
        if transpose:
            array = array.T
        if info["dtype"] == "BF16":
            wide = np.empty(array.shape, np.uint32)
            wide[...] = array
            del raw, array
            wide <<= 16
            return wide.view(np.float32)
        return np.ascontiguousarray(array) if transpose else array
