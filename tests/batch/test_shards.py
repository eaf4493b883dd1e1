"""run-shard x N + gather == run-batch, byte for byte; killed runs resume (SIGKILL).

Prefix caching is off here: with it on, `cached_tokens` is the real number of cache hits of
the process that served a line, which depends on what that process served before (a resumed
run or another shard starts cold). Every other byte is the same either way.
"""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.batch.conftest import ENGINE_FLAGS, FIXED, read_jsonl, request, worker_cli, worker_process
from worker.contract import shard_range

EXACT = [*ENGINE_FLAGS, "--no-enable-prefix-caching", *FIXED]


def _input_lines() -> list[str]:
    lines = []
    for i in range(20):
        # lengths vary a lot, so the cut points of 3 and 7 shards fall inside lines
        text = f"Item {i}: " + "more words " * (i * 7 % 13)
        lines.append(request(f"r{i}", text, chat=i % 3 != 0, temperature=0, max_tokens=2 + i % 4))
    lines[5] = "{oops"
    lines[12] = request("r3", "same custom_id as line 4", temperature=0, max_tokens=2)
    return lines


@pytest.fixture(scope="module")
def batch(tmp_path_factory, tiny_model):
    d = tmp_path_factory.mktemp("shards")
    (d / "in.jsonl").write_text("\n".join(_input_lines()) + "\n")
    assert worker_cli("run-batch", "-i", d / "in.jsonl", "-o", d / "whole.jsonl", "--model", tiny_model,
                      *EXACT) == 0
    return d


def _shard(batch: Path, staging: str, i: int, n: int, model: Path, tmp: Path, *extra) -> int:
    return worker_cli("run-shard", "--input", batch / "in.jsonl", "--staging", staging, "--shard-index", i,
                      "--num-shards", n, "--model", model, "--termination-message-path", tmp / f"term-{i}",
                      "--chunk-lines", 2, *EXACT, *extra)


@pytest.mark.parametrize("num_shards,where", [(1, "local"), (3, "http"), (7, "s3")])
def test_shards_then_gather_equal_run_batch(batch, tiny_model, tmp_path, request, num_shards, where):
    if where == "s3":
        bucket = request.getfixturevalue("s3_server")
        staging, output = bucket.url("staging/uid-1"), bucket.url("out/result.jsonl")
    elif where == "http":
        server = request.getfixturevalue("http_server")
        staging, output = server.url("staging/uid-1"), server.url("out/result.jsonl")
    else:
        staging, output = str(tmp_path / "staging"), str(tmp_path / "result.jsonl")
    for i in range(num_shards):
        assert _shard(batch, staging, i, num_shards, tiny_model, tmp_path) == 0
        term = json.loads((tmp_path / f"term-{i}").read_bytes())
        assert term["shard_index"] == i and len((tmp_path / f"term-{i}").read_bytes()) < 4096
    assert worker_cli("gather", "--staging", staging, "--num-shards", num_shards, "--output", output,
                      "--summary-file", tmp_path / "summary.json") == 0
    got = {"s3": lambda: bucket.get("out/result.jsonl"), "local": lambda: Path(output).read_bytes(),
           "http": lambda: server.store.files["/out/result.jsonl"]}[where]()
    assert got == (batch / "whole.jsonl").read_bytes()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["requests"] == 20 and summary["failed"] == {"duplicate_custom_id": 1, "invalid_json": 1}


