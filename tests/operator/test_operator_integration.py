"""The real operator (kopf's KopfRunner) against kmock's Kubernetes API over HTTP; the test plays
the Job controller and runs every pod's exact command as a local process."""

from typing import Any

import pytest
import requests

from tests.operator.conftest import CR_PATH, NAMESPACE, free_port, running_operator, wait_for
from tests.operator.job_controller import JobController
from tests.operator.kube_api import KubeAPI
from tests.operator.rbac import denied

pytestmark = pytest.mark.timeout(300)
# Passed to the pods through spec.worker.env, as a user would.
FAST_RETRIES = {"env": [{"name": "BATCHINFER_RETRY_BASE_SECONDS", "value": "0.01"}]}


def cr(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batchinfer.io/v1alpha1", "kind": "BatchInference",
        "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec,
    }


def status_of(kube: KubeAPI, name: str) -> dict[str, Any]:
    return (kube.get(f"{CR_PATH}/{name}") or {}).get("status") or {}


def wait_phase(kube: KubeAPI, name: str, phases: set[str], timeout: float = 120) -> dict[str, Any]:
    wait_for(f"{name} in {phases}", lambda: status_of(kube, name).get("phase") in phases, timeout,
             detail=lambda: str(status_of(kube, name)))
    return status_of(kube, name)


def jobs(kube: KubeAPI) -> list[dict[str, Any]]:
    return kube.items(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs")


def events_for(kube: KubeAPI, name: str) -> list[dict[str, Any]]:
    return [e for e in kube.items(f"/api/v1/namespaces/{NAMESPACE}/events")
            if e.get("involvedObject", {}).get("name") == name]


def test_invalid_spec_ends_failed_and_creates_no_job(
    kube: KubeAPI, controller: JobController, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = dict(model="/models/m", input={"url": "file:///etc/passwd"},
                output={"url": "s3://bucket/out.jsonl"}, shards=2)
    metrics_port, live_port = free_port(), free_port()
    monkeypatch.setenv("BATCHINFER_METRICS_PORT", str(metrics_port))
    with running_operator(f"--liveness=http://127.0.0.1:{live_port}/healthz"):
        kube.create(CR_PATH, cr("bad", **spec))
        status = wait_phase(kube, "bad", {"Failed"})
        wait_for("a Failed event", lambda: any(e["reason"] == "Failed" for e in events_for(kube, "bad")))
        health = requests.get(f"http://127.0.0.1:{live_port}/healthz", timeout=10)
        metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert health.status_code == 200 and "settings" in health.json()
    assert 'batchinfer_runs_finished_total{phase="Failed"}' in metrics
    assert "spec.input.url" in status["message"] and "file://" in status["message"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and failed["observedGeneration"] == 1
    assert jobs(kube) == []
    assert next(e for e in events_for(kube, "bad") if e["reason"] == "Failed")["type"] == "Warning"


def test_shard_that_keeps_failing_ends_failed_naming_it(
    kube: KubeAPI, controller: JobController, http_server: Any
) -> None:
    spec = dict(model="/models/m", input={"url": http_server.url("missing.jsonl")},
                output={"url": http_server.url("out.jsonl")}, staging={"url": "s3://staging/runs"},
                shards=2, retries={"perShard": 1}, worker=FAST_RETRIES)
    with running_operator():
        kube.create(CR_PATH, cr("doomed", **spec))
        status = wait_phase(kube, "doomed", {"Failed"})
        wait_for("a Failed event", lambda: any(e["reason"] == "Failed" for e in events_for(kube, "doomed")))
    assert {"JobCreated", "Running", "Failed"} <= {e["reason"] for e in events_for(kube, "doomed")}
    assert status["message"].startswith("shard 0 failed after 2 attempt(s): exit code "), status["message"]
    assert status["shards"]["failed"] >= 1 and status["shards"]["total"] == 2
    assert [j["metadata"]["name"] for j in jobs(kube)] == ["doomed-shards"]  # no gather
    assert "out.jsonl" not in str(http_server.store.files)


def test_restarted_operator_finishes_without_a_second_job(
    kube: KubeAPI, controller: JobController, http_server: Any
) -> None:
    spec = dict(model="/models/m", input={"url": http_server.url("missing.jsonl")},
                output={"url": http_server.url("out.jsonl")}, staging={"url": "s3://staging/runs"},
                shards=3, parallelism=2, retries={"perShard": 0}, worker=FAST_RETRIES)
    controller.paused.set()  # nothing runs while the first operator is up
    with running_operator():
        kube.create(CR_PATH, cr("restart", **spec))
        wait_for("the shards Job", lambda: jobs(kube))
        wait_phase(kube, "restart", {"Pending"})
    controller.paused.clear()
    with running_operator():
        wait_phase(kube, "restart", {"Failed", "Succeeded"})
    created = [b["metadata"]["name"] for b in kube.creations("batch/v1/jobs")]
    assert created.count("restart-shards") == 1


def test_suspend_then_resume(kube: KubeAPI, controller: JobController, http_server: Any) -> None:
    spec = dict(model="/models/m", input={"url": http_server.url("missing.jsonl")},
                output={"url": http_server.url("out.jsonl")}, staging={"url": "s3://staging/runs"},
                shards=2, retries={"perShard": 0}, suspend=True, worker=FAST_RETRIES)
    path = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/paused-shards"
    with running_operator():
        kube.create(CR_PATH, cr("paused", **spec))
        wait_phase(kube, "paused", {"Suspended"})
        assert kube.get(path)["spec"]["suspend"] is True
        assert not kube.items(f"/api/v1/namespaces/{NAMESPACE}/pods")  # nothing ran
        kube.patch(f"{CR_PATH}/paused", {"spec": {"suspend": False}})
        wait_for("the Job resumed", lambda: kube.get(path)["spec"]["suspend"] is False)
        status = wait_phase(kube, "paused", {"Failed", "Succeeded"})
    assert status["message"].startswith("shard 0 failed")
    assert [b["metadata"]["name"] for b in kube.creations("batch/v1/jobs")] == ["paused-shards"]
    calls = kube.operator_calls()
    assert ("patch", "batch", "jobs") in calls and ("patch", "batchinfer.io", "batchinferences/status") in calls
    assert denied(calls) == set()  # least privilege: the shipped RBAC suffices
