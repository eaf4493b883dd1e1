"""MoEConfig: the mixture-of-experts part of a model's config.json, in one form for every family.

Each family spells the same ideas differently; the parsers below map them (the definitions
are those of paddleformers' modeling code, the reference the engine is checked against):
- Qwen3-MoE: `num_experts`, `num_experts_per_tok`, `moe_intermediate_size`, `norm_topk_prob`;
  layer i is sparse when i is not in `mlp_only_layers` and (i + 1) % `decoder_sparse_step` == 0.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MoEConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    num_experts: int = Field(gt=0)
    top_k: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)  # of one routed expert
    norm_topk_prob: bool  # renormalise the top-k probabilities to sum to 1
    sparse_layers: tuple[int, ...]  # indices of the layers whose MLP is the MoE block

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
