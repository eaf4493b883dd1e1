"""The pure middle of a reconcile pass: (CR, what was observed, now) -> the status to write and
the actions to take. No I/O; reconcile.py observes before it and acts after it."""

from dataclasses import dataclass, field
from typing import Any

from batchinfer_operator import jobs
from batchinfer_operator.observed import is_live
from batchinfer_operator.reducer import Observed, prior_status, reduce_status, shards_were_done
from batchinfer_operator.settings import OperatorSettings
from batchinfer_operator.spec import BatchInferenceSpec
from batchinfer_operator.status import BatchInferenceStatus, Phase
from batchinfer_operator.stopping import is_stopping
from batchinfer_operator.worker_command import RunValues


@dataclass(frozen=True)
class Plan:
    status: BatchInferenceStatus
    create: list[dict[str, Any]] = field(default_factory=list)  # Jobs, in order
    suspend: dict[str, bool] = field(default_factory=dict)  # Job name -> spec.suspend to write
    ttl: dict[str, int] = field(default_factory=dict)  # Job name -> ttlSecondsAfterFinished to write


def desired_suspend(spec: BatchInferenceSpec, job: dict[str, Any]) -> bool | None:
    """The suspend value to write, or None to leave it. Under Kueue only Kueue unsuspends."""
    current = bool(job.get("spec", {}).get("suspend"))
    if spec.suspend and not current:
        return True
    if not spec.suspend and current and not spec.queue_name:
        return False
    return None


def _suspends(spec: BatchInferenceSpec, obs: Observed, stopped: bool) -> dict[str, bool]:
    """A stopped run's shards stay suspended (the Job controller stops their pods, the finished
    ones stay recorded) and its gather runs whatever spec.suspend says."""
    if stopped:
        job = obs.shards_job
        return {job["metadata"]["name"]: True} if job is not None and not job["spec"].get("suspend") else {}
    out = {}
    for job in (obs.shards_job, obs.gather_job):
        if job is not None and (value := desired_suspend(spec, job)) is not None:
            out[job["metadata"]["name"]] = value
    return out


def _gather_ttl(spec: BatchInferenceSpec, obs: Observed, status: BatchInferenceStatus) -> dict[str, int]:
    """The gather Job expires only once its outcome is in the status: a TTL set at creation let
    the TTL controller delete a finished gather while no operator ran, and it ran again."""
    job, ttl = obs.gather_job, spec.ttl_seconds_after_finished
    if job is None or ttl is None or not status.phase.terminal or "ttlSecondsAfterFinished" in job["spec"]:
        return {}
    return {job["metadata"]["name"]: ttl}


def needs_cleanup(spec: BatchInferenceSpec, shards_job: dict[str, Any] | None, gather_job: dict[str, Any] | None,
                  cleanup_job: dict[str, Any] | None, shard_pods: list[dict[str, Any]]) -> bool:
    """A failed run's staging is deleted once no shard pod can still write to it. Not when
    nothing was staged (no shards Job), nor when a gather ran (it deletes after publishing; a
    failed one leaves staging to be looked at), nor when asked to keep it."""
    keep = spec.staging is not None and spec.staging.keep
    return (not keep and shards_job is not None and gather_job is None and cleanup_job is None
            and not any(map(is_live, shard_pods)))


def plan(cr: dict[str, Any], obs: Observed, run: RunValues, settings: OperatorSettings, now: str) -> Plan:
    status = reduce_status(cr, obs, now)
    spec = obs.spec
    assert spec is not None, "an invalid spec never reaches the plan"
    create = []
    stopping = is_stopping(status.phase)
    # Never recreated once all shards were done: that would run the whole batch again.
    if (obs.shards_job is None and not shards_were_done(prior_status(cr)) and not status.phase.terminal
            and not stopping):
        create.append(jobs.shards_job(cr, spec, run, settings))
    if status.phase is Phase.FINALIZING and obs.gather_job is None:
        create.append(jobs.gather_job(cr, spec, run, settings))
    # Only once no shard pod can still write to staging: the gather closes what they left.
    if stopping and obs.gather_job is None and not any(map(is_live, obs.shard_pods)):
        create.append(jobs.gather_job(cr, spec, run, settings, status.stop_reason))
    return Plan(status, create, _suspends(spec, obs, status.stop_reason is not None), _gather_ttl(spec, obs, status))
