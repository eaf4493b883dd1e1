"""Rotary embeddings as one complex multiply: RoPE in both pairings, and q.k unchanged by the
pair reordering the loader applies to GPT-NeoX-style models."""

import numpy as np
import pytest

from worker.models.rotary import RotaryTable, apply_rotary, inv_frequencies, pair_halves
from worker.platform import paddle

HEAD_DIM, HEADS, TOKENS = 8, 3, 5
POSITIONS = np.array([0, 1, 7, 100, 4095])


def textbook_rope(x: np.ndarray, theta: np.ndarray, interleaved: bool) -> np.ndarray:
    """x [T, H, D], theta [T, D/2]: pairs (2i, 2i+1) or (i, i + D/2) turned by theta."""
    cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, b * cos + a * sin
        return out
    a, b = x[..., : HEAD_DIM // 2], x[..., HEAD_DIM // 2 :]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


def rotate(x: np.ndarray, rotated_heads: int = HEADS) -> np.ndarray:
    """x [T, H, D]: the first rotated_heads heads turned, the others left as they are."""
    with paddle.no_grad():
        turns = RotaryTable(HEAD_DIM, 10000.0).turns(POSITIONS, rotated_heads, x.shape[1])
        out = apply_rotary(paddle.to_tensor(x.reshape(x.shape[0], -1)), turns)
    return out.numpy().reshape(x.shape)


def angles_of_positions() -> np.ndarray:
    return POSITIONS[:, None].astype(np.float32) * inv_frequencies(HEAD_DIM, 10000.0)[None, :]


def test_interleaved_pairs_rotate_as_rope():
    x = np.random.default_rng(0).standard_normal((TOKENS, HEADS, HEAD_DIM)).astype(np.float32)
    expected = textbook_rope(x.astype(np.float64), angles_of_positions(), interleaved=True)
    np.testing.assert_allclose(rotate(x), expected, rtol=1e-5, atol=1e-5)


def test_heads_past_the_rotated_ones_come_out_bit_for_bit():
    x = np.random.default_rng(2).standard_normal((TOKENS, HEADS + 2, HEAD_DIM)).astype(np.float32)
    out = rotate(x, rotated_heads=HEADS)
    assert np.array_equal(out[:, HEADS:], x[:, HEADS:])  # v rides along unturned
    assert np.array_equal(out[:, :HEADS], rotate(x[:, :HEADS]))


def test_the_table_grows_and_gathers_the_factors_paddle_computes():
    table = RotaryTable(HEAD_DIM, 10000.0)
    with paddle.no_grad():
        first = table.turns(np.array([3, 0]), 1, 2).numpy()
        grown = table.turns(np.array([5000, 3]), 1, 2).numpy()  # past the first 1024 positions
        theta = paddle.to_tensor(np.array([3, 0, 5000], np.float32)[:, None] * table.inv_freq[None, :])
        cos, sin = paddle.cos(theta).numpy(), paddle.sin(theta).numpy()
    assert table.table.shape[0] >= 5001
    assert np.array_equal(first[0, 0], cos[0] + 1j * sin[0]) and np.array_equal(grown[1, 0], first[0, 0])
    assert np.array_equal(grown[0, 0], cos[2] + 1j * sin[2])
    assert np.array_equal(first[:, 1], np.ones((2, HEAD_DIM // 2)))  # the unturned head, and position 0


def test_pair_halves_makes_neox_pairs_adjacent():
    w = np.arange(2 * HEADS * HEAD_DIM).reshape(2, HEADS * HEAD_DIM)
    assert pair_halves(w, HEAD_DIM)[0, :HEAD_DIM].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert pair_halves(w, HEAD_DIM)[1, HEAD_DIM : 2 * HEAD_DIM].tolist() == [32, 36, 33, 37, 34, 38, 35, 39]


@pytest.mark.parametrize("interleaved", [True, False])
def test_q_dot_k_after_reordering_equals_textbook_rope(interleaved):
    rng = np.random.default_rng(1)
    q, k = (rng.standard_normal((TOKENS, HEADS, HEAD_DIM)).astype(np.float32) for _ in range(2))
    order = (lambda x: x) if interleaved else (lambda x: pair_halves(x.reshape(TOKENS, -1), HEAD_DIM).reshape(x.shape))
    got = np.einsum("thd,shd->hts", rotate(order(q)), rotate(order(k)))
    theta = angles_of_positions()
    expected = np.einsum("thd,shd->hts", textbook_rope(q.astype(np.float64), theta, interleaved),
                         textbook_rope(k.astype(np.float64), theta, interleaved))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
