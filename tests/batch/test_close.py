"""`worker gather --close-unfinished CODE`: a run stopped early (cancelled, or past its window)
publishes one line per request: each finished line as an uninterrupted run writes it, and every
other request as a `batch_cancelled` / `batch_expired` line with its own custom_id (issue 16)."""

import json
import signal

import pytest

from tests.batch.conftest import FIXED, read_jsonl, worker_cli, worker_process
from tests.batch.test_shards import SLOW, _slow_input, _wait_for

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, tiny_model):
    """40 lines in 2 shards, as a cancel finds them: shard 0 killed after 2 chunks, shard 1 never run;
    and what an uninterrupted run-batch writes for the same lines."""
    d = tmp_path_factory.mktemp("stopped")
    _slow_input(d / "in.jsonl")
    assert worker_cli("run-batch", "-i", d / "in.jsonl", "-o", d / "want.jsonl", "--model", tiny_model, *SLOW) == 0
    shard = d / "staging" / "shards" / "00000"
    proc = worker_process("run-shard", "--input", d / "in.jsonl", "--staging", d / "staging", "--shard-index", 0,
                          "--num-shards", 2, "--model", tiny_model, "--termination-message-path", d / "term", *SLOW)
    _wait_for(shard / "part-0001.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return d


def gather_closing(d, code: str, *extra) -> int:
    return worker_cli("gather", "--staging", d / "staging", "--num-shards", 2, "--close-unfinished", code,
                      "--input", d / "in.jsonl", *FIXED, *extra)


def test_finished_lines_are_kept_and_the_rest_are_cancelled(stopped) -> None:
    assert gather_closing(stopped, "batch_cancelled", "-o", stopped / "out.jsonl") == 0
    want = (stopped / "want.jsonl").read_bytes().splitlines()
    got = (stopped / "out.jsonl").read_bytes().splitlines()
    assert len(got) == len(want) == 40
    served = [g for g in got if json.loads(g)["error"] is None]
    assert len(served) >= 4 and served == want[:len(served)]  # byte-identical to the uninterrupted run
    for g, w in zip(got[len(served):], want[len(served):]):
        line, reference = json.loads(g), json.loads(w)
        assert (line["id"], line["custom_id"], line["response"]) == (reference["id"], reference["custom_id"], None)
        assert line["error"]["code"] == "batch_cancelled" and "cancelled" in line["error"]["message"]
    # Gathering again (the gather pod retried) changes nothing.
    assert gather_closing(stopped, "batch_cancelled", "-o", stopped / "again.jsonl") == 0
    assert (stopped / "again.jsonl").read_bytes() == (stopped / "out.jsonl").read_bytes()


def test_with_an_error_file_the_closed_lines_go_there(stopped, tmp_path) -> None:
    assert gather_closing(stopped, "batch_cancelled", "-o", tmp_path / "out.jsonl",
                          "--error-file", tmp_path / "errors.jsonl") == 0
    served, errors = read_jsonl(tmp_path / "out.jsonl"), read_jsonl(tmp_path / "errors.jsonl")
    assert [x["custom_id"] for x in served + errors] == [f"k{i}" for i in range(40)]
    assert all(e["response"] is None and e["error"]["code"] == "batch_cancelled" for e in errors)


def test_an_expired_run_that_never_started_closes_every_line(tmp_path) -> None:
    lines = ['{"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}}', "",
             "{not json", '{"custom_id": "b", "method": "POST", "url": "/v1/completions", "body": {}}']
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    assert worker_cli("gather", "--staging", tmp_path / "staging", "--num-shards", 3, "--close-unfinished",
                      "batch_expired", "--input", tmp_path / "in.jsonl", *FIXED, "-o", tmp_path / "out.jsonl",
                      "--summary-file", tmp_path / "summary.json") == 0
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [(x["custom_id"], x["error"]["code"]) for x in out] == [
        ("a", "batch_expired"), ("batchinfer-byte-" + str(len(lines[0]) + 2), "invalid_json"), ("b", "batch_expired")]
    assert out[1]["error"]["message"].startswith("line 3: ")  # the blank line counts, as in an editor
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["requests"], summary["served"], summary["failed"]) == (
        3, 0, {"batch_expired": 2, "invalid_json": 1})


def test_closing_needs_the_input_and_the_batch_identity(tmp_path, capsys) -> None:
    assert worker_cli("gather", "--staging", tmp_path, "--num-shards", 1, "--close-unfinished", "batch_cancelled",
                      "-o", tmp_path / "out.jsonl") == 1
    assert "--close-unfinished needs --input, --batch-id and --created" in capsys.readouterr().err
