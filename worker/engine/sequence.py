"""One sequence in the engine: prompt plus generated tokens, its KV blocks and its progress.

A request with `n` completions becomes `n` sequences sharing the request id (`index` tells
them apart); identical prompts then share KV blocks through the prefix cache.
"""

import itertools
import time
from dataclasses import dataclass, field
from enum import Enum

from worker.sampling_params import SamplingParams

_seq_ids = itertools.count()


class SequenceStatus(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)  # identity semantics: sequences are compared and hashed by object
class Sequence:
    request_id: str
    token_ids: list[int]  # prompt + output
    sampling_params: SamplingParams
    index: int = 0  # completion index inside its request (n > 1)
    seq_id: int = field(default_factory=lambda: next(_seq_ids))
    num_prompt_tokens: int = -1
    status: SequenceStatus = SequenceStatus.WAITING
    # Tokens whose K/V are in the cache (includes prefix-cache hits).
    num_computed_tokens: int = 0
    # Prefix-cache hit at first admission (what the user sees as cached_tokens).
    num_cached_tokens: int = 0
    block_table: list[int] = field(default_factory=list)
    # Chained hashes of this sequence's leading full blocks (block_table order): computed, or
    # being computed by the step just scheduled.
    block_hashes: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    output_logprobs: list[dict[int, float]] | None = None
    # Per prompt position: None for the first token, then token id -> logprob (the top k and
    # the prompt's own token). Collected by the first completion of a request only.
    prompt_logprobs: list[dict[int, float] | None] | None = None
    cumulative_logprob: float | None = None
    num_preemptions: int = 0
    arrival_time: float = field(default_factory=time.time)
    first_scheduled_time: float | None = None
    first_token_time: float | None = None

    def __post_init__(self) -> None:
        self.token_ids = list(self.token_ids)
        if self.num_prompt_tokens < 0:
            self.num_prompt_tokens = len(self.token_ids)
        if self.sampling_params.prompt_logprobs is not None and self.index == 0 and self.prompt_logprobs is None:
            self.prompt_logprobs = [None]
        if self.sampling_params.logprobs is not None and self.output_logprobs is None:
            self.output_logprobs = []
            self.cumulative_logprob = 0.0

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def prompt_token_ids(self) -> list[int]:
        return self.token_ids[: self.num_prompt_tokens]

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens :]

    @property
    def last_token(self) -> int:
        return self.token_ids[-1]

    @property
    def needs_prompt_logprobs(self) -> bool:
        return self.prompt_logprobs is not None and len(self.prompt_logprobs) < self.num_prompt_tokens

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED

    @property
    def num_uncomputed_tokens(self) -> int:
        return len(self.token_ids) - self.num_computed_tokens

    def append_token(self, token_id: int, logprobs: dict[int, float] | None = None) -> None:
        self.token_ids.append(int(token_id))
        if self.first_token_time is None:
            self.first_token_time = time.time()
        if self.output_logprobs is not None and logprobs is not None:
            self.output_logprobs.append(logprobs)
            self.cumulative_logprob += logprobs[int(token_id)]
