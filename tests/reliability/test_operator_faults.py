"""The operator under process faults, running for real (`kopf run` in its own process) against
kmock, with the test playing the Job controller: killed (SIGKILL) or stopped (SIGTERM) at every
phase of a run, a shards Job deleted by hand mid-run, pods preempted. Each run must end in
the right phase with the right counts, every output line accounted for, no Job created twice,
and no finished shard computed again."""

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.operator.conftest import CR_PATH, NAMESPACE, wait_for, worker_has
from tests.operator.job_controller import INDEX_KEY, JobController
from tests.operator.kube_api import KubeAPI
from tests.operator.test_operator_integration import cr, events_for
from tests.reliability.operator_run import (
    BAD_LINE, OperatorProcess, check_output, cr_path, job, jobs_created, put_input, run_spec, served_line,
    status_writes, wait_status,
)

pytestmark = [
    pytest.mark.timeout(300),
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
    pytest.param(signal.SIGTERM, id="stopped", marks=pytest.mark.slow),  # graceful: also in tests/operator
])
def test_operator_down_at_every_phase(
    kube: KubeAPI, controller: JobController, operator: OperatorProcess, http_server: Any, s3_server: Any,
    tiny_model: Path, sig: int,
) -> None:
    put_input(http_server, "p", LINES)
    controller.paused.set()  # the Job controller has not started the Job: the run stays Pending
    operator.start()
    kube.create(CR_PATH, cr("p", **run_spec(http_server, s3_server, tiny_model, "p", shards=3)))
    wait_status(kube, "p", "Pending with its Job", lambda s: s.get("phase") == "Pending" and job(kube, "p-shards"))
    operator.stop(sig)  # 1: Pending

    controller.pod_budget["p-shards"] = 2  # two shards finish while no operator runs
    controller.paused.clear()
    wait_for("two shards done", lambda: len(getattr(controller.states.get("p-shards"), "completed", ())) == 2)
    operator.start()
    wait_status(kube, "p", "Running, 2/3", lambda s: s.get("phase") == "Running" and s["shards"]["succeeded"] == 2)
    operator.stop(sig)  # 2: Running, some shards done

    controller.pod_budget["p-gather"] = 0  # the gather Job waits to be scheduled
    del controller.pod_budget["p-shards"]
    operator.start()
    wait_status(kube, "p", "Finalizing", lambda s: s.get("phase") == "Finalizing" and job(kube, "p-gather"))
    operator.stop(sig)  # 3: Finalizing, the gather Job created, not yet done

    del controller.pod_budget["p-gather"]  # the gather runs while no operator runs
    wait_for("the gather done", lambda: controller.states.get("p-gather") and controller.states["p-gather"].completed)
    operator.start()
    status = wait_status(kube, "p", "Succeeded", lambda s: s.get("phase") in ("Succeeded", "Failed"))
    wait_for("the Succeeded Event", lambda: any(e["reason"] == "Succeeded" for e in events_for(kube, "p")))
    operator.stop(sig)  # 4: after Succeeded
    before = kube.get(cr_path("p"))

    operator.start()
    wait_for("the operator resumed the run", lambda: "Resuming is processed" in operator.log(),
             detail=operator.log)
    operator.stop(signal.SIGTERM)
    finished_ok(status)
    assert kube.get(cr_path("p")) == before  # a finished run is left alone
    assert [e["reason"] for e in events_for(kube, "p")].count("Succeeded") == 1
    assert jobs_created(kube) == ["p-gather", "p-shards"]  # none created twice
    check_output(http_server, "p", served=["a", "c"], errors=1)
    assert operator.starts == 5


def shard_pods(kube: KubeAPI, job_uid: str) -> dict[int, dict[str, Any]]:
    """The pods the Job with this uid ran, by completion index (the last attempt of each)."""
    pods = kube.items(f"/api/v1/namespaces/{NAMESPACE}/pods")
    mine = sorted((p for p in pods if p["metadata"]["labels"].get(CONTROLLER_UID) == job_uid),
                  key=lambda p: p["metadata"]["resourceVersion"].zfill(12))
    return {int(p["metadata"]["labels"][INDEX_KEY]): p for p in mine}


def termination_message(pod: dict[str, Any]) -> str:
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]


