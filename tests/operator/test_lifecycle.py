"""A run stopped early on the real control plane (issue 16): cancelled mid-run, or past its
completion window. The shard pods stop, the gather publishes what finished, and every other
request gets OpenAI's batch_cancelled / batch_expired line: one output line per request."""

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.api import ApiError
from tests.cluster.harness import CR_PATH, Cluster
from tests.operator.conftest import tiny_model  # noqa: F401
from tests.operator.test_operator_success import ENGINE, input_bytes, run_batch_whole, s3_secret

pytestmark = pytest.mark.timeout(600)


def stoppable_spec(cluster: Cluster, http_server: Any, s3_server: Any, model: Path, name: str) -> dict[str, Any]:
    http_server.store.files[f"/{name}.in.jsonl"] = input_bytes()
    cluster.kube.create("/api/v1/namespaces/{ns}/secrets", s3_secret(s3_server))
    return dict(input={"url": http_server.url(f"{name}.in.jsonl")},
                output={"url": http_server.url(f"{name}.out.jsonl")},
                staging={"url": s3_server.url("staging")}, credentials={"secretName": "staging-s3"}, shards=3,
                parallelism=3, engine=ENGINE, retries={"perShard": 0}, **cluster.model_claim(model))


def uninterrupted(cluster: Cluster, name: str, model: Path, tmp_path: Path) -> list[bytes]:
    from batchinfer_operator.validation import batch_id, created_unix

    meta = cluster.cr(name)["metadata"]
    whole, _ = run_batch_whole(tmp_path, model, batch_id(meta["uid"]), created_unix(meta["creationTimestamp"]))
    return whole.splitlines()


def test_cancel_mid_run_publishes_what_finished_and_cancels_the_rest(
        cluster: Cluster, http_server: Any, s3_server: Any, tiny_model: Path, tmp_path: Path) -> None:
    cluster.kubelet.add_fault("c-shards", 2, "hang")  # shard 2 never finishes by itself
    cluster.operator.start()
    cluster.create_cr("c", **stoppable_spec(cluster, http_server, s3_server, tiny_model, "c"))
    cluster.wait_status("c", "shards 0 and 1 done", lambda s: s.get("shards", {}).get("succeeded") == 2, timeout=300)
    cluster.kube.patch(f"{CR_PATH}/c", {"spec": {"cancel": True}})
    status = cluster.wait_phase("c", {"Cancelled", "Failed"}, timeout=300)
    assert status["phase"] == "Cancelled", status
    assert status["stopReason"] == "cancelled" and status["cancellingAt"] <= status["cancelledAt"]
    assert "Cancelling" in cluster.reasons("c") and "Cancelled" in cluster.reasons("c")
    assert cluster.job("c-shards")["spec"]["suspend"] is True  # the Job controller stopped shard 2's pod

    got, want = http_server.store.files["/c.out.jsonl"].splitlines(), uninterrupted(cluster, "c", tiny_model, tmp_path)
    assert len(got) == len(want) == 20  # one line per request
    cancelled = [i for i, line in enumerate(got) if (json.loads(line)["error"] or {}).get("code") == "batch_cancelled"]
    assert cancelled and cancelled == list(range(cancelled[0], 20))  # shard 2's lines, the last ones
    assert got[:cancelled[0]] == want[:cancelled[0]]  # what finished, byte for byte
    for i in cancelled:
        line, reference = json.loads(got[i]), json.loads(want[i])
        assert (line["custom_id"], line["id"], line["response"]) == (reference["custom_id"], reference["id"], None)
    counts = status["requestCounts"]
    assert (counts["total"], counts["failed"]) == (20, len(cancelled) + 1)  # + the line that is not JSON
    assert s3_server.keys("staging/") == []  # the gather deleted what the run staged

    # A second cancel changes nothing; undoing it is refused by the API server.
    cluster.kube.patch(f"{CR_PATH}/c", {"spec": {"cancel": True}})
    with pytest.raises(ApiError, match="cannot be undone") as refused:
        cluster.kube.patch(f"{CR_PATH}/c", {"spec": {"cancel": False}})
    assert refused.value.status == 422
    time.sleep(3 * cluster.operator.resync_seconds)
    assert cluster.status("c") == status and cluster.jobs_created() == ["c-gather", "c-shards"]
    assert cluster.kubelet.started[("c-gather", 0)] == 1


