"""run-batch over HTTP (with and without Range) and S3 (moto), the model from s3://, and
--output-tmp-dir: every scheme gives the same bytes as the local run."""

import pytest

from tests.batch.conftest import ENGINE_FLAGS, FIXED, request, worker_cli

LINES = "\n".join([request(f"r{i}", f"Question number {i}?", temperature=0, max_tokens=3 + i % 3)
                   for i in range(6)] + ["{bad"]) + "\n"


@pytest.fixture(scope="module")
def local_output(tmp_path_factory, tiny_model) -> bytes:
    d = tmp_path_factory.mktemp("local")
    (d / "in.jsonl").write_text(LINES)
    assert worker_cli("run-batch", "-i", d / "in.jsonl", "-o", d / "out.jsonl", "--model", tiny_model,
                      "--served-model-name", "tiny", *ENGINE_FLAGS, *FIXED) == 0
    return (d / "out.jsonl").read_bytes()


@pytest.mark.parametrize("honour_range", [True, False])
def test_http_in_http_out_through_output_tmp_dir(tmp_path, tiny_model, http_server, local_output, honour_range):
    http_server.store.files["/in.jsonl"] = LINES.encode()
    http_server.store.honour_range = honour_range
    spool = tmp_path / "spool"
    assert worker_cli("run-batch", "-i", http_server.url("in.jsonl"), "-o", http_server.url("out/o.jsonl"),
                      "--output-tmp-dir", spool, "--model", tiny_model, "--served-model-name", "tiny",
                      *ENGINE_FLAGS, *FIXED) == 0
    assert http_server.store.files["/out/o.jsonl"] == local_output
    assert [m for m, path, _ in http_server.store.requests if path == "/out/o.jsonl"] == ["PUT"]
    assert list(spool.iterdir()) == []  # checkpoints and the spooled upload are cleaned up


def test_s3_in_s3_out(tmp_path, tiny_model, s3_server, local_output):
    s3_server.put("in/batch.jsonl", LINES.encode())
    assert worker_cli("run-batch", "-i", s3_server.url("in/batch.jsonl"), "-o", s3_server.url("out/batch.jsonl"),
                      "--output-tmp-dir", tmp_path, "--model", tiny_model, "--served-model-name", "tiny",
                      *ENGINE_FLAGS, *FIXED) == 0
    assert s3_server.get("out/batch.jsonl") == local_output


def test_model_from_s3(tmp_path, tiny_model, s3_server, local_output):
    for f in tiny_model.iterdir():
        s3_server.put(f"models/tiny/{f.name}", f.read_bytes())
    (tmp_path / "in.jsonl").write_text(LINES)
    cache = tmp_path / "cache"
    for _ in range(2):  # the second run finds the files in the cache
        assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl",
                          "--model", s3_server.url("models/tiny"), "--model-cache-dir", cache,
                          "--served-model-name", "tiny", *ENGINE_FLAGS, *FIXED) == 0
        assert (tmp_path / "out.jsonl").read_bytes() == local_output
    (cached,) = cache.iterdir()
    assert sorted(p.name for p in cached.iterdir()) == sorted(p.name for p in tiny_model.iterdir())


def test_unwritable_output_keeps_checkpoints(tmp_path, tiny_model, http_server, capsys, monkeypatch):
    (tmp_path / "in.jsonl").write_text(LINES)
    http_server.store.fail_next = 1000  # every request fails: the PUT cannot succeed
    args = ["run-batch", "-i", tmp_path / "in.jsonl", "-o", http_server.url("o.jsonl"), "--output-tmp-dir",
            tmp_path / "t", "--model", tiny_model, *ENGINE_FLAGS, *FIXED]
    monkeypatch.setenv("BATCHINFER_RETRY_ATTEMPTS", "2")
    assert worker_cli(*args) == 1
    assert "output unwritable" in capsys.readouterr().err
    (ckpt,) = (tmp_path / "t").iterdir()
    assert (ckpt / "part-0000.json").exists()
    http_server.store.fail_next = 0  # fixed: the rerun only publishes
    assert worker_cli(*args) == 0
    assert http_server.store.files["/o.jsonl"].count(b"\n") == 7
