"""A run stopped before its shards finish: cancelled (`spec.cancel`) or past its completion
window. Pure: the reducer asks why a run stops and what phase that gives; the plan then suspends
the shards Job and, once no shard pod runs, creates the gather that publishes what finished and
closes every other request with OpenAI's batch_cancelled / batch_expired line."""

from datetime import timedelta
from typing import Any, Literal

from batchinfer_operator.names import ANNOTATION_STOP_REASON
from batchinfer_operator.observed import is_live, job_condition
from batchinfer_operator.spec import BatchInferenceSpec
from batchinfer_operator.status import Phase
from batchinfer_operator.timestamps import format_time, parse_time
from worker.contract import ClosingCode

StopReason = Literal["cancelled", "expired"]
CLOSING_CODE: dict[StopReason, ClosingCode] = {"cancelled": "batch_cancelled", "expired": "batch_expired"}
_PHASES = {"cancelled": (Phase.CANCELLING, Phase.CANCELLED), "expired": (Phase.EXPIRING, Phase.EXPIRED)}
_WHY = {"cancelled": "cancelled", "expired": "past its completion window"}


def expires_at(cr: dict[str, Any], spec: BatchInferenceSpec) -> str | None:
    """The creation time plus the completion window, as Kubernetes writes times."""
    created, window = cr.get("metadata", {}).get("creationTimestamp"), spec.completion_window_seconds
    if not created or window is None:
        return None
    return format_time(parse_time(created) + timedelta(seconds=window))


def stop_reason(cr: dict[str, Any], spec: BatchInferenceSpec, prior_reason: StopReason | None,
                gather_job: dict[str, Any] | None, shards_done: bool, now: str) -> StopReason | None:
    """Why the run stops early, if it does. Once decided it stays: in the status, and on the
    gather Job that closes the run. A run whose shards are all done ends as it is."""
    recorded = ((gather_job or {}).get("metadata", {}).get("annotations") or {}).get(ANNOTATION_STOP_REASON)
    if prior_reason is not None or recorded in CLOSING_CODE:
        return prior_reason or recorded
    if shards_done or gather_job is not None:
        return None
    if spec.cancel:
        return "cancelled"
    deadline = expires_at(cr, spec)
    return "expired" if deadline is not None and parse_time(now) >= parse_time(deadline) else None


def stopping_phase(gather_job: dict[str, Any] | None, shard_pods: list[dict[str, Any]], reason: StopReason,
                   output_url: str) -> tuple[Phase, str]:
    """The phase of a stopping run whose gather has not failed."""
    stopping, stopped = _PHASES[reason]
    why, code = _WHY[reason], CLOSING_CODE[reason]
    if job_condition(gather_job, "Complete"):
        return stopped, f"{why}: what finished is in {output_url}; every other request has a {code} line"
    live = sum(map(is_live, shard_pods))
    if live:
        return stopping, f"{why}: stopping {live} shard pod(s)"
    return stopping, f"{why}: publishing what finished; every other request gets a {code} line"


def is_stopping(phase: Phase) -> bool:
    return phase in (Phase.CANCELLING, Phase.EXPIRING)
