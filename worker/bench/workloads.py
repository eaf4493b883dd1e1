"""What `worker bench` runs: the models, the workloads and the targets (issue 6), full and quick.

Prompts are random token ids, deterministic per workload; every request is greedy, ignores
EOS and produces exactly `output_len` tokens, so runs are comparable across engines.
"""

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from worker.tiny_model import TinyModelSpec

ModelName = Literal["ernie-0.3b", "small"]

# ERNIE-4.5-0.3B's shape (issue 6) with random weights; float32 on CPU.
ERNIE_03B = TinyModelSpec(num_layers=18, hidden_size=1024, num_attention_heads=16, num_key_value_heads=2,
                          head_dim=128, intermediate_size=3072, vocab_size=103424,
                          max_position_embeddings=4096, seed=6)
# The scheduler-overhead model: the forward costs almost nothing.
SMALL = TinyModelSpec(num_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, seed=6)
# --quick: the same code paths on shapes that run in seconds.
QUICK_BIG = TinyModelSpec(num_layers=2, hidden_size=128, num_attention_heads=8, num_key_value_heads=2,
                          intermediate_size=256, vocab_size=2048, seed=6)


class Workload(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    model: ModelName = "ernie-0.3b"
    num_requests: int = Field(ge=1)
    prompt_len: int = Field(ge=1)  # own tokens, after the shared prefix
    output_len: int = Field(ge=1)
    shared_prefix_len: int = Field(0, ge=0)
    prefix_caching: bool = True

    def prompts(self, vocab_low: int = 16, vocab_high: int = 1000) -> list[list[int]]:
        # Seeded by the shape, not the name: prefix caching on and off see the same prompts.
        rng = np.random.default_rng([self.num_requests, self.shared_prefix_len, self.prompt_len])
        prefix = rng.integers(vocab_low, vocab_high, self.shared_prefix_len).tolist()
        return [prefix + rng.integers(vocab_low, vocab_high, self.prompt_len).tolist()
                for _ in range(self.num_requests)]

    @property
    def total_prompt_len(self) -> int:
        return self.shared_prefix_len + self.prompt_len


class AttentionBench(BaseModel):
    model_config = ConfigDict(frozen=True)

    num_seqs: int
    context_len: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    block_size: int


class BenchPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    big_model: TinyModelSpec
    small_model: TinyModelSpec
    workloads: list[Workload]
    baseline: Workload  # run by paddleformers and by us
    attention: AttentionBench
    matmul_size: int
    copy_bytes: int
    repeats: int


def full_plan() -> BenchPlan:
    return BenchPlan(
        big_model=ERNIE_03B, small_model=SMALL,
        workloads=[
            Workload(name="decode", num_requests=64, prompt_len=128, output_len=128),
            Workload(name="prefill", num_requests=16, prompt_len=512, output_len=1),
            Workload(name="prefix-on", num_requests=32, shared_prefix_len=256, prompt_len=16, output_len=16),
            Workload(name="prefix-off", num_requests=32, shared_prefix_len=256, prompt_len=16, output_len=16,
                     prefix_caching=False),
            Workload(name="scheduler", model="small", num_requests=64, prompt_len=128, output_len=128),
        ],
        baseline=Workload(name="baseline", num_requests=8, prompt_len=128, output_len=32),
        attention=AttentionBench(num_seqs=64, context_len=2048, num_heads=16, num_kv_heads=2,
                                 head_dim=128, block_size=64),
        matmul_size=2048, copy_bytes=256 << 20, repeats=5,
    )


def quick_plan() -> BenchPlan:
    """Every row of the full plan, on shapes small enough for a smoke test."""
    return BenchPlan(
        big_model=QUICK_BIG, small_model=SMALL,
        workloads=[
            Workload(name="decode", num_requests=4, prompt_len=16, output_len=4),
            Workload(name="prefill", num_requests=2, prompt_len=64, output_len=1),
            Workload(name="prefix-on", num_requests=4, shared_prefix_len=64, prompt_len=8, output_len=2),
            Workload(name="prefix-off", num_requests=4, shared_prefix_len=64, prompt_len=8, output_len=2,
                     prefix_caching=False),
            Workload(name="scheduler", model="small", num_requests=4, prompt_len=16, output_len=4),
        ],
        baseline=Workload(name="baseline", num_requests=2, prompt_len=16, output_len=4),
        attention=AttentionBench(num_seqs=4, context_len=256, num_heads=8, num_kv_heads=2,
                                 head_dim=64, block_size=64),
        matmul_size=256, copy_bytes=8 << 20, repeats=2,
    )
