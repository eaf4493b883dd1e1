"""The decoder's projections: x @ W (+ a residual or bias).

On CPU with the `cpu` kernels in float32, W is also packed once into column panels for our own
AVX2 GEMM (kernels/cpu/packed_matmul.cc), which runs the calls of up to PANEL_MAX_ROWS rows:
decode steps and the LM head. Paddle's matmul (MKL's sgemm) repacks W on every call, costly at
decode's 64 rows; at prefill's thousands of rows MKL's own blocking beats ours, so those calls
keep the plain W. Same-run figures (benchmarks/RESULTS.md): a 64-sequence decode step 586 ms
against 761 ms plain, the decode workload 17% faster; prefill unchanged. The cost is a second
copy of the projections (the panels are the size of W); BATCHINFER_PACKED_WEIGHTS=0 keeps only
the plain weights. The MLP's silu(gate) * up is one op of the same kernels there (three Paddle
ops elsewhere).
"""

import os

from worker.platform import paddle

_C = paddle._C_ops

# Up to this many rows our panel GEMM beat MKL's sgemm in one run of both (gate_up and down
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

    def __call__(self, x, add=None):
        """x @ W, plus `add` (a residual [M, N] or a bias [N]) when given."""
        if self.packed is not None and x.shape[0] <= PANEL_MAX_ROWS:
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
