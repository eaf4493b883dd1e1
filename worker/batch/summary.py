"""The run summary: printed at the end, written as JSON (--summary-file, summary.json of a
shard, the pod's termination message: kept well under Kubernetes' 4 KiB limit)."""

from pydantic import BaseModel, Field

from worker.batch.checkpoint import ChunkStats
from worker.logs import get_logger

log = get_logger(__name__)

TERMINATION_LIMIT = 4096


class Summary(BaseModel):
    requests: int = Field(description="input lines = output lines")
    served: int
    failed: dict[str, int] = Field(description="error lines by error code")
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    elapsed_s: float = Field(description="wall time of this attempt")
    serving_s: float | None = Field(None, description="elapsed_s without loading the model; the rates are per it")
    resumed_lines: int = Field(0, description="lines taken from checkpoint chunks of earlier attempts")
    requests_per_s: float = Field(description="lines completed by this attempt per second of serving")
    completion_tokens_per_s: float = Field(description="completion tokens of this attempt per second of serving")
    chunks: int = 0
    shard_index: int | None = None
    num_shards: int | None = None
    # The input bytes a shard covered, [byte_start, byte_end) of input_bytes: gather checks
    # that the staged shards cover the whole input, exactly.
    byte_start: int | None = None
    byte_end: int | None = None
    input_bytes: int | None = None

    @classmethod
    def build(cls, total: ChunkStats, this_attempt: ChunkStats | None, elapsed_s: float, chunks: int,
              serving_s: float | None = None, **extra) -> "Summary":
        """this_attempt: what this process served; None for gather, which serves nothing
        (its rates are then 0: the shards' summaries hold the serving rates). serving_s: the
        time spent serving, so the model load does not dilute the rates."""
        this = this_attempt or ChunkStats()
        over = elapsed_s if serving_s is None else serving_s
        per_s = 1.0 / over if over > 0 else 0.0
        return cls(requests=total.lines, served=total.served, failed=dict(sorted(total.failed.items())),
                   prompt_tokens=total.prompt_tokens, completion_tokens=total.completion_tokens,
                   cached_tokens=total.cached_tokens, elapsed_s=round(elapsed_s, 3),
                   serving_s=None if serving_s is None else round(serving_s, 3),
                   resumed_lines=total.lines - this.lines if this_attempt is not None else 0,
                   requests_per_s=round(this.lines * per_s, 3),
                   completion_tokens_per_s=round(this.completion_tokens * per_s, 3),
                   chunks=chunks, **extra)

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    def termination_message(self) -> bytes:
        data = self.to_json()
        assert len(data) < TERMINATION_LIMIT, "the summary outgrew the termination message"
        return data

    def render(self) -> str:
        failed = ", ".join(f"{code}={n}" for code, n in self.failed.items()) or "none"
        return (f"requests: {self.requests}  served: {self.served}  failed: {failed}\n"
                f"tokens: prompt {self.prompt_tokens}, completion {self.completion_tokens}, "
                f"cached {self.cached_tokens}\n"
                f"elapsed: {self.elapsed_s:.1f}s"
                + (f" (serving {self.serving_s:.1f}s)" if self.serving_s is not None else "")
                + f"  throughput: {self.requests_per_s:.2f} req/s, "
                f"{self.completion_tokens_per_s:.1f} completion tok/s"
                + (f"  (resumed {self.resumed_lines} lines from checkpoints)" if self.resumed_lines else ""))


def write_termination_message(path: str, data: bytes) -> None:
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as exc:  # not in a pod (or no such mount): the summary is in staging anyway
        log.warning("termination_message.skipped", path=path, error=exc.strerror)
