"""Live progress of a run: what its running shard pods report on their metrics endpoint, folded
into the status with what finished shards left. Pure: scrape.py fetches, this file decides.
Figures never go backwards: a shard's record only grows (its pod's `done` counters count the
chunks of earlier attempts too), and a pod that cannot be reached keeps its last record."""

from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field

from batchinfer_operator.status import Progress, ShardLive, StatusModel
from worker.contract import (
    METRIC_GENERATION_TOKENS, METRIC_INPUT_BYTES_DONE, METRIC_INPUT_SIZE, METRIC_REQUEST_FAILURE,
    METRIC_REQUEST_SUCCESS, ShardSummary, shard_range,
)


class Scraped(StatusModel):
    """One shard pod's figures, summed over its attempts."""

    live: ShardLive
    input_size: int | None = Field(None, ge=0)


def parse_metrics(text: str) -> Scraped | None:
    """The figures of a worker's /metrics page; None when it has not read its checkpoints yet
    (the `done` counters have no sample until then)."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    if METRIC_INPUT_BYTES_DONE not in sums:
        return None
    size = sums.get(METRIC_INPUT_SIZE)
    return Scraped(live=ShardLive(bytes_done=int(sums[METRIC_INPUT_BYTES_DONE]),
                                  completed=int(sums.get(METRIC_REQUEST_SUCCESS, 0)),
                                  failed=int(sums.get(METRIC_REQUEST_FAILURE, 0)),
                                  generation_tokens=int(sums.get(METRIC_GENERATION_TOKENS, 0))),
                   input_size=None if size is None else int(size))


def grown(old: ShardLive | None, new: ShardLive | None) -> ShardLive | None:
    """The larger of two records of one shard, field by field."""
    if old is None or new is None:
        return old or new
    return ShardLive(**{name: max(getattr(old, name), getattr(new, name)) for name in ShardLive.model_fields})


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def progress(prior: Progress | None, scraped: dict[int, Scraped], finished: set[int],
             summaries: list[ShardSummary], num_shards: int, elapsed_s: float | None, done: bool) -> Progress:
    """finished: the shard indexes the Job completed; summaries: those their pods still show;
    elapsed_s: since the run began (rates are averages over it); done: the output is published."""
    prior = prior or Progress()
    size = prior.bytes_total or next((s.input_size for s in scraped.values() if s.input_size is not None), None) \
        or next((s.input_bytes for s in summaries if s.input_bytes is not None), None)
    running = {}
    for index in sorted(({int(k) for k in prior.running} | set(scraped)) - finished):
        now = scraped.get(index)
        running[str(index)] = grown(prior.running.get(str(index)), now.live if now else None)
    tokens_of_finished = max(prior.finished_tokens, sum(s.completion_tokens for s in summaries))
    result = Progress(bytes_total=size, running=running, finished_tokens=tokens_of_finished)
    if size is None:
        return result
    finished_bytes = sum(end - start for start, end in (shard_range(size, i, num_shards) for i in finished))
    result.bytes_done = size if done else min(size, finished_bytes + sum(r.bytes_done for r in running.values()))
    result.percent = f"{100 * result.bytes_done // size if size else 100}%"
    tokens = result.finished_tokens + sum(r.generation_tokens for r in running.values())
    if elapsed_s and elapsed_s > 0 and not done:
        result.tokens_per_second = round(tokens / elapsed_s, 1)
        rate = result.bytes_done / elapsed_s
        result.eta = _duration((size - result.bytes_done) / rate) if rate > 0 else None
    return result
