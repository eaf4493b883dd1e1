"""The streaming pipeline, checkpoints, resume and assembly, driven by an engine double."""

import json

import pytest

from worker.batch.assemble import assemble
from worker.batch.ids import BatchIdentity
from worker.batch.lines import iter_lines
from worker.contract import shard_range
from worker.batch.pipeline import run_pipeline
from worker.batch.runner import RangeJob, run_range
from tests.batch.engine_double import EngineDouble


def _req(cid: str, text: str, url: str = "/v1/chat/completions", **body) -> str:
    b = {"messages": [{"role": "user", "content": text}]} if "chat" in url else {"prompt": text}
    return json.dumps({"custom_id": cid, "method": "POST", "url": url, "body": b | body})


def _input(tmp_path, n: int = 23) -> str:
    lines = []
    for i in range(n):
        if i % 7 == 3:
            lines.append("{broken")
        elif i % 11 == 5:
            lines.append(_req("dup", f"dup {i}"))  # the same custom_id, again and again
        elif i % 5 == 4:
            lines.append(_req(f"c{i}", "x" * (i + 1), url="/v1/completions", max_tokens=2))
        else:
            lines.append(_req(f"c{i}", "hello " * (i % 4 + 1)))
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


class ListSink:
    def __init__(self):
        self.lines = []

    def add(self, raw, result):
        self.lines.append((raw.offset, result))


IDENT = BatchIdentity(batch_id="t", created=1, model="m")


@pytest.mark.parametrize("window", [1, 2, 5, 100])
def test_results_in_input_order_within_the_window(tmp_path, window):
    url = _input(tmp_path)
    engine, sink = EngineDouble(), ListSink()
    n = run_pipeline(iter_lines(url), engine, IDENT, sink, window)
    offsets = [r.offset for r in iter_lines(url)]
    assert n == len(offsets) and [o for o, _ in sink.lines] == offsets
    assert engine.max_pending <= window
    by_cid = {r.line.custom_id: r for _, r in sink.lines if r.error_code is None}
    assert by_cid["c0"].line.response.body.choices[0].message.content == " olleh"  # "hello " reversed


def _job(url, prefix, start=0, end=None, chunk_lines=4, **kw) -> RangeJob:
    import os

    size = os.path.getsize(url)
    return RangeJob(input_url=url, prefix=str(prefix), start=start, end=size if end is None else end,
                    input_size=size, chunk_lines=chunk_lines, window=3, models=("m",), batch_id="t", created=1,
                    progress=False, **kw)


def _whole_run(tmp_path, url) -> bytes:
    result = run_range(_job(url, tmp_path / "ref"), EngineDouble)
    assemble(result.chunks, str(tmp_path / "ref.jsonl"))
    return (tmp_path / "ref.jsonl").read_bytes()


def test_output_has_global_line_numbers_and_flags_duplicates(tmp_path):
    url = _input(tmp_path)
    out = [json.loads(x) for x in _whole_run(tmp_path, url).splitlines()]
    assert len(out) == 23
    assert out[3]["error"]["code"] == "invalid_json" and out[3]["error"]["message"].startswith("line 4: ")
    assert out[5]["error"] is None and out[5]["custom_id"] == "dup"  # first use is served
    assert out[16]["error"]["code"] == "duplicate_custom_id"
    assert out[16]["error"]["message"].startswith("line 17: custom_id: 'dup'")
    assert out[16]["id"] != out[5]["id"]


def _blank_riddled_input(tmp_path) -> tuple[str, dict[str, int]]:
    """Error lines among blank ones (runs of them after full chunks, at the start, at the end,
    long enough for a shard to hold nothing else); returns the url and each error line's
    number as an editor shows it."""
    lines = ["", " "]
    for i in range(14):
        lines.append(f"{{broken {i}" if i % 3 == 0 else _req(f"c{i}", "hi"))
        lines += [""] * (i % 4) + ["\t"] * (20 if i == 7 else 0)
    lines += ["", ""]
    path = tmp_path / "blank.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path), {x: n for n, x in enumerate(lines, start=1) if x.startswith("{broken")}


@pytest.mark.parametrize("num_shards", [1, 2, 5, 9])
def test_line_numbers_count_the_files_lines_blank_ones_included(tmp_path, num_shards):
    url, numbers = _blank_riddled_input(tmp_path)
    import os

    size, chunks = os.path.getsize(url), []
    for i in range(num_shards):
        start, end = shard_range(size, i, num_shards)
        chunks += run_range(_job(url, tmp_path / f"s{i}", start, end, chunk_lines=2), EngineDouble).chunks
    assemble(chunks, str(tmp_path / "out.jsonl"), error_dest=str(tmp_path / "errors.jsonl"))
    inline = tmp_path / "inline.jsonl"
    assemble(chunks, str(inline))
    errors = [json.loads(x) for x in (tmp_path / "errors.jsonl").read_text().splitlines()]
    got = [x["error"]["message"] for x in map(json.loads, inline.read_text().splitlines()) if x["error"]]
    assert [m.split(":")[0] for m in got] == [f"line {n}" for n in numbers.values()]
    assert [x["error"]["message"] for x in errors] == got  # the error file numbers them the same
    if num_shards == 9:  # some shard held blank lines only
        assert any(c.meta.stats.lines == 0 for c in chunks)


def test_crash_then_resume_numbers_lines_as_one_run(tmp_path):
    url, numbers = _blank_riddled_input(tmp_path)
    prefix = tmp_path / "ckpt"
    with pytest.raises(RuntimeError, match="crashed"):
        run_range(_job(url, prefix, chunk_lines=2), lambda: EngineDouble(fail_after_steps=5))
    assert 0 < len(list(prefix.glob("part-*.json"))) < 7
    result = run_range(_job(url, prefix, chunk_lines=2), EngineDouble)
    assemble(result.chunks, str(tmp_path / "out.jsonl"))
    got = [x["error"]["message"] for x in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())
           if x["error"]]
    assert [m.split(":")[0] for m in got] == [f"line {n}" for n in numbers.values()]