def test_shards_job_deleted_by_hand_is_recreated_and_keeps_finished_shards(
    kube: KubeAPI, controller: JobController, operator: OperatorProcess, http_server: Any, s3_server: Any,
    tiny_model: Path,
) -> None:
    put_input(http_server, "d", LINES)
    controller.pod_budget["d-shards"] = 2
    operator.start()
    kube.create(CR_PATH, cr("d", **run_spec(http_server, s3_server, tiny_model, "d", shards=3)))
    wait_status(kube, "d", "Running, 2/3", lambda s: s.get("phase") == "Running" and s["shards"]["succeeded"] == 2)
    old = job(kube, "d-shards")["metadata"]["uid"]
    first = {i: termination_message(p) for i, p in shard_pods(kube, old).items()}
    assert sorted(first) == [0, 1]

    written = len(status_writes(kube, "d"))
    kube.request("DELETE", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/d-shards")  # kubectl delete job
    wait_for("the shards Job created again", lambda: (job(kube, "d-shards") or {}).get("metadata", {}).get("uid")
             not in (None, old))
    del controller.pod_budget["d-shards"]
    status = wait_status(kube, "d", "Succeeded", lambda s: s.get("phase") in ("Succeeded", "Failed"))
    wait_for("the final Event", lambda: any(e["reason"] == status["phase"] for e in events_for(kube, "d")))
    operator.stop()
    phases = [e["reason"] for e in events_for(kube, "d") if e["reason"] in PHASES]
    assert phases == ["Pending", "Running", "Finalizing", "Succeeded"]  # never back to Pending
    # The counts never go backwards, not even while the new Job re-reports the finished shards.
    writes = status_writes(kube, "d")
    for counts in ([w["shards"]["succeeded"] for w in writes], [w["requestCounts"]["total"] for w in writes]):
        assert counts == sorted(counts), counts
    after = [(w["shards"]["succeeded"], w["shardsDisplay"]) for w in writes[written:]]
    assert after[0] == (2, "2/3") and after[-1] == (3, "3/3"), after

    finished_ok(status)
    assert jobs_created(kube) == ["d-gather", "d-shards", "d-shards"]  # only the deleted one again
    again = shard_pods(kube, job(kube, "d-shards")["metadata"]["uid"])
    assert sorted(again) == [0, 1, 2]
    for index in (0, 1):  # re-reported from staging: the stored summary, nothing served again
        assert termination_message(again[index]) == first[index]
        stderr = (controller.workdir / again[index]["metadata"]["name"] / "stderr").read_text()
        assert "run.start" not in stderr and "weights_loaded" not in stderr, stderr[-2000:]
    assert json.loads(termination_message(again[2]))["requests"] == 1
    check_output(http_server, "d", served=["a", "c"], errors=1)


@pytest.mark.parametrize("disrupted", [True, False], ids=["preempted", "crashed"])
def test_pod_disruption_uses_no_retry(
    kube: KubeAPI, controller: JobController, operator: OperatorProcess, http_server: Any, s3_server: Any,
    tiny_model: Path, disrupted: bool,
) -> None:
    """No retries allowed (perShard 0): shard 1 and the gather preempted twice each still
    succeed; the same pods crashing (no DisruptionTarget) fail the run at once."""
    put_input(http_server, "x", LINES)
    faults = controller.disrupt_first if disrupted else controller.kill_first
    faults[("x-shards", 1)] = faults[("x-gather", 0)] = 2
    operator.start()
    kube.create(CR_PATH, cr("x", **run_spec(http_server, s3_server, tiny_model, "x", shards=3, per_shard=0)))
    status = wait_status(kube, "x", "finished", lambda s: s.get("phase") in ("Succeeded", "Failed"))
    operator.stop()

    shards = job(kube, "x-shards")
    pods = [p for p in kube.items(f"/api/v1/namespaces/{NAMESPACE}/pods")
            if p["metadata"]["labels"].get("job-name") == "x-shards"]
    if not disrupted:
        assert status["phase"] == "Failed", status
        assert status["message"].startswith("shard 1 failed after 1 attempt(s): exit code 137"), status["message"]
        assert shards["status"]["failed"] == 1 and jobs_created(kube) == ["x-shards"]
        return
    finished_ok(status)
    preempted = [p for p in pods if any(c["type"] == "DisruptionTarget" for c in p["status"].get("conditions", []))]
    assert len(preempted) == 2 and len(pods) == 5  # 3 shards + 2 replacements for the preempted ones
    assert shards["status"]["failed"] == 0 and controller.states["x-shards"].failures == {}
    assert controller.states["x-gather"].failures == {} and jobs_created(kube) == ["x-gather", "x-shards"]
    check_output(http_server, "x", served=["a", "c"], errors=1)
