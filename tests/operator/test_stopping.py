"""Cancel and expiry in the pure middle of a pass (reducer + plan): the shards Job is suspended,
the closing gather waits for the shard pods to stop, and the stop, once decided, stays."""

from typing import Any

from batchinfer_operator.names import ANNOTATION_STOP_REASON
from batchinfer_operator.plan import plan
from batchinfer_operator.reconcile import run_values
from batchinfer_operator.reducer import Observed
from batchinfer_operator.settings import OperatorSettings
from batchinfer_operator.validation import validate_spec
from tests.operator.builders import make_cr
from tests.operator.test_reducer import NOW, job, pod

SETTINGS = OperatorSettings()
RUNNING = job(ready=1, completedIndexes="0,1")


def plan_for(cr: dict[str, Any], now: str = NOW, **observed: Any):
    spec = validate_spec(cr["spec"], SETTINGS)
    return plan(cr, Observed(spec=spec, **observed), run_values(cr, spec, SETTINGS), SETTINGS, now)


def gather(*conditions: tuple[str, str, str], stop: str | None = "cancelled") -> dict[str, Any]:
    found = job(conditions=list(conditions))
    found["metadata"] = {"name": "run-gather", "annotations": {ANNOTATION_STOP_REASON: stop} if stop else {}}
    return found


def test_cancel_suspends_the_shards_and_waits_for_their_pods() -> None:
    todo = plan_for(make_cr(cancel=True), shards_job=RUNNING, shard_pods=[pod(2, "Running")])
    assert (todo.status.phase, todo.status.stop_reason) == ("Cancelling", "cancelled")
    assert todo.status.message == "cancelled: stopping 1 shard pod(s)"
    assert todo.suspend == {"run-shards": True} and todo.create == []


def test_once_no_shard_pod_runs_the_gather_closes_the_run() -> None:
    cr = make_cr(cancel=True, output={"url": "s3://out/o.jsonl", "errorUrl": "s3://out/e.jsonl"})
    todo = plan_for(cr, shards_job=job(suspend=True, completedIndexes="0"), shard_pods=[pod(2, "Failed", 137)])
    (created,) = todo.create
    command = created["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--close-unfinished") + 1] == "batch_cancelled"
    assert {"--input", "--batch-id", "--created", "--error-file"} <= set(command)
    assert created["metadata"]["annotations"][ANNOTATION_STOP_REASON] == "cancelled"
    assert created["spec"]["suspend"] is False


def test_a_suspended_run_cancelled_still_publishes() -> None:
    todo = plan_for(make_cr(cancel=True, suspend=True), shards_job=job(suspend=True))
    assert todo.status.phase == "Cancelling" and todo.create[0]["spec"]["suspend"] is False


def test_the_closing_gather_done_is_cancelled_and_the_shards_stay_suspended() -> None:
    cr = make_cr(cancel=True)
    cr["status"] = plan_for(cr, shards_job=job(suspend=True)).status.wire()
    todo = plan_for(cr, shards_job=job(suspend=True), gather_job=gather(("Complete", "", "")))
    assert todo.status.phase == "Cancelled" and todo.status.cancelled_at == NOW
    assert todo.status.cancelling_at == NOW and todo.suspend == {}


def test_a_stop_survives_a_lost_status_write_through_the_gather_annotation() -> None:
    # spec.cancel was set, the gather created, then the status write was lost: no stop in status.
    todo = plan_for(make_cr(), shards_job=job(suspend=True), gather_job=gather(("Complete", "", "")))
    assert todo.status.phase == "Cancelled"


def test_a_cancel_after_every_shard_finished_lets_the_run_succeed() -> None:
    done = job(completedIndexes="0-2", conditions=[("Complete", "", "")])
    todo = plan_for(make_cr(cancel=True), shards_job=done)
    assert todo.status.phase == "Finalizing" and todo.status.stop_reason is None
    assert "--close-unfinished" not in todo.create[0]["spec"]["template"]["spec"]["containers"][0]["command"]


def test_the_completion_window_counts_from_creation() -> None:
    cr = make_cr(completionWindow="1h30m")  # created 03:04:05
    assert plan_for(cr, "2026-01-02T04:34:04Z", shards_job=RUNNING).status.phase == "Running"
    todo = plan_for(cr, "2026-01-02T04:34:05Z", shards_job=RUNNING, shard_pods=[pod(2, "Running")])
    assert (todo.status.phase, todo.status.stop_reason) == ("Expiring", "expired")
    assert todo.status.expires_at == "2026-01-02T04:34:05Z"
    assert todo.status.message == "past its completion window: stopping 1 shard pod(s)"


def test_status_shows_the_urls_without_their_secrets() -> None:
    cr = make_cr(output={"url": "https://u:p@h.example.com/o.jsonl?X-Amz-Signature=s"}, staging={"url": "s3://s/t"})
    status = plan_for(cr, shards_job=RUNNING).status
    assert status.output_url == "https://h.example.com/o.jsonl" and status.in_progress_at == NOW


def test_a_failed_run_is_cleaned_up_once_no_shard_pod_can_write() -> None:
    from batchinfer_operator.plan import needs_cleanup

    spec = validate_spec(make_cr()["spec"], SETTINGS)
    kept = validate_spec(make_cr(staging={"url": "s3://s/t", "keep": True})["spec"], SETTINGS)
    shards = job(failedIndexes="1")
    assert needs_cleanup(spec, shards, None, None, [pod(1, "Failed", 1)])
    assert not needs_cleanup(spec, shards, None, None, [pod(0, "Running")])  # it may still write
    assert not needs_cleanup(spec, None, None, None, [])  # nothing was staged
    assert not needs_cleanup(spec, shards, gather(stop=None), None, [])  # a failed gather leaves it to look at
    assert not needs_cleanup(spec, shards, None, {"metadata": {"name": "run-cleanup"}}, [])  # once
    assert not needs_cleanup(kept, shards, None, None, [])
