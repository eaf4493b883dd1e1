"""The decoder's projections: x @ W (+ a residual or bias).

On CPU with the `cpu` kernels in float32, W is packed once into column panels for our own GEMM
(kernels/cpu/packed_matmul.cc). Paddle's matmul (MKL's sgemm) repacks W on every call, costly at
decode's 64 rows, and on AMD it runs AVX2 code only. Where the CPU has AVX-512F the panels run
every call in 512-bit vectors, past MKL at every row count (benchmarks/RESULTS.md, 2026-12-06:
~470 GFLOP/s against MKL's ~260 at decode and prefill shapes), and the plain W is dropped. On an
AVX2-only CPU the panels run the calls of up to PANEL_MAX_ROWS rows (decode steps, the LM head)
and the plain W the larger ones, where MKL's own blocking beat our AVX2 kernel: that costs a
second copy of the projections. BATCHINFER_PACKED_WEIGHTS=0 keeps only the plain weights. The
MLP's silu(gate) * up is one op of the same kernels there (three Paddle ops elsewhere).
"""

import os

from worker.platform import paddle

_C = paddle._C_ops

# Up to this many rows our AVX2 panel GEMM beat MKL's sgemm in one run of both (gate_up and down
# shapes: 64 rows +24-35%, 128 rows even, 256 rows -4-8%).
PANEL_MAX_ROWS = 128


def packing_enabled(backend_name: str, dtype: str) -> bool:
    return backend_name == "cpu" and dtype == "float32" and os.environ.get("BATCHINFER_PACKED_WEIGHTS", "1") != "0"


class Linear:
    """W [K, N], or W^T [N, K] when `transposed` (a tied LM head is the embedding [V, H])."""

    def __init__(self, weight, packed: bool, transposed: bool = False):
        self.weight, self.transposed = weight, transposed
        self.packed = None
        if packed:
            from kernels.cpu.packed import PackedWeight  # only where the cpu kernels build

            self.packed = PackedWeight(weight, transposed)
            if self.packed.wide:
                self.weight = None  # every call takes the panels

    def __call__(self, x, add=None):
        """x @ W, plus `add` (a residual [M, N] or a bias [N]) when given."""
        if self.packed is not None and (self.weight is None or x.shape[0] <= PANEL_MAX_ROWS):
            return self.packed(x, add)
        if add is None:
            return _C.matmul(x, self.weight, False, self.transposed)
        assert not self.transposed, "addmm takes W as [K, N]"
        return _C.addmm(add, x, self.weight, 1.0, 1.0)


def swiglu(fused: bool):
    """gate_up [T, 2I] -> silu(gate) * up [T, I]: the `cpu` kernels' one op, or Paddle's three."""
    if fused:
        from kernels.cpu.packed import silu_mul

        return silu_mul

    def paddle_swiglu(gate_up):
        gate, up = _C.split_with_num(gate_up, 2, 1)
        return _C.multiply(_C.silu(gate), up)
    return paddle_swiglu
