"""ModelConfig: the decoder's shape and flavour, read from a model directory's config.json.

One decoder serves ERNIE 4.5 dense and MoE, the Llama/Qwen2 family, Qwen3 and Qwen3-MoE; they differ
only in the settings below (RoPE pairing, q/k/v bias, per-head q/k norm, the MoE part, tied
embeddings), chosen by architecture name.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from worker.models import moe_config
from worker.models.moe_config import MoEConfig


class ModelConfigError(ValueError):
    """config.json is missing, unreadable, or describes a model this decoder cannot run."""


@dataclass(frozen=True)
class _Family:
    rope_interleaved: bool = False
    qkv_bias: bool = False
    qk_norm: bool = False  # RMSNorm over each q and k head before RoPE (Qwen3)
    moe: Callable[[dict[str, Any]], MoEConfig | None] | None = None


_ARCHITECTURES: dict[str, _Family] = {
    # ERNIE 4.5 pairs dims (2i, 2i+1) ("rotate every two"); see paddleformers' rotate_half.
    "Ernie4_5ForCausalLM": _Family(rope_interleaved=True),
    "Ernie4_5_ForCausalLM": _Family(rope_interleaved=True),  # the name in baidu/ERNIE-4.5-0.3B-PT's remote code
    "LlamaForCausalLM": _Family(),
    "MistralForCausalLM": _Family(),
    "Qwen2ForCausalLM": _Family(qkv_bias=True),
    "Qwen3ForCausalLM": _Family(qk_norm=True),
    "Qwen3MoeForCausalLM": _Family(qk_norm=True, moe=moe_config.qwen3_moe),
    # ERNIE 4.5 MoE shares the dense ERNIE attention (paddleformers builds it from Ernie4_5Attention).
    "Ernie4_5_MoeForCausalLM": _Family(rope_interleaved=True, moe=moe_config.ernie4_5_moe),
}
# Config switches that add biases this decoder does not have (ERNIE's use_bias also covers
# o_proj and the norms; Llama's attention_bias also covers o_proj); no common model sets them.
_UNSUPPORTED_FLAGS = ("use_bias", "attention_bias", "mlp_bias", "use_sliding_window")


class ModelConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    architecture: str
    vocab_size: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    max_position_embeddings: int = Field(gt=0)
    rms_norm_eps: float = Field(gt=0)
    rope_theta: float = Field(gt=0)
    rope_interleaved: bool
    qkv_bias: bool
    qk_norm: bool = False
    moe: MoEConfig | None = None
    tie_word_embeddings: bool
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None

    @model_validator(mode="after")
    def _check_heads(self) -> "ModelConfig":
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even for rotary embeddings")
        if self.moe is not None and self.moe.sparse_layers and self.moe.sparse_layers[-1] >= self.num_hidden_layers:
            raise ValueError(f"MoE layers {self.moe.sparse_layers} exceed num_hidden_layers={self.num_hidden_layers}")
        return self

    def is_sparse(self, layer: int) -> bool:
        """Whether layer's MLP is the mixture of experts."""
        return self.moe is not None and layer in self.moe.sparse_layers

    @property
    def q_size(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_key_value_heads * self.head_dim

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> "ModelConfig":
        path = Path(model_dir) / "config.json"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ModelConfigError(f"{path}: cannot read config.json: {e}") from e
        try:
            return cls.from_dict(raw)
        except (ValidationError, ValueError) as e:
            raise ModelConfigError(f"{path}: {e}") from e

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ModelConfig":
        archs = raw.get("architectures") or []
        arch = next((a for a in archs if a in _ARCHITECTURES), None)
        if arch is None:
            raise ModelConfigError(
                f"architectures={archs!r} is not supported; supported: {sorted(_ARCHITECTURES)}"
            )
        _check_rope_scaling(raw)
        for flag in _UNSUPPORTED_FLAGS:
            if raw.get(flag):
                raise ModelConfigError(f"{flag}=true is not supported for {arch}")
        family = _ARCHITECTURES[arch]
        heads = raw["num_attention_heads"]
        eos = raw.get("eos_token_id")
        return cls(
            architecture=arch,
            vocab_size=raw["vocab_size"],
            hidden_size=raw["hidden_size"],
            intermediate_size=raw["intermediate_size"],
            num_hidden_layers=raw["num_hidden_layers"],
            num_attention_heads=heads,
            num_key_value_heads=raw.get("num_key_value_heads") or heads,
            head_dim=raw.get("head_dim") or raw["hidden_size"] // heads,
            max_position_embeddings=raw.get("max_position_embeddings", 4096),
            rms_norm_eps=raw.get("rms_norm_eps", 1e-6),
            rope_theta=_rope_theta(raw),
            rope_interleaved=family.rope_interleaved,
            qkv_bias=family.qkv_bias,
            qk_norm=family.qk_norm,
            moe=None if family.moe is None else family.moe(raw),
            tie_word_embeddings=raw.get("tie_word_embeddings", False),
            bos_token_id=raw.get("bos_token_id"),
            eos_token_ids=tuple(eos if isinstance(eos, list) else [] if eos is None else [eos]),
            pad_token_id=raw.get("pad_token_id"),
        )


def _rope_theta(raw: dict[str, Any]) -> float:
    params = raw.get("rope_parameters") or {}
    return float(raw.get("rope_theta") or params.get("rope_theta") or 10000.0)


def _check_rope_scaling(raw: dict[str, Any]) -> None:
    """Only plain RoPE is implemented; a scaled one would silently produce wrong logits."""
    for key in ("rope_scaling", "rope_parameters"):
        spec = raw.get(key) or {}
        kind = spec.get("rope_type", spec.get("type", "default"))
        if kind != "default":
            raise ModelConfigError(f"{key}.rope_type={kind!r} is not supported (only 'default')")
