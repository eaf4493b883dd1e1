"""What every system is asked to do: the same token-id prompts, greedy, EOS ignored.

The three workloads of issue 17 (`worker bench`'s decode, prefill and prefix-on shapes), the
small agreement run, and the result each runner writes back, validated here.
"""

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from worker.bench.workloads import Workload, full_plan
from worker.tiny_model import TinyModelSpec

WORKLOAD_NAMES = ("decode", "prefill", "prefix-on")
# Small enough to run in seconds on every system; head_dim 64 (vLLM's CPU attention has no 16).
AGREEMENT_MODEL = TinyModelSpec(num_layers=2, hidden_size=256, num_attention_heads=4, num_key_value_heads=2,
                                head_dim=64, intermediate_size=512, vocab_size=2048, seed=6)
AGREEMENT = Workload(name="agreement", model="small", num_requests=8, prompt_len=32, output_len=32)
QUICK = [Workload(name="decode", num_requests=4, prompt_len=16, output_len=8),
         Workload(name="prefill", num_requests=2, prompt_len=64, output_len=1),
         Workload(name="prefix-on", num_requests=4, shared_prefix_len=64, prompt_len=8, output_len=4)]


def bench_workloads(quick: bool) -> list[Workload]:
    if quick:
        return QUICK
    by_name = {w.name: w for w in full_plan().workloads}
    return [by_name[n] for n in WORKLOAD_NAMES]


def warmup_prompts(w: Workload) -> list[list[int]]:
    """Two prompts of the workload's shape, other tokens (a prefix cache must not gain from them)."""
    rng = np.random.default_rng([7, w.shared_prefix_len, w.prompt_len])
    prefix = rng.integers(16, 1000, w.shared_prefix_len).tolist()
    return [prefix + rng.integers(16, 1000, w.prompt_len).tolist() for _ in range(2)]


def max_model_len(workloads: list[Workload]) -> int:
    return max(w.total_prompt_len + w.output_len for w in workloads) + 64


def job(model: Path, gguf: Path | None, workloads: list[Workload], threads: int) -> dict:
    return {
        "model": str(model), "gguf": str(gguf) if gguf else None, "threads": threads, "prefix_caching": True,
        "max_model_len": max_model_len(workloads),
        "workloads": [{"name": w.name, "prompts": w.prompts(), "warmup_prompts": warmup_prompts(w),
                       "output_len": w.output_len, "shared_prefix_len": w.shared_prefix_len} for w in workloads],
    }


class WorkloadRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    seconds: float
    prompt_tokens: int
    output_tokens: int
    token_ids: list[list[int]]

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds

    @property
    def prompt_tokens_per_s(self) -> float:
        return self.prompt_tokens / self.seconds


class SystemRun(BaseModel):
    """One runner process: one load, every workload once."""

    model_config = ConfigDict(extra="forbid")

    system: str
    version: str
    settings: dict
    load_seconds: float
    peak_rss_mb: float
    workloads: list[WorkloadRun]

    def workload(self, name: str) -> WorkloadRun | None:
        return next((w for w in self.workloads if w.name == name), None)


def first_divergence(ours: list[int], theirs: list[int]) -> int | None:
    """The first position where two greedy outputs differ (None: identical)."""
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return i
    return None if len(ours) == len(theirs) else min(len(ours), len(theirs))
