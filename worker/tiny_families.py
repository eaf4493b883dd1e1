"""What differs between the tiny model's families: config.json, and the tensors beyond the
shared attention ones (Qwen3's q/k norms, the MoE families' router and experts; ERNIE 4.5 MoE's
shared expert and score correction bias), in HF names and [out, in] layout. The tokenizer is the
same bundled one for every family.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from worker.tiny_model import TinyModelSpec

Family = Literal["ernie4_5", "ernie4_5_moe", "qwen3", "qwen3_moe"]
_ARCHITECTURES = {"ernie4_5": "Ernie4_5ForCausalLM", "ernie4_5_moe": "Ernie4_5_MoeForCausalLM",
                  "qwen3": "Qwen3ForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM"}
ERNIE_FAMILIES = ("ernie4_5", "ernie4_5_moe")
Normal = Callable[..., np.ndarray]  # normal(*shape, fan_in, gain=1.0)


def family_config(spec: "TinyModelSpec") -> dict:
    """The family's own config.json keys, beside the shared shape ones."""
    out: dict = {"architectures": [_ARCHITECTURES[spec.family]], "model_type": spec.family}
    if spec.family == "ernie4_5":
        return {**out, "use_bias": False}
    if spec.family == "ernie4_5_moe":
        # No multi-token-prediction block (paddleformers would build one, num_nextn_predict_layers=1).
        return {**out, "use_bias": False, "moe_num_experts": spec.num_experts, "moe_k": spec.num_experts_per_tok,
                "moe_intermediate_size": spec.moe_intermediate_size,
                "moe_num_shared_experts": spec.moe_num_shared_experts,
                "moe_layer_start_index": spec.moe_layer_start_index, "moe_layer_end_index": -1,
                "moe_layer_interval": spec.moe_layer_interval, "moe_use_aux_free": True,
                "moe_norm_gate_logits": True, "scoring_func": spec.moe_scoring, "num_nextn_predict_layers": 0,
                "moe_capacity": [64, 64, 64]}
    out.update(attention_bias=False, use_sliding_window=False, sliding_window=None, max_window_layers=spec.num_layers)
    if spec.family == "qwen3_moe":
        out.update(num_experts=spec.num_experts, num_experts_per_tok=spec.num_experts_per_tok,
                   moe_intermediate_size=spec.moe_intermediate_size, norm_topk_prob=spec.norm_topk_prob,
                   decoder_sparse_step=spec.decoder_sparse_step, mlp_only_layers=list(spec.mlp_only_layers),
                   output_router_logits=False)
    return out


def is_sparse(spec: "TinyModelSpec", layer: int) -> bool:
    if spec.family == "ernie4_5_moe":
        return layer >= spec.moe_layer_start_index and (layer + 1) % spec.moe_layer_interval == 0
    return (spec.family == "qwen3_moe" and layer not in spec.mlp_only_layers
            and (layer + 1) % spec.decoder_sparse_step == 0)


def attention_extras(spec: "TinyModelSpec", prefix: str, norm: Callable[[int], np.ndarray]) -> dict[str, np.ndarray]:
    """Qwen3's per-head RMSNorm weights, [head_dim] each."""
    if spec.family in ERNIE_FAMILIES:
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
    if spec.family == "ernie4_5_moe":
        shared = inter * spec.moe_num_shared_experts
        if shared:
            p = prefix + "mlp.shared_experts."
            w[p + "gate_proj.weight"] = normal(shared, h, fan_in=h)
            w[p + "up_proj.weight"] = normal(shared, h, fan_in=h)
            w[p + "down_proj.weight"] = normal(h, shared, fan_in=shared, gain=gain)
        # A bias of the size of the gaps between expert probabilities: it changes some choices.
        w[prefix + "mlp.moe_statics.e_score_correction_bias"] = 0.05 * normal(1, spec.num_experts, fan_in=1)
    if spec.fused_experts:
        w.update(fuse_experts(w, prefix + "mlp.", spec.num_experts))
    return w


def fuse_experts(w: dict[str, np.ndarray], prefix: str, num_experts: int) -> dict[str, np.ndarray]:
    """The per-expert [out, in] matrices popped from w, stacked as transformers 5 holds them:
    `experts.gate_up_proj` [E, 2I, H] (gate rows first) and `experts.down_proj` [E, H, I]."""
    def pop(e: int, name: str) -> np.ndarray:
        return w.pop(f"{prefix}experts.{e}.{name}_proj.weight")

    gate_up = [np.concatenate([pop(e, "gate"), pop(e, "up")], axis=0) for e in range(num_experts)]
    down = [pop(e, "down") for e in range(num_experts)]
    return {prefix + "experts.gate_up_proj": np.stack(gate_up), prefix + "experts.down_proj": np.stack(down)}
