"""The whole run through the real operator: HTTP input from a real server on 127.0.0.1, 3 shards
(one killed once), staging on S3 (moto, credentials from a Secret), the operator stopped and
started again mid-run, the output PUT back; it must equal `worker run-batch` on the whole file,
byte for byte, with one Job of each kind."""

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.operator.conftest import CR_PATH, NAMESPACE, running_operator, wait_for, worker_has
from tests.operator.job_controller import VENV_BIN, JobController
from tests.operator.kube_api import KubeAPI
from tests.operator.rbac import denied
from tests.operator.test_operator_integration import cr, events_for, wait_phase

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(not (worker_has("run-shard") and worker_has("gather")), reason="worker run-shard/gather"),
]
ENGINE = {"numGpuBlocksOverride": 64, "blockSize": 16, "maxModelLen": 256, "maxNumSeqs": 8,
          "enablePrefixCaching": False}
ENGINE_FLAGS = ["--num-gpu-blocks-override", "64", "--block-size", "16", "--max-model-len", "256",
                "--max-num-seqs", "8", "--no-enable-prefix-caching"]


def _line(i: int) -> str:
    text = f"Item {i}: " + "more words " * (i * 7 % 13)
    if i % 3 == 0:
        body, url = {"prompt": text}, "/v1/completions"
    else:
        body, url = {"messages": [{"role": "user", "content": text}]}, "/v1/chat/completions"
    body |= {"temperature": 0, "max_tokens": 2 + i % 4}
    return json.dumps({"custom_id": f"r{i}", "method": "POST", "url": url, "body": body})


def input_bytes() -> bytes:
    lines = [_line(i) for i in range(20)]
    lines[7] = "{not json"  # still yields exactly one (error) output line
    return ("\n".join(lines) + "\n").encode()


def s3_secret(s3: Any) -> dict[str, Any]:
    values = {"AWS_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": "testing",
              "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "staging-s3", "namespace": NAMESPACE},
            "data": data}


def run_batch_whole(tmp_path: Path, model: Path, batch_id: str, created: int) -> tuple[bytes, dict]:
    (tmp_path / "in.jsonl").write_bytes(input_bytes())
    subprocess.run(
        [f"{VENV_BIN}/worker", "run-batch", "-i", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "whole.jsonl"),
         "--model", str(model), "--batch-id", batch_id, "--created", str(created), "--no-progress",
         "--summary-file", str(tmp_path / "summary.json"), *ENGINE_FLAGS],
        check=True, capture_output=True,
    )
    return (tmp_path / "whole.jsonl").read_bytes(), json.loads((tmp_path / "summary.json").read_text())


def test_sharded_run_equals_run_batch_byte_for_byte(
    kube: KubeAPI, controller: JobController, http_server: Any, s3_server: Any, tiny_model: Path,
    tmp_path: Path,
) -> None:
    http_server.store.files["/in.jsonl"] = input_bytes()
    kube.request("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", s3_secret(s3_server))
    spec = dict(
        model=str(tiny_model), input={"url": http_server.url("in.jsonl")},
        output={"url": http_server.url("out.jsonl")}, staging={"url": s3_server.url("staging")},
        credentials={"secretName": "staging-s3"}, shards=3, parallelism=3, engine=ENGINE,
        retries={"perShard": 2}, worker={"env": [{"name": "BATCHINFER_RETRY_BASE_SECONDS", "value": "0.01"}]},
    )
    controller.kill_first[("ok-shards", 1)] = 1  # shard 1 fails once (SIGKILL), then succeeds
    with running_operator():  # stopped mid-run: the Job controller carries on without it
        kube.create(CR_PATH, cr("ok", **spec))
        wait_for("a finished shard", lambda: controller.states.get("ok-shards") and
                 controller.states["ok-shards"].completed, timeout=300)
    with running_operator():
        status = wait_phase(kube, "ok", {"Succeeded", "Failed"}, timeout=500)
        # Events are posted asynchronously, after the status patch.
        wait_for("the final Event", lambda: any(e["reason"] == status["phase"] for e in events_for(kube, "ok")))
        reasons = [e["reason"] for e in events_for(kube, "ok")]
    assert status["phase"] == "Succeeded", (status, controller.pod_stderr()[-3000:])

    meta = kube.get(f"{CR_PATH}/ok")["metadata"]
    from batchinfer_operator.validation import batch_id, created_unix

    expected, summary = run_batch_whole(tmp_path, tiny_model, batch_id(meta["uid"]),
                                        created_unix(meta["creationTimestamp"]))
    assert http_server.store.files["/out.jsonl"] == expected
    assert status["requestCounts"]["total"] == 20 == summary["requests"]
    assert status["requestCounts"]["completed"] == summary["served"]
    assert status["requestCounts"]["failed"] == sum(summary["failed"].values()) >= 1
    assert status["shards"] == {"total": 3, "succeeded": 3, "failed": 0, "active": 0}
    assert controller.states["ok-shards"].failures == {1: 1}  # the killed attempt was retried
    assert status["shardsDisplay"] == "3/3" and status["completionTime"] and status["startTime"]
    assert sorted(b["metadata"]["name"] for b in kube.creations("batch/v1/jobs")) == ["ok-gather", "ok-shards"]
    assert {"JobCreated", "Running", "Finalizing", "Succeeded"} <= set(reasons)
    assert denied(kube.operator_calls()) == set()  # least privilege: the shipped RBAC suffices
