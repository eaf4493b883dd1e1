"""MoEConfig: the mixture-of-experts part of a model's config.json, in one form for every family.

Each family spells the same ideas differently; the parsers below map them (the definitions
are those of paddleformers' modeling code, the reference the engine is checked against):
- Qwen3-MoE: `num_experts`, `num_experts_per_tok`, `moe_intermediate_size`, `norm_topk_prob`;
  layer i is sparse when i is not in `mlp_only_layers` and (i + 1) % `decoder_sparse_step` == 0.
- ERNIE 4.5 MoE: `moe_num_experts`, `moe_k`, `moe_intermediate_size`, `moe_num_shared_experts`
  (one shared SwiGLU of width moe_intermediate_size * that count, run on every token),
  `scoring_func` (softmax or sigmoid), `moe_norm_gate_logits` (renormalise the top-k weights),
  `moe_use_aux_free` (the per-expert `e_score_correction_bias` is added to the scores to choose
  the experts, not to the weights); layer i is sparse when (i + 1) % `moe_layer_interval` == 0
  and `moe_layer_start_index` <= i <= `moe_layer_end_index` (-1: the last layer). The defaults
  are paddleformers' Ernie4_5_MoeConfig's.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MoEConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    num_experts: int = Field(gt=0)
    top_k: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)  # of one routed expert
    norm_topk_prob: bool  # renormalise the top-k probabilities to sum to 1
    sparse_layers: tuple[int, ...]  # indices of the layers whose MLP is the MoE block
    scoring: Literal["softmax", "sigmoid"] = "softmax"
    shared_intermediate_size: int = Field(0, ge=0)  # the shared expert's width; 0: none
    correction_bias: bool = False  # the checkpoint's e_score_correction_bias steers the choice

    @model_validator(mode="after")
    def _check(self) -> "MoEConfig":
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k={self.top_k} exceeds num_experts={self.num_experts}")
        return self


def qwen3_moe(raw: dict[str, Any]) -> MoEConfig | None:
    """None when the config has no experts (every layer dense)."""
    experts = raw.get("num_experts") or 0
    if experts <= 0:
        return None
    step = raw.get("decoder_sparse_step", 1)
    if not isinstance(step, int) or step < 1:
        raise ValueError(f"decoder_sparse_step={step!r} must be a positive integer")
    dense = set(raw.get("mlp_only_layers") or [])
    layers = range(raw["num_hidden_layers"])
    return MoEConfig(
        num_experts=experts,
        top_k=raw.get("num_experts_per_tok", 8),
        intermediate_size=raw["moe_intermediate_size"],
        norm_topk_prob=bool(raw.get("norm_topk_prob", False)),
        sparse_layers=tuple(i for i in layers if i not in dense and (i + 1) % step == 0),
    )


def ernie4_5_moe(raw: dict[str, Any]) -> MoEConfig | None:
    experts, inter = raw.get("moe_num_experts", 16), raw.get("moe_intermediate_size", 0)
    # A list means one expert group per modality (the VL models): not this text decoder.
    for key, value in (("moe_num_experts", experts), ("moe_intermediate_size", inter)):
        if not isinstance(value, int):
            raise ValueError(f"{key}={value!r}: per-modality expert groups (ERNIE 4.5 VL) are not supported")
    if experts <= 0:
        return None
    if raw.get("moe_group_experts"):
        raise ValueError("moe_group_experts=true is not supported")
    interval = raw.get("moe_layer_interval", 1)
    if not isinstance(interval, int) or interval < 1:
        raise ValueError(f"moe_layer_interval={interval!r} must be a positive integer")
    layers = raw["num_hidden_layers"]
    start, end = raw.get("moe_layer_start_index", 1), raw.get("moe_layer_end_index", -1)
    end = layers - 1 if end == -1 else end
    shared = raw.get("moe_num_shared_experts", 2)
    return MoEConfig(
        num_experts=experts,
        top_k=raw.get("moe_k", 2),
        intermediate_size=inter,
        norm_topk_prob=bool(raw.get("moe_norm_gate_logits", True)),
        sparse_layers=tuple(i for i in range(layers) if (i + 1) % interval == 0 and start <= i <= end),
        scoring=raw.get("scoring_func", "softmax"),
        shared_intermediate_size=inter * shared,
        correction_bias=bool(raw.get("moe_use_aux_free", True)),
    )
