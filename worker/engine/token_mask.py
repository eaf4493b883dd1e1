"""The tokens a grammar allows next, for the constrained rows of one sampling step.

`bits` is llguidance's packed layout: int32 words, bit j of word w allows token 32*w + j.
Applying it sets every other logit of those rows to -inf, before penalties and filters, so
temperature, top-k, top-p and min-p renormalise over the allowed tokens only.
"""

from dataclasses import dataclass

import numpy as np


def allocate_bits(num_rows: int, vocab_size: int) -> np.ndarray:
    return np.zeros((num_rows, -(-vocab_size // 32)), dtype=np.int32)


def unpack(bits: np.ndarray, vocab_size: int) -> np.ndarray:
    """[R, W] packed words -> [R, vocab_size] bool (little-endian words, as on x86 and ARM)."""
    return np.unpackbits(bits.view(np.uint8), axis=1, count=vocab_size, bitorder="little").view(bool)


@dataclass(frozen=True)
class TokenMask:
    rows: list[int]  # rows of the sampler's logits that are constrained, ascending
    bits: np.ndarray  # [len(rows), ceil(V / 32)] int32

    def allowed(self, vocab_size: int) -> np.ndarray:
        """[rows, vocab_size] bool."""
        return unpack(self.bits, vocab_size)

    def apply(self, logits: np.ndarray) -> None:
        """In place: -inf on every token the grammar does not allow next.

        Branch-free, one row at a time: a row of +inf (allowed) / -inf (not) from the bits,
        then min(logit, that). NumPy's masked writes (copyto/where with a boolean mask) cost
        ~5x more on rows that mix allowed and banned tokens."""
        allowed = unpack(self.bits, logits.shape[1]).view(np.uint8)
        bound = np.empty(logits.shape[1], dtype=np.float32)
        for i, row in enumerate(self.rows):
            np.subtract(allowed[i], np.float32(0.5), out=bound, dtype=np.float32)  # +-0.5
            bound *= np.float32(np.inf)
            np.minimum(logits[row], bound, out=logits[row])
