"""Hostile input through `worker run-batch` and `worker run-shard` + `gather` with the real
engine: one output line per input line, in order, each bad line a clear error naming the
problem, no crash; whole-file oddities (empty, blank, BOM, CRLF, no final newline); a 20 MB
line in bounded memory; 10,000 duplicate custom_ids."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.batch.conftest import ENGINE_FLAGS, FIXED, WORKER, worker_cli
from tests.reliability.hostile import BLANK, LINES, req

EXACT = [*ENGINE_FLAGS, "--no-enable-prefix-caching", *FIXED]


def run_batch(tmp: Path, data: bytes, *extra, name: str = "out.jsonl") -> bytes:
    (tmp / "in.jsonl").write_bytes(data)
    assert worker_cli("run-batch", "-i", tmp / "in.jsonl", "-o", tmp / name, "--model", extra[0],
                      "--summary-file", tmp / "summary.json", *extra[1:]) == 0
    return (tmp / name).read_bytes()


def sharded(tmp: Path, model: Path, num_shards: int, *extra) -> bytes:
    staging = tmp / f"staging-{num_shards}"
    for i in range(num_shards):
        assert worker_cli("run-shard", "--input", tmp / "in.jsonl", "--staging", staging, "--shard-index", i,
                          "--num-shards", num_shards, "--model", model, "--termination-message-path",
                          tmp / "term", "--chunk-lines", 3, *extra) == 0
    out = tmp / f"gathered-{num_shards}.jsonl"
    assert worker_cli("gather", "--staging", staging, "--num-shards", num_shards, "--output", out) == 0
    return out.read_bytes()


def test_every_hostile_line_gets_its_own_error_line(tmp_path, tiny_model):
    data = b"\n".join(line for _, line, _ in LINES) + b"\n"
    out = run_batch(tmp_path, data, tiny_model, *EXACT, "--chunk-lines", "5")
    got = [json.loads(x) for x in out.splitlines()]
    # numbered as an editor shows the file: blank lines count
    requests = [(name, line, code, number) for number, (name, line, code) in enumerate(LINES, start=1)
                if code != BLANK]
    assert len(got) == len(requests)
    for (name, _, code, number), line in zip(requests, got):
        if code is None:
            assert line["error"] is None and line["response"]["status_code"] == 200, (name, line)
        else:
            assert line["error"]["code"] == code, (name, line)
            assert line["error"]["message"].startswith(f"line {number}: "), (name, line)
            assert line["response"]["status_code"] == (404 if code == "model_not_found" else 400), (name, line)
            assert line["response"]["body"] is None
    by_name = {name: line for (name, *_), line in zip(requests, got)}
    assert "nested too deeply" in by_name["nested 100000 deep"]["error"]["message"]
    assert "NaN" in by_name["NaN"]["error"]["message"]
    assert "body.messages.0.role" in by_name["unknown role"]["error"]["message"]
    assert "body.temperature" in by_name["temperature a word"]["error"]["message"]
    assert "body.max_tokens" in by_name["max_tokens -5"]["error"]["message"]
    assert by_name["byte-order mark"]["custom_id"] == "bom"
    assert len(by_name["n 1000"]["response"]["body"]["choices"]) == 1000
    assert by_name["max_tokens 10**30"]["response"]["body"]["choices"][0]["finish_reason"] in ("length", "stop")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["requests"] == len(requests)
    assert summary["served"] == sum(code is None for _, _, code, _ in requests)
    # the same file cut into shards at arbitrary byte offsets: the same bytes
    assert sharded(tmp_path, tiny_model, 4, *EXACT) == out


@pytest.mark.parametrize("name,data,codes", [
    ("empty file", b"", []),
    ("only blank lines", b"\n\n  \n\r\n", []),
    ("no final newline", req("a") + b"\n" + req("b"), [None, None]),
    ("CRLF everywhere", req("a") + b"\r\n" + req("b") + b"\r\n\r\n", [None, None]),
    ("byte-order mark first", b"\xef\xbb\xbf" + req("a") + b"\n", [None]),
    ("one blank line, no newline", b"   ", []),
])
def test_whole_file_oddities(tmp_path, tiny_model, name, data, codes):
    out = run_batch(tmp_path, data, tiny_model, *EXACT)
    got = [json.loads(x) for x in out.splitlines()]
    assert [x["error"]["code"] if x["error"] else None for x in got] == codes
    assert out.endswith(b"\n") or out == b""
    assert sharded(tmp_path, tiny_model, 3, *EXACT) == out


def test_ten_thousand_duplicate_custom_ids(tmp_path, tiny_model):
    line = req("same", {"prompt": "hi", "max_tokens": 1}, chat=False)
    flags = ["--num-gpu-blocks-override", "256", "--block-size", "16", "--max-model-len", "64",
             "--max-num-seqs", "64", "--no-progress", *FIXED]
    out = run_batch(tmp_path, b"\n".join([line] * 10_000) + b"\n", tiny_model, *flags)
    got = out.splitlines()
    assert len(got) == 10_000
    first, rest = json.loads(got[0]), [json.loads(x) for x in got[1:]]
    assert first["error"] is None
    assert all(x["error"]["code"] == "duplicate_custom_id" for x in rest)
    assert rest[-1]["error"]["message"] == "line 10000: custom_id: 'same' was already used by an earlier line"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["served"], summary["failed"]) == (1, {"duplicate_custom_id": 9999})


def _peak_rss_kb(args: list, log: Path) -> int:
    with open(log, "wb") as err:
        proc = subprocess.Popen([*WORKER, *map(str, args)], stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, log.read_text()[-2000:]
    return usage.ru_maxrss


def test_twenty_megabyte_line_in_bounded_memory(tmp_path, tiny_model):
    small = req("small", chat=False)
    big = req("big", {"messages": [{"role": "user", "content": "word " * 4_000_000}]})
    assert len(big) > 20_000_000
    (tmp_path / "small.jsonl").write_bytes(small + b"\n")
    (tmp_path / "big.jsonl").write_bytes(small + b"\n" + big + b"\n" + small.replace(b"small", b"after") + b"\n")
    common = ["--model", tiny_model, *EXACT]
    base = _peak_rss_kb(["run-batch", "-i", tmp_path / "small.jsonl", "-o", tmp_path / "s.out", *common],
                        tmp_path / "small.log")
    peak = _peak_rss_kb(["run-batch", "-i", tmp_path / "big.jsonl", "-o", tmp_path / "b.out", *common],
                        tmp_path / "big.log")
    got = [json.loads(x) for x in (tmp_path / "b.out").read_bytes().splitlines()]
    assert [x["custom_id"] for x in got] == ["small", "big", "after"]
    assert got[1]["error"]["code"] == "prompt_too_long" and "bytes" in got[1]["error"]["message"]
    # Tokenizing the line to refuse it took ~1 GB; the bound is a few copies of the line.
    assert peak - base < 250_000, (base, peak)
