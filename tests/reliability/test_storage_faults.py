"""Storage faults through real servers on 127.0.0.1: an HTTP file server and a proxy in front
of moto's S3 that answer 500/503, reset connections, stall, and answer ranged GETs with the
whole body. Transient faults are retried and the output is byte-identical to a clean run; a
permanent failure names the URL and status, leaves nothing at the destination, and keeps the
staged results so the rerun recomputes nothing."""

import json
from pathlib import Path

import pytest

from tests.batch.conftest import ENGINE_FLAGS, FIXED, worker_cli
from tests.reliability.faults import FaultyServer
from tests.reliability.hostile import req

EXACT = [*ENGINE_FLAGS, "--no-enable-prefix-caching", *FIXED, "--served-model-name", "tiny"]
DATA = b"\n".join([req(f"r{i}", {"messages": [{"role": "user", "content": f"Question {i} " + "w " * (i % 7)}],
                                  "max_tokens": 1 + i % 3}) for i in range(12)] + [b"{bad"]) + b"\n"
# every method, every kind, consecutive on the same operation: fewer than the 6 attempts
HTTP_FAULTS = [("HEAD", "503"), ("HEAD", "reset"), ("HEAD", "stall"), ("GET", "500"), ("GET", "reset"),
               ("GET", "reset-mid"), ("GET", "stall"), ("PUT", "503"), ("PUT", "reset"), ("PUT", "stall")]
S3_FAULTS = [("HEAD", "503"), ("HEAD", "reset"), ("GET", "500"), ("GET", "reset-mid"), ("PUT", "503"),
             ("PUT", "reset"), ("GET", "reset")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model) -> bytes:
    d = tmp_path_factory.mktemp("ref")
    (d / "in.jsonl").write_bytes(DATA)
    assert worker_cli("run-batch", "-i", d / "in.jsonl", "-o", d / "out.jsonl", "--model", tiny_model, *EXACT) == 0
    return (d / "out.jsonl").read_bytes()


@pytest.fixture
def fast_faults(monkeypatch):
    monkeypatch.setenv("BATCHINFER_RETRY_BASE_SECONDS", "0.01")
    monkeypatch.setenv("BATCHINFER_HTTP_TIMEOUT_SECONDS", "0.5")


@pytest.fixture
def s3_proxy(s3_server, monkeypatch):
    """moto behind the faulty proxy: boto3 (ours and the test's) talks to the proxy."""
    with FaultyServer(upstream=s3_server.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.base)
        yield s3_server, proxy


def test_http_faults_on_every_method_are_retried(tmp_path, tiny_model, reference, fast_faults):
    with FaultyServer(stall_s=2.0) as server:
        server.files["/in.jsonl"] = DATA
        for method, kind in HTTP_FAULTS:
            server.plan.add(method, kind)
        assert worker_cli("run-batch", "-i", server.url("in.jsonl"), "-o", server.url("out.jsonl"),
                          "--output-tmp-dir", tmp_path / "t", "--model", tiny_model, *EXACT) == 0
        assert server.plan.pending() == [] and len(server.plan.injected) == len(HTTP_FAULTS)
        assert server.files["/out.jsonl"] == reference


def test_shards_and_gather_through_faulty_http_and_s3(tmp_path, tiny_model, reference, fast_faults, s3_proxy):
    bucket, proxy = s3_proxy
    with FaultyServer() as http:
        http.files["/in.jsonl"] = DATA
        http.plan.add("RANGE", "whole")  # shard 1 asks for a range and gets the whole file
        http.plan.add("RANGE", "reset-mid")
        http.plan.add("HEAD", "503", times=2)
        for method, kind in S3_FAULTS:
            proxy.plan.add(method, kind, path=f"/{bucket.bucket}/")
        staging = bucket.url("staging/run-1")
        for i in range(3):
            assert worker_cli("run-shard", "--input", http.url("in.jsonl"), "--staging", staging, "--shard-index", i,
                              "--num-shards", 3, "--model", tiny_model, "--chunk-lines", 2,
                              "--termination-message-path", tmp_path / "term", *EXACT) == 0
        proxy.plan.add("PUT", "500", path="/out/", times=2)
        assert worker_cli("gather", "--staging", staging, "--num-shards", 3, "--output",
                          bucket.url("out/result.jsonl"), "--output-tmp-dir", tmp_path / "g") == 0
        injected = len(http.plan.injected) + len(proxy.plan.injected)
        assert http.plan.pending() == [] and proxy.plan.pending() == [], (http.plan.injected, proxy.plan.injected)
    assert injected == 4 + len(S3_FAULTS) + 2
    assert bucket.get("out/result.jsonl") == reference


def _run(url_in: str, url_out: str, model: Path, tmp: Path) -> int:
    return worker_cli("run-batch", "-i", url_in, "-o", url_out, "--output-tmp-dir", tmp / "t", "--model", model,
                      "--summary-file", tmp / "summary.json", *EXACT)


def test_permanent_http_put_failure_then_rerun_without_recompute(tmp_path, tiny_model, reference, fast_faults,
                                                                 capsys, monkeypatch):
    monkeypatch.setenv("BATCHINFER_RETRY_ATTEMPTS", "3")
    (tmp_path / "in.jsonl").write_bytes(DATA)
    with FaultyServer() as server:
        out = server.url("out.jsonl") + "?X-Amz-Signature=presigned-secret-0xC0FFEE"
        server.plan.add("PUT", "500", times=-1)
        assert _run(str(tmp_path / "in.jsonl"), out, tiny_model, tmp_path) == 1
        err = capsys.readouterr().err
        assert f"{server.url('out.jsonl')} (status 500)" in err and "output unwritable" in err
        assert "0xC0FFEE" not in err
        assert "/out.jsonl" not in server.files  # nothing half-written at the destination
        assert [m for m, p, _ in server.plan.injected] == ["PUT"] * 3
        (ckpt,) = (tmp_path / "t").glob("batchinfer-run-*")
        assert (ckpt / "part-0000.json").exists()  # the results are kept
        server.plan.faults.clear()
        assert _run(str(tmp_path / "in.jsonl"), out, tiny_model, tmp_path) == 0
        assert server.files["/out.jsonl"] == reference
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["resumed_lines"] == summary["requests"] == 13  # nothing recomputed


def test_permanent_s3_failure_then_rerun_without_recompute(tmp_path, tiny_model, reference, fast_faults, s3_proxy,
                                                           capsys):
    bucket, proxy = s3_proxy
    bucket.put("in/batch.jsonl", DATA)
    proxy.plan.add("PUT", "403", path="/out/", times=-1)  # e.g. no write permission on the output
    args = (bucket.url("in/batch.jsonl"), bucket.url("out/batch.jsonl"), tiny_model, tmp_path)
    assert _run(*args) == 1
    err = capsys.readouterr().err
    assert f"{bucket.url('out/batch.jsonl')} (status 403)" in err
    listing = bucket.client.list_objects_v2(Bucket=bucket.bucket, Prefix="out/")
    assert listing.get("KeyCount", 0) == 0
    assert not bucket.client.list_multipart_uploads(Bucket=bucket.bucket).get("Uploads")
    proxy.plan.faults.clear()
    assert _run(*args) == 0
    assert bucket.get("out/batch.jsonl") == reference
    assert json.loads((tmp_path / "summary.json").read_text())["resumed_lines"] == 13
