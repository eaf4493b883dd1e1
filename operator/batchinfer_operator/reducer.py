"""The status reducer: (CR, its Jobs, their pods, now) -> status. Pure: no I/O, no clock."""

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from batchinfer_operator.observed import (
    MAX_REASON_CHARS, cannot_start, changed_since_built, describe_failure, failed_pods, is_quota,
    job_condition, parse_indexes, shard_index, shard_summary, unschedulable,
)
from batchinfer_operator.progress import Scraped, progress
from batchinfer_operator.spec import BatchInferenceSpec
from batchinfer_operator.status import (
    PHASE_STAMPS, BatchInferenceStatus, Condition, Phase, Progress, RequestCounts, ShardCounts,
)
from batchinfer_operator.stopping import StopReason, expires_at, stop_reason, stopping_phase
from batchinfer_operator.timestamps import seconds_between
from worker.contract import ShardSummary, redact


@dataclass(frozen=True)
class Observed:
    """Everything the reducer looks at besides the CR itself."""

    spec: BatchInferenceSpec | None
    spec_error: str | None = None
    shards_job: dict[str, Any] | None = None
    gather_job: dict[str, Any] | None = None
    shard_pods: list[dict[str, Any]] = field(default_factory=list)
    gather_pods: list[dict[str, Any]] = field(default_factory=list)
    batch_id: str | None = None
    staging_url: str | None = None
    refusal: str | None = None  # the API server refused a Job of ours as invalid: no retry helps
    blocked: str | None = None  # it refused one for now (403: RBAC, a quota): the run waits
    failed_creates: dict[str, str] = field(default_factory=dict)  # Job name -> FailedCreate message
    scraped: dict[int, Scraped] = field(default_factory=dict)  # shard index -> its running pod's metrics


def prior_status(cr: dict[str, Any]) -> BatchInferenceStatus | None:
    raw = cr.get("status") or {}
    if "phase" not in raw:
        return None
    try:
        return BatchInferenceStatus.model_validate(raw)
    except ValidationError:
        return None


def shards_were_done(prior: BatchInferenceStatus | None) -> bool:
    return prior is not None and prior.shards.total > 0 and prior.shards.succeeded >= prior.shards.total


def _shard_counts(obs: Observed, total: int, prior: BatchInferenceStatus | None) -> ShardCounts:
    if obs.shards_job is None and shards_were_done(prior):
        assert prior is not None
        return prior.shards  # the Job is gone (deleted by hand?); its outcome is known
    status = (obs.shards_job or {}).get("status", {})
    succeeded = len(parse_indexes(status.get("completedIndexes"))) or int(status.get("succeeded") or 0)
    if prior is not None and prior.shards.total == total:
        # A shards Job created again (deleted by hand) starts from 0 and re-reports the
        # finished shards one by one: the count of the run so far stands meanwhile.
        succeeded = max(succeeded, prior.shards.succeeded)
    return ShardCounts(
        total=total,
        succeeded=min(succeeded, total),
        failed=len(parse_indexes(status.get("failedIndexes"))),
        # `active` counts Pending, unscheduled pods too; `ready` is what runs.
        active=int(status.get("ready") or 0),
    )


def _gathered_counts(obs: Observed, total_shards: int) -> RequestCounts | None:
    """The gather's own summary, once it finished: the whole output, closed lines included."""
    if not job_condition(obs.gather_job, "Complete"):
        return None
    summary = next(filter(None, map(shard_summary, obs.gather_pods)), None)
    if summary is None:
        return None
    return RequestCounts(total=summary.requests, completed=summary.served, failed=summary.failed_total,
                         shards_reported=total_shards)


def _summaries(obs: Observed) -> dict[int, ShardSummary]:
    """The latest finished attempt's summary of each shard whose pod is still there."""
    latest: dict[int, tuple[str, ShardSummary]] = {}
    for pod in obs.shard_pods:
        summary, index = shard_summary(pod), shard_index(pod)
        if summary is None or index is None:
            continue
        stamp = pod.get("metadata", {}).get("creationTimestamp") or ""
        if index not in latest or stamp >= latest[index][0]:
            latest[index] = (stamp, summary)
    return {index: summary for index, (_, summary) in latest.items()}


def _request_counts(summaries: dict[int, ShardSummary], prior: BatchInferenceStatus | None,
                    progress: Progress) -> RequestCounts:
    """The finished shards' summaries plus what the running ones reported so far."""
    counts = RequestCounts(shards_reported=len(summaries))
    for summary in summaries.values():
        counts.total += summary.requests
        counts.completed += summary.served
        counts.failed += summary.failed_total
    # Finished pods may be garbage-collected: never report fewer shards than before.
    if prior is not None and prior.request_counts.shards_reported > counts.shards_reported:
        completed, failed = prior.progress.live_counts() if prior.progress else (0, 0)
        counts = prior.request_counts.model_copy(update={"completed": prior.request_counts.completed - completed,
                                                         "failed": prior.request_counts.failed - failed})
    completed, failed = progress.live_counts()
    return counts.model_copy(update={"completed": counts.completed + completed, "failed": counts.failed + failed})


