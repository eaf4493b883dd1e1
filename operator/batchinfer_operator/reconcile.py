"""One reconcile pass of a BatchInference: observe (reads only) -> plan (pure, plan.py) -> act
(the writes the plan asks for, then the status). Idempotent, level-triggered."""

import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import kopf
import structlog

from batchinfer_operator import jobs, kube, metrics
from batchinfer_operator.names import (
    LABEL_RUN, MAX_NAME_LENGTH, ROLE_GATHER, ROLE_SHARDS, cleanup_job_name, gather_job_name, shards_job_name,
)
from batchinfer_operator.observed import belongs_to
from batchinfer_operator.plan import Plan, needs_cleanup, plan
from batchinfer_operator.reducer import Observed, prior_status, reduce_status
from batchinfer_operator.scrape import scrape_shards
from batchinfer_operator.settings import OperatorSettings
from batchinfer_operator.spec import BatchInferenceSpec
from batchinfer_operator.status import BatchInferenceStatus, Phase
from batchinfer_operator.validation import (
    InvalidSpecError, batch_id, created_unix, staging_base, staging_url, validate_spec,
)
from batchinfer_operator.worker_command import RunValues

# structlog directly: importing the worker package could pull in its engine.
log = structlog.get_logger(__name__)

# (cr, type, reason, message): a core/v1 Event in the operator, a list in tests.
EventSink = Callable[[dict[str, Any], str, str, str], None]
# The API server's answer for an object that can never be valid: the run fails. A 403 (RBAC,
# a quota, a namespace being deleted) may pass later: the run waits, saying why.
INVALID = {400, 422}


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def run_values(cr: dict[str, Any], spec: BatchInferenceSpec, settings: OperatorSettings) -> RunValues:
    meta = cr["metadata"]
    base = staging_base(spec, settings)
    return RunValues(
        input_url=spec.input.url,
        output_url=spec.output.url,
        staging_url=staging_url(base, meta["namespace"], meta["name"], meta["uid"]),
        num_shards=spec.shards,
        model=spec.model,
        batch_id=batch_id(meta["uid"]),
        created=created_unix(meta["creationTimestamp"]),
        error_url=spec.output.error_url,
        delete_staging=not (spec.staging and spec.staging.keep),
        checkpoint_lines=spec.checkpoint_lines,
    )


def _validate(cr: dict[str, Any], settings: OperatorSettings) -> BatchInferenceSpec:
    name = cr["metadata"]["name"]
    if len(name) > MAX_NAME_LENGTH:  # the CRD says so too; a CR from before that rule may exist
        raise InvalidSpecError(f"metadata.name: {len(name)} characters, at most {MAX_NAME_LENGTH}")
    return validate_spec(cr.get("spec"), settings)


def observe(cr: dict[str, Any], spec: BatchInferenceSpec, run: RunValues) -> Observed:
    """Reads only: the run's Jobs, their pods (and the running ones' metrics), and the Job
    controller's FailedCreate Events."""
    ns, name = cr["metadata"]["namespace"], cr["metadata"]["name"]
    shards, gather = kube.read_job(ns, shards_job_name(name)), kube.read_job(ns, gather_job_name(name))
    pods = kube.list_pods(ns, f"{LABEL_RUN}={name}")
    uids = {j["metadata"]["name"]: j["metadata"]["uid"] for j in (shards, gather) if j is not None}
    shard_pods = [p for p in pods if belongs_to(p, name, ROLE_SHARDS)]
    return Observed(
        spec=spec, shards_job=shards, gather_job=gather, shard_pods=shard_pods, scraped=scrape_shards(shard_pods),
        gather_pods=[p for p in pods if belongs_to(p, name, ROLE_GATHER)],
        failed_creates=kube.failed_creates(ns, uids), batch_id=run.batch_id, staging_url=run.staging_url,
    )


@dataclass(frozen=True)
class Refusal:
    """The API server refused to create a Job: for good (invalid), or for now (403)."""

    message: str
    invalid: bool


def create_job(cr: dict[str, Any], job: dict[str, Any], events: EventSink, reason: str = "JobCreated",
               purpose: str = "") -> Refusal | None:
    """Create one of the run's Jobs, once; the API server's refusal is returned, a transient error raised."""
    # The builder already names the owner; adopt() adds the CR's own labels.
    kopf.adopt(job, owner=cr)
    name = job["metadata"]["name"]
    try:
        _, created = kube.ensure_job(job)
    except kube.KubeError as exc:
        if exc.status not in INVALID | {403}:
            raise  # transient: kopf retries the pass
        return Refusal(f"the API server refused Job {name}: {exc}", exc.status in INVALID)
    if created:
        log.info("job created", job=name)
        events(cr, "Normal", reason, f"created Job {name}{purpose}")
    return None


