"""Run a workload through our engine and record every step: wall time, model time, FLOPs.

The recorder wraps the runner's `execute` of the engine it measures (instrumentation only:
the batch and the logits pass through untouched), so the engine's host time per step is the
step's wall time minus its model time.
"""

import time
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel

from worker.bench.flops import step_flops
from worker.bench.workloads import Workload
from worker.engine.engine_args import EngineArgs
from worker.engine.input_batch import InputBatch
from worker.engine.llm_engine import LLMEngine
from worker.logs import get_logger
from worker.sampling_params import SamplingParams

log = get_logger(__name__)


class WorkloadResult(BaseModel):
    name: str
    engine: str  # "ours" or "paddleformers"
    num_requests: int
    prompt_tokens: int
    output_tokens: int
    seconds: float
    model_flops: int
    steps: int = 0
    cached_tokens: int = 0
    decode_step_ms: float | None = None  # engine wall time per full decode step
    decode_host_ms: float | None = None  # the same minus the model forward
    output_token_ids: list[list[int]] = []

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds

    @property
    def gflops(self) -> float:
        return self.model_flops / self.seconds / 1e9


@dataclass
class StepRecorder:
    """Per-step records of one engine: forward seconds, tokens, sequences, model FLOPs."""

    engine: LLMEngine
    forward_s: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    flops: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        runner = self.engine.model_runner
        execute, config = runner.execute, runner.config

        def recorded(batch: InputBatch) -> np.ndarray:
            start = time.perf_counter()
            logits = execute(batch)
            self.forward_s.append(time.perf_counter() - start)
            self.tokens.append(batch.num_tokens)
            self.seqs.append(batch.num_seqs)
            self.flops.append(step_flops(config, batch))
            return logits

        runner.execute = recorded

    def clear(self) -> None:
        for records in (self.forward_s, self.tokens, self.seqs, self.flops):
            records.clear()


def make_engine(model_dir: str, prefix_caching: bool, max_model_len: int) -> tuple[LLMEngine, StepRecorder]:
    engine = LLMEngine(EngineArgs(model=model_dir, max_model_len=max_model_len, max_num_seqs=64,
                                  enable_prefix_caching=prefix_caching))
    return engine, StepRecorder(engine)


def greedy(output_len: int) -> SamplingParams:
    return SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True)


def run_workload(engine: LLMEngine, recorder: StepRecorder, workload: Workload) -> WorkloadResult:
    prompts = workload.prompts()
    recorder.clear()
    step_s: list[float] = []
    finished = {}
    start = time.perf_counter()
    tag = f"{workload.name}-{time.monotonic_ns()}"  # request ids unique across runs of an engine
    for i, prompt in enumerate(prompts):
        engine.add_request(f"{tag}-{i}", None, greedy(workload.output_len), prompt_token_ids=prompt)
    while engine.has_unfinished_requests():
        t0 = time.perf_counter()
        outputs = engine.step()
        step_s.append(time.perf_counter() - t0)
        finished.update((out.request_id, out) for out in outputs)
    seconds = time.perf_counter() - start
    ordered = [finished[f"{tag}-{i}"] for i in range(len(prompts))]
    log.info("workload done", workload=workload.name, seconds=round(seconds, 2), steps=len(step_s))
    # Full decode steps: every request in flight, one token each.
    full = [i for i, (t, s) in enumerate(zip(recorder.tokens, recorder.seqs)) if t == s == len(prompts)]
    return WorkloadResult(
        name=workload.name, engine="ours", num_requests=len(prompts),
        prompt_tokens=sum(map(len, prompts)),
        output_tokens=sum(len(o.outputs[0].token_ids) for o in ordered),
        seconds=seconds, model_flops=sum(recorder.flops), steps=len(step_s),
        cached_tokens=sum(o.num_cached_tokens or 0 for o in ordered),
        decode_step_ms=1e3 * float(np.mean([step_s[i] for i in full])) if full else None,
        decode_host_ms=1e3 * float(np.mean([step_s[i] - recorder.forward_s[i] for i in full])) if full else None,
        output_token_ids=[list(o.outputs[0].token_ids) for o in ordered],
    )


def warm_up(engine: LLMEngine, recorder: StepRecorder) -> None:
    """One-time costs (first kernels, allocator growth) out of the measured runs."""
    run_workload(engine, recorder, Workload(name="warmup", num_requests=2, prompt_len=70, output_len=3))
