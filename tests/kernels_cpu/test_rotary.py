"""The `cpu` kernels' fused rotary + split against the same rotation as Paddle ops (rotary.py)."""

import numpy as np
import pytest

from kernels.cpu.rotary import rotary_split
from worker.models.rotary import RotaryTable, apply_rotary
from worker.platform import paddle

C = paddle._C_ops


@pytest.mark.parametrize("q_heads,kv_heads,head_dim", [(16, 2, 128), (4, 4, 64), (2, 1, 12)])  # 12: a tail pair
def test_fused_rotary_split_matches_the_complex_multiply_and_split(q_heads, kv_heads, head_dim):
    rng = np.random.default_rng(q_heads + head_dim)
    tokens, heads = 37, q_heads + 2 * kv_heads
    positions = np.concatenate([[0], rng.integers(1, 5000, tokens - 1)]).astype(np.int64)
    qkv = paddle.to_tensor(rng.standard_normal((tokens, heads * head_dim), np.float32))
    table = RotaryTable(head_dim, 10000.0)
    turns = table.turns(positions, q_heads + kv_heads, heads)
    want = C.split(C.reshape(apply_rotary(qkv, turns), [0, 0, -1]), [q_heads, kv_heads, kv_heads], 1)
    got = rotary_split(qkv, table.cos_sin(int(positions.max()) + 1), paddle.to_tensor(positions), q_heads, kv_heads)
    for g, w, name in zip(got, want, "qkv"):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(got[2].numpy(), want[2].numpy())  # v is copied, not turned
    # position 0 turns by nothing: the first token's q and k come out as they went in
    np.testing.assert_array_equal(got[0].numpy()[0].reshape(-1), qkv.numpy()[0, : q_heads * head_dim])


def test_a_position_outside_the_table_is_refused():
    table = RotaryTable(8, 10000.0)
    qkv = paddle.ones([1, 3 * 8])
    with pytest.raises(Exception, match="outside the table"):
        rotary_split(qkv, table.cos_sin(4), paddle.to_tensor(np.array([table.cos_sin(4).shape[0]], np.int64)), 1, 1)
