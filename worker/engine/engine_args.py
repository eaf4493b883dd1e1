"""Engine arguments under FastDeploy's names: shared by `LLM(...)`, the CLI flags and the CR spec."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from worker.contract import DEFAULT_MAX_NUM_SEQS


class EngineArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="Model directory (config.json, safetensors, tokenizer files)")
    tensor_parallel_size: int = Field(1, ge=1)
    max_model_len: int = Field(2048, ge=2, description="Prompt plus output tokens per request")
    block_size: int = Field(64, ge=1, description="Tokens per KV-cache block")
    max_num_seqs: int = Field(DEFAULT_MAX_NUM_SEQS, ge=1, description="Sequences in flight per step")
    max_num_batched_tokens: int | None = Field(
        None, ge=1, description="Token budget per step; default max(max_model_len, 2048)"
    )
    enable_prefix_caching: bool = True
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    num_gpu_blocks_override: int | None = Field(
        None, ge=1, description="KV-cache blocks to allocate instead of sizing from memory"
    )
    kv_cache_memory_bytes: int | None = Field(
        None, ge=1, description="Memory for the KV cache when sizing it (default: a share of free memory)"
    )
    attention_backend: str | None = Field(None, description="kernels backend; default by device")
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "EngineArgs":
        if self.tensor_parallel_size != 1:
            raise ValueError("tensor_parallel_size > 1 is not supported yet")
        if self.max_num_batched_tokens is not None and self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError("max_num_batched_tokens must be >= max_num_seqs")
        return self

    @property
    def token_budget(self) -> int:
        return self.max_num_batched_tokens or max(self.max_model_len, 2048)
