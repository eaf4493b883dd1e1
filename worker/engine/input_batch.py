"""The flat batch of one engine step: plain NumPy arrays, built once per step, no paddle.

Every scheduled sequence contributes a contiguous run of query tokens (a prefill chunk or
one decode token). The model runner turns these arrays into tensors and passes them down
explicitly; nothing about the batch lives in global state.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from worker.engine.scheduler import ScheduledSequence


@dataclass(frozen=True)
class InputBatch:
    # [T] token ids of every query token of the step, sequence after sequence.
    token_ids: np.ndarray  # int64
    # [T] absolute position of each query token inside its sequence.
    positions: np.ndarray  # int64
    # [T] cache slot (block_id * block_size + offset) where each token's K/V is written.
    slot_mapping: np.ndarray  # int64
    # [B+1] prefix sums of query lengths: sequence b owns rows [qsl[b], qsl[b+1]).
    query_start_loc: np.ndarray  # int32
    # [B] context length of each sequence after this step (cached + computed + new tokens);
    # queries are the last (qsl[b+1]-qsl[b]) of these positions (bottom-right causal mask).
    seq_lens: np.ndarray  # int32
    # [B, max_blocks] physical block ids of each sequence, padded with 0 past its length.
    block_tables: np.ndarray  # int32
    # [S] rows of the flat batch whose logits are sampled (the last token of each sequence
    # that reaches the end of its known tokens this step), in scheduling order.
    sample_indices: np.ndarray  # int64
    # [R] rows whose logits give prompt logprobs (ScheduledSequence.prompt_logprob_positions),
    # in scheduling order; usually empty.
    prompt_logprob_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def logits_indices(self) -> np.ndarray:
        """The rows the model computes logits for: the sampled ones, then the prompt-logprob ones."""
        if not len(self.prompt_logprob_indices):
            return self.sample_indices
        return np.concatenate([self.sample_indices, self.prompt_logprob_indices])

    @property
    def num_tokens(self) -> int:
        return int(self.token_ids.shape[0])

    @property
    def num_seqs(self) -> int:
        return int(self.seq_lens.shape[0])


def build_input_batch(scheduled: "list[ScheduledSequence]", block_size: int) -> InputBatch:
    """The flat batch of one step: each sequence's next `num_new_tokens` tokens, vectorised.

    Per-sequence work is plain list handling, turned into arrays once (a decode step has one
    token and a few blocks per sequence: a small NumPy array per sequence would cost more).
    """
    assert scheduled, "an empty step has no batch"
    seqs = [s.seq for s in scheduled]
    starts_list = [s.num_computed_tokens for s in seqs]
    qlens_list = [s.num_new_tokens for s in scheduled]
    tokens: list[int] = []
    for seq, b, n in zip(seqs, starts_list, qlens_list):
        tokens += seq.token_ids[b : b + n]
    max_blocks = max(len(s.block_table) for s in seqs)
    flat_tables: list[int] = []
    for seq in seqs:
        flat_tables += seq.block_table
        if len(seq.block_table) < max_blocks:
            flat_tables += [0] * (max_blocks - len(seq.block_table))
    block_tables = np.array(flat_tables, dtype=np.int32).reshape(len(seqs), max_blocks)
    starts, qlens = np.array(starts_list, dtype=np.int64), np.array(qlens_list, dtype=np.int64)
    ends = starts + qlens
    cu = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(qlens, out=cu[1:])
    owner = np.repeat(np.arange(len(seqs)), qlens)  # [T] row of the sequence owning each token
    positions = np.arange(int(cu[-1]), dtype=np.int64) - cu[:-1][owner] + starts[owner]
    slot_mapping = block_tables[owner, positions // block_size].astype(np.int64) * block_size + positions % block_size
    samples = np.array([s.samples for s in scheduled], dtype=bool)
    return InputBatch(
        token_ids=np.array(tokens, dtype=np.int64),
        positions=positions,
        slot_mapping=slot_mapping,
        query_start_loc=cu.astype(np.int32),
        seq_lens=ends.astype(np.int32),
        block_tables=block_tables,
        sample_indices=(cu[1:] - 1)[samples],
        prompt_logprob_indices=_prompt_logprob_rows(scheduled, starts_list, cu),
    )


def _prompt_logprob_rows(scheduled: "list[ScheduledSequence]", starts: list[int], cu: np.ndarray) -> np.ndarray:
    rows: list[int] = []
    for s, start, first_row in zip(scheduled, starts, cu[:-1].tolist()):
        positions = s.prompt_logprob_positions
        if positions:
            rows += range(first_row + positions.start - start, first_row + positions.stop - start)
    return np.array(rows, dtype=np.int64)