def _shards_failure(obs: Observed) -> str:
    job_status = (obs.shards_job or {}).get("status", {})
    failed = sorted(parse_indexes(job_status.get("failedIndexes")))
    if failed:
        index = failed[0]
        attempts = failed_pods(obs.shard_pods, index)
        detail = describe_failure(attempts[-1]) if attempts else "no pod left to inspect"
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return f"shard {index} failed after {len(attempts)} attempt(s): {detail}{more}"
    cond = job_condition(obs.shards_job, "Failed") or {}
    return f"shards Job failed: {cond.get('reason', 'unknown')}: {cond.get('message', '')}".rstrip(": ")


def _gather_failure(obs: Observed) -> str:
    attempts = failed_pods(obs.gather_pods)
    if attempts:
        return f"gather failed after {len(attempts)} attempt(s): {describe_failure(attempts[-1])}"
    cond = job_condition(obs.gather_job, "Failed") or {}
    return f"gather Job failed: {cond.get('reason', 'unknown')}: {cond.get('message', '')}".rstrip(": ")


def _start_failure(obs: Observed) -> str | None:
    """Why the run's pods can never start: refused at creation or stuck before their container."""
    if obs.refusal is not None:
        return obs.refusal
    for job, message in sorted(obs.failed_creates.items()):
        if not is_quota(message):
            return f"Job {job} cannot create its pods: {message[-MAX_REASON_CHARS:]}"
    return next(filter(None, map(cannot_start, obs.shard_pods + obs.gather_pods)), None)


def waiting(obs: Observed) -> tuple[str, str] | None:
    """(reason, message) when the run waits on something outside it: the Waiting condition."""
    if obs.blocked is not None:
        return "Forbidden", obs.blocked
    for job, message in sorted(obs.failed_creates.items()):
        if is_quota(message):
            return "QuotaExceeded", f"Job {job} waits for quota: {message[-MAX_REASON_CHARS:]}"
    stuck = next(filter(None, map(unschedulable, obs.shard_pods + obs.gather_pods)), None)
    return ("Unschedulable", stuck) if stuck else None


def _phase(obs: Observed, shards: ShardCounts, prior: BatchInferenceStatus | None,
           stop: StopReason | None) -> tuple[Phase, str]:
    spec = obs.spec
    if obs.spec_error is not None or spec is None:
        return Phase.FAILED, f"invalid spec: {obs.spec_error}"
    if failure := _start_failure(obs):
        return Phase.FAILED, failure
    built = spec.built_from()
    if changed := sorted({f for job in (obs.shards_job, obs.gather_job) for f in changed_since_built(job, built)}):
        fields = ", ".join(f"spec.{f}" for f in changed)
        return Phase.FAILED, f"{fields} changed after the run started (its Jobs were built from the old value)"
    if stop is not None:  # before the shards' own outcome: stopping them is what was asked
        if job_condition(obs.gather_job, "Failed"):
            return Phase.FAILED, _gather_failure(obs)
        return stopping_phase(obs.gather_job, obs.shard_pods, stop, redact(spec.output.url))
    if job_condition(obs.shards_job, "Failed"):
        return Phase.FAILED, _shards_failure(obs)
    shards_done = job_condition(obs.shards_job, "Complete") is not None or (
        (obs.shards_job is not None or shards_were_done(prior)) and shards.succeeded >= shards.total
    )
    if shards_done:
        if job_condition(obs.gather_job, "Complete"):
            return Phase.SUCCEEDED, f"{shards.total} shard(s) done, output written to {redact(spec.output.url)}"
        if job_condition(obs.gather_job, "Failed"):
            return Phase.FAILED, _gather_failure(obs)
        if spec.suspend:
            return Phase.SUSPENDED, "suspended before the gather; finished shards are kept"
        return Phase.FINALIZING, "all shards done; gathering the output"
    if spec.suspend:
        return Phase.SUSPENDED, f"suspended; {shards.succeeded}/{shards.total} shard(s) done and kept"
    if obs.shards_job is None:
        if prior is not None and prior.phase is Phase.RUNNING:  # deleted mid-run: the run goes on
            return Phase.RUNNING, f"{shards.succeeded}/{shards.total} shard(s) done; creating the shards Job again"
        return Phase.PENDING, "creating the shards Job"
    job = obs.shards_job
    if job.get("spec", {}).get("suspend") and spec.queue_name:
        return Phase.PENDING, f"waiting for admission by Kueue queue {spec.queue_name}"
    started = shards.active or shards.succeeded or shards.failed
    # A shards Job deleted mid-run is created again: the run goes on, it is not Pending anew.
    if started or (prior is not None and prior.phase is Phase.RUNNING):
        return Phase.RUNNING, f"{shards.succeeded}/{shards.total} shard(s) done, {shards.active} running"
    not_running = int(job.get("status", {}).get("active") or 0)
    return Phase.PENDING, f"waiting for the shard pods to start ({not_running} not running yet)"


