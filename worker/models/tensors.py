"""Host arrays to device tensors in the engine's dtype, and the host memory given back between
layers while loading.

glibc keeps freed heap memory for reuse: its mmap threshold grows to the largest block freed,
so after the first layer every layer's host arrays come from the heap and stay resident when
freed (+27 MiB over 108 MiB of weights in tests/model/test_load_memory.py). malloc_trim after
each layer hands them back; elsewhere (no glibc) it is a no-op.
"""

import ctypes
import ctypes.util

import numpy as np

from worker.platform import paddle

_libc_name = ctypes.util.find_library("c")
_malloc_trim = getattr(ctypes.CDLL(_libc_name), "malloc_trim", None) if _libc_name else None


def to_device(a: np.ndarray | None, dtype: str):
    return None if a is None else paddle.to_tensor(np.ascontiguousarray(a), dtype=dtype)


def release_host_memory() -> None:
    if _malloc_trim is not None:
        _malloc_trim(0)
