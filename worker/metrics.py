"""The worker's Prometheus metrics (`batchinfer:`, vLLM's names with our prefix where one fits).

One registry per run, no global state. The done counters are fed only by committed checkpoint
chunks (their ChunkStats are what the summary sums, so the two cannot drift, and a line counts
once however often its pod restarts); the engine gauges and the step histogram by every step."""

import time
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from worker.batch.checkpoint import ChunkMeta, ChunkStats
from worker.batch.pipeline import Engine
from worker.contract import (ATTEMPT_CURRENT, ATTEMPT_RESUMED, LABEL_ATTEMPT, LABEL_CODE, LABEL_PHASE,
                             METRIC_GENERATION_TOKENS, METRIC_INPUT_BYTES_DONE, METRIC_INPUT_SIZE, METRIC_PHASE,
                             METRIC_PROMPT_TOKENS, METRIC_RANGE_END, METRIC_RANGE_START, METRIC_REQUEST_FAILURE,
                             METRIC_REQUEST_SUCCESS, PHASES)
from worker.outputs import EngineStats, RequestOutput

# From a decode step of a tiny model on CPU to a long prefill chunk on a big one.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        attempt = [LABEL_ATTEMPT]
        self.success = Counter(METRIC_REQUEST_SUCCESS, "Lines served, in committed chunks", attempt, registry=r)
        self.failure = Counter(METRIC_REQUEST_FAILURE, "Error lines by code, in committed chunks",
                               [LABEL_ATTEMPT, LABEL_CODE], registry=r)
        self.prompt_tokens = Counter(METRIC_PROMPT_TOKENS, "Prompt tokens of committed lines", attempt, registry=r)
        self.generation_tokens = Counter(METRIC_GENERATION_TOKENS, "Completion tokens of committed lines", attempt,
                                         registry=r)
        self.cached_tokens = Counter("batchinfer:prefix_cache_hits_total",
                                     "Prompt tokens of committed lines served from the prefix cache", attempt,
                                     registry=r)
        self.bytes_done = Counter(METRIC_INPUT_BYTES_DONE, "Bytes of this pod's input range done", attempt,
                                  registry=r)
        self.range_start = Gauge(METRIC_RANGE_START, "First byte of this pod's input range", registry=r)
        self.range_end = Gauge(METRIC_RANGE_END, "End (exclusive) of this pod's input range", registry=r)
        self.input_size = Gauge(METRIC_INPUT_SIZE, "Size of the whole input file", registry=r)
        self.running = Gauge("batchinfer:num_requests_running", "Engine requests of the latest step", registry=r)
        self.waiting = Gauge("batchinfer:num_requests_waiting", "Engine requests queued", registry=r)
        self.kv_used = Gauge("batchinfer:kv_cache_blocks_used", "KV-cache blocks held by requests", registry=r)
        self.kv_total = Gauge("batchinfer:kv_cache_blocks_total", "KV-cache blocks allocated", registry=r)
        self.kv_usage = Gauge("batchinfer:kv_cache_usage_perc", "KV-cache usage, 1 = 100 percent", registry=r)
        self.step_time = Histogram("batchinfer:step_duration_seconds", "Wall time of one engine step",
                                   buckets=STEP_BUCKETS, registry=r)
        self.phase = Gauge(METRIC_PHASE, "1 for the phase this pod is in", [LABEL_PHASE], registry=r)
        self.set_phase("loading")  # every command starts here
        self._start = self._end = self._done_to = 0

    def set_phase(self, phase: str) -> None:
        assert phase in PHASES, phase
        for name in PHASES:
            self.phase.labels(name).set(1 if name == phase else 0)

    def start_range(self, start: int, end: int, input_size: int, resumed: ChunkStats, resumed_to: int) -> None:
        """This pod's byte range and what earlier attempts committed of it: its lines, and the
        input read up to resumed_to. The done counters have no sample until now (a reader keeps
        its last figures): their first ones already hold the resumed work, never less."""
        self.range_start.set(start)
        self.range_end.set(end)
        self.input_size.set(input_size)
        self._start, self._end, self._done_to = start, end, start
        self.record_stats(resumed, ATTEMPT_RESUMED)
        self._advance(resumed_to, ATTEMPT_RESUMED)
        self.record_stats(ChunkStats(), ATTEMPT_CURRENT)
        self._advance(start, ATTEMPT_CURRENT)

    def record_chunk(self, meta: ChunkMeta, attempt: str = ATTEMPT_CURRENT) -> None:
        """A committed chunk: its lines and tokens, and the input read up to its end."""
        self.record_stats(meta.stats, attempt)
        self._advance(meta.end_offset, attempt)

    def record_stats(self, stats: ChunkStats, attempt: str) -> None:
        self.success.labels(attempt).inc(stats.served)
        for code, count in stats.failed.items():
            self.failure.labels(attempt, code).inc(count)
        self.prompt_tokens.labels(attempt).inc(stats.prompt_tokens)
        self.generation_tokens.labels(attempt).inc(stats.completion_tokens)
        self.cached_tokens.labels(attempt).inc(stats.cached_tokens)

    def finish_range(self, attempt: str = ATTEMPT_CURRENT) -> None:
        """The whole range is done, the bytes after the last line start included."""
        self._advance(self._end, attempt)

    def _advance(self, offset: int, attempt: str) -> None:
        # The last line may end past the range; done never exceeds end - start.
        to = max(min(offset, self._end), self._done_to)
        self.bytes_done.labels(attempt).inc(to - self._done_to)
        self._done_to = to


    def show_load(self, stats: EngineStats) -> None:
        self.running.set(stats.num_requests_running)
        self.waiting.set(stats.num_requests_waiting)
        self.kv_used.set(stats.kv_blocks_used)
        self.kv_total.set(stats.kv_blocks_total)
        self.kv_usage.set(stats.kv_blocks_used / stats.kv_blocks_total if stats.kv_blocks_total else 0.0)


class MeteredEngine:
    """An Engine whose steps are timed and whose load is sampled as each one starts: what the
    step computes (sampled after it, the gauges would read 0 whenever a step finished them all)."""

    def __init__(self, engine: Engine, metrics: WorkerMetrics):
        self._engine, self._metrics = engine, metrics
        self.tokenizer, self.max_model_len = engine.tokenizer, engine.max_model_len
        self.add_request, self.abort_request = engine.add_request, engine.abort_request
        self.has_unfinished_requests, self.stats = engine.has_unfinished_requests, engine.stats
        metrics.show_load(engine.stats())  # the KV-cache size, before the first step

    def step(self) -> list[RequestOutput]:
        self._metrics.show_load(self._engine.stats())
        t0 = time.perf_counter()
        outputs = self._engine.step()
        self._metrics.step_time.observe(time.perf_counter() - t0)
        return outputs
