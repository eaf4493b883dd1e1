"""Rotary position embeddings in the two pairings the supported models use.

ERNIE 4.5 rotates dims (2i, 2i+1) together ("rotate every two", as paddleformers'
`rotate_half` with `repeat_interleave`); Llama/Qwen2 rotate (i, i + D/2) (GPT-NeoX style).
Frequencies are computed exactly as paddleformers does (float32 throughout) so logits agree.
"""

from worker.platform import paddle


def inv_frequencies(head_dim: int, theta: float):
    exponents = paddle.arange(0, head_dim, 2, dtype="int64").astype("float32") / head_dim
    return 1.0 / (theta**exponents)  # [D/2]


def cos_sin(positions, inv_freq):
    """positions [T] int64 -> cos, sin [T, 1, D/2] float32 (broadcast over heads)."""
    freqs = positions.astype("float32").unsqueeze(1) * inv_freq.unsqueeze(0)
    return freqs.cos().unsqueeze(1), freqs.sin().unsqueeze(1)


def apply_rotary(x, cos, sin, interleaved: bool):
    """x [T, H, D] -> rotated, same shape and dtype."""
    t, h, d = x.shape
    xf = x.astype("float32")
    if interleaved:
        # A pair (x1, x2) times (cos + i sin) is one complex multiply: the same products and
        # sums as x1*cos - x2*sin, x2*cos + x1*sin (bit for bit), ~7x faster on CPU than
        # slicing the pairs apart and stacking them back.
        rotation = paddle.as_complex(paddle.stack([cos, sin], axis=-1))  # [T, 1, D/2]
        pairs = paddle.as_complex(xf.reshape([t, h, d // 2, 2]))
        out = paddle.as_real(pairs * rotation).reshape([t, h, d])
    else:
        x1, x2 = xf[..., : d // 2], xf[..., d // 2 :]
        out = paddle.concat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)
