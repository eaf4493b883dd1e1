"""Per-request sampling parameters, with FastDeploy's field names and validation rules.

Defaults (documented choices where FastDeploy and vLLM differ):
- `max_tokens=None`: generate until EOS or `max_model_len` (FastDeploy fills the rest of the
  context; vLLM's 16 silently truncates batch jobs). It counts OUTPUT tokens only.
- `min_tokens=0`: an immediate EOS is an honest answer (vLLM); FastDeploy's 1 is one keyword away.
- `top_k=0` (or -1) and `top_p=1.0`, `min_p=0.0` disable those filters; `temperature=0` is greedy.
- `seed=None` draws from the engine's process RNG; a seed makes the text independent of the batch.

Every invalid value raises `ValueError` naming the field, e.g. "temperature must be >= 0, got -1";
an invalid `guided_decoding` constraint raises its subclass `GuidedDecodingError`.
"""

from dataclasses import dataclass, field

from worker.guided_decoding import GuidedDecodingParams

MAX_LOGPROBS = 20  # FastDeploy's (and OpenAI's) limit on top_logprobs
MAX_SEED = 2**63 - 1


def _check_int(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")


def _check_float(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")


def _check_range(name: str, value: float, lo: float | None, hi: float | None, rule: str) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must be {rule}, got {value!r}")


def _str_list(name: str, value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
        raise ValueError(f"{name} must be a string or a list of strings, got {value!r}")
    if any(s == "" for s in value):
        raise ValueError(f"{name} must not contain empty strings, got {value!r}")
    return list(value)


def _int_list(name: str, value: object) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of ints, got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must hold non-negative ints, got {v!r}")
    return list(value)


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    bad_words: list[str] | None = None
    max_tokens: int | None = None
    min_tokens: int = 0
    logprobs: int | None = None
    # vLLM's: the logprob of every prompt token after the first, plus the top k at each position.
    prompt_logprobs: int | None = None
    ignore_eos: bool = False
    skip_special_tokens: bool = True
    guided_decoding: GuidedDecodingParams | None = None
    # Resolved by the engine after tokenizing `bad_words`; the sampler masks these ids.
    bad_words_token_ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._check_counts()
        self._check_probabilities()
        self._check_penalties()
        self._check_lists()
        self._check_guided()

    def _check_counts(self) -> None:
        _check_int("n", self.n)
        _check_range("n", self.n, 1, None, ">= 1")
        _check_int("top_k", self.top_k)
        _check_range("top_k", self.top_k, -1, None, "-1 or 0 (disabled) or >= 1")
        _check_int("seed", self.seed, allow_none=True)
        if self.seed is not None:
            _check_range("seed", self.seed, 0, MAX_SEED, f"in [0, {MAX_SEED}]")
        _check_int("max_tokens", self.max_tokens, allow_none=True)
        if self.max_tokens is not None:
            _check_range("max_tokens", self.max_tokens, 1, None, ">= 1")
        _check_int("min_tokens", self.min_tokens)
        _check_range("min_tokens", self.min_tokens, 0, None, ">= 0")
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens must be <= max_tokens={self.max_tokens}, got {self.min_tokens}")
        for name in ("logprobs", "prompt_logprobs"):
            _check_int(name, getattr(self, name), allow_none=True)
            if getattr(self, name) is not None:
                _check_range(name, getattr(self, name), 0, MAX_LOGPROBS, f"in [0, {MAX_LOGPROBS}]")
        for name in ("ignore_eos", "skip_special_tokens"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")

    def _check_probabilities(self) -> None:
        _check_float("temperature", self.temperature)
        _check_range("temperature", self.temperature, 0.0, None, ">= 0")
        _check_float("top_p", self.top_p)
        # top_p=0 keeps only the most probable token, as OpenAI's API allows it.
        _check_range("top_p", self.top_p, 0.0, 1.0, "in [0, 1]")
        _check_float("min_p", self.min_p)
        _check_range("min_p", self.min_p, 0.0, 1.0, "in [0, 1]")

    def _check_penalties(self) -> None:
        for name in ("presence_penalty", "frequency_penalty"):
            _check_float(name, getattr(self, name))
            _check_range(name, getattr(self, name), -2.0, 2.0, "in [-2, 2]")
        _check_float("repetition_penalty", self.repetition_penalty)
        if self.repetition_penalty <= 0.0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty!r}")

    def _check_lists(self) -> None:
        self.stop = _str_list("stop", self.stop)
        self.bad_words = _str_list("bad_words", self.bad_words)
        self.stop_token_ids = _int_list("stop_token_ids", self.stop_token_ids)
        self.bad_words_token_ids = _int_list("bad_words_token_ids", self.bad_words_token_ids)

    def _check_guided(self) -> None:
        if self.guided_decoding is None:
            return
        if not isinstance(self.guided_decoding, GuidedDecodingParams):
            raise ValueError(f"guided_decoding must be a GuidedDecodingParams, got {self.guided_decoding!r}")
        if self.ignore_eos:  # the grammar says where the output ends
            raise ValueError("ignore_eos cannot be combined with guided_decoding")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def effective_top_k(self) -> int:
        """0 when disabled (FastDeploy accepts -1 for that too)."""
        return max(self.top_k, 0)
