"""The operator under process faults on the real control plane (`kopf run` in its own process,
the real Job controller; the test plays the kubelet): killed (SIGKILL) or stopped (SIGTERM) at
every phase of a run, a shards Job deleted by hand mid-run, pods preempted. Each run must end in
the right phase with the right counts, every output line accounted for, no Job created twice,
and no finished shard computed again."""

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import JOBS_PATH, Cluster
from tests.cluster.kubelet import INDEX_KEY
from tests.operator.conftest import worker_has
from tests.operator.test_operator_integration import failing_spec
from tests.reliability.operator_run import (
    BAD_LINE, check_output, job_succeeded, put_input, run_spec, served_line,
)

pytestmark = [
    pytest.mark.timeout(400),
    pytest.mark.skipif(not (worker_has("run-shard") and worker_has("gather")), reason="worker run-shard/gather"),
]
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
PHASES = {"Pending", "Running", "Suspended", "Finalizing", "Succeeded", "Failed"}
# Three shards of one line each (one of them an error line): every shard does real work.
LINES = [served_line("a"), BAD_LINE.ljust(len(served_line("a")), b" "), served_line("c")]


def finished_ok(status: dict[str, Any]) -> None:
    assert status["phase"] == "Succeeded", status
    assert status["shards"] == {"total": 3, "succeeded": 3, "failed": 0, "active": 0}
    assert status["requestCounts"] == {"total": 3, "completed": 2, "failed": 1, "shardsReported": 3}


@pytest.mark.parametrize("sig", [
    pytest.param(signal.SIGKILL, id="killed"),
    pytest.param(signal.SIGTERM, id="stopped", marks=pytest.mark.slow),
])
def test_operator_down_at_every_phase(staged: Cluster, http_server: Any, s3_server: Any, tiny_model: Path,
                                      sig: int) -> None:
    c = staged
    put_input(http_server, "p", LINES)
    c.kubelet.paused.set()  # no pod is bound yet: the run stays Pending
    c.operator.start()
    c.create_cr("p", **run_spec(c, http_server, s3_server, tiny_model, "p", shards=3))
    c.wait_status("p", "Pending with its Job", lambda s: s.get("phase") == "Pending" and c.job("p-shards"))
    c.operator.stop(sig)  # 1: Pending

    c.kubelet.budget["p-shards"] = 2  # two shards finish while no operator runs
    c.kubelet.paused.clear()
    c.wait("two shards done", lambda: job_succeeded(c, "p-shards") == 2)
    c.operator.start()
    c.wait_status("p", "Running, 2/3", lambda s: s.get("phase") == "Running" and s["shards"]["succeeded"] == 2)
    c.operator.stop(sig)  # 2: Running, some shards done

    c.kubelet.budget["p-gather"] = 0  # the gather's pod waits to be scheduled
    del c.kubelet.budget["p-shards"]
    c.operator.start()
    c.wait_status("p", "Finalizing", lambda s: s.get("phase") == "Finalizing" and c.job("p-gather"))
    c.operator.stop(sig)  # 3: Finalizing, the gather Job created, not yet done

    del c.kubelet.budget["p-gather"]  # the gather runs while no operator runs
    c.wait("the gather done", lambda: job_succeeded(c, "p-gather") == 1)
    c.operator.start()
    status = c.wait_phase("p", {"Succeeded", "Failed"})
    c.wait_event("p", "Succeeded")
    c.operator.stop(sig)  # 4: after Succeeded
    before = c.cr("p")

    c.operator.start()
    c.wait("the operator resumed the run", lambda: "Resuming is processed" in c.operator.log())
    c.operator.stop(signal.SIGTERM)
    finished_ok(status)
    assert c.cr("p")["status"] == before["status"] and c.cr("p")["spec"] == before["spec"]  # left alone
    assert c.reasons("p").count("Succeeded") == 1
    assert c.jobs_created() == ["p-gather", "p-shards"]  # none created twice
    check_output(http_server, "p", served=["a", "c"], errors=1)
    assert c.operator.starts == 5