def test_a_run_past_its_completion_window_expires_with_every_request_accounted_for(
        cluster: Cluster, http_server: Any, s3_server: Any, tiny_model: Path) -> None:
    for index in range(3):
        cluster.kubelet.add_fault("x-shards", index, "hang")
    spec = stoppable_spec(cluster, http_server, s3_server, tiny_model, "x")
    spec["output"]["errorUrl"] = http_server.url("x.errors.jsonl")
    spec["staging"]["keep"] = True
    cluster.operator.start()
    cluster.create_cr("x", completionWindow="4s", **spec)
    status = cluster.wait_phase("x", {"Expired", "Failed"}, timeout=300)
    assert status["phase"] == "Expired", status
    assert status["expiresAt"] <= status["expiringAt"] <= status["expiredAt"]
    assert status["errorUrl"] == http_server.url("x.errors.jsonl")
    assert http_server.store.files["/x.out.jsonl"] == b""  # nothing was served
    errors = [json.loads(x) for x in http_server.store.files["/x.errors.jsonl"].splitlines()]
    assert len(errors) == 20 and status["requestCounts"]["failed"] == 20
    codes = [e["error"]["code"] for e in errors]
    assert codes.count("batch_expired") == 19 and codes.count("invalid_json") == 1
    assert all(e["response"] is None for e in errors)
    staged = s3_server.keys("staging/")  # kept, as asked: each shard's summary and its closed lines
    assert sum(key.endswith("/summary.json") for key in staged) == 3, staged


def slow_lines(n: int) -> bytes:
    body = {"messages": [{"role": "user", "content": "Count slowly"}], "max_tokens": 96, "ignore_eos": True}
    return b"".join(json.dumps({"custom_id": f"s{i}", "method": "POST", "url": "/v1/chat/completions",
                                "body": body | {"temperature": 0}}).encode() + b"\n" for i in range(n))


def test_progress_rises_while_the_shards_run_and_never_goes_backwards(
        cluster: Cluster, http_server: Any, s3_server: Any, tiny_model: Path) -> None:
    """Live figures from the running pods' metrics, read by the operator on each resync; shard 1's
    pod killed mid-run and retried by the Job controller."""
    spec = stoppable_spec(cluster, http_server, s3_server, tiny_model, "p")
    http_server.store.files["/p.in.jsonl"] = slow_lines(60)
    spec |= {"checkpointLines": 1, "retries": {"perShard": 1},
             "engine": ENGINE | {"maxNumSeqs": 1}}  # one line at a time: a chunk per line
    cluster.operator.start(env={"BATCHINFER_METRICS_PORT": "0", "BATCHINFER_RESYNC_SECONDS": "0.5"})
    cluster.create_cr("p", **spec)
    seen: list[tuple[int, int]] = []  # (bytes done, requests completed), each time they change
    killed = False

    def watch() -> bool:
        nonlocal killed
        status = cluster.status("p")
        done = (status.get("progress") or {}).get("bytesDone", 0)
        figures = (done, status.get("requestCounts", {}).get("completed", 0))
        if not seen or figures != seen[-1]:
            seen.append(figures)
        shard_1 = ((status.get("progress") or {}).get("running") or {}).get("1", {})
        if not killed and shard_1.get("completed", 0) >= 2:
            run = next(r for name, r in cluster.kubelet.runs.items() if name.startswith("p-shards-1-"))
            run.process.send_signal(signal.SIGKILL)  # mid-shard: the Job controller retries it
            killed = True
        return status.get("phase") in ("Succeeded", "Failed")

    cluster.wait("the run to end", watch, timeout=400)
    status = cluster.status("p")
    assert status["phase"] == "Succeeded", status
    assert killed and cluster.kubelet.started[("p-shards", 1)] == 2
    while_running = {f for f in seen if f[0] > 0 and f[1] < 60}  # some lines done, not all
    assert len(while_running) >= 2, seen  # rose at least twice while running
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(seen, seen[1:])), seen  # never backwards
    total = len(http_server.store.files["/p.in.jsonl"])
    assert status["progress"]["percent"] == "100%" and status["progress"]["bytesDone"] == total
    assert status["requestCounts"] == {"total": 60, "completed": 60, "failed": 0, "shardsReported": 3}
