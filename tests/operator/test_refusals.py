"""What the real API server and controllers refuse reaches the run's status (issue 13): names too
long for the Job's pods, a Job the server refuses, pods refused at admission, an unschedulable pod,
an image that cannot be pulled, edits of what a running run was built from, and a finished gather
whose Job the TTL controller removed while no operator ran."""

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.api import ApiError
from tests.cluster.harness import CR_PATH, JOBS_PATH, Cluster, cr
from tests.operator.conftest import tiny_model  # noqa: F401
from tests.operator.test_operator_integration import failing_spec
from tests.reliability.operator_run import job_succeeded, put_input, run_spec, served_line

pytestmark = pytest.mark.timeout(300)


def test_a_51_character_name_runs_and_52_is_refused_by_the_api_server(cluster: Cluster, http_server: Any) -> None:
    longest = "n" * 51
    cluster.operator.start()
    cluster.create_cr(longest, **failing_spec(http_server, shards=10000, parallelism=1, retries={"perShard": 0}))
    cluster.wait("the 51-character run's first pod", lambda: cluster.pods(f"{longest}-shards"))
    assert cluster.status(longest)["phase"] in ("Pending", "Running")
    with pytest.raises(ApiError, match="metadata.name must be at most 51 characters") as refused:
        cluster.create_cr("n" * 52, **failing_spec(http_server, shards=1))
    assert refused.value.status == 422


def test_a_job_the_api_server_refuses_fails_the_run_saying_why(cluster: Cluster, http_server: Any) -> None:
    """The CRD's `anyOf [integer, string]` lets `cpu: lots` through; the Job's validation does not."""
    cluster.operator.start()
    cluster.create_cr("lots", **failing_spec(http_server, shards=1) | {
        "worker": {"resources": {"limits": {"cpu": "lots"}}}})
    status = cluster.wait_phase("lots", {"Failed"})
    assert status["message"].startswith("the API server refused Job lots-shards: POST "), status["message"]
    assert "quantities must match the regular expression" in status["message"]
    cluster.wait_event("lots", "Failed")
    assert cluster.jobs_created() == []


def test_pods_refused_at_admission_fail_the_run_saying_why(cluster: Cluster, http_server: Any) -> None:
    cluster.operator.start()
    cluster.create_cr("nosa", **failing_spec(http_server, shards=1) | {"worker": {"serviceAccountName": "missing"}})
    status = cluster.wait_phase("nosa", {"Failed"})
    assert status["message"].startswith("Job nosa-shards cannot create its pods: "), status["message"]
    assert 'serviceaccount "missing" not found' in status["message"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and "missing" in failed["message"]
    cluster.wait_event("nosa", "Failed")


def test_an_unschedulable_pod_keeps_the_run_waiting_saying_why(cluster: Cluster, http_server: Any) -> None:
    why = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    cluster.kubelet.unschedulable["gpu-shards"] = why
    cluster.operator.start()
    cluster.create_cr("gpu", **failing_spec(http_server, shards=1))
    status = cluster.wait_status("gpu", "waiting on the scheduler", lambda s: why in s.get("message", ""))
    assert status["phase"] == "Pending" and status["shards"]["active"] == 0
    waiting = next(c for c in status["conditions"] if c["type"] == "Waiting")
    assert (waiting["status"], waiting["reason"]) == ("True", "Unschedulable") and why in waiting["message"]
    cluster.wait_event("gpu", "Unschedulable")
    del cluster.kubelet.unschedulable["gpu-shards"]  # room on the node: it runs (and fails: no input)
    status = cluster.wait_phase("gpu", {"Failed"})
    assert next(c for c in status["conditions"] if c["type"] == "Waiting")["status"] == "False"


def test_an_image_that_cannot_be_pulled_fails_the_run(cluster: Cluster, http_server: Any) -> None:
    cluster.kubelet.add_fault("pull-shards", 0, "unpullable")
    cluster.operator.start()
    cluster.create_cr("pull", **failing_spec(http_server, shards=1))
    status = cluster.wait_phase("pull", {"Failed"})
    assert "cannot start: ImagePullBackOff: Back-off pulling image" in status["message"], status["message"]


@pytest.mark.parametrize("field,value", [
    ("shards", 2), ("input", {"url": "s3://other/in.jsonl"}), ("output", {"url": "s3://other/out.jsonl"}),
    ("model", "s3://other/model"), ("engine", {"maxModelLen": 64}),
])
def test_editing_what_a_run_was_built_from_is_refused_by_the_api_server(
    cluster: Cluster, http_server: Any, field: str, value: Any
) -> None:
    cluster.kube.create(CR_PATH, cr("fixed", **failing_spec(http_server, shards=3, suspend=True)))
    with pytest.raises(ApiError, match=rf"spec.{field}: Invalid value: .*is immutable once the run exists") as err:
        cluster.patch_spec("fixed", **{field: value})
    assert err.value.status == 422
    cluster.patch_spec("fixed", suspend=False)  # what is meant to change still does
    assert cluster.cr("fixed")["spec"]["suspend"] is False


def test_a_gather_finished_while_the_operator_was_down_is_not_run_again(
    cluster: Cluster, http_server: Any, s3_server: Any, tiny_model: Path
) -> None:
    """ttlSecondsAfterFinished 0: the gather Job may expire only once the run's status has it."""
    from tests.operator.test_operator_success import s3_secret

    cluster.kube.create("/api/v1/namespaces/{ns}/secrets", s3_secret(s3_server))
    put_input(http_server, "t", [served_line("a")])
    cluster.kubelet.budget["t-gather"] = 0
    cluster.operator.start()
    cluster.create_cr("t", **run_spec(cluster, http_server, s3_server, tiny_model, "t", shards=1)
                      | {"ttlSecondsAfterFinished": 0})
    cluster.wait_status("t", "Finalizing", lambda s: s.get("phase") == "Finalizing" and cluster.job("t-gather"))
    cluster.operator.stop(signal.SIGKILL)
    del cluster.kubelet.budget["t-gather"]
    cluster.wait("the gather done", lambda: job_succeeded(cluster, "t-gather") == 1)
    assert "ttlSecondsAfterFinished" not in cluster.job("t-gather")["spec"]  # still there for the operator
    cluster.operator.start()
    assert cluster.wait_phase("t", {"Succeeded", "Failed"})["phase"] == "Succeeded"
    cluster.wait("the TTL controller removed the gather Job", lambda: cluster.job("t-gather") is None)
    assert cluster.kubelet.started[("t-gather", 0)] == 1 and cluster.jobs_created() == ["t-gather", "t-shards"]
    assert cluster.kube.get(f"{JOBS_PATH}/t-shards") is not None  # the record of the shards stays


def test_a_model_over_https_is_refused_by_the_api_server_and_by_the_operator(cluster: Cluster) -> None:
    """The worker cannot list a model directory over HTTP: neither side accepts what the other refuses."""
    from batchinfer_operator.settings import OperatorSettings
    from batchinfer_operator.validation import InvalidSpecError, validate_spec

    spec = {"model": "https://models.example.com/ernie", "input": {"url": "s3://b/in.jsonl"},
            "output": {"url": "s3://b/out.jsonl"}}
    with pytest.raises(ApiError, match="model must be an s3:// URI or an absolute path") as refused:
        cluster.create_cr("web-model", **spec)
    assert refused.value.status == 422
    with pytest.raises(InvalidSpecError, match="spec.model: .*must be an s3:// URI or an absolute path"):
        validate_spec(spec, OperatorSettings())