def test_crash_then_resume_gives_identical_bytes(tmp_path):
    url = _input(tmp_path)
    expected = _whole_run(tmp_path, url)
    prefix = tmp_path / "ckpt"
    with pytest.raises(RuntimeError, match="crashed"):
        run_range(_job(url, prefix), lambda: EngineDouble(fail_after_steps=8))
    kept = sorted(p.name for p in prefix.glob("part-*.json"))
    assert 0 < len(kept) < 6  # some chunks were completed before the crash, not all
    result = run_range(_job(url, prefix), EngineDouble)
    assert result.total.lines == 23 and result.this_attempt.lines == 23 - 4 * len(kept)
    assemble(result.chunks, str(tmp_path / "resumed.jsonl"))
    assert (tmp_path / "resumed.jsonl").read_bytes() == expected


def test_finished_checkpoint_needs_no_engine(tmp_path):
    url = _input(tmp_path)
    run_range(_job(url, tmp_path / "c"), EngineDouble)
    result = run_range(_job(url, tmp_path / "c"), lambda: pytest.fail("engine loaded again"))
    assert result.total.lines == 23


def test_other_arguments_discard_the_checkpoint(tmp_path):
    url = _input(tmp_path)
    run_range(_job(url, tmp_path / "c"), EngineDouble)
    result = run_range(_job(url, tmp_path / "c", chunk_lines=5), EngineDouble)
    assert result.this_attempt.lines == 23 and len(result.chunks) == 5


@pytest.mark.parametrize("num_shards", [1, 3, 7])
def test_shards_assemble_to_the_whole_run(tmp_path, num_shards):
    url = _input(tmp_path)
    expected = _whole_run(tmp_path, url)
    import os

    size, chunks = os.path.getsize(url), []
    for i in range(num_shards):
        start, end = shard_range(size, i, num_shards)
        chunks += run_range(_job(url, tmp_path / f"s{i}", start, end), EngineDouble).chunks
    stats, _ = assemble(chunks, str(tmp_path / "gathered.jsonl"))
    assert (tmp_path / "gathered.jsonl").read_bytes() == expected
    assert stats.lines == 23 and stats.failed["duplicate_custom_id"] == 1


def test_engine_refusals_and_faults_become_error_lines(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([_req("a", "fine"), _req("b", "REFUSE me"), _req("c", "FAIL here"),
                               _req("d", "fine too")]) + "\n")
    sink = ListSink()
    run_pipeline(iter_lines(str(path)), EngineDouble(), IDENT, sink, window=4)
    results = [r for _, r in sink.lines]
    assert [r.error_code for r in results] == [None, "invalid_body", "engine_error", None]
    assert "refused by the double" in results[1].line.error.message
    assert results[2].line.response.status_code == 500 and results[2].line.custom_id == "c"
    assert results[2].line.error.message == "device fell over"


def test_a_prompt_refused_drops_the_lines_other_prompts_from_the_engine(tmp_path):
    path = tmp_path / "in.jsonl"
    cmpl = "/v1/completions"
    path.write_text("\n".join([_req("a", ["fine", "also fine", "REFUSE me"], url=cmpl),
                               _req("b", ["one", "two"], url=cmpl, n=2)]) + "\n")
    sink, engine = ListSink(), EngineDouble()
    run_pipeline(iter_lines(str(path)), engine, IDENT, sink, window=4)
    refused, served = (r for _, r in sink.lines)
    assert (refused.error_code, refused.error_param) == ("invalid_body", "body.prompt.2")
    assert not engine.pending  # prompts 0 and 1 of line a were aborted, not left running
    body = served.line.response.body
    assert [c.index for c in body.choices] == [0, 1, 2, 3]
    assert [c.text for c in body.choices] == ["eno", "eno", "owt", "owt"]  # the double reverses
    assert body.usage.prompt_tokens == 6


def test_blank_lines_yield_nothing_and_derived_ids_are_no_duplicates(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n  \n{broken\n\t\r\n" + _req("batchinfer-byte-4", "hi") + "\n\n")
    got = [json.loads(x) for x in _whole_run(tmp_path, str(path)).splitlines()]
    assert [x["custom_id"] for x in got] == ["batchinfer-byte-4", "batchinfer-byte-4"]
    assert got[0]["error"]["code"] == "invalid_json" and "no usable custom_id" in got[0]["error"]["message"]
    assert got[1]["error"] is None  # a real custom_id equal to a derived one is not a duplicate
