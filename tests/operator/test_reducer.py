"""The status reducer: (CR, Jobs, pods, now) -> status, a pure function."""

import json
from typing import Any

from batchinfer_operator.reducer import Observed, reduce_status
from batchinfer_operator.settings import OperatorSettings
from batchinfer_operator.validation import validate_spec
from tests.operator.builders import make_cr

NOW = "2026-01-02T05:00:00Z"


def job(**status: Any) -> dict[str, Any]:
    conditions = status.pop("conditions", [])
    return {"metadata": {"name": "run-shards"}, "spec": {"suspend": status.pop("suspend", False)},
            "status": {**status, "conditions": [{"type": t, "status": "True", "reason": r, "message": m}
                                                for t, r, m in conditions]}}


def pod(index: int, phase: str, exit_code: int | None = None, message: str = "",
        created: str = "2026-01-02T04:00:00Z", disrupted: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if exit_code is not None:
        status["containerStatuses"] = [{"name": "worker", "state": {"terminated": {
            "exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error", "message": message}}}]
    if disrupted:
        status["conditions"] = [{"type": "DisruptionTarget", "status": "True"}]
    return {"metadata": {"name": f"p{index}-{created}", "creationTimestamp": created,
                         "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
                         "labels": {"batchinfer.io/run": "run", "batchinfer.io/role": "shards"}},
            "status": status}


def summary(requests: int, served: int, failed: dict[str, int]) -> str:
    return json.dumps({"requests": requests, "served": served, "failed": failed, "elapsed_s": 1.0,
                       "prompt_tokens": 1, "completion_tokens": 1, "cached_tokens": 0, "shard_index": 0,
                       "requests_per_s": 1.0, "completion_tokens_per_s": 1.0})


def reduce(cr: dict[str, Any] | None = None, **observed: Any):
    cr = cr or make_cr()
    spec = validate_spec(cr["spec"], OperatorSettings())
    return reduce_status(cr, Observed(spec=spec, **observed), NOW)


def test_no_job_yet_is_pending() -> None:
    status = reduce()
    assert status.phase == "Pending" and status.start_time is None
    assert status.shards.total == 3 and status.observed_generation == 2


def test_pods_not_yet_running_leave_the_run_pending() -> None:
    """The Job controller's `active` counts Pending, unscheduled pods; only `ready` ones run."""
    status = reduce(shards_job=job(active=3, ready=0, startTime="2026-01-02T04:00:00Z"))
    assert status.phase == "Pending" and status.shards.active == 0
    assert status.message == "waiting for the shard pods to start (3 not running yet)"


def test_running_counts_shards_and_sums_summaries_of_succeeded_pods() -> None:
    pods = [pod(0, "Succeeded", 0, summary(7, 6, {"invalid_request": 1})),
            pod(1, "Failed", 137), pod(1, "Running", created="2026-01-02T04:10:00Z"),
            pod(2, "Succeeded", 0, "not json")]
    status = reduce(shards_job=job(active=1, ready=1, succeeded=2, completedIndexes="0,2",
                                   startTime="2026-01-02T04:00:00Z"), shard_pods=pods)
    assert status.phase == "Running" and status.start_time == "2026-01-02T04:00:00Z"
    assert (status.shards.succeeded, status.shards.active, status.shards.failed) == (2, 1, 0)
    assert (status.request_counts.total, status.request_counts.completed, status.request_counts.failed) == (7, 6, 1)
    assert status.request_counts.shards_reported == 1 and status.shards_display == "2/3"


def test_all_shards_done_is_finalizing_then_succeeded() -> None:
    done = job(succeeded=3, completedIndexes="0-2", conditions=[("Complete", "CompletionsReached", "")])
    assert reduce(shards_job=done).phase == "Finalizing"
    gathered = job(succeeded=1, conditions=[("Complete", "CompletionsReached", "")])
    status = reduce(shards_job=done, gather_job=gathered)
    assert status.phase == "Succeeded" and status.completion_time == NOW
    assert next(c for c in status.conditions if c.type == "Succeeded").status == "True"


def test_failed_shard_message_names_the_shard_attempts_and_reason() -> None:
    pods = [pod(1, "Failed", 1, "input not found: http://x/in.jsonl", created=f"2026-01-02T04:0{i}:00Z")
            for i in range(3)]
    pods.append(pod(1, "Failed", 137, created="2026-01-02T04:09:00Z", disrupted=True))  # preempted: not counted
    failed = job(failed=3, failedIndexes="1", conditions=[("Failed", "FailedIndexes", "Job has failed indexes")])
    status = reduce(shards_job=failed, shard_pods=pods)
    assert status.phase == "Failed"
    assert status.message == "shard 1 failed after 3 attempt(s): exit code 1 (Error): input not found: http://x/in.jsonl"
    assert status.shards.failed == 1


def test_job_failure_without_failed_indexes_uses_the_job_condition() -> None:
    failed = job(conditions=[("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")])
    status = reduce(shards_job=failed)
    assert status.message == "shards Job failed: DeadlineExceeded: Job was active longer than specified deadline"


def test_suspended_keeps_finished_shards_and_kueue_waits_for_admission() -> None:
    status = reduce(make_cr(suspend=True), shards_job=job(suspend=True, succeeded=1, completedIndexes="0"))
    assert status.phase == "Suspended" and status.shards.succeeded == 1
    queued = reduce(make_cr(queue_name="gpu"), shards_job=job(suspend=True))
    assert queued.phase == "Pending" and "Kueue queue gpu" in queued.message


def test_invalid_spec_is_failed_with_the_reason() -> None:
    cr = make_cr()
    status = reduce_status(cr, Observed(spec=None, spec_error="spec.input.url: bad"), NOW)
    assert status.phase == "Failed" and status.message == "invalid spec: spec.input.url: bad"
    accepted = next(c for c in status.conditions if c.type == "Accepted")
    assert (accepted.status, accepted.reason, accepted.observed_generation) == ("False", "InvalidSpec", 2)


def test_terminal_phase_is_final_and_counts_never_go_backwards() -> None:
    cr = make_cr()
    pods = [pod(i, "Succeeded", 0, summary(5, 5, {})) for i in range(3)]
    running = reduce(cr, shards_job=job(active=1, succeeded=3, completedIndexes="0-2"), shard_pods=pods)
    cr["status"] = running.wire()
    later = reduce(cr, shards_job=job(active=0, succeeded=3, completedIndexes="0-2"), shard_pods=[])
    assert later.request_counts.total == 15  # pods were garbage-collected; the sums stay
    cr["status"] = {**later.wire(), "phase": "Failed", "message": "x"}
    assert reduce(cr, shards_job=job(conditions=[("Complete", "", "")])).phase == "Failed"


def test_condition_transition_time_is_kept_while_unchanged() -> None:
    cr = make_cr()
    first = reduce_status(cr, Observed(spec=validate_spec(cr["spec"], OperatorSettings())), "2026-01-01T00:00:00Z")
    cr["status"] = first.wire()
    second = reduce(cr, shards_job=job(active=1))
    times = {c.type: c.last_transition_time for c in second.conditions}
    assert times["Failed"] == "2026-01-01T00:00:00Z"


def test_gather_failure_names_the_gather_and_its_reason() -> None:
    done = job(succeeded=3, completedIndexes="0-2", conditions=[("Complete", "CompletionsReached", "")])
    gather_pod = pod(0, "Failed", 1, "PUT https://x/out.jsonl: HTTP 403")
    gather_pod["metadata"]["labels"]["batchinfer.io/role"] = "gather"
    failed = job(failed=1, conditions=[("Failed", "BackoffLimitExceeded", "")])
    status = reduce(shards_job=done, gather_job=failed, gather_pods=[gather_pod])
    assert status.phase == "Failed"
    assert status.message == "gather failed after 1 attempt(s): exit code 1 (Error): PUT https://x/out.jsonl: HTTP 403"


def test_shards_job_gone_after_all_shards_succeeded_stays_finalizing() -> None:
    cr = make_cr()
    done = job(succeeded=3, completedIndexes="0-2", conditions=[("Complete", "CompletionsReached", "")])
    cr["status"] = reduce(cr, shards_job=done).wire()
    status = reduce(cr, shards_job=None)
    assert status.phase == "Finalizing" and status.shards.succeeded == 3


def test_shards_job_created_again_keeps_the_finished_count_until_it_re_reports() -> None:
    cr = make_cr()
    cr["status"] = reduce(cr, shards_job=job(active=1, succeeded=2, completedIndexes="0,1")).wire()
    seen = []
    for report in ("", "2", "0,2", "0-2"):  # the new Job: nothing yet, then one index at a time
        status = reduce(cr, shards_job=job(active=1, completedIndexes=report))
        cr["status"] = status.wire()
        seen.append((status.phase.value, status.shards.succeeded, status.shards_display))
    assert seen == [("Running", 2, "2/3")] * 3 + [("Finalizing", 3, "3/3")]
