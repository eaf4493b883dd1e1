"""The decoder's projections: x @ W (+ a residual or bias), with W held as the platform runs it
fastest. On CPU with the `cpu` kernels in float32, W is packed once into MKL's panel layout
(kernels/cpu/packed.py): a plain matmul repacks W on every call, which at decode's 64 rows costs
a large part of the call (benchmarks/decode_profile.py). Elsewhere W is a plain tensor.

Packing is opt-in (BATCHINFER_PACKED_WEIGHTS=1): each packed matmul is faster alone, but whole
decode workloads ran 5-8% slower with it on a quiet machine (83.0/84.9 s against 81.0/78.6 s,
ABBA, `worker bench --only decode`, benchmarks/RESULTS.md) and packed weights take ~1.8x the
memory.
The MLP's silu(gate) * up is one op of the same kernels there (three Paddle ops elsewhere).
"""

import os

from worker.platform import paddle

_C = paddle._C_ops


def packing_enabled(backend_name: str, dtype: str) -> bool:
    return backend_name == "cpu" and dtype == "float32" and os.environ.get("BATCHINFER_PACKED_WEIGHTS", "0") == "1"


class Linear:
    """W [K, N], or W^T [N, K] when `transposed` (a tied LM head is the embedding [V, H])."""

    def __init__(self, weight, packed: bool, transposed: bool = False):
        self.transposed = transposed
        if packed:
            from kernels.cpu.packed import PackedWeight  # only where the cpu kernels build

            self.weight, self.packed = None, PackedWeight(weight, transposed)
        else:
            self.weight, self.packed = weight, None

    def __call__(self, x, add=None):
        """x @ W, plus `add` (a residual [M, N] or a bias [N]) when given."""
        if self.packed is not None:
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