def shard_pods(c: Cluster, job_uid: str) -> dict[int, dict[str, Any]]:
    """The pods the Job with this uid ran, by completion index (the last attempt of each)."""
    mine = sorted((p for p in c.pods() if p["metadata"]["labels"].get(CONTROLLER_UID) == job_uid),
                  key=lambda p: int(p["metadata"]["resourceVersion"]))
    return {int(p["metadata"]["labels"][INDEX_KEY]): p for p in mine}


def termination_message(pod: dict[str, Any]) -> str:
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]


def test_shards_job_deleted_by_hand_is_recreated_and_keeps_finished_shards(
    staged: Cluster, http_server: Any, s3_server: Any, tiny_model: Path,
) -> None:
    c = staged
    put_input(http_server, "d", LINES)
    c.kubelet.budget["d-shards"] = 2
    c.operator.start()
    c.create_cr("d", **run_spec(c, http_server, s3_server, tiny_model, "d", shards=3))
    c.wait_status("d", "Running, 2/3", lambda s: s.get("phase") == "Running" and s["shards"]["succeeded"] == 2)
    old = c.job("d-shards")["metadata"]["uid"]
    first = {i: termination_message(p) for i, p in shard_pods(c, old).items() if p["status"]["phase"] == "Succeeded"}
    assert sorted(first) == [0, 1]

    written = len(c.status_writes("d"))
    c.kube.request("DELETE", f"{JOBS_PATH}/d-shards", {"propagationPolicy": "Background"})  # kubectl delete job
    c.wait("the shards Job created again",
           lambda: (c.job("d-shards") or {}).get("metadata", {}).get("uid") not in (None, old))
    del c.kubelet.budget["d-shards"]
    status = c.wait_phase("d", {"Succeeded", "Failed"})
    c.wait_event("d", status["phase"])
    c.operator.stop()
    assert [r for r in c.reasons("d") if r in PHASES] == ["Pending", "Running", "Finalizing", "Succeeded"]
    # The counts never go backwards, not even while the new Job re-reports the finished shards.
    writes = c.status_writes("d")
    for counts in ([w["shards"]["succeeded"] for w in writes], [w["requestCounts"]["total"] for w in writes]):
        assert counts == sorted(counts), counts
    after = [(w["shards"]["succeeded"], w["shardsDisplay"]) for w in writes[written:] if "shards" in w]
    assert after[0] == (2, "2/3") and after[-1] == (3, "3/3"), after

    finished_ok(status)
    assert c.jobs_created() == ["d-gather", "d-shards", "d-shards"]  # only the deleted one again
    again = shard_pods(c, c.job("d-shards")["metadata"]["uid"])
    assert sorted(again) == [0, 1, 2]
    for index in (0, 1):  # re-reported from staging: the stored summary, nothing served again
        assert termination_message(again[index]) == first[index]
        stderr = (c.kubelet.workdir / again[index]["metadata"]["name"] / "stderr").read_text()
        assert "run.start" not in stderr and "weights_loaded" not in stderr, stderr[-2000:]
    assert json.loads(termination_message(again[2]))["requests"] == 1
    check_output(http_server, "d", served=["a", "c"], errors=1)


