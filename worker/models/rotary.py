"""Rotary position embeddings as one complex multiply per layer, for both pairings.

ERNIE 4.5 rotates dims (2i, 2i+1) together ("rotate every two", as paddleformers'
`rotate_half` with `repeat_interleave`); Llama/Qwen2 rotate (i, i + D/2) (GPT-NeoX style).
A pair (x1, x2) times (cos + i sin) is one complex multiply: the same products and sums as
x1*cos - x2*sin, x2*cos + x1*sin (bit for bit). For the GPT-NeoX pairing the loader reorders
each q and k head's output columns to (0, D/2, 1, D/2 + 1, ...) so its pairs are adjacent too:
q.k is unchanged when q and k are permuted alike, and only k goes into the cache.
Frequencies are computed exactly as paddleformers does (float32 throughout) so logits agree.
"""

import numpy as np

from worker.platform import paddle

_C = paddle._C_ops  # the hot path skips the Python wrappers (see decoder.py)


def inv_frequencies(head_dim: int, theta: float) -> np.ndarray:
    """[D/2] float32, with Paddle's own pow (as paddleformers) so the angles match bit for bit."""
    exponents = paddle.arange(0, head_dim, 2, dtype="int64").astype("float32") / head_dim
    return (1.0 / (theta**exponents)).numpy()


def pair_halves(w: np.ndarray, head_dim: int) -> np.ndarray:
    """Columns of every head of w [..., heads * head_dim] reordered (0, D/2, 1, D/2 + 1, ...)."""
    heads = w.reshape(*w.shape[:-1], -1, 2, head_dim // 2)
    return np.ascontiguousarray(np.swapaxes(heads, -1, -2).reshape(w.shape))


class RotaryTable:
    """cos + i sin of every position's angles, [P, D/2] complex64, computed once (grown on
    demand); a step gathers its tokens' rows for every head in one op instead of computing them.

    The angles are one float32 product each, position x inv_freq, as paddleformers computes them,
    so the factors are the reference's values. Position 0 is the no-turn row (cos 0 = 1, sin 0 = 0).
    """

    def __init__(self, head_dim: int, theta: float):
        self.inv_freq = inv_frequencies(head_dim, theta)
        self.table = self.real_table = None

    def turns(self, positions: np.ndarray, rotated_heads: int, heads: int):
        """[T, heads, D/2] factors: each of the first rotated_heads heads turned by its token's
        position, the rest (v) not. Full shape: a multiply that broadcasts over the head axis is
        ~10x slower than a plain one on Paddle's CPU."""
        self._ensure(int(positions.max()) + 1)
        rows = np.zeros((positions.shape[0], heads), dtype=np.int64)
        rows[:, :rotated_heads] = positions[:, None]
        # embedding is a row gather, ~4x faster than index_select on Paddle's CPU
        gathered = _C.embedding(paddle.to_tensor(rows.reshape(-1)), self.table, -1, False)
        return _C.reshape(gathered, [-1, heads, self.inv_freq.shape[0]])

    def cos_sin(self, needed: int):
        """[P >= needed, D/2, 2] float32: (cos, sin) of every position's angles, for the `cpu`
        kernels' fused rotary op (kernels/cpu/rotary.cc); the same values as the complex table."""
        self._ensure(needed)
        return self.real_table

    def _ensure(self, needed: int) -> None:
        if self.table is not None and self.table.shape[0] >= needed:
            return
        size = max(needed, 1024, 2 * (0 if self.table is None else self.table.shape[0]))
        theta = paddle.to_tensor(np.arange(size, dtype=np.float32)[:, None] * self.inv_freq[None, :])
        self.real_table = _C.stack([_C.cos(theta), _C.sin(theta)], 2)
        self.table = _C.as_complex(self.real_table)


def apply_rotary(x, rotation):
    """x [T, H * D] with adjacent pairs, times the rotation [T, H, D/2] -> [T, H, D/2, 2].

    Computed in float32 whatever the model's dtype (complex64 is the narrowest complex type);
    a head turned by 0 comes out bit for bit (x*1 - y*0 = x, x*0 + y*1 = y).
    """
    xf = x if x.dtype == paddle.float32 else x.astype("float32")
    pairs = _C.reshape(xf, [0, rotation.shape[1], -1, 2])
    out = _C.as_real(_C.multiply(_C.as_complex(pairs), rotation))
    return out if xf is x else out.astype(x.dtype)
