"""The worker's metrics endpoint, scraped over HTTP during real runs of the tiny model: the figures
rise while it serves, never go backwards (not even across a SIGKILL and a rerun), and end at the
run's summary."""

import json

from tests.batch.conftest import ENGINE_FLAGS, FIXED, request, worker_cli, worker_process
from tests.batch.scrape import assert_never_backwards, by_label, free_port, phase, scrape_while, total
from worker import contract as C

COUNTERS = [C.METRIC_INPUT_BYTES_DONE, C.METRIC_REQUEST_SUCCESS, C.METRIC_REQUEST_FAILURE, C.METRIC_PROMPT_TOKENS,
            C.METRIC_GENERATION_TOKENS, "batchinfer:prefix_cache_hits_total"]


def _input(tmp_path, n: int) -> tuple[str, int]:
    lines = []
    for i in range(n):
        if i % 9 == 4:
            lines.append("{not json")
        elif i % 13 == 6:
            lines.append(json.dumps({"custom_id": f"u{i}", "method": "POST", "url": "/v1/nowhere", "body": {}}))
        else:
            # 96 tokens a line: long enough to be scraped mid-run on a fast host too
            lines.append(request(f"r{i}", "tell me " * (i % 4 + 1), max_tokens=96, ignore_eos=True, temperature=0))
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path), path.stat().st_size


def _assert_final_is_the_summary(snap, summary: dict, range_bytes: int) -> None:
    assert phase(snap) == "done"
    assert total(snap, C.METRIC_REQUEST_SUCCESS) == summary["served"]
    failed = by_label(snap, C.METRIC_REQUEST_FAILURE, C.LABEL_CODE)
    assert {code: n for code, n in failed.items() if n} == summary["failed"]
    assert total(snap, C.METRIC_PROMPT_TOKENS) == summary["prompt_tokens"]
    assert total(snap, C.METRIC_GENERATION_TOKENS) == summary["completion_tokens"]
    assert total(snap, "batchinfer:prefix_cache_hits_total") == summary["cached_tokens"]
    resumed = (total(snap, C.METRIC_REQUEST_SUCCESS, attempt=C.ATTEMPT_RESUMED)
               + (total(snap, C.METRIC_REQUEST_FAILURE, attempt=C.ATTEMPT_RESUMED) or 0))
    assert resumed == summary.get("resumed_lines", 0)
    assert total(snap, C.METRIC_INPUT_BYTES_DONE) == range_bytes


def test_run_batch_figures_rise_while_serving_and_end_at_the_summary(tiny_model, tmp_path):
    inp, size = _input(tmp_path, 60)
    port = free_port()
    proc = worker_process("run-batch", "-i", inp, "-o", tmp_path / "out.jsonl", "--model", tiny_model,
                          "--summary-file", tmp_path / "summary.json", "--chunk-lines", "3",
                          "--metrics-port", port, "--metrics-linger-seconds", "60", *ENGINE_FLAGS, *FIXED)
    snaps = scrape_while(proc, port, interval_s=0.02)
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    serving = [s for s in snaps if phase(s) == "serving"]
    done_while_serving = sorted({total(s, C.METRIC_INPUT_BYTES_DONE) for s in serving})
    # Rising: at least three figures short of the whole input. The last chunk's commit may be
    # scraped at the full size before the phase moves on, so one figure of `size` is allowed.
    short_of_size = [d for d in done_while_serving if d < size]
    assert len(short_of_size) >= 3 and done_while_serving[-1] <= size, done_while_serving
    assert_never_backwards(snaps, COUNTERS)
    assert {total(s, "batchinfer:kv_cache_blocks_total") for s in serving} == {64}
    assert max(total(s, "batchinfer:num_requests_running") for s in serving) > 0
    assert max(total(s, "batchinfer:kv_cache_usage_perc") for s in serving) > 0
    final = snaps[-1]
    assert (total(final, C.METRIC_RANGE_START), total(final, C.METRIC_RANGE_END),
            total(final, C.METRIC_INPUT_SIZE)) == (0, size, size)
    assert total(final, "batchinfer:step_duration_seconds_count") > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failed"] == {"invalid_json": 7, "unknown_url": 4} and summary["resumed_lines"] == 0
    _assert_final_is_the_summary(final, summary, size)


