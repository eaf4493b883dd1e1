"""The run summary: printed at the end, written as JSON (--summary-file, summary.json of a
shard, the pod's termination message: kept well under Kubernetes' 4 KiB limit)."""

from worker.batch.checkpoint import ChunkStats
from worker.contract import TERMINATION_LIMIT, ShardSummary
from worker.logs import get_logger

log = get_logger(__name__)


class Summary(ShardSummary):
    """The contract's summary, built from chunk statistics and rendered for a terminal."""

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
