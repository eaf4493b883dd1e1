"""RoPE on q and k and the q/k/v split of the fused qkv projection in one op (rotary.cc)."""

from kernels.cpu.build import load_ops
from worker.platform import paddle

load_ops()

_run = paddle._C_ops._run_custom_op


def rotary_split(qkv, cos_sin, positions, q_heads: int, kv_heads: int):
    """qkv [T, (Hq + 2 Hkv) * D] (or [T, Hq + 2 Hkv, D]) with adjacent rotary pairs; cos_sin
    [P, D/2, 2] float32; positions [T] int64 tensor -> (q [T, Hq, D], k [T, Hkv, D], v [T, Hkv, D])."""
    qkv = qkv if qkv.is_contiguous() else qkv.contiguous()
    q, k, v = _run("bi_rotary_split", qkv, cos_sin, positions, int(q_heads), int(kv_heads))
    return q, k, v
