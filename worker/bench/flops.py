"""Model FLOPs of a step, counted from the flat batch: what the model must compute, not
what an implementation happens to do (padding, recomputation and the like do not count).

Linear layers: 2 x weights x rows (every token runs the decoder; only sampled rows run the
LM head). A mixture-of-experts layer counts what each token runs: its router, its top-k
routed experts and the shared expert, not the experts it skips. Attention: QK^T and PV,
2 x 2 x head_dim per (query head, visible key) pair.
"""

import numpy as np

from worker.engine.input_batch import InputBatch
from worker.models.config import ModelConfig


def mlp_params(c: ModelConfig, layer: int) -> int:
    """Weights of one layer's MLP that each token runs: the dense SwiGLU, or the MoE router,
    top-k routed experts and the shared expert."""
    h = c.hidden_size
    if not c.is_sparse(layer):
        return 3 * h * c.intermediate_size
    m = c.moe
    return h * m.num_experts + 3 * h * (m.top_k * m.intermediate_size + m.shared_intermediate_size)


def decoder_params(c: ModelConfig) -> int:
    """Weights of the linear layers of all decoder layers a token runs (norms are negligible):
    the active parameters of a MoE model."""
    attention = c.hidden_size * (c.q_size + 2 * c.kv_size) + c.q_size * c.hidden_size
    return sum(attention + mlp_params(c, i) for i in range(c.num_hidden_layers))


def lm_head_params(c: ModelConfig) -> int:
    return c.vocab_size * c.hidden_size


def visible_keys(batch: InputBatch) -> int:
    """Sum over query tokens of the keys each sees (bottom-right causal)."""
    q_lens = np.diff(batch.query_start_loc.astype(np.int64))
    lens = batch.seq_lens.astype(np.int64)
    return int((q_lens * lens - q_lens * (q_lens - 1) // 2).sum())


def step_flops(c: ModelConfig, batch: InputBatch) -> int:
    linear = 2 * decoder_params(c) * batch.num_tokens + 2 * lm_head_params(c) * len(batch.sample_indices)
    attention = 4 * c.num_hidden_layers * c.num_attention_heads * c.head_dim * visible_keys(batch)
    return linear + attention


def dense_generate_flops(c: ModelConfig, prompt_len: int, output_len: int, num_seqs: int,
                         shared_prefix_len: int = 0) -> int:
    """The same count for a plain generate(): prefill, then one token per step per sequence.
    prompt_len includes a prefix of shared_prefix_len tokens that all sequences share, computed
    once (a prefix cache's work); the last output token is sampled, never computed."""
    def positions_seen(first: int, last: int) -> int:  # sum of p + 1 over positions first..last-1
        return (last * (last + 1) - first * (first + 1)) // 2

    own_end = prompt_len + output_len - 1
    tokens = shared_prefix_len + num_seqs * (own_end - shared_prefix_len)
    keys = positions_seen(0, shared_prefix_len) + num_seqs * positions_seen(shared_prefix_len, own_end)
    sampled = num_seqs * output_len
    return (2 * decoder_params(c) * tokens + 2 * lm_head_params(c) * sampled
            + 4 * c.num_hidden_layers * c.num_attention_heads * c.head_dim * keys)
