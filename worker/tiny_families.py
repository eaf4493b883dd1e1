"""What differs between the tiny model's families: config.json, and the tensors beyond the
shared attention ones (Qwen3's q/k norms, Qwen3-MoE's router and experts), in HF names and
[out, in] layout. The tokenizer is the same bundled one for every family.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from worker.tiny_model import TinyModelSpec

Family = Literal["ernie4_5", "qwen3", "qwen3_moe"]
_ARCHITECTURES = {"ernie4_5": "Ernie4_5ForCausalLM", "qwen3": "Qwen3ForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM"}
Normal = Callable[..., np.ndarray]  # normal(*shape, fan_in, gain=1.0)


def family_config(spec: "TinyModelSpec") -> dict:
    """The family's own config.json keys, beside the shared shape ones."""
    out: dict = {"architectures": [_ARCHITECTURES[spec.family]], "model_type": spec.family}
    if spec.family == "ernie4_5":
        return {**out, "use_bias": False}
    out.update(attention_bias=False, use_sliding_window=False, sliding_window=None, max_window_layers=spec.num_layers)
    if spec.family == "qwen3_moe":
        out.update(num_experts=spec.num_experts, num_experts_per_tok=spec.num_experts_per_tok,
                   moe_intermediate_size=spec.moe_intermediate_size, norm_topk_prob=spec.norm_topk_prob,
                   decoder_sparse_step=spec.decoder_sparse_step, mlp_only_layers=list(spec.mlp_only_layers),
                   output_router_logits=False)
    return out


def is_sparse(spec: "TinyModelSpec", layer: int) -> bool:
    return (spec.family == "qwen3_moe" and layer not in spec.mlp_only_layers
            and (layer + 1) % spec.decoder_sparse_step == 0)


def attention_extras(spec: "TinyModelSpec", prefix: str, norm: Callable[[int], np.ndarray]) -> dict[str, np.ndarray]:
    """Qwen3's per-head RMSNorm weights, [head_dim] each."""
    if spec.family == "ernie4_5":
        return {}
    d = spec.resolved_head_dim
    return {prefix + "self_attn.q_norm.weight": norm(d), prefix + "self_attn.k_norm.weight": norm(d)}


def moe_weights(spec: "TinyModelSpec", prefix: str, normal: Normal, gain: float) -> dict[str, np.ndarray]:
    """Router [E, H] and per-expert SwiGLU weights, under `{prefix}mlp.`."""
    h, inter = spec.hidden_size, spec.moe_intermediate_size
    # Router logits of std ~1: every chosen expert gets a real share of the mixture.
    w = {prefix + "mlp.gate.weight": normal(spec.num_experts, h, fan_in=h)}
    for e in range(spec.num_experts):
        p = f"{prefix}mlp.experts.{e}."
        w[p + "gate_proj.weight"] = normal(inter, h, fan_in=h)
        w[p + "up_proj.weight"] = normal(inter, h, fan_in=h)
        w[p + "down_proj.weight"] = normal(h, inter, fan_in=inter, gain=gain)
    return w
