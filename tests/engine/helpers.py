"""Small builders for the host-logic tests."""

from worker.engine.sequence import Sequence
from worker.sampling_params import SamplingParams


def make_seq(tokens, request_id="r", **sampling) -> Sequence:
    return Sequence(request_id=request_id, token_ids=list(tokens), sampling_params=SamplingParams(**sampling))


def compute(bm, seq, num_new: int) -> None:
    """What one engine step does for `seq`'s blocks: its next tokens get K/V, full blocks get cached."""
    seq.num_computed_tokens += num_new
    bm.cache_full_blocks(seq)


def admit(bm, seq) -> int:
    """Allocate `seq` with its prefix hit and compute its whole prompt; returns the hit tokens."""
    hits = bm.get_computed_blocks(seq)
    num_cached = len(hits) * bm.block_size
    bm.allocate(seq, hits, seq.num_tokens - num_cached)
    compute(bm, seq, seq.num_tokens - num_cached)
    return num_cached
