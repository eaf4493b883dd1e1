"""The one decoder that runs ERNIE 4.5 dense and MoE, Llama, Mistral, Qwen2, Qwen3 and Qwen3-MoE
(config.py maps each architecture's settings onto it).

embed -> N x (RMSNorm, attention with RoPE + GQA through the kernels seam into the paged KV
cache (Qwen3: each q and k head RMS-normalised before RoPE), RMSNorm, SwiGLU MLP or the
mixture of experts of moe.py) -> norm -> LM head on the sampled rows only.
Weights are plain tensors in [in, out] layout, prepared once at load so a layer runs few ops
(on a small model every Paddle op costs more in dispatch than in arithmetic):
- q/k/v are one matmul, gate/up one; q/k columns in rotary.py's pair order;
- each RMSNorm weight is folded into the rows of the matmul that follows it;
- the residual adds ride on the output projections (addmm).
Nothing here holds per-step state: the batch and the KV caches are passed in explicitly.
"""

from dataclasses import dataclass

import numpy as np

from kernels import AttentionBackend
from worker.models.config import ModelConfig
from worker.models.linear import Linear, packing_enabled, swiglu
from worker.models.moe import SparseMoEBlock
from worker.models.rotary import RotaryTable, apply_rotary, pair_halves
from worker.models.tensors import release_host_memory, to_device
from worker.models.weight_loader import LayerWeights, ModelWeights
from worker.platform import paddle

# The hot path calls Paddle's C++ ops directly: the Python wrappers add 1-5 us of argument
# handling per call (paddle.split: 20 us against 15 us for its op), ~40 per step of a small model.
_C = paddle._C_ops


@dataclass(frozen=True)
class AttentionInputs:
    """Where this step's K/V go and what each query sees; host arrays stay NumPy."""

    slot_mapping: np.ndarray  # [T] int64
    query_start_loc: np.ndarray  # [B+1] int32
    seq_lens: np.ndarray  # [B] int32
    block_tables: np.ndarray  # [B, M] int32


@dataclass(frozen=True)
class _Step:
    """The per-step tensors every layer reads: the rotation as Paddle ops apply it, or the
    table and positions the `cpu` kernels' fused rotary op reads (the other one None)."""

    rotation: object  # [T, Hq + 2 Hkv, D/2] complex: q and k heads turned, v heads not
    cos_sin: object  # [P, D/2, 2] float32
    positions: object  # [T] int64
    slots: object  # [T] int64
    attn: AttentionInputs


class RMSNormalize:
    """x / rms(x) with float32 statistics (paddleformers' RMSNorm without its weight, which is
    folded into the next matmul). The mean of squares plus eps is one addmm (x^2 @ 1/H + eps):
    four ops instead of five, the same value up to float32 rounding."""

    def __init__(self, hidden_size: int, eps: float):
        self.inv_h = paddle.full([hidden_size, 1], 1.0 / hidden_size, dtype="float32")
        self.eps = paddle.full([1], eps, dtype="float32")

    def __call__(self, x):
        xf = x if x.dtype == paddle.float32 else x.astype("float32")
        out = _C.multiply(xf, _C.rsqrt(_C.addmm(self.eps, _C.square(xf), self.inv_h, 1.0, 1.0)))
        return out if xf is x else out.astype(x.dtype)


class HeadRMSNorm:
    """Qwen3's q_norm and k_norm: RMSNorm over each head's D dims, in float32 statistics as
    paddleformers' RMSNorm; weight [heads, D] holds q_norm's row for every q head, then k_norm's."""

    def __init__(self, weight, eps: float):
        self.weight = weight
        self.eps = paddle.full([1], eps, dtype="float32")

    def __call__(self, x):
        xf = x if x.dtype == paddle.float32 else x.astype("float32")
        out = _C.multiply(xf, _C.rsqrt(_C.add(_C.mean(_C.square(xf), [-1], True), self.eps)))
        return _C.multiply(out if xf is x else out.astype(x.dtype), self.weight)


def head_norm_weight(w: LayerWeights, c: ModelConfig) -> np.ndarray:
    """[Hq + Hkv, D]: the q and k norms tiled over their heads, in the q/k columns' pair order."""
    rows = np.concatenate([np.tile(w.q_norm, (c.num_attention_heads, 1)),
                           np.tile(w.k_norm, (c.num_key_value_heads, 1))])
    return rows if c.rope_interleaved else pair_halves(rows, c.head_dim)


