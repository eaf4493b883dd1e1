"""The decoder: ERNIE 4.5 dense, and the Llama/Qwen2 family through the same code.

embed -> N x (RMSNorm, attention with RoPE + GQA through the kernels seam into the paged KV
cache, RMSNorm, SwiGLU MLP) -> norm -> LM head on the sampled rows only.
Weights are plain tensors in [in, out] layout (fused q/k/v and gate/up); nothing here holds
per-step state: the batch and the KV caches are passed in explicitly.
"""

from dataclasses import dataclass

import numpy as np

from kernels import AttentionBackend
from worker.models.config import ModelConfig
from worker.models.rotary import apply_rotary, cos_sin, inv_frequencies
from worker.models.weight_loader import ModelWeights
from worker.platform import paddle

F = paddle.nn.functional


@dataclass(frozen=True)
class AttentionInputs:
    """Where this step's K/V go and what each query sees; host arrays stay NumPy."""

    slot_mapping: np.ndarray  # [T] int64
    query_start_loc: np.ndarray  # [B+1] int32
    seq_lens: np.ndarray  # [B] int32
    block_tables: np.ndarray  # [B, M] int32


def rms_norm(x, weight, eps: float):
    # Same op order as paddleformers' RMSNorm with fuse_rms_norm=False (float32 statistics).
    # square, not pow(2): Paddle's CPU pow is ~10x slower and the result is the same.
    variance = paddle.square(x.astype("float32")).mean(-1, keepdim=True)
    return (paddle.rsqrt(variance + eps) * x.astype("float32")).astype(x.dtype) * weight


class _Layer:
    def __init__(self, w, dtype: str):
        def t(a):
            return None if a is None else paddle.to_tensor(a).astype(dtype)

        self.input_norm, self.post_norm = t(w.input_norm), t(w.post_norm)
        self.qkv_weight, self.qkv_bias, self.o_weight = t(w.qkv_weight), t(w.qkv_bias), t(w.o_weight)
        self.gate_up_weight, self.down_weight = t(w.gate_up_weight), t(w.down_weight)


class Ernie4_5ForCausalLM:
    def __init__(self, config: ModelConfig, weights: ModelWeights, backend: AttentionBackend, dtype: str):
        self.config, self.backend, self.dtype = config, backend, dtype
        self.embed = paddle.to_tensor(weights.embed).astype(dtype)
        self.layers = [_Layer(w, dtype) for w in weights.layers]
        self.norm = paddle.to_tensor(weights.norm).astype(dtype)
        self.lm_head = None if weights.lm_head is None else paddle.to_tensor(weights.lm_head).astype(dtype)
        self.inv_freq = inv_frequencies(config.head_dim, config.rope_theta)
        self.scale = config.head_dim**-0.5

    def forward(self, input_ids, positions, sample_indices, attn: AttentionInputs, kv_caches):
        """input_ids, positions [T] int64; sample_indices [S] int64; kv_caches [(k, v)] per layer.

        Returns logits [S, V] float32.
        """
        cos, sin = cos_sin(positions, self.inv_freq)
        slots = paddle.to_tensor(attn.slot_mapping, dtype="int64")
        h = F.embedding(input_ids, self.embed)
        for layer, (k_cache, v_cache) in zip(self.layers, kv_caches):
            h = h + self._attention(layer, rms_norm(h, layer.input_norm, self.config.rms_norm_eps),
                                    cos, sin, slots, attn, k_cache, v_cache)
            h = h + self._mlp(layer, rms_norm(h, layer.post_norm, self.config.rms_norm_eps))
        h = paddle.index_select(h, sample_indices, axis=0)  # the norm is per row: select first
        h = rms_norm(h, self.norm, self.config.rms_norm_eps)
        if self.lm_head is None:
            logits = paddle.matmul(h, self.embed, transpose_y=True)
        else:
            logits = paddle.matmul(h, self.lm_head)
        return logits.astype("float32")

    def _attention(self, layer: _Layer, x, cos, sin, slots, attn: AttentionInputs, k_cache, v_cache):
        c = self.config
        qkv = paddle.matmul(x, layer.qkv_weight)
        if layer.qkv_bias is not None:
            qkv = qkv + layer.qkv_bias
        t, hq, hkv = x.shape[0], c.num_attention_heads, c.num_key_value_heads
        qk, v = paddle.split(qkv, [c.q_size + c.kv_size, c.kv_size], axis=-1)
        # q and k heads rotate together: one rotary call per layer instead of two.
        qk = apply_rotary(qk.reshape([t, hq + hkv, c.head_dim]), cos, sin, c.rope_interleaved)
        q, k = paddle.split(qk, [hq, hkv], axis=1)
        v = v.reshape([t, hkv, c.head_dim])
        self.backend.write_kv(k_cache, v_cache, k, v, slots)
        out = self.backend.paged_attention(
            q, k_cache, v_cache, attn.query_start_loc, attn.seq_lens, attn.block_tables, self.scale
        )
        return paddle.matmul(out.reshape([t, c.q_size]), layer.o_weight)

    @staticmethod
    def _mlp(layer: _Layer, x):
        gate, up = paddle.chunk(paddle.matmul(x, layer.gate_up_weight), 2, axis=-1)
        return paddle.matmul(F.silu(gate) * up, layer.down_weight)
