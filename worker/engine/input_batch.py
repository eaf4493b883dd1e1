"""The flat batch of one engine step: plain NumPy arrays, built once per step, no paddle.

Every scheduled sequence contributes a contiguous run of query tokens (a prefill chunk or
one decode token). The model runner turns these arrays into tensors and passes them down
explicitly; nothing about the batch lives in global state.
"""

from dataclasses import dataclass

import numpy as np


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

    @property
    def num_tokens(self) -> int:
        return int(self.token_ids.shape[0])

    @property
    def num_seqs(self) -> int:
        return int(self.seq_lens.shape[0])