def fused_qkv(w: LayerWeights, c: ModelConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """[H, q + 2kv] with the input norm folded in, and the bias; q/k pairs made adjacent."""
    qkv, bias = w.input_norm[:, None] * w.qkv_weight, w.qkv_bias
    if not c.rope_interleaved:
        qk = c.q_size + c.kv_size
        qkv = np.concatenate([pair_halves(qkv[:, :qk], c.head_dim), qkv[:, qk:]], axis=1)
        if bias is not None:
            bias = np.concatenate([pair_halves(bias[:qk], c.head_dim), bias[qk:]])
    return qkv, bias


class _Layer:
    def __init__(self, w: LayerWeights, c: ModelConfig, dtype: str, packed: bool):
        def t(a):
            return to_device(a, dtype)

        qkv, bias = fused_qkv(w, c)
        self.qkv, self.qkv_bias, self.o = Linear(t(qkv), packed), t(bias), Linear(t(w.o_weight), packed)
        self.head_norm = HeadRMSNorm(t(head_norm_weight(w, c)), c.rms_norm_eps) if c.qk_norm else None
        self.moe = None if w.moe is None else SparseMoEBlock(w.moe, w.post_norm, c.moe, dtype)
        if w.moe is None:
            self.gate_up = Linear(t(w.post_norm[:, None] * w.gate_up_weight), packed)
            self.down = Linear(t(w.down_weight), packed)


class DecoderForCausalLM:
    """One pre-norm RoPE + GQA decoder with a SwiGLU or mixture-of-experts MLP per layer."""

    def __init__(self, config: ModelConfig, weights: ModelWeights, backend: AttentionBackend, dtype: str):
        self.config, self.backend, self.dtype = config, backend, dtype
        packed = packing_enabled(backend.name, dtype)
        fused = backend.name == "cpu" and dtype == "float32"
        self.swiglu = swiglu(fused)
        if fused:  # only where the cpu kernels build
            from kernels.cpu.norm import FusedRMSNormalize
            from kernels.cpu.rotary import rotary_split

            self.rotary_split, self.rms_normalize = rotary_split, FusedRMSNormalize(config.rms_norm_eps)
        else:
            self.rotary_split, self.rms_normalize = None, RMSNormalize(config.hidden_size, config.rms_norm_eps)
        # One part at a time: each host array is dropped once it is on the device.
        self.embed = to_device(weights.embed(), dtype)
        self.layers = []
        for w in weights.layers():
            self.layers.append(_Layer(w, config, dtype, packed))
            del w
            release_host_memory()
        self.norm = to_device(weights.norm(), dtype)
        lm_head = to_device(weights.lm_head(), dtype)  # None: tied to the embedding [V, H]
        self.lm_head = Linear(self.embed if lm_head is None else lm_head, packed, transposed=lm_head is None)
        weights.report()
        self.rotary = RotaryTable(config.head_dim, config.rope_theta)
        self.scale = config.head_dim**-0.5
        c = config
        self._qkv_split = [c.num_attention_heads, c.num_key_value_heads, c.num_key_value_heads]

    def forward(self, input_ids, positions: np.ndarray, sample_indices, attn: AttentionInputs, kv_caches):
        """input_ids [T] int64 tensor; positions [T] int64 NumPy; sample_indices [S] int64 tensor,
        or None for every row in order; kv_caches [(k, v)] per layer. Returns logits [S, V] float32."""
        heads, slots = self._qkv_split, paddle.to_tensor(attn.slot_mapping)
        if self.rotary_split is None:
            step = _Step(self.rotary.turns(positions, heads[0] + heads[1], sum(heads)), None, None, slots, attn)
        else:
            step = _Step(None, self.rotary.cos_sin(int(positions.max()) + 1), paddle.to_tensor(positions), slots, attn)
        h = _C.embedding(input_ids, self.embed, -1, False)
        for layer, kv_cache in zip(self.layers, kv_caches):
            h = self._attention(layer, h, step, kv_cache)
            h = self._mlp(layer, h)
        if sample_indices is not None:
            h = _C.embedding(sample_indices, h, -1, False)  # a row gather; the norm is per row: select first
        h = _C.multiply(self.rms_normalize(h), self.norm)
        logits = self.lm_head(h)
        return logits if self.dtype == "float32" else logits.astype("float32")

    def _attention(self, layer: _Layer, h, step: _Step, kv_cache):
        """h + o_proj(attention(...)): the residual add is the addmm's."""
        c = self.config
        x = self.rms_normalize(h)
        qkv = layer.qkv(x, layer.qkv_bias)
        if layer.head_norm is not None:
            qkv = self._normalize_heads(layer, qkv)
        if self.rotary_split is not None:
            q, k, v = self.rotary_split(qkv, step.cos_sin, step.positions, *self._qkv_split[:2])
        else:
            # q and k heads rotate in one complex multiply per layer; v goes through it unturned,
            # so a single split (a copy on Paddle's CPU) gives all three.
            turned = _C.reshape(apply_rotary(qkv, step.rotation), [0, 0, -1])  # [T, Hq + 2 Hkv, D]
            q, k, v = _C.split(turned, self._qkv_split, 1)
        self.backend.write_kv(*kv_cache, k, v, step.slots)
        a = step.attn
        out = self.backend.paged_attention(q, *kv_cache, a.query_start_loc, a.seq_lens, a.block_tables, self.scale)
        return layer.o(_C.reshape(out, [-1, c.q_size]), h)

    def _normalize_heads(self, layer: _Layer, qkv):
        """[T, Hq + 2 Hkv, D] with the q and k heads normalised, v as it was."""
        qk_heads = self._qkv_split[0] + self._qkv_split[1]
        qk, v = _C.split(_C.reshape(qkv, [0, -1, self.config.head_dim]), [qk_heads, self._qkv_split[2]], 1)
        return _C.concat([layer.head_norm(qk), v], 1)

    def _mlp(self, layer: _Layer, h):
        """h + down(silu(gate) * up), or h + the mixture of experts."""
        if layer.moe is not None:
            return layer.moe(h, self.rms_normalize(h))
        return layer.down(self.swiglu(layer.gate_up(self.rms_normalize(h))), h)
