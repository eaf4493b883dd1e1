"""Credentials never leak: distinctive secret values (AWS keys in the environment, passwords
and signatures in presigned URLs, a Secret's data) must appear in no log line, output, summary,
error message, CR status or Event, of the worker or the operator, on success, on retried
faults and on permanent failure. And the operator's URL policy refuses what a CR must not name."""

import base64
import subprocess

import pytest

from tests.batch.conftest import ENGINE_FLAGS, FIXED, WORKER
from tests.reliability.faults import FaultyServer
from tests.reliability.hostile import req

SECRETS = ["AKIAR3L1ABILITYTEST", "wJalrXUtnFEMI-s3cr3t-K3Y", "pa55-w0rd-in-url", "S1GNATURE-deadbeef",
           "sess10n-t0ken-xyz"]
DATA = b"\n".join(req(f"c{i}", {"max_tokens": 2}) for i in range(4)) + b"\n"


def presigned(server: FaultyServer, path: str) -> str:
    return (server.url(path).replace("://", f"://reader:{SECRETS[2]}@")
            + f"?X-Amz-Credential={SECRETS[0]}&X-Amz-Signature={SECRETS[3]}")


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked: ...{text[max(0, text.find(secret) - 200):][:400]}"


def worker(*args, expect: int) -> str:
    """A real process: every byte it writes to stdout and stderr (logs included) is returned."""
    proc = subprocess.run([*WORKER, *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == expect, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_worker_never_logs_credentials(tmp_path, tiny_model, s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SECRETS[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRETS[1])
    monkeypatch.setenv("AWS_SESSION_TOKEN", SECRETS[4])
    monkeypatch.setenv("BATCHINFER_HTTP_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("BATCHINFER_RETRY_ATTEMPTS", "4")  # 3 faults in a row on the input: retried
    with FaultyServer() as http, FaultyServer(upstream=s3_server.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.base)
        http.files["/in.jsonl"] = DATA
        for kind in ("503", "reset", "reset-mid"):
            http.plan.add("GET", kind)
        proxy.plan.add("PUT", "500")
        proxy.plan.add("HEAD", "reset")
        common = ["--model", tiny_model, "--output-tmp-dir", tmp_path / "t", *ENGINE_FLAGS, *FIXED]
        # served, through retried faults; then a permanent failure of a presigned PUT
        logs = worker("run-batch", "-i", presigned(http, "in.jsonl"), "-o", s3_server.url("out.jsonl"),
                      "--summary-file", tmp_path / "s.json", *common, expect=0)
        http.plan.add("PUT", "403", times=-1)
        logs += worker("run-batch", "-i", presigned(http, "in.jsonl"), "-o", presigned(http, "o.jsonl"), *common,
                       expect=1)
        logs += worker("run-shard", "--input", s3_server.url("missing.jsonl"), "--staging", s3_server.url("staging"),
                       "--num-shards", 1, "--shard-index", 0, "--model", tiny_model, "--termination-message-path",
                       tmp_path / "term", *ENGINE_FLAGS, *FIXED, expect=1)
        assert len(http.plan.injected) == 4 and len(proxy.plan.injected) == 2
    assert "storage.retry" in logs and "status 403" in logs  # the logs and errors were captured
    assert_no_secret(logs, s3_server.get("out.jsonl").decode(), (tmp_path / "s.json").read_text())


@pytest.mark.parametrize("url,reason", [
    ("file:///etc/passwd", "file://"),
    ("/etc/passwd", "volumeMount"),
    ("data/in.jsonl", "relative"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    (f"http://reader:{SECRETS[2]}@169.254.170.2/v2/credentials?sig={SECRETS[3]}", "link-local"),
    ("http://[fe80::1]/x", "link-local"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
    ("http://[fd00:ec2:0:0:0:0:0:254]/x", "metadata"),
    ("http://[::ffff:169.254.169.254]/x", "link-local"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("http://host/../etc/passwd", ".."),
    ("gopher://host/x", "scheme"),
])
def test_url_policy_refuses_with_a_redacted_reason(url, reason):
    from batchinfer_operator.settings import OperatorSettings
    from batchinfer_operator.validation import InvalidSpecError, validate_spec

    spec = {"model": "s3://m/x", "input": {"url": url}, "output": {"url": "s3://b/o.jsonl"}, "shards": 1}
    with pytest.raises(InvalidSpecError) as exc:
        validate_spec(spec, OperatorSettings())
    assert str(exc.value).startswith("spec.input.url: ") and reason in str(exc.value)
    assert_no_secret(str(exc.value))


def test_url_policy_allows_ordinary_urls():
    from batchinfer_operator.settings import OperatorSettings
    from batchinfer_operator.validation import validate_spec

    for url in ("s3://b/in.jsonl", f"https://data.example.com/in.jsonl?sig={SECRETS[3]}", "http://10.0.0.5/in"):
        spec = {"model": "s3://m/x", "input": {"url": url}, "output": {"url": "s3://b/o.jsonl"}, "shards": 1}
        assert validate_spec(spec, OperatorSettings()).input.url == url


def _secret(name: str) -> dict:
    values = {"AWS_ACCESS_KEY_ID": SECRETS[0], "AWS_SECRET_ACCESS_KEY": SECRETS[1], "AWS_SESSION_TOKEN": SECRETS[4]}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


@pytest.mark.timeout(300)
def test_operator_never_shows_credentials(cluster):
    from tests.cluster.kubelet import VENV_BIN

    cluster.kube.create("/api/v1/namespaces/{ns}/secrets", _secret("creds"))
    env = {"env": [{"name": "BATCHINFER_RETRY_BASE_SECONDS", "value": "0.01"}]}
    with FaultyServer() as http:
        bad = dict(model="/models/m", input={"url": f"http://u:{SECRETS[2]}@169.254.169.254/x?s={SECRETS[3]}"},
                   output={"url": "s3://b/o.jsonl"}, credentials={"secretName": "creds"}, shards=1)
        failing = dict(model="/models/m", input={"url": presigned(http, "missing.jsonl")},
                       output={"url": presigned(http, "out.jsonl")}, staging={"url": "s3://staging/runs", "keep": True},
                       credentials={"secretName": "creds"}, shards=2, retries={"perShard": 0}, worker=env)
        # as the chart runs it at its default logLevel (info); --verbose logs whole CR bodies
        cluster.operator.start([f"{VENV_BIN}/kopf", "run", "--standalone", "--all-namespaces", "--log-format=json",
                                "-m", "batchinfer_operator"])
        cluster.create_cr("bad", **bad)
        cluster.create_cr("failing", **failing)
        statuses = [cluster.wait_phase(name, {"Failed"}) for name in ("bad", "failing")]
        for name in ("bad", "failing"):
            cluster.wait_event(name, "Failed")
        events = [str(cluster.events_for(n)) for n in ("bad", "failing")]
        cluster.operator.stop()
    log = cluster.operator.log()
    assert "Handler" in log
    assert "link-local" in statuses[0]["message"] and statuses[1]["message"].startswith("shard "), statuses
    # pod statuses (termination messages); the pod spec carries the CR's own URLs, as the CR does
    pods = str([p.get("status") for p in cluster.pods()])
    stderr = cluster.kubelet.pod_stderr()
    assert "worker run-shard: error" in stderr  # the pods ran, with the Secret, and failed
    assert_no_secret(str(statuses), *events, log, pods, stderr)
