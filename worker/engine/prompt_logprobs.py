"""Prompt logprobs (vLLM's `prompt_logprobs`): for every prompt token after the first, the
model's raw log-softmax at the position before it, for that token and the top k.

The scheduler marks which positions of a step still owe one
(`ScheduledSequence.prompt_logprob_positions`); the input batch asks the model for those rows
after the sampled ones; this records them. Entries are appended in position order, so a
chunked prefill fills them chunk by chunk and a preempted sequence, recomputed from its start,
skips the positions it already has. A prefix-cache hit would skip positions altogether: the
scheduler gives such a sequence no hit until it has them all.
"""

import numpy as np

from worker.engine.sampler import top_logprobs
from worker.engine.scheduler import ScheduledSequence


def record_prompt_logprobs(scheduled: list[ScheduledSequence], logits: np.ndarray) -> None:
    """logits: [R, V], the rows of InputBatch.prompt_logprob_indices, in the same order."""
    row = 0
    for s in scheduled:
        seq = s.seq
        for position in s.prompt_logprob_positions:
            assert len(seq.prompt_logprobs) == position + 1, f"seq {seq.seq_id}: prompt logprob out of order"
            seq.prompt_logprobs.append(
                top_logprobs(logits[row], seq.token_ids[position + 1], seq.sampling_params.prompt_logprobs))
            row += 1
    assert row == logits.shape[0], f"{logits.shape[0]} prompt logprob rows for {row} positions"
