"""What the matmuls alone reach at the workloads' real shapes (issue 17's limit measurement).

The decode step's projections and LM head at M=64 rows, and the prefill step's at its token
budget, run with the engine's own weights (packed as the engine runs them) and no other op:
an upper bound on the model FLOP/s a step can reach, measured in the same run as the peak it
is compared with (the 2048^2 matmul), as benchmarks/kv_read_limit.py did for attention.
"""

from pydantic import BaseModel

from worker.bench.machine import best_time
from worker.bench.step_profile import matmul_parts
from worker.engine.model_runner import ModelRunner
from worker.platform import paddle


class MatmulLimit(BaseModel):
    step: str  # "decode" or "prefill"
    rows: int  # M of the decoder projections
    sampled: int  # M of the LM head
    flops: int
    seconds: float

    @property
    def gflops(self) -> float:
        return self.flops / self.seconds / 1e9


def measure_matmul_limits(runner: ModelRunner, decode_rows: int, prefill_rows: int, prefill_sampled: int,
                          repeats: int) -> list[MatmulLimit]:
    out = []
    for step, rows, sampled, reps in (("decode", decode_rows, decode_rows, repeats),
                                      ("prefill", prefill_rows, prefill_sampled, max(2, repeats // 2))):
        parts = matmul_parts(runner, rows, sampled)

        def run(parts=parts):
            for _, _, fn in parts:
                fn()
        with paddle.no_grad():
            seconds = best_time(run, reps)
        out.append(MatmulLimit(step=step, rows=rows, sampled=sampled, flops=sum(f for _, f, _ in parts),
                               seconds=seconds))
    return out


def workload_matmul_limits(runner: ModelRunner, decode, prefill, repeats: int) -> list[MatmulLimit]:
    """The decode and prefill workloads' steps: decode's M is its request count; prefill's is as many
    of its prompts as one step's token budget holds, the LM head on one row per prompt."""
    rows = min(runner.max_num_batched_tokens, prefill.num_requests * prefill.prompt_len)
    return measure_matmul_limits(runner, decode.num_requests, rows, max(1, rows // prefill.prompt_len), repeats)
