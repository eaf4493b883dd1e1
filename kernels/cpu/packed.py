"""Weights packed once into column panels, and our GEMM over them (packed_matmul.cc); the MLP's
silu(gate) * up in one op (swiglu.cc).

A plain matmul (MKL's sgemm) repacks its weight on every call; at decode's few rows that is a
large part of the call (benchmarks/decode_profile.py). The panels take the weight's own size
(N rounded up to 16 columns). Where the CPU has AVX-512F the GEMM runs its 512-bit kernel
(BATCHINFER_AVX512=0 keeps the AVX2 one, for comparison).
"""

from kernels.cpu.build import load_ops, wide_kernel_default
from worker.platform import paddle

load_ops()

_run = paddle._C_ops._run_custom_op
_NONE = None  # the empty tensor standing for "no residual", made on first use


def _first(out):
    return out[0] if isinstance(out, (list, tuple)) else out


class PackedWeight:
    """x @ W (+ add) with W [K, N] held packed; `transposed`: the tensor given is W^T [N, K].
    `wide`: the AVX-512 kernel (default: wide_kernel_default()); the op refuses it where the CPU
    lacks AVX-512F."""

    def __init__(self, weight, transposed: bool = False, wide: bool | None = None):
        rows, cols = weight.shape
        self.k, self.n = (cols, rows) if transposed else (rows, cols)
        self.wide = wide_kernel_default() if wide is None else wide
        self.packed = _first(_run("bi_pack_weight", weight, bool(transposed)))

    def __call__(self, x, add=None):
        """x [M, K]; add: a residual [M, N], a bias [N] or None."""
        global _NONE
        if add is None:
            if _NONE is None:
                _NONE = paddle.empty([0], dtype="float32")
            add = _NONE
        x = x if x.is_contiguous() else x.contiguous()
        return _first(_run("bi_packed_matmul", x, self.packed, add, int(self.n), bool(self.wide)))


def silu_mul(gate_up):
    """gate_up [T, 2I] (gate, then up) -> silu(gate) * up [T, I]."""
    gate_up = gate_up if gate_up.is_contiguous() else gate_up.contiguous()
    return _first(_run("bi_silu_mul", gate_up))
