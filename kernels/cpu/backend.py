"""The `cpu` backend: the seam functions over the C++ op (paged_attention.cc).

The host arrays of a step (query_start_loc, seq_lens, block_tables) are the same NumPy
objects for every layer, so they are turned into tensors once per step, not once per layer.
"""

import numpy as np

from kernels.cpu.build import load_ops, wide_kernel_default
from worker.platform import paddle

load_ops()  # raises KernelBuildError here, at import, so the registry can fall back

_run = paddle._C_ops._run_custom_op

# Work items of this many rows (query tokens x heads of a kv group) or more take Q.K and P.V as
# the panel GEMM's register tiles; fewer go row by row. `benchmarks/attention_tiles.py`, both
# paths in one run (RESULTS.md): 64 rows (a prefill tile of 8 tokens, 8 heads a group) 1.13-1.22x
# faster tiled; 8 rows (decode) 0.79-0.80x, transposing K costing more than 8 rows win back.
TILED_ROWS = 16
# Those tiles in AVX-512 where the CPU has it (kernels/cpu/panel_micro_kernel_512.h).
WIDE_TILES = wide_kernel_default()


class _StepTensors:
    """Tensor copies of the last arrays seen, by identity (holding the arrays keeps ids unique)."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[np.ndarray, object]] = {}

    def get(self, x, dtype: str):
        if not isinstance(x, np.ndarray):
            return x if x.dtype == getattr(paddle, dtype) else x.astype(dtype)
        hit = self._cache.get(id(x))
        if hit is not None and hit[0] is x:
            return hit[1]
        if len(self._cache) >= 8:
            self._cache.clear()
        tensor = paddle.to_tensor(np.ascontiguousarray(x, dtype=dtype))
        self._cache[id(x)] = (x, tensor)
        return tensor


_tensors = _StepTensors()


def _contiguous(x):
    return x if x.is_contiguous() else x.contiguous()


def write_kv(key_cache, value_cache, key, value, slot_mapping) -> None:
    """Scatter key/value [T, Hkv, D] into the caches [NB, Hkv, BS, D] at `slot_mapping` [T]."""
    slots = _tensors.get(slot_mapping, "int64")
    _run("bi_write_kv", key_cache, value_cache, _contiguous(key), _contiguous(value), slots)


def paged_attention(query, key_cache, value_cache, query_start_loc, seq_lens, block_tables, scale,
                    tiled_rows: int = TILED_ROWS, wide: bool = WIDE_TILES):
    """query [T, Hq, D] against the paged caches; returns [T, Hq, D] in the same row order."""
    out = _run(
        "bi_paged_attention", _contiguous(query), key_cache, value_cache,
        _tensors.get(query_start_loc, "int32"), _tensors.get(seq_lens, "int32"),
        _tensors.get(block_tables, "int32"), float(scale), int(tiled_rows), bool(wide),
    )
    return out[0] if isinstance(out, (list, tuple)) else out