@pytest.mark.parametrize("disrupted", [True, False], ids=["preempted", "crashed"])
def test_pod_disruption_uses_no_retry(staged: Cluster, http_server: Any, s3_server: Any, tiny_model: Path,
                                      disrupted: bool) -> None:
    """No retries allowed (perShard 0): shard 1 and the gather preempted twice each still
    succeed (the real Job controller applies the podFailurePolicy's Ignore rule); the same pods
    crashing (no DisruptionTarget) fail the run at once."""
    c = staged
    put_input(http_server, "x", LINES)
    fault = "disrupt" if disrupted else "crash"
    c.kubelet.add_fault("x-shards", 1, fault, fault)
    c.kubelet.add_fault("x-gather", 0, fault, fault)
    c.operator.start()
    c.create_cr("x", **run_spec(c, http_server, s3_server, tiny_model, "x", shards=3, per_shard=0))
    status = c.wait_phase("x", {"Succeeded", "Failed"}, timeout=300)
    c.operator.stop()

    shards = c.job("x-shards")
    pods = c.pods("x-shards")
    if not disrupted:
        assert status["phase"] == "Failed", status
        assert status["message"].startswith("shard 1 failed after 1 attempt(s): exit code 137"), status["message"]
        # The failed index ends the Job: the controller stops the other shards' pods too. Once
        # none can write, a pod with the run's credentials deletes what the run staged.
        assert shards["status"]["failedIndexes"] == "1"
        c.operator.start()  # it was stopped above; a Job event brings the failed run to it again
        c.wait("the cleanup Job done", lambda: job_succeeded(c, "x-cleanup"), timeout=120)
        assert c.jobs_created() == ["x-cleanup", "x-shards"] and "StagingCleanup" in c.reasons("x")
        assert s3_server.keys("staging/") == []
        return
    finished_ok(status)
    preempted = [p for p in pods if any(k["type"] == "DisruptionTarget" for k in p["status"].get("conditions", []))]
    assert len(preempted) == 2 and len(pods) == 5  # 3 shards + 2 replacements for the preempted ones
    assert c.kubelet.started[("x-shards", 1)] == 3 and c.kubelet.started[("x-gather", 0)] == 3
    assert c.jobs_created() == ["x-gather", "x-shards"]
    check_output(http_server, "x", served=["a", "c"], errors=1)


WEBHOOKS_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


def failing_status_writes(cluster: Cluster, run_name: str) -> str:
    """A real API-server fault, injected by the API server itself: a validating webhook on the
    run's status writes whose endpoint refuses connections, with failurePolicy Fail, makes every
    status write of that one run fail with HTTP 500 ("failed calling webhook")."""
    name = f"fail-status-{cluster.kube.namespace}"
    cluster.kube.create(WEBHOOKS_PATH, {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": "fail-status.batchinfer.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "timeoutSeconds": 2,
            "clientConfig": {"url": "https://127.0.0.1:1/refused"},
            "rules": [{"apiGroups": ["batchinfer.io"], "apiVersions": ["*"], "operations": ["UPDATE"],
                       "resources": ["batchinferences/status"], "scope": "Namespaced"}],
            "matchConditions": [{"name": "this-run", "expression":
                                 f"object.metadata.namespace == '{cluster.kube.namespace}' && "
                                 f"object.metadata.name == '{run_name}'"}],
        }],
    })
    return f"{WEBHOOKS_PATH}/{name}"


def test_one_run_failing_every_pass_does_not_stop_the_resync_of_the_others(
        cluster: Cluster, http_server: Any) -> None:
    """Issue 13, defect 2. The resync lists runs by name, so "a" comes first; every pass of "a"
    fails. Only the resync can see that "b"'s pod cannot pull its image (a pod's status changes
    no Job: no Job event fires), so "b" ends Failed only if the resync goes on past "a"."""
    webhook = failing_status_writes(cluster, "a")
    try:
        cluster.kubelet.paused.set()  # b's pod stays unbound until b's Job events are handled
        cluster.kubelet.add_fault("b-shards", 0, "unpullable")
        cluster.operator.start()
        cluster.create_cr("a", **failing_spec(http_server, shards=1))
        cluster.create_cr("b", **failing_spec(http_server, shards=1))
        cluster.wait_status("b", "b's Job created", lambda s: s.get("phase") in ("Pending", "Running"))
        resync_of_a = f"{cluster.kube.namespace}/a"
        cluster.wait("a resync pass of a failing",
                     lambda: any("resync failed" in line and resync_of_a in line and "webhook" in line
                                 for line in cluster.operator.log().splitlines()))
        cluster.kubelet.paused.clear()
        status = cluster.wait_phase("b", {"Failed"})
        assert "cannot start: ImagePullBackOff" in status["message"], status["message"]
        assert cluster.status("a") == {}  # every status write of "a" was refused
    finally:
        cluster.kube.delete(webhook)
