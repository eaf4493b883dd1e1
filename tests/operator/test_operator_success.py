"""The whole run through the real operator on the real control plane: HTTP input from a real
server on 127.0.0.1, 3 shards (one killed once and retried by the Job controller), staging on S3
(moto, credentials from a Secret), the operator stopped and started again mid-run, the output PUT
back; it must equal `worker run-batch` on the whole file, byte for byte, with one Job of each kind."""

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import Cluster
from tests.cluster.kubelet import VENV_BIN
from tests.operator.conftest import worker_has

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
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "staging-s3"},
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
    cluster: Cluster, http_server: Any, s3_server: Any, tiny_model: Path, tmp_path: Path,
) -> None:
    http_server.store.files["/in.jsonl"] = input_bytes()
    cluster.kube.create("/api/v1/namespaces/{ns}/secrets", s3_secret(s3_server))
    spec = dict(
        input={"url": http_server.url("in.jsonl")}, output={"url": http_server.url("out.jsonl")},
        staging={"url": s3_server.url("staging")}, credentials={"secretName": "staging-s3"}, shards=3,
        parallelism=3, engine=ENGINE, retries={"perShard": 2},
        **cluster.model_claim(tiny_model),
    )
    cluster.kubelet.add_fault("ok-shards", 1, "crash")  # shard 1 fails once (SIGKILL), then succeeds
    cluster.operator.start()  # stopped mid-run: the Job controller carries on without it
    cluster.create_cr("ok", **spec)
    cluster.wait("a finished shard", lambda: ((cluster.job("ok-shards") or {}).get("status") or {}).get("succeeded"),
                 timeout=300)
    cluster.operator.stop()
    cluster.operator.start()
    status = cluster.wait_phase("ok", {"Succeeded", "Failed"}, timeout=500)
    cluster.wait_event("ok", status["phase"])
    assert status["phase"] == "Succeeded", (status, cluster.kubelet.pod_stderr()[-3000:])

    meta = cluster.cr("ok")["metadata"]
    from batchinfer_operator.validation import batch_id, created_unix

    expected, summary = run_batch_whole(tmp_path, tiny_model, batch_id(meta["uid"]),
                                        created_unix(meta["creationTimestamp"]))
    assert http_server.store.files["/out.jsonl"] == expected
    assert status["requestCounts"]["total"] == 20 == summary["requests"]
    assert status["requestCounts"]["completed"] == summary["served"]
    assert status["requestCounts"]["failed"] == sum(summary["failed"].values()) >= 1
    assert status["shards"] == {"total": 3, "succeeded": 3, "failed": 0, "active": 0}
    # The killed attempt was retried by the Job controller, and counted against the index.
    assert cluster.kubelet.started[("ok-shards", 1)] == 2 and cluster.job("ok-shards")["status"]["failed"] == 1
    assert status["shardsDisplay"] == "3/3" and status["completionTime"] and status["startTime"]
    assert cluster.jobs_created() == ["ok-gather", "ok-shards"]
    assert s3_server.keys("staging/") == []  # published, then the gather deleted what the run staged
    assert {"JobCreated", "Running", "Finalizing", "Succeeded"} <= set(cluster.reasons("ok"))


def test_output_error_url_gets_the_rejected_lines_in_openais_shape(
    cluster: Cluster, http_server: Any, s3_server: Any, tiny_model: Path,
) -> None:
    """output.errorUrl: the gather publishes the served lines to the output and the rejected ones
    to the error file, in input order; served + rejected == requests."""
    from tests.reliability.operator_run import BAD_LINE, put_input, run_spec, served_line

    cluster.kube.create("/api/v1/namespaces/{ns}/secrets", s3_secret(s3_server))
    from tests.reliability.hostile import req

    put_input(http_server, "e", [served_line("a"), BAD_LINE, req("emb", url="/v1/embeddings"), served_line("c")])
    spec = run_spec(cluster, http_server, s3_server, tiny_model, "e", shards=2)
    spec["output"]["errorUrl"] = http_server.url("e.errors.jsonl")
    cluster.operator.start()
    cluster.create_cr("e", **spec)
    status = cluster.wait_phase("e", {"Succeeded", "Failed"}, timeout=300)
    assert status["phase"] == "Succeeded", status
    assert "--error-file" in cluster.job("e-gather")["spec"]["template"]["spec"]["containers"][0]["command"]
    served = [json.loads(x) for x in http_server.store.files["/e.out.jsonl"].splitlines()]
    rejected = [json.loads(x) for x in http_server.store.files["/e.errors.jsonl"].splitlines()]
    assert [x["custom_id"] for x in served] == ["a", "c"] and all(x["error"] is None for x in served)
    not_json, not_served = rejected
    # A line that never became a request: a top-level error; a refused request: an HTTP response.
    assert not_json["response"] is None and not_json["error"]["code"] == "invalid_json"
    assert not_served["custom_id"] == "emb" and not_served["error"] is None
    assert not_served["response"]["status_code"] == 400
    assert not_served["response"]["body"]["error"]["code"] == "unknown_url"
    assert status["requestCounts"]["total"] == 4 == len(served) + len(rejected)