def test_shards_without_a_line_start_load_no_model(tmp_path, tiny_model):
    """Shards whose byte range lies inside one long line serve nothing: they stage an empty
    result without loading the model (given one that does not exist), and the gather is
    still run-batch's output byte for byte."""
    lines = [request("a", "short", temperature=0, max_tokens=2), request("long", "word " * 400, max_tokens=2),
             request("b", "short too", temperature=0, max_tokens=2)]
    data = ("\n".join(lines) + "\n").encode()
    (tmp_path / "in.jsonl").write_bytes(data)
    assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", tmp_path / "whole.jsonl",
                      "--model", tiny_model, *EXACT) == 0
    starts = {0} | {i + 1 for i, byte in enumerate(data[:-1]) if byte == ord("\n")}
    n, staging = 12, tmp_path / "staging"
    empty = [i for i in range(n) if not any(a <= s < b for s in starts for a, b in [shard_range(len(data), i, n)])]
    assert len(empty) == 10  # shards 1-10 fall inside the long line
    for i in range(n):
        model = tmp_path / "no-such-model" if i in empty else tiny_model
        assert _shard(tmp_path, str(staging), i, n, model, tmp_path) == 0, i
        if i in empty:
            staged = (staging / "shards" / f"{i:05d}" / "summary.json").read_bytes()
            assert (tmp_path / f"term-{i}").read_bytes() == staged
            assert (json.loads(staged)["requests"], json.loads(staged)["chunks"]) == (0, 0)
    assert worker_cli("gather", "--staging", staging, "--num-shards", n, "--output", tmp_path / "got.jsonl") == 0
    assert (tmp_path / "got.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()


def test_gather_refuses_unfinished_shards(batch, tiny_model, tmp_path, capsys):
    staging = str(tmp_path / "staging")
    assert _shard(batch, staging, 0, 2, tiny_model, tmp_path) == 0
    assert worker_cli("gather", "--staging", staging, "--num-shards", 2, "--output", tmp_path / "o") == 1
    assert "shard 1 is not finished" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_gather_refuses_staging_that_does_not_cover_the_input(batch, tiny_model, tmp_path, capsys):
    """Staged as 3 shards, gathered as 2 (a shard count changed mid-run): refused, nothing published."""
    staging = str(tmp_path / "staging")
    for i in range(3):
        assert _shard(batch, staging, i, 3, tiny_model, tmp_path) == 0
    assert worker_cli("gather", "--staging", staging, "--num-shards", 2, "--output", tmp_path / "o") == 1
    assert ("staging does not cover the input: shard 0 was staged as shard 0 of 3, gather was asked for 2 shard(s)"
            in capsys.readouterr().err)
    assert not (tmp_path / "o").exists()
    assert _shard(batch, staging, 1, 2, tiny_model, tmp_path) == 1  # nor re-reported under another count
    assert "the shard count changed mid-run" in capsys.readouterr().err


def test_coverage_needs_contiguous_ranges_of_one_input() -> None:
    from worker.batch.errors import BatchRunError
    from worker.cli.gather import check_coverage
    from worker.batch.summary import Summary

    def part(i: int, start: int, end: int, size: int = 100) -> Summary:
        return Summary(requests=0, served=0, failed={}, prompt_tokens=0, completion_tokens=0, cached_tokens=0,
                       elapsed_s=0, requests_per_s=0, completion_tokens_per_s=0, shard_index=i, num_shards=2,
                       byte_start=start, byte_end=end, input_bytes=size)

    check_coverage([part(0, 0, 50), part(1, 50, 100)])
    for bad, why in [([part(0, 0, 40), part(1, 50, 100)], "expected to start at byte 40"),
                     ([part(0, 0, 50), part(1, 50, 90)], "the shards end at byte 90 of 100"),
                     ([part(0, 0, 50), part(1, 50, 120, size=120)], "of 120, expected to start at byte 50 of 100")]:
        with pytest.raises(BatchRunError, match=why):
            check_coverage(bad)


def test_shard_index_from_job_completion_index(batch, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    monkeypatch.setenv("BATCHINFER_TERMINATION_LOG", str(tmp_path / "t"))  # as the operator's pods
    staging = tmp_path / "staging"
    assert worker_cli("run-shard", "--input", batch / "in.jsonl", "--staging", staging, "--num-shards", 2,
                      "--model", tiny_model, *ENGINE_FLAGS, *FIXED) == 0
    assert (staging / "shards" / "00001" / "summary.json").read_bytes() == (tmp_path / "t").read_bytes()
    assert not (staging / "shards" / "00000").exists()


def _wait_for(path: Path, proc) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _slow_input(path: Path) -> list[str]:
    lines = [request(f"k{i}", f"Tell me about number {i}", temperature=0, max_tokens=24) for i in range(40)]
    path.write_text("\n".join(lines) + "\n")
    return lines


SLOW = ["--num-gpu-blocks-override", "64", "--block-size", "16", "--max-model-len", "256",
        "--max-num-seqs", "2", "--max-in-flight", "2", "--chunk-lines", "2", "--no-progress",
        "--no-enable-prefix-caching", *FIXED]


def test_run_batch_killed_resumes_to_identical_output(tmp_path, tiny_model):
    _slow_input(tmp_path / "in.jsonl")
    assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", tmp_path / "want.jsonl",
                      "--model", tiny_model, *SLOW) == 0
    args = ["run-batch", "-i", tmp_path / "in.jsonl", "-o", tmp_path / "got.jsonl", "--model", tiny_model,
            "--output-tmp-dir", tmp_path / "t", "--summary-file", tmp_path / "s.json", *SLOW]
    proc = worker_process(*args)
    (ckpt,) = _wait_dir(tmp_path / "t", proc)
    _wait_for(ckpt / "part-0001.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
    assert not (tmp_path / "got.jsonl").exists()  # nothing published by the killed run
    done = len(list(ckpt.glob("part-*.json")))
    assert worker_cli(*args) == 0
    assert (tmp_path / "got.jsonl").read_bytes() == (tmp_path / "want.jsonl").read_bytes()
    ids = [x["custom_id"] for x in read_jsonl(tmp_path / "got.jsonl")]
    assert ids == [f"k{i}" for i in range(40)]
    assert json.loads((tmp_path / "s.json").read_text())["resumed_lines"] == 2 * done > 0


def _wait_dir(path: Path, proc) -> list[Path]:
    deadline = time.monotonic() + 120
    while not (path.exists() and list(path.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    return list(path.iterdir())


def test_run_shard_killed_redoes_at_most_one_chunk(tmp_path, tiny_model):
    _slow_input(tmp_path / "in.jsonl")
    shard = tmp_path / "staging" / "shards" / "00000"
    args = ["run-shard", "--input", tmp_path / "in.jsonl", "--staging", tmp_path / "staging", "--shard-index", 0,
            "--num-shards", 1, "--model", tiny_model, "--termination-message-path", tmp_path / "term", *SLOW]
    proc = worker_process(*args)
    _wait_for(shard / "part-0002.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed mid-shard, not finished
    # a chunk is complete once its metadata exists (written after the chunk itself)
    complete = [m.with_suffix(".jsonl") for m in shard.glob("part-*.json")] + list(shard.glob("part-*.json"))
    before = {p.name: os.stat(p).st_ino for p in complete}
    assert worker_cli(*args) == 0
    after = {p.name: os.stat(p).st_ino for p in shard.glob("part-*")}
    kept = [name for name, ino in before.items() if after.get(name) == ino]
    assert sorted(kept) == sorted(before)  # every completed chunk was kept, not redone
    assert not list(shard.glob(".*.tmp"))  # the killed chunk's temp file was discarded
    summary = json.loads((tmp_path / "term").read_bytes())
    assert summary["requests"] == 40 and summary["resumed_lines"] == len(before) // 2 * 2


@pytest.mark.parametrize("where", ["s3", "http"])
def test_gather_deletes_staging_once_published_and_a_retry_finishes_the_job(batch, tiny_model, tmp_path, request,
                                                                           where):
    if where == "s3":
        bucket = request.getfixturevalue("s3_server")
        staging, output, staged = bucket.url("staging/uid-2"), bucket.url("out/r.jsonl"), lambda: bucket.keys("staging/")
        published = lambda: bucket.get("out/r.jsonl")  # noqa: E731
    else:
        server = request.getfixturevalue("http_server")
        staging, output = server.url("staging/uid-2"), server.url("out/r.jsonl")
        staged = lambda: sorted(k for k in server.store.files if k.startswith("/staging/"))  # noqa: E731
        published = lambda: server.store.files["/out/r.jsonl"]  # noqa: E731
    for i in range(2):
        assert _shard(batch, staging, i, 2, tiny_model, tmp_path) == 0
    assert worker_cli("gather", "--staging", staging, "--num-shards", 2, "--output", output) == 0
    kept = staged()
    assert len(kept) > 4 and published() == (batch / "whole.jsonl").read_bytes()
    # A gather that published, marked it, and died removing staging: its retry only finishes removing.
    from worker import storage
    from worker.batch.staging import gathered_url, shard_summary_url
    storage.write_bytes(gathered_url(staging), storage.read_bytes(shard_summary_url(staging, 0)))
    storage.delete(shard_summary_url(staging, 0))
    assert worker_cli("gather", "--staging", staging, "--num-shards", 2, "--output", output, "--delete-staging",
                      "--summary-file", tmp_path / "s.json") == 0
    assert staged() == [] and published() == (batch / "whole.jsonl").read_bytes()
