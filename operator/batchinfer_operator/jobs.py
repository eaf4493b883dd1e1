"""Pure builders of the Jobs of a run: the Indexed shards Job, the gather Job, and the cleanup Job
of a failed run."""

import json
from typing import Any

from batchinfer_operator.names import (
    ANNOTATION_BUILT_FROM, ANNOTATION_STOP_REASON, API_VERSION, KIND, LABEL_KUEUE_QUEUE, ROLE_CLEANUP, ROLE_GATHER,
    ROLE_SHARDS, cleanup_job_name, gather_job_name, run_labels, shards_job_name,
)
from batchinfer_operator.pod_template import GATHER_RESOURCES, pod_template
from batchinfer_operator.settings import OperatorSettings
from batchinfer_operator.spec import BatchInferenceSpec
from batchinfer_operator.stopping import CLOSING_CODE, StopReason
from batchinfer_operator.worker_command import RunValues, clean_staging_command, gather_command, run_shard_command

# Preemption, eviction and node drains are not the worker's fault: they never use up retries.
POD_FAILURE_POLICY = {
    "rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]
}


def owner_reference(cr: dict[str, Any]) -> dict[str, Any]:
    meta = cr["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _labels(cr: dict[str, Any], spec: BatchInferenceSpec, role: str) -> dict[str, str]:
    labels = run_labels(cr["metadata"]["name"], role)
    if spec.queue_name:
        labels[LABEL_KUEUE_QUEUE] = spec.queue_name
    return labels


def _job(cr: dict[str, Any], spec: BatchInferenceSpec, name: str, role: str, job_spec: dict,
         annotations: dict[str, str] | None = None, suspend: bool | None = None) -> dict[str, Any]:
    meta = cr["metadata"]
    # Under Kueue the Job starts suspended and Kueue admits it; otherwise it follows spec.suspend.
    job_spec["suspend"] = (spec.suspend if suspend is None else suspend) or bool(spec.queue_name)
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": _labels(cr, spec, role),
            "annotations": {ANNOTATION_BUILT_FROM: json.dumps(spec.built_from(), sort_keys=True),
                            **(annotations or {})},
            "ownerReferences": [owner_reference(cr)],
        },
        "spec": job_spec,
    }


def shards_job(
    cr: dict[str, Any], spec: BatchInferenceSpec, run: RunValues, settings: OperatorSettings
) -> dict[str, Any]:
    resources = spec.worker.resources.model_dump(exclude_defaults=True)
    template = pod_template(
        spec, settings, _labels(cr, spec, ROLE_SHARDS), run_shard_command(run, spec.engine), resources
    )
    job_spec = {
        "completionMode": "Indexed",
        "completions": spec.shards,
        "parallelism": spec.effective_parallelism,
        "backoffLimitPerIndex": spec.retries.per_shard,
        "maxFailedIndexes": spec.retries.failed_shards_allowed,
        "podFailurePolicy": POD_FAILURE_POLICY,
        "podReplacementPolicy": "Failed",
        "template": template,
    }
    return _job(cr, spec, shards_job_name(cr["metadata"]["name"]), ROLE_SHARDS, job_spec)


def cleanup_job(
    cr: dict[str, Any], spec: BatchInferenceSpec, run: RunValues, settings: OperatorSettings
) -> dict[str, Any]:
    """Deletes what a failed run staged, in a pod with the run's credentials (never the operator)."""
    template = pod_template(spec, settings, _labels(cr, spec, ROLE_CLEANUP), clean_staging_command(run),
                            GATHER_RESOURCES)
    job_spec = {"completions": 1, "parallelism": 1, "backoffLimit": 2, "podReplacementPolicy": "Failed",
                "template": template}
    return _job(cr, spec, cleanup_job_name(cr["metadata"]["name"]), ROLE_CLEANUP, job_spec, suspend=False)


def gather_job(
    cr: dict[str, Any], spec: BatchInferenceSpec, run: RunValues, settings: OperatorSettings,
    stop: StopReason | None = None,
) -> dict[str, Any]:
    """stop: the run stopped early; the gather also closes what the shards did not finish."""
    closing = CLOSING_CODE[stop] if stop else None
    template = pod_template(
        spec, settings, _labels(cr, spec, ROLE_GATHER), gather_command(run, closing), GATHER_RESOURCES
    )
    job_spec = {
        "completions": 1,
        "parallelism": 1,
        "backoffLimit": spec.retries.per_shard,
        "podFailurePolicy": POD_FAILURE_POLICY,
        "podReplacementPolicy": "Failed",
        "template": template,
    }
    # Only the gather Job expires, and only once the run's status records it (plan.py sets the
    # TTL then). The shards Job is the record of finished shards; it goes with the CR.
    if stop is None:
        return _job(cr, spec, gather_job_name(cr["metadata"]["name"]), ROLE_GATHER, job_spec)
    # A stopped run publishes even while suspended: a cancel means "give me what you have".
    return _job(cr, spec, gather_job_name(cr["metadata"]["name"]), ROLE_GATHER, job_spec,
                {ANNOTATION_STOP_REASON: stop}, suspend=False)