def act(cr: dict[str, Any], todo: Plan, events: EventSink) -> Refusal | None:
    """Carry out the plan's writes; returns the API server's refusal of a Job, if any."""
    ns = cr["metadata"]["namespace"]
    for job in todo.create:
        if (refused := create_job(cr, job, events)) is not None:
            return refused
    for job_name, suspend in todo.suspend.items():
        kube.set_job_suspend(ns, job_name, suspend)
    for job_name, ttl in todo.ttl.items():
        kube.set_job_ttl(ns, job_name, ttl)
    return None


def _announce(cr: dict[str, Any], old: BatchInferenceStatus | None, new: BatchInferenceStatus,
              events: EventSink) -> None:
    waiting = new.condition("Waiting")
    was_waiting = old.condition("Waiting") if old else None
    if waiting is not None and waiting.status == "True" and (was_waiting is None or was_waiting.message
                                                             != waiting.message):
        events(cr, "Warning", waiting.reason, waiting.message)
    if old is not None and old.phase == new.phase:
        return
    kind = "Warning" if new.phase is Phase.FAILED else "Normal"
    events(cr, kind, new.phase.value, new.message)
    log.info("phase changed", old=old.phase.value if old else None, new=new.phase.value, why=new.message)


def _status(cr: dict[str, Any], settings: OperatorSettings, events: EventSink) -> BatchInferenceStatus:
    try:
        spec = _validate(cr, settings)
    except InvalidSpecError as exc:
        return reduce_status(cr, Observed(spec=None, spec_error=str(exc)), now_iso())
    run = run_values(cr, spec, settings)
    obs = observe(cr, spec, run)
    todo = plan(cr, obs, run, settings, now_iso())
    refused = act(cr, todo, events)
    if refused is None:
        return todo.status
    seen = replace(obs, refusal=refused.message) if refused.invalid else replace(obs, blocked=refused.message)
    return reduce_status(cr, seen, now_iso())


def clean_up_failed(cr: dict[str, Any], settings: OperatorSettings, events: EventSink) -> None:
    """After a failure: a pod with the run's credentials deletes what it staged (plan.needs_cleanup)."""
    try:
        spec = _validate(cr, settings)
    except InvalidSpecError:
        return  # nothing was ever staged
    ns, name = cr["metadata"]["namespace"], cr["metadata"]["name"]
    found = [kube.read_job(ns, job) for job in (shards_job_name(name), gather_job_name(name), cleanup_job_name(name))]
    pods = [p for p in kube.list_pods(ns, f"{LABEL_RUN}={name}") if belongs_to(p, name, ROLE_SHARDS)]
    if not needs_cleanup(spec, *found, pods):
        return
    job = jobs.cleanup_job(cr, spec, run_values(cr, spec, settings), settings)
    refused = create_job(cr, job, events, "StagingCleanup", " to delete the run's staging")
    if refused is not None:  # the run's status is final: the operator's log says why
        log.warning("cleanup job refused", error=refused.message)


def reconcile(cr: dict[str, Any], settings: OperatorSettings, events: EventSink) -> BatchInferenceStatus:
    """Bring the run one step forward and write its status if it changed."""
    meta = cr["metadata"]
    ns, name = meta["namespace"], meta["name"]
    old = prior_status(cr)
    if old is not None and old.phase.terminal:
        if old.phase is Phase.FAILED:
            clean_up_failed(cr, settings, events)
        return old
    status = _status(cr, settings, events)
    if old is None or status.wire() != old.wire():
        kube.patch_cr_status(ns, name, status.wire(), cr.get("status") or {})
        _announce(cr, old, status, events)
    metrics.observe(f"{ns}/{name}", old.phase if old else None, status)
    return status


_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


def reconcile_latest(
    namespace: str, name: str, settings: OperatorSettings, events: EventSink
) -> BatchInferenceStatus | None:
    """Reconcile the CR as stored now, one pass at a time per CR: handlers fire concurrently
    (CR changes, Job events, the resync), and a pass on a stale copy could move status back."""
    with _locks_guard:
        lock = _locks[(namespace, name)]
    with lock, structlog.contextvars.bound_contextvars(run=f"{namespace}/{name}"):
        cr = kube.read_cr(namespace, name)
        return None if cr is None else reconcile(cr, settings, events)
