"""Reading Job and pod objects (plain dicts, as the API returns them): pure helpers."""

import json
from typing import Any

from pydantic import ValidationError

from batchinfer_operator.names import ANNOTATION_BUILT_FROM, ANNOTATION_COMPLETION_INDEX, LABEL_ROLE, LABEL_RUN
from batchinfer_operator.pod_template import CONTAINER_NAME
from worker.contract import ShardSummary

MAX_REASON_CHARS = 300


def job_condition(job: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in (job or {}).get("status", {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return cond
    return None


def parse_indexes(text: str | None) -> set[int]:
    """Kubernetes' compact interval list, e.g. "0-2,5" -> {0, 1, 2, 5}."""
    result: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        result.update(range(int(first), int(last or first) + 1))
    return result


def belongs_to(pod: dict[str, Any], run_name: str, role: str) -> bool:
    labels = pod.get("metadata", {}).get("labels") or {}
    return labels.get(LABEL_RUN) == run_name and labels.get(LABEL_ROLE) == role


def shard_index(pod: dict[str, Any]) -> int | None:
    meta = pod.get("metadata", {})
    raw = (meta.get("annotations") or {}).get(ANNOTATION_COMPLETION_INDEX)
    raw = raw if raw is not None else (meta.get("labels") or {}).get(ANNOTATION_COMPLETION_INDEX)
    return int(raw) if raw is not None and str(raw).isdigit() else None


def terminated_state(pod: dict[str, Any]) -> dict[str, Any] | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER_NAME:
            return (status.get("state") or {}).get("terminated")
    return None


def is_disrupted(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def shard_summary(pod: dict[str, Any]) -> ShardSummary | None:
    state = terminated_state(pod)
    if not state or state.get("exitCode") != 0:
        return None
    try:
        return ShardSummary.model_validate(json.loads(state.get("message") or ""))
    except (ValueError, ValidationError):
        return None


def _creation_key(pod: dict[str, Any]) -> tuple[str, str]:
    meta = pod.get("metadata", {})
    return (meta.get("creationTimestamp") or "", meta.get("name") or "")


def failed_pods(pods: list[dict[str, Any]], index: int | None = None) -> list[dict[str, Any]]:
    """Failed attempts that counted against retries, oldest first."""
    chosen = [
        p for p in pods
        if p.get("status", {}).get("phase") == "Failed" and not is_disrupted(p)
        and (index is None or shard_index(p) == index)
    ]
    return sorted(chosen, key=_creation_key)


def describe_failure(pod: dict[str, Any]) -> str:
    state = terminated_state(pod) or {}
    parts = []
    if "exitCode" in state:
        parts.append(f"exit code {state['exitCode']}")
    reason = state.get("reason") or pod.get("status", {}).get("reason")
    if reason:
        parts.append(f"({reason})")
    text = " ".join(parts) or "no exit status"
    message = (state.get("message") or pod.get("status", {}).get("message") or "").strip()
    if message:
        text += f": {message[-MAX_REASON_CHARS:]}"
    return text


# Container waiting reasons after which a pod never starts by itself: the run fails, saying so.
CANNOT_START = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                "CreateContainerError"}


def cannot_start(pod: dict[str, Any]) -> str | None:
    """Why a pod cannot start (an image that cannot be pulled, a missing Secret), if it cannot."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in CANNOT_START:
            detail = (waiting.get("message") or "").strip()[-MAX_REASON_CHARS:]
            why = f"pod {pod['metadata']['name']} cannot start: {waiting['reason']}"
            return f"{why}: {detail}" if detail else why
    return None


def unschedulable(pod: dict[str, Any]) -> str | None:
    """The scheduler's word on a Pending pod it could not place (PodScheduled=False)."""
    if pod.get("status", {}).get("phase") not in (None, "Pending"):
        return None
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            why = (cond.get("message") or cond.get("reason") or "").strip()[-MAX_REASON_CHARS:]
            return f"pod {pod['metadata']['name']} unschedulable: {why}"
    return None


def is_quota(failed_create: str) -> bool:
    """A FailedCreate that passes by itself once other pods finish (a ResourceQuota)."""
    return "exceeded quota" in failed_create


def changed_since_built(job: dict[str, Any] | None, built_from: dict[str, str]) -> list[str]:
    """The spec fields that differ from what this Job was built from (none for a Job without
    the record)."""
    raw = ((job or {}).get("metadata", {}).get("annotations") or {}).get(ANNOTATION_BUILT_FROM)
    try:
        recorded = json.loads(raw) if raw else {}
    except ValueError:
        recorded = {}
    return sorted(k for k, digest in recorded.items() if built_from.get(k) != digest)
