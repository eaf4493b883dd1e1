"""The Kubernetes edge against kmock's emulator over HTTP: 409 is success, errors say where."""

import pytest

from batchinfer_operator import kube as edge
from tests.operator.conftest import CR_PATH, NAMESPACE
from tests.operator.kube_api import KubeAPI


@pytest.fixture
def api(kube: KubeAPI) -> KubeAPI:
    edge.reset_client()  # load the KUBECONFIG of this test's emulator
    return kube


def job(name: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"batchinfer.io/run": "r"}},
            "spec": {"completions": 1}}


def test_ensure_job_creates_once_then_returns_the_existing_one(api: KubeAPI) -> None:
    first, created = edge.ensure_job(job("r-shards"))
    again, created_again = edge.ensure_job(job("r-shards") | {"spec": {"completions": 9}})
    assert (created, created_again) == (True, False)
    assert again["spec"]["completions"] == 1  # the stored Job, not the new body
    assert [j["metadata"]["name"] for j in api.items(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs")] == ["r-shards"]


def test_reads_of_missing_objects_are_none_and_other_errors_name_the_call(api: KubeAPI) -> None:
    assert edge.read_job(NAMESPACE, "nope") is None and edge.read_cr(NAMESPACE, "nope") is None
    with pytest.raises(edge.KubeError, match=r"PATCH /apis/batchinfer.io/.*/nope/status: HTTP 404"):
        edge.patch_cr_status(NAMESPACE, "nope", {"phase": "Running"})


def test_status_patch_and_suspend_patch_merge(api: KubeAPI) -> None:
    api.create(CR_PATH, {"apiVersion": "batchinfer.io/v1alpha1", "kind": "BatchInference",
                         "metadata": {"name": "r", "namespace": NAMESPACE}, "spec": {"shards": 1}})
    edge.patch_cr_status(NAMESPACE, "r", {"phase": "Running"})
    edge.ensure_job(job("r-shards"))
    edge.set_job_suspend(NAMESPACE, "r-shards", True)
    assert api.get(f"{CR_PATH}/r")["status"] == {"phase": "Running"}
    assert api.get(f"{CR_PATH}/r")["spec"] == {"shards": 1}
    assert api.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/r-shards")["spec"] == {"completions": 1, "suspend": True}
    assert [c["metadata"]["name"] for c in edge.list_crs((NAMESPACE,))] == ["r"]
    assert [c["metadata"]["name"] for c in edge.list_crs()] == ["r"]
