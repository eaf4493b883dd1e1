"""Prometheus metrics: runs by phase, shard outcomes, requests served and failed, run durations."""

import threading

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from batchinfer_operator.status import BatchInferenceStatus, Phase
from batchinfer_operator.timestamps import seconds_between

RUNS = Gauge("batchinfer_runs", "BatchInference runs seen by this operator, by phase", ["phase"])
RUNS_FINISHED = Counter("batchinfer_runs_finished_total", "Runs that reached a final phase", ["phase"])
SHARDS = Counter("batchinfer_shards_total", "Shards of finished runs, by outcome", ["outcome"])
REQUESTS = Counter("batchinfer_requests_total", "Requests of finished runs, by outcome", ["outcome"])
DURATION = Histogram(
    "batchinfer_run_duration_seconds", "From the first shard start to the final phase",
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, float("inf")),
)

_lock = threading.Lock()
_phases: dict[str, Phase] = {}


def observe(key: str, old: Phase | None, status: BatchInferenceStatus) -> None:
    """Record one observed status; final-phase counters move only on the transition itself."""
    with _lock:
        _phases[key] = status.phase
        for phase in Phase:
            RUNS.labels(phase.value).set(sum(1 for p in _phases.values() if p is phase))
    if status.phase == old or not status.phase.terminal:
        return
    RUNS_FINISHED.labels(status.phase.value).inc()
    SHARDS.labels("succeeded").inc(status.shards.succeeded)
    SHARDS.labels("failed").inc(status.shards.failed)
    REQUESTS.labels("completed").inc(status.request_counts.completed)
    REQUESTS.labels("failed").inc(status.request_counts.failed)
    seconds = seconds_between(status.start_time, status.completion_time)
    if seconds is not None:
        DURATION.observe(max(0.0, seconds))


def forget(key: str) -> None:
    with _lock:
        _phases.pop(key, None)


def serve(port: int) -> None:
    if port:
        start_http_server(port)