def _condition(
    type_: str, true: bool, reason: str, message: str, now: str, generation: int | None,
    prior: BatchInferenceStatus | None,
) -> Condition:
    status = "True" if true else "False"
    since = now
    for old in prior.conditions if prior else []:
        if old.type == type_ and old.status == status:
            since = old.last_transition_time
    return Condition(
        type=type_, status=status, reason=reason, message=message,
        last_transition_time=since, observed_generation=generation,
    )


def _conditions(
    phase: Phase, message: str, obs: Observed, shards: ShardCounts, now: str,
    generation: int | None, prior: BatchInferenceStatus | None, wait: tuple[str, str] | None,
) -> list[Condition]:
    done = shards.total > 0 and shards.succeeded >= shards.total
    table = [
        ("Accepted", obs.spec_error is None, "SpecValid" if obs.spec_error is None else "InvalidSpec",
         "" if obs.spec_error is None else message),
        ("ShardsComplete", done, "AllShardsSucceeded" if done else "ShardsPending",
         f"{shards.succeeded}/{shards.total} shard(s) done"),
        ("Suspended", phase is Phase.SUSPENDED, "SuspendedBySpec" if phase is Phase.SUSPENDED else "NotSuspended", ""),
        ("Succeeded", phase is Phase.SUCCEEDED, "OutputWritten" if phase is Phase.SUCCEEDED else "NotFinished", ""),
        ("Failed", phase is Phase.FAILED, "RunFailed" if phase is Phase.FAILED else "NotFailed",
         message if phase is Phase.FAILED else ""),
        ("Waiting", wait is not None, wait[0] if wait else "NotWaiting", wait[1] if wait else ""),
    ]
    return [_condition(t, ok, r, m, now, generation, prior) for t, ok, r, m in table]


def reduce_status(cr: dict[str, Any], obs: Observed, now: str) -> BatchInferenceStatus:
    prior = prior_status(cr)
    if prior is not None and prior.phase.terminal:
        return prior  # terminal phases are final: late pod updates never reopen a run
    generation = cr.get("metadata", {}).get("generation")
    raw_total = (cr.get("spec") or {}).get("shards")
    total = obs.spec.shards if obs.spec else (raw_total if isinstance(raw_total, int) else 0)
    shards = _shard_counts(obs, total, prior)
    shards_done = shards.total > 0 and shards.succeeded >= shards.total
    stop = None if obs.spec is None else stop_reason(
        cr, obs.spec, prior.stop_reason if prior else None, obs.gather_job, shards_done, now)
    phase, message = _phase(obs, shards, prior, stop)
    wait = waiting(obs) if not phase.terminal else None
    if wait is not None:
        message = wait[1] if phase is Phase.PENDING else f"{message}; {wait[1]}"
    started = phase not in (Phase.PENDING,) and obs.spec_error is None
    start_time = (prior.start_time if prior else None) or (
        ((obs.shards_job or {}).get("status", {}).get("startTime") or now) if started else None
    )
    summaries = _summaries(obs)
    finished = parse_indexes(((obs.shards_job or {}).get("status") or {}).get("completedIndexes")) | set(summaries)
    live = progress(prior.progress if prior else None, obs.scraped, finished, list(summaries.values()), total,
                    seconds_between(start_time, now), phase is Phase.SUCCEEDED)
    requests = _gathered_counts(obs, shards.total) or _request_counts(summaries, prior, live)
    return BatchInferenceStatus(
        phase=phase,
        message=message,
        observed_generation=generation,
        batch_id=obs.batch_id,
        staging_url=obs.staging_url,
        shards=shards,
        request_counts=requests,
        shards_display=f"{shards.succeeded}/{shards.total}",
        requests_display=f"{requests.completed}/{requests.failed}",
        start_time=start_time,
        completion_time=now if phase.terminal else None,
        conditions=_conditions(phase, message, obs, shards, now, generation, prior, wait),
        progress=live if live.bytes_total is not None else None,
        stop_reason=stop,
        **_urls(obs.spec, cr),
        **_phase_stamps(prior, phase, now),
    )


def _urls(spec: BatchInferenceSpec | None, cr: dict[str, Any]) -> dict[str, str | None]:
    if spec is None:
        return {}
    error_url = spec.output.error_url
    return {"output_url": redact(spec.output.url), "error_url": redact(error_url) if error_url else None,
            "expires_at": expires_at(cr, spec)}


def _phase_stamps(prior: BatchInferenceStatus | None, phase: Phase, now: str) -> dict[str, str | None]:
    """When each phase was first entered: kept from the prior status, the current one added."""
    stamps = {name: getattr(prior, name) if prior else None for name in PHASE_STAMPS.values()}
    if (name := PHASE_STAMPS.get(phase)) is not None and stamps[name] is None:
        stamps[name] = now
    return stamps
