"""The sampler alone: ms per step for a batch of rows over the big model's vocabulary, greedy
and under the common non-greedy settings (issue 6: non-greedy was 80-180 ms a step)."""

import numpy as np
from pydantic import BaseModel

from worker.bench.machine import best_time
from worker.engine.sampler import Sampler
from worker.engine.sequence import Sequence
from worker.sampling_params import SamplingParams

SETTINGS = {
    "greedy": SamplingParams(temperature=0),
    "temperature 0.8": SamplingParams(temperature=0.8),
    "top_p 0.9": SamplingParams(temperature=0.8, top_p=0.9),
    "top_k 50": SamplingParams(temperature=0.8, top_k=50),
    "top_k 50, top_p 0.9, seed": SamplingParams(temperature=0.8, top_k=50, top_p=0.9, seed=0),
    "min_p 0.05": SamplingParams(temperature=0.8, min_p=0.05),
    "logprobs 5 (greedy)": SamplingParams(temperature=0, logprobs=5),
}


class SamplerResult(BaseModel):
    setting: str
    rows: int
    vocab_size: int
    seconds: float


def run_sampler_bench(rows: int, vocab_size: int, repeats: int) -> list[SamplerResult]:
    # Shaped like a language model's output: a long normal tail, a few tokens 12-20 logits up.
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, size=(rows, vocab_size)).astype(np.float32)
    likely = rng.integers(0, vocab_size, size=(rows, 8))
    logits[np.arange(rows)[:, None], likely] = rng.uniform(12.0, 20.0, size=likely.shape)
    sampler = Sampler(seed=0)
    results = []
    for name, params in SETTINGS.items():
        seqs = [Sequence(str(i), [1, 2, 3], params) for i in range(rows)]
        seconds = best_time(lambda: sampler(logits, seqs), repeats)
        results.append(SamplerResult(setting=name, rows=rows, vocab_size=vocab_size, seconds=seconds))
    return results