def test_a_killed_shard_rerun_never_shows_fewer_done_bytes_than_before_the_kill(tiny_model, tmp_path):
    inp, size = _input(tmp_path, 120)
    port = free_port()
    args = ["run-shard", "--input", inp, "--staging", tmp_path / "staging", "--num-shards", "2", "--shard-index", "1",
            "--model", tiny_model, "--chunk-lines", "2", "--metrics-port", port,
            "--termination-message-path", tmp_path / "termination-log", *ENGINE_FLAGS, *FIXED]
    first = worker_process(*args)
    # Killed once it has shown some chunks committed, mid-shard.
    before = scrape_while(first, port, until=lambda s: (total(s, C.METRIC_REQUEST_SUCCESS) or 0) >= 4)
    first.kill()
    first.wait()
    shown = total(before[-1], C.METRIC_INPUT_BYTES_DONE)
    start, end = total(before[-1], C.METRIC_RANGE_START), total(before[-1], C.METRIC_RANGE_END)
    assert 0 < shown < end - start and phase(before[-1]) == "serving"
    rerun = worker_process(*args, "--metrics-linger-seconds", "60")
    after = scrape_while(rerun, port)
    assert rerun.wait(timeout=60) == 0, rerun.stderr.read().decode()
    known = [s for s in after if total(s, C.METRIC_INPUT_BYTES_DONE) is not None]  # absent: not known yet
    assert known and total(known[0], C.METRIC_INPUT_BYTES_DONE, attempt=C.ATTEMPT_RESUMED) >= shown
    assert_never_backwards(after, COUNTERS)
    assert_never_backwards(before + after, COUNTERS, series=False)
    summary = json.loads((tmp_path / "termination-log").read_text())
    assert summary["resumed_lines"] > 0
    _assert_final_is_the_summary(after[-1], summary, end - start)
    # Run once more, as a retried pod of a finished shard: it re-reports all of it, as resumed.
    again = worker_process(*args, "--metrics-linger-seconds", "60")
    last = scrape_while(again, port)
    assert again.wait(timeout=60) == 0, again.stderr.read().decode()
    assert_never_backwards(before + after + last, COUNTERS, series=False)
    assert total(last[-1], C.METRIC_INPUT_BYTES_DONE, attempt=C.ATTEMPT_CURRENT) == 0
    assert total(last[-1], C.METRIC_INPUT_BYTES_DONE, attempt=C.ATTEMPT_RESUMED) == end - start
    _assert_final_is_the_summary(last[-1], summary | {"resumed_lines": summary["requests"]}, end - start)


def test_gather_reports_its_phase_and_no_counts(tiny_model, tmp_path):
    inp, _ = _input(tmp_path, 6)
    staging = tmp_path / "staging"
    assert worker_cli("run-shard", "--input", inp, "--staging", staging, "--num-shards", "1", "--shard-index", "0",
                      "--model", tiny_model, "--termination-message-path", tmp_path / "tm", *ENGINE_FLAGS,
                      *FIXED) == 0
    port = free_port()
    proc = worker_process("gather", "--staging", staging, "--num-shards", "1", "--output", tmp_path / "out.jsonl",
                          "--metrics-port", port, "--metrics-linger-seconds", "60")
    snaps = scrape_while(proc, port)
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    assert snaps and {phase(s) for s in snaps} <= {"loading", "publishing", "done"} and phase(snaps[-1]) == "done"
    assert all(total(s, name) is None for s in snaps for name in COUNTERS)  # the shards' counts, not again
