"""One resumable run over a byte range of the input, into checkpoint chunks under a prefix:
the common core of `worker run-batch` (the whole file) and `worker run-shard` (one range)."""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import structlog
from tqdm import tqdm

from worker import storage
from worker.batch import checkpoint
from worker.batch.assemble import ChunkRef
from worker.batch.build import LineResult
from worker.batch.checkpoint import ChunkStats, ChunkWriter, RunManifest
from worker.batch.errors import BatchRunError
from worker.batch.ids import BatchIdentity
from worker.batch.lines import RawLine, has_line_start, iter_lines
from worker.batch.pipeline import Engine, run_pipeline
from worker.logs import get_logger
from worker.metrics import MeteredEngine, WorkerMetrics

log = get_logger(__name__)


@dataclass(frozen=True)
class RangeJob:
    input_url: str
    prefix: str  # where the chunks go (a local dir, or a staging URL prefix)
    start: int
    end: int
    input_size: int
    chunk_lines: int
    window: int
    models: tuple[str, ...]  # the served model names; the first is written into bodies by default
    batch_id: str | None = None
    created: int | None = None
    tmp_dir: str | None = None
    progress: bool = True
    engine: str = ""  # the engine settings; resuming with other ones would mix outputs


@dataclass
class RangeResult:
    chunks: list[ChunkRef]
    total: ChunkStats
    this_attempt: ChunkStats
    elapsed_s: float
    serving_s: float = 0.0  # elapsed_s without the model load: what the rates are over


def input_size(url: str) -> int:
    try:
        return storage.size(url)
    except storage.StorageError as exc:
        raise BatchRunError(f"input unreadable: {exc}") from None


def open_checkpoint(job: RangeJob) -> BatchIdentity:
    """Reuse the checkpoint under job.prefix if it belongs to this very job, else start over."""
    existing = checkpoint.load_manifest(job.prefix)
    old = existing.identity if existing else None
    batch_id = job.batch_id or (old.batch_id if old else None)
    created = job.created if job.created is not None else (old.created if old else None)
    ident = BatchIdentity.new(job.models[0], batch_id, created)
    wanted = RunManifest(input_url=job.input_url, input_size=job.input_size, start=job.start, end=job.end,
                         chunk_lines=job.chunk_lines, engine=job.engine, identity=ident)
    if existing == wanted:
        if stale := storage.discard_partial_writes(job.prefix):
            log.info("checkpoint.partial_chunk_discarded", prefix=job.prefix, count=stale)
        return ident
    if existing is not None:
        log.warning("checkpoint.discarded", prefix=job.prefix, reason="made for other arguments or input")
        checkpoint.clear(job.prefix)
    checkpoint.save_manifest(job.prefix, wanted)
    return ident


def run_range(job: RangeJob, load_engine: Callable[[], Engine], metrics: WorkerMetrics | None = None) -> RangeResult:
    """metrics: fed with the chunks committed, earlier attempts' first, and the engine's steps."""
    metrics = metrics or WorkerMetrics()
    t0 = time.monotonic()
    ident = open_checkpoint(job)
    structlog.contextvars.bind_contextvars(batch_id=ident.batch_id)
    done = list(checkpoint.iter_metas(job.prefix))
    resume_at = done[-1].end_offset if done else job.start
    metrics.start_range(job.start, job.end, job.input_size, checkpoint.total_stats(done), resume_at)
    this_attempt = ChunkStats()
    serving_s = 0.0
    # A range inside one long line has no line of its own: no model to load for it.
    if has_line_start(job.input_url, resume_at, job.end):
        log.info("run.start", input=storage.parse_url(job.input_url).safe, start=job.start, end=job.end,
                 resume_at=resume_at, chunks_done=len(done))
        engine = MeteredEngine(load_engine(), metrics)
        metrics.set_phase("serving")
        t_serve = time.monotonic()
        _serve(job, ident, engine, resume_at, len(done), this_attempt, metrics)
        serving_s = time.monotonic() - t_serve
    metrics.finish_range()
    metas = list(checkpoint.iter_metas(job.prefix))
    total = checkpoint.total_stats(metas)
    chunks = [ChunkRef(storage.join(job.prefix, checkpoint.chunk_name(m.index)), m) for m in metas]
    return RangeResult(chunks, total, this_attempt, time.monotonic() - t0, serving_s)


def _serve(job: RangeJob, ident: BatchIdentity, engine: Engine, resume_at: int, first_chunk: int,
           stats: ChunkStats, metrics: WorkerMetrics) -> None:
    writer = ChunkWriter(job.prefix, job.chunk_lines, first_chunk, resume_at, job.tmp_dir, metrics.record_chunk)
    lines = _Tally(iter_lines(job.input_url, resume_at, job.end))
    bar = tqdm(total=job.end - job.start, initial=resume_at - job.start, unit="B", unit_scale=True,
               desc="run-batch", disable=not job.progress, mininterval=1.0)
    t0 = time.monotonic()

    def on_result(raw: RawLine, result: LineResult) -> None:
        stats.add(result)
        bar.update(raw.end - raw.offset)
        rate = stats.completion_tokens / max(time.monotonic() - t0, 1e-9)
        bar.set_postfix(done=stats.lines, tok_s=f"{rate:.1f}", refresh=False)

    try:
        run_pipeline(lines, engine, ident, writer, job.window, on_result, job.models)
        writer.finish(lines.count, lines.end)
    except storage.StorageError as exc:
        writer.abort()
        raise BatchRunError(f"storage failed during the run: {exc}") from None
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()


class _Tally:
    """The lines read, blank ones included, and where the last one ends (for the last chunk)."""

    def __init__(self, lines: Iterator[RawLine]):
        self._lines, self.count, self.end = lines, 0, 0

    def __iter__(self) -> Iterator[RawLine]:
        for raw in self._lines:
            self.count, self.end = raw.index + 1, raw.end
            yield raw
