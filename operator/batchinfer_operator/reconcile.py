"""One reconcile pass of a BatchInference: read, decide (pure), act. Idempotent, level-triggered."""

import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import kopf
import structlog

from batchinfer_operator import jobs, kube, metrics
from batchinfer_operator.names import (
    LABEL_RUN, ROLE_GATHER, ROLE_SHARDS, gather_job_name, shards_job_name,
)
from batchinfer_operator.observed import belongs_to
from batchinfer_operator.reducer import Observed, prior_status, reduce_status, shards_were_done
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
    )


def _desired_suspend(spec: BatchInferenceSpec, job: dict[str, Any]) -> bool | None:
    """The suspend value to write, or None to leave it. Under Kueue only Kueue unsuspends."""
    current = bool(job.get("spec", {}).get("suspend"))
    if spec.suspend and not current:
        return True
    if not spec.suspend and current and not spec.queue_name:
        return False
    return None


def _ensure(job: dict[str, Any], cr: dict[str, Any], events: EventSink) -> dict[str, Any]:
    # The builder already names the owner; adopt() adds the CR's own labels and is a no-op
    # for the owner reference it finds in place.
    kopf.adopt(job, owner=cr)
    existing, created = kube.ensure_job(job)
    if created:
        name = job["metadata"]["name"]
        log.info("job created", job=name)
        events(cr, "Normal", "JobCreated", f"created Job {name}")
    return existing


def _sync_suspend(spec: BatchInferenceSpec, job: dict[str, Any] | None) -> None:
    if job is None:
        return
    desired = _desired_suspend(spec, job)
    if desired is not None:
        kube.set_job_suspend(job["metadata"]["namespace"], job["metadata"]["name"], desired)
        job.setdefault("spec", {})["suspend"] = desired


def _observe(cr: dict[str, Any], spec: BatchInferenceSpec, run: RunValues, settings: OperatorSettings,
             events: EventSink) -> Observed:
    ns, name = cr["metadata"]["namespace"], cr["metadata"]["name"]
    shards = kube.read_job(ns, shards_job_name(name))
    if shards is None and not shards_were_done(prior_status(cr)):
        # Never recreated once all shards were done: that would run the whole batch again.
        shards = _ensure(jobs.shards_job(cr, spec, run, settings), cr, events)
    gather = kube.read_job(ns, gather_job_name(name))
    _sync_suspend(spec, shards)
    _sync_suspend(spec, gather)
    pods = kube.list_pods(ns, f"{LABEL_RUN}={name}")
    return Observed(
        spec=spec, shards_job=shards, gather_job=gather,
        shard_pods=[p for p in pods if belongs_to(p, name, ROLE_SHARDS)],
        gather_pods=[p for p in pods if belongs_to(p, name, ROLE_GATHER)],
        batch_id=run.batch_id, staging_url=run.staging_url,
    )


def _decide(cr: dict[str, Any], settings: OperatorSettings, events: EventSink) -> BatchInferenceStatus:
    try:
        spec = validate_spec(cr.get("spec"), settings)
    except InvalidSpecError as exc:
        return reduce_status(cr, Observed(spec=None, spec_error=str(exc)), now_iso())
    run = run_values(cr, spec, settings)
    obs = _observe(cr, spec, run, settings, events)
    status = reduce_status(cr, obs, now_iso())
    if status.phase is Phase.FINALIZING and obs.gather_job is None:
        gather = _ensure(jobs.gather_job(cr, spec, run, settings), cr, events)
        obs = replace(obs, gather_job=gather)
        status = reduce_status(cr, obs, now_iso())
    return status


def _announce(cr: dict[str, Any], old: BatchInferenceStatus | None, new: BatchInferenceStatus,
              events: EventSink) -> None:
    if old is not None and old.phase == new.phase:
        return
    kind = "Warning" if new.phase is Phase.FAILED else "Normal"
    events(cr, kind, new.phase.value, new.message)
    log.info("phase changed", old=old.phase.value if old else None, new=new.phase.value, why=new.message)


def reconcile(cr: dict[str, Any], settings: OperatorSettings, events: EventSink) -> BatchInferenceStatus:
    """Bring the run one step forward and write its status if it changed."""
    meta = cr["metadata"]
    ns, name = meta["namespace"], meta["name"]
    old = prior_status(cr)
    if old is not None and old.phase.terminal:
        return old
    status = _decide(cr, settings, events)
    if old is None or status.wire() != old.wire():
        kube.patch_cr_status(ns, name, status.wire())
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
