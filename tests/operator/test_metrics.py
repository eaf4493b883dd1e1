"""Prometheus metrics move once per run, on the transition to a final phase."""

from prometheus_client import REGISTRY

from batchinfer_operator import metrics
from batchinfer_operator.status import BatchInferenceStatus, Phase, RequestCounts, ShardCounts


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_final_transition_counts_once_and_gauges_follow_phases() -> None:
    before = value("batchinfer_runs_finished_total", phase="Succeeded")
    served = value("batchinfer_requests_total", outcome="completed")
    done = BatchInferenceStatus(
        phase=Phase.SUCCEEDED, shards=ShardCounts(total=3, succeeded=3),
        request_counts=RequestCounts(total=20, completed=19, failed=1),
        start_time="2026-01-01T00:00:00Z", completion_time="2026-01-01T00:10:00Z",
    )
    metrics.observe("ns/m1", Phase.RUNNING, BatchInferenceStatus(phase=Phase.RUNNING))
    assert value("batchinfer_runs", phase="Running") >= 1
    metrics.observe("ns/m1", Phase.FINALIZING, done)
    metrics.observe("ns/m1", Phase.SUCCEEDED, done)  # seen again: no double count
    assert value("batchinfer_runs_finished_total", phase="Succeeded") == before + 1
    assert value("batchinfer_requests_total", outcome="completed") == served + 19
    assert value("batchinfer_run_duration_seconds_sum") >= 600
    metrics.forget("ns/m1")
