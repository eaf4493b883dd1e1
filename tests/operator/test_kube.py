"""The Kubernetes edge against the real API server, as the operator's ServiceAccount: 409 is
success, errors say which call and the server's answer."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchinfer_operator import kube as edge
from tests.cluster.api import KubeClient
from tests.cluster.harness import CR_PATH, JOBS_PATH, cr


@pytest.fixture
def api(kube: KubeClient, operator_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeClient]:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(operator_kubeconfig))
    edge.reset_client()  # log in again, as the operator's ServiceAccount
    yield kube
    edge.reset_client()


def job(kube: KubeClient, name: str, completions: int = 1) -> dict[str, Any]:
    container = {"name": "c", "image": "busybox", "command": ["true"]}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": kube.namespace, "labels": {"batchinfer.io/run": "r"}},
            "spec": {"completions": completions, "suspend": True,
                     "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}}


def test_ensure_job_creates_once_then_returns_the_existing_one(api: KubeClient) -> None:
    first, created = edge.ensure_job(job(api, "r-shards"))
    again, created_again = edge.ensure_job(job(api, "r-shards", completions=9))
    assert (created, created_again) == (True, False)
    assert again["spec"]["completions"] == 1 and again["metadata"]["uid"] == first["metadata"]["uid"]
    assert [j["metadata"]["name"] for j in api.items(JOBS_PATH)] == ["r-shards"]


def test_reads_of_missing_objects_are_none_and_other_errors_name_the_call(api: KubeClient) -> None:
    ns = api.namespace
    assert edge.read_job(ns, "nope") is None and edge.read_cr(ns, "nope") is None
    with pytest.raises(edge.KubeError, match=r"PATCH /apis/batchinfer.io/.*/nope/status: HTTP 404"):
        edge.patch_cr_status(ns, "nope", {"phase": "Running"})
    with pytest.raises(edge.KubeError, match=r"POST /apis/batch/v1/namespaces/.*/jobs: HTTP 422: .*spec.template"):
        edge.ensure_job(job(api, "bad") | {"spec": {"completions": 1}})


def test_status_patch_and_suspend_patch_merge(api: KubeClient) -> None:
    ns, spec = api.namespace, {"model": "s3://m/x", "input": {"url": "s3://b/in.jsonl"},
                               "output": {"url": "s3://b/out.jsonl"}, "shards": 1}
    api.create(CR_PATH, cr("r", **spec))
    edge.patch_cr_status(ns, "r", {"phase": "Running"})
    edge.ensure_job(job(api, "r-shards"))
    edge.set_job_suspend(ns, "r-shards", False)
    stored = api.get(f"{CR_PATH}/r")
    assert stored["status"] == {"phase": "Running"} and stored["spec"] == spec
    assert api.get(f"{JOBS_PATH}/r-shards")["spec"]["suspend"] is False
    assert [c["metadata"]["name"] for c in edge.list_crs((ns,))] == ["r"]
    assert "r" in [c["metadata"]["name"] for c in edge.list_crs() if c["metadata"]["namespace"] == ns]
