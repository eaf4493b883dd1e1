"""What `LLM.generate` / `LLM.chat` return, with the fields of FastDeploy's reference page.

One difference, on purpose: `RequestOutput.outputs` is a list of `CompletionOutput`, one per
completion (`n` of them, ordered by `index`), as in vLLM; FastDeploy's single `outputs` is
`outputs[0]`.
"""

from dataclasses import dataclass, field
from typing import Literal

FinishReason = Literal["stop", "length"]


@dataclass
class RequestMetrics:
    # Wall-clock times (time.time()) and durations in seconds; None until they happen.
    arrival_time: float
    inference_start_time: float | None = None
    first_token_time: float | None = None
    time_in_queue: float | None = None
    model_forward_time: float | None = None
    model_execute_time: float | None = None


@dataclass
class CompletionOutput:
    index: int
    send_idx: int
    token_ids: list[int]
    text: str = ""
    reasoning_content: str | None = None
    finish_reason: FinishReason | None = None
    # One dict per generated token: token id -> logprob (the top-k and the sampled token).
    logprobs: list[dict[int, float]] | None = None
    cumulative_logprob: float | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)
    finished: bool = False
    metrics: RequestMetrics | None = None
    num_cached_tokens: int = 0
    # With SamplingParams.prompt_logprobs: None for the first prompt token, then token id ->
    # logprob per prompt token (vLLM's field).
    prompt_logprobs: list[dict[int, float] | None] | None = None
    error_code: int = 200
    error_msg: str | None = None


@dataclass(frozen=True)
class EngineStats:
    """The engine's load between two steps (the worker's metrics show it)."""

    num_requests_running: int  # requests with a sequence being computed
    num_requests_waiting: int  # requests queued, none of their sequences computed yet
    kv_blocks_used: int  # KV-cache blocks held by sequences (free cached blocks are not)
    kv_blocks_total: int
