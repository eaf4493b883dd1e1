"""The worker pod template: locked down (non-root, read-only root, no capabilities) by construction."""

from typing import Any

from batchinfer_operator.settings import OperatorSettings
from batchinfer_operator.spec import BatchInferenceSpec
from worker.contract import (DEFAULT_METRICS_PORT, ENV_METRICS_ADDRESS, ENV_METRICS_PORT, ENV_TERMINATION_LOG,
                             METRICS_PORT_NAME, TERMINATION_LOG)

SCRATCH_VOLUME = "scratch"
SCRATCH_PATH = "/tmp"
CONTAINER_NAME = "worker"

# Everything that writes (caches, tokenizers, downloads) goes to the emptyDir at /tmp.
_BASE_ENV = [
    {"name": "HOME", "value": SCRATCH_PATH},
    {"name": "XDG_CACHE_HOME", "value": f"{SCRATCH_PATH}/.cache"},
    {"name": "TMPDIR", "value": SCRATCH_PATH},
    {"name": "PYTHONUNBUFFERED", "value": "1"},
    {"name": "LOG_FORMAT", "value": "json"},
    {"name": ENV_TERMINATION_LOG, "value": TERMINATION_LOG},
    # Metrics are served on the pod's own IP, where the operator and Prometheus scrape them.
    {"name": ENV_METRICS_PORT, "value": str(DEFAULT_METRICS_PORT)},
    {"name": ENV_METRICS_ADDRESS, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
]
METRICS_PORT = {"name": METRICS_PORT_NAME, "containerPort": DEFAULT_METRICS_PORT, "protocol": "TCP"}

GATHER_RESOURCES = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}


def container_security_context(settings: OperatorSettings) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": settings.run_as_user,
        "runAsGroup": settings.run_as_user,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context(settings: OperatorSettings) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": settings.run_as_user,
        "runAsGroup": settings.run_as_user,
        "fsGroup": settings.run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _scratch_volume(spec: BatchInferenceSpec) -> dict[str, Any]:
    empty_dir: dict[str, Any] = {}
    if spec.worker.scratch_size_limit:
        empty_dir["sizeLimit"] = spec.worker.scratch_size_limit
    return {"name": SCRATCH_VOLUME, "emptyDir": empty_dir}


def _container(
    spec: BatchInferenceSpec, settings: OperatorSettings, command: list[str], resources: dict[str, Any]
) -> dict[str, Any]:
    worker = spec.worker
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": worker.image or settings.worker_image,
        "command": command,
        "env": _BASE_ENV + list(worker.env),
        "ports": [METRICS_PORT],
        "resources": resources,
        "securityContext": container_security_context(settings),
        "volumeMounts": [{"name": SCRATCH_VOLUME, "mountPath": SCRATCH_PATH}, *worker.volume_mounts],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }
    if worker.image_pull_policy:
        container["imagePullPolicy"] = worker.image_pull_policy
    if spec.credentials is not None:
        container["envFrom"] = [{"secretRef": {"name": spec.credentials.secret_name}}]
    return container


def pod_template(
    spec: BatchInferenceSpec,
    settings: OperatorSettings,
    labels: dict[str, str],
    command: list[str],
    resources: dict[str, Any],
) -> dict[str, Any]:
    worker = spec.worker
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # The worker never talks to the Kubernetes API.
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(settings),
        "containers": [_container(spec, settings, command, resources)],
        "volumes": [_scratch_volume(spec), *worker.volumes],
    }
    optional = {
        "nodeSelector": dict(worker.node_selector) or None,
        "tolerations": list(worker.tolerations) or None,
        "affinity": worker.affinity,
        "priorityClassName": worker.priority_class_name,
        "serviceAccountName": worker.service_account_name,
        "imagePullSecrets": list(worker.image_pull_secrets) or None,
    }
    pod_spec.update({k: v for k, v in optional.items() if v is not None})
    return {"metadata": {"labels": dict(labels)}, "spec": pod_spec}
