"""The real operator process, as the chart's ServiceAccount, against the real kube-apiserver and
Job controller; the test plays only the kubelet (every pod's exact command as a local process)."""

import re
import signal
from typing import Any

import pytest
import requests

from tests.cluster.control_plane import free_port
from tests.cluster.harness import Cluster

pytestmark = pytest.mark.timeout(300)
# Passed to the pods through spec.worker.env, as a user would.
FAST_RETRIES = {"env": [{"name": "BATCHINFER_RETRY_BASE_SECONDS", "value": "0.01"}]}


def failing_spec(http_server: Any, **spec: Any) -> dict[str, Any]:
    """A run whose every shard fails: its input does not exist. Its staging (an S3 no test serves)
    is kept: no cleanup pod of a failed run (test_operator_faults.py has one)."""
    return dict(model="/models/m", input={"url": http_server.url("missing.jsonl")},
                output={"url": http_server.url("out.jsonl")}, staging={"url": "s3://staging/runs", "keep": True},
                worker=FAST_RETRIES) | spec


def test_invalid_spec_ends_failed_and_creates_no_job(cluster: Cluster) -> None:
    """What the CRD's schema cannot see (a cloud metadata host) the operator refuses, in status."""
    metrics_port, live_port = free_port(), free_port()
    cluster.operator.start(env={"BATCHINFER_METRICS_PORT": str(metrics_port), "BATCHINFER_RESYNC_SECONDS": "2"},
                           argv=[*cluster.operator.default_argv(), f"--liveness=http://127.0.0.1:{live_port}/healthz"])
    cluster.create_cr("bad", model="/models/m", input={"url": "http://169.254.169.254/latest/in.jsonl"},
                      output={"url": "s3://bucket/out.jsonl"}, shards=2)
    status = cluster.wait_phase("bad", {"Failed"})
    cluster.wait_event("bad", "Failed")
    health = requests.get(f"http://127.0.0.1:{live_port}/healthz", timeout=10)
    metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert health.status_code == 200 and "settings" in health.json()
    assert 'batchinfer_runs_finished_total{phase="Failed"}' in metrics
    assert "spec.input.url" in status["message"] and "link-local" in status["message"], status["message"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and failed["observedGeneration"] == 1
    assert cluster.kube.items("/apis/batch/v1/namespaces/{ns}/jobs") == [] and cluster.jobs_created() == []
    assert next(e for e in cluster.events_for("bad") if e["reason"] == "Failed")["type"] == "Warning"


def test_shard_that_keeps_failing_ends_failed_naming_it(cluster: Cluster, http_server: Any) -> None:
    """One retry per shard, by the real Job controller (backoffLimitPerIndex, its own backoff)."""
    cluster.operator.start()
    cluster.create_cr("doomed", **failing_spec(http_server, shards=2, retries={"perShard": 1}))
    status = cluster.wait_phase("doomed", {"Failed"}, timeout=200)
    cluster.wait_event("doomed", "Failed")
    assert {"JobCreated", "Running", "Failed"} <= set(cluster.reasons("doomed"))
    # Both shards fail; the first index the Job controller marks failed ends the run.
    match = re.match(r"shard ([01]) failed after 2 attempt\(s\): exit code 1", status["message"])
    assert match, status["message"]
    assert status["shards"]["failed"] >= 1 and status["shards"]["total"] == 2
    assert cluster.kubelet.started[("doomed-shards", int(match.group(1)))] == 2  # the controller's retry ran
    assert cluster.jobs_created() == ["doomed-shards"]  # no gather
    assert "/out.jsonl" not in http_server.store.files


def test_restarted_operator_finishes_without_a_second_job(cluster: Cluster, http_server: Any) -> None:
    cluster.kubelet.paused.set()  # nothing runs while the first operator is up
    cluster.operator.start()
    cluster.create_cr("restart", **failing_spec(http_server, shards=3, parallelism=2, retries={"perShard": 0}))
    cluster.wait_status("restart", "Pending with its Job", lambda s: s.get("phase") == "Pending"
                        and cluster.job("restart-shards"))
    cluster.operator.stop(signal.SIGTERM)
    cluster.kubelet.paused.clear()
    cluster.operator.start()
    cluster.wait_phase("restart", {"Failed", "Succeeded"})
    assert cluster.jobs_created() == ["restart-shards"]


def test_suspend_then_resume(cluster: Cluster, http_server: Any) -> None:
    cluster.operator.start()
    cluster.create_cr("paused", **failing_spec(http_server, shards=2, retries={"perShard": 0}, suspend=True))
    cluster.wait_phase("paused", {"Suspended"})
    assert cluster.job("paused-shards")["spec"]["suspend"] is True
    assert cluster.pods() == []  # a suspended Job makes no pods
    cluster.patch_spec("paused", suspend=False)
    cluster.wait("the Job resumed", lambda: cluster.job("paused-shards")["spec"]["suspend"] is False)
    status = cluster.wait_phase("paused", {"Failed", "Succeeded"})
    # Both shards fail once resumed; the first index the Job controller marks failed ends the run.
    match = re.match(r"shard ([01]) failed after 1 attempt\(s\): exit code 1", status["message"])
    assert match, status["message"]
    assert cluster.kubelet.started[("paused-shards", int(match.group(1)))] == 1
    assert cluster.jobs_created() == ["paused-shards"]
    calls = {(c.verb, c.resource) for c in cluster.operator_calls()}
    assert ("patch", "jobs") in calls and ("patch", "batchinferences/status") in calls


def test_suspending_a_running_run_stops_its_pods_and_resuming_finishes_it(
    cluster: Cluster, http_server: Any
) -> None:
    """Suspend mid-run: the real Job controller deletes the running pods (the kubelet confirms)."""
    cluster.kubelet.add_fault("mid-shards", 0, "hang")
    cluster.operator.start()
    cluster.create_cr("mid", **failing_spec(http_server, shards=1, retries={"perShard": 0}))
    cluster.wait_status("mid", "Running", lambda s: s.get("phase") == "Running" and
                        any(p["status"].get("phase") == "Running" for p in cluster.pods("mid-shards")))
    cluster.patch_spec("mid", suspend=True)
    cluster.wait_phase("mid", {"Suspended"})
    cluster.wait("the hung pod deleted", lambda: cluster.pods("mid-shards") == [])
    cluster.patch_spec("mid", suspend=False)
    status = cluster.wait_phase("mid", {"Failed", "Succeeded"})
    assert status["message"].startswith("shard 0 failed after 1 attempt(s)"), status["message"]
    assert cluster.kubelet.started[("mid-shards", 0)] == 2  # the stopped pod used up no retry
