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

_C = paddle._C_ops  # the hot path skips the Python wrappers (see ernie4_5.py)


def inv_frequencies(head_dim: int, theta: float) -> np.ndarray:
    """[D/2] float32, with Paddle's own pow (as paddleformers) so the angles match bit for bit."""
    exponents = paddle.arange(0, head_dim, 2, dtype="int64").astype("float32") / head_dim
    return (1.0 / (theta**exponents)).numpy()


def pair_halves(w: np.ndarray, head_dim: int) -> np.ndarray:
    """Columns of every head of w [..., heads * head_dim] reordered (0, D/2, 1, D/2 + 1, ...)."""
    heads = w.reshape(*w.shape[:-1], -1, 2, head_dim // 2)
    return np.ascontiguousarray(np.swapaxes(heads, -1, -2).reshape(w.shape))


def angles(positions: np.ndarray, inv_freq: np.ndarray, rotated_heads: int, heads: int) -> np.ndarray:
    """positions [T] -> [T, heads, D/2] float32 angles: the same for each of the first
    `rotated_heads` heads, 0 (no turn) for the others (v rides along in the same multiply).

    One float32 product per element, as paddleformers' position x inv_freq, so cos/sin of these
    are the reference's values. Full shape: a multiply that broadcasts over the head axis is
    ~10x slower than a plain one on Paddle's CPU.
    """
    out = np.zeros((positions.shape[0], heads, inv_freq.shape[0]), dtype=np.float32)
    out[:, :rotated_heads] = (positions.astype(np.float32)[:, None] * inv_freq[None, :])[:, None, :]
    return out


def rotation(positions: np.ndarray, inv_freq: np.ndarray, rotated_heads: int, heads: int):
    """The step's rotation factors cos + i sin, [T, heads, D/2] complex64 (1 past rotated_heads)."""
    theta = paddle.to_tensor(angles(positions, inv_freq, rotated_heads, heads))
    return _C.as_complex(_C.stack([_C.cos(theta), _C.sin(theta)], 3))


def apply_rotary(x, rotation):
    """x [T, H * D] with adjacent pairs, times the rotation [T, H, D/2] -> [T, H, D/2, 2].

    Computed in float32 whatever the model's dtype (complex64 is the narrowest complex type);
    a head turned by 0 comes out bit for bit (x*1 - y*0 = x, x*0 + y*1 = y).
    """
    xf = x if x.dtype == paddle.float32 else x.astype("float32")
    pairs = _C.reshape(xf, [0, rotation.shape[1], -1, 2])
    out = _C.as_real(_C.multiply(_C.as_complex(pairs), rotation))
    return out if xf is x else out.astype(x.dtype)
