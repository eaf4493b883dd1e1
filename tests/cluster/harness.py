"""One test's view of the real control plane: its namespace, the kubelet player, the operator
process and the audit log, with waits that explain themselves when they give up."""

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import audit
from tests.cluster.api import KubeClient
from tests.cluster.kubelet import KubeletPlayer
from tests.cluster.operator_process import OperatorProcess

CR_PATH = "/apis/batchinfer.io/v1alpha1/namespaces/{ns}/batchinferences"
JOBS_PATH = "/apis/batch/v1/namespaces/{ns}/jobs"
PODS_PATH = "/api/v1/namespaces/{ns}/pods"
OPERATOR_NAMESPACE = "batchinfer-system"
OPERATOR_ACCOUNT = "batchinfer-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"


def kernel_cache_env() -> list[dict[str, str]]:
    """The pods share this process's build of the CPU attention op: a pod's own cache (its
    /tmp emptyDir) would compile it again, ~13 s a pod here. Under /tmp it cannot be shared."""
    root = os.environ.get("BATCHINFER_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "batchinfer")
    return [] if root == "/tmp" or root.startswith("/tmp/") else [{"name": "BATCHINFER_CACHE_DIR", "value": root}]


# Passed to the pods through spec.worker.env, as a user would: quick storage retries, shared kernels.
POD_ENV = [{"name": "BATCHINFER_RETRY_BASE_SECONDS", "value": "0.01"}, *kernel_cache_env()]


def cr(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batchinfer.io/v1alpha1", "kind": "BatchInference",
            "metadata": {"name": name}, "spec": spec}


@dataclass
class Cluster:
    kube: KubeClient
    kubelet: KubeletPlayer
    operator: OperatorProcess
    audit_log: Path

    @property
    def namespace(self) -> str:
        return self.kube.namespace

    # -- reads --------------------------------------------------------------------------------------
    def cr(self, name: str) -> dict[str, Any] | None:
        return self.kube.get(f"{CR_PATH}/{name}")

    def status(self, name: str) -> dict[str, Any]:
        return (self.cr(name) or {}).get("status") or {}

    def job(self, name: str) -> dict[str, Any] | None:
        return self.kube.get(f"{JOBS_PATH}/{name}")

    def pods(self, job: str | None = None) -> list[dict[str, Any]]:
        return self.kube.items(PODS_PATH, selector=f"job-name={job}" if job else None)

    def events_for(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.kube.items("/api/v1/namespaces/{ns}/events")
                if e.get("involvedObject", {}).get("name") == name]

    def reasons(self, name: str) -> list[str]:
        """In the order they were written (timestamps have whole seconds; resourceVersions grow)."""
        events = sorted(self.events_for(name), key=lambda e: int(e["metadata"]["resourceVersion"]))
        return [e["reason"] for e in events]

    # -- the server's record ------------------------------------------------------------------------
    def operator_calls(self) -> list[audit.Call]:
        return [c for c in audit.calls(self.audit_log) if c.user == OPERATOR_USER and c.namespace == self.namespace]

    def jobs_created(self) -> list[str]:
        return sorted(c.name or (c.body or {}).get("metadata", {}).get("name", "") for c in self.operator_calls()
                      if c.verb == "create" and c.resource == "jobs" and c.code == 201)

    def status_writes(self, name: str) -> list[dict[str, Any]]:
        """Every status the operator wrote to the CR `name`, in order (none missed, unlike polling)."""
        return [c.body["status"] for c in self.operator_calls()
                if c.resource == "batchinferences/status" and c.name == name and c.code < 300
                and isinstance(c.body, dict) and "status" in c.body]

    # -- writes ---------------------------------------------------------------------------------------
    def create_cr(self, name: str, **spec: Any) -> dict[str, Any]:
        return self.kube.create(CR_PATH, cr(name, **spec))

    def model_claim(self, model_dir: Path, env: list[dict[str, Any]] = POD_ENV) -> dict[str, Any]:
        """Spec fields that mount `model_dir` as a user mounts a model: a PersistentVolumeClaim."""
        if "models" not in self.kubelet.claims:
            self.kube.create("/api/v1/namespaces/{ns}/persistentvolumeclaims", {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "models"},
                "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}}})
            self.kubelet.claims["models"] = model_dir.parent
        return {"model": f"/models/{model_dir.name}", "worker": {
            "env": list(env), "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
            "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}]}}

    def patch_spec(self, name: str, **spec: Any) -> dict[str, Any]:
        return self.kube.patch(f"{CR_PATH}/{name}", {"spec": spec})

    # -- waits ----------------------------------------------------------------------------------------
    def describe(self) -> str:
        """What a person would look at: CR statuses, the Jobs, the pods, the operator's log."""
        lines = []
        for item in self.kube.items(CR_PATH):
            lines.append(f"CR {item['metadata']['name']}: {json.dumps(item.get('status') or {})[:1500]}")
        for job in self.kube.items(JOBS_PATH):
            status = job.get("status") or {}
            conditions = [(c["type"], c["status"], c.get("reason"), c.get("message")) for c in
                          status.get("conditions") or []]
            counts = {k: status.get(k) for k in ("active", "ready", "succeeded", "failed", "completedIndexes",
                                                  "failedIndexes")}
            lines.append(f"Job {job['metadata']['name']}: suspend={job['spec'].get('suspend')} {counts} {conditions}")
        for pod in self.pods():
            lines.append(f"Pod {pod['metadata']['name']}: {pod.get('status', {}).get('phase')}"
                         f"{' deleting' if pod['metadata'].get('deletionTimestamp') else ''}")
        if self.kubelet.errors:
            lines.append(f"kubelet player errors: {self.kubelet.errors!r}")
        lines.append("operator log (tail):\n" + self.operator.log()[-3000:])
        return "\n".join(lines)

    def wait(self, what: str, predicate: Callable[[], Any], timeout: float = 120) -> Any:
        """Poll until predicate() is truthy (a bound, not a timing assertion); fail explaining why."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        pytest.fail(f"gave up after {timeout:.0f} s waiting for {what}\n{self.describe()}")

    def wait_status(self, name: str, what: str, check: Callable[[dict[str, Any]], Any],
                    timeout: float = 120) -> dict[str, Any]:
        self.wait(f"{name}: {what}", lambda: check(self.status(name)), timeout)
        return self.status(name)

    def wait_phase(self, name: str, phases: set[str], timeout: float = 120) -> dict[str, Any]:
        return self.wait_status(name, f"phase in {sorted(phases)}", lambda s: s.get("phase") in phases, timeout)

    def wait_event(self, name: str, reason: str, timeout: float = 60) -> None:
        """Events are posted asynchronously, after the status patch."""
        self.wait(f"a {reason} Event for {name}", lambda: reason in self.reasons(name), timeout)
