"""`worker bench --quick` runs every workload on tiny shapes and reports every row.

No timing assertions: only that each measurement is present, positive and consistent.
"""

import re

import pytest

from worker.cli import main
from worker.cli.bench import KEPT_MARKER

ROWS = [("decode", "ours"), ("prefill", "ours"), ("prefix-on", "ours"), ("prefix-off", "ours"),
        ("baseline", "ours"), ("scheduler", "ours"), ("baseline", "paddleformers"), ("moe-decode", "ours")]
TARGETS = ["decode-heavy", "prefill-heavy", "limit: decode step's matmuls", "limit: prefill step's matmuls",
           "reduced decode", "shared prefix", "scheduler: engine host",
           "scheduler: the same step",
           "attention: cpu backend KV", "attention: cpu backend speed-up", "guided decoding: worst extra ms",
           "bench wall time"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "RESULTS.md"
    out.write_text(f"stale bench table\n{KEPT_MARKER}\n## other benchmark\nkept figures\n", encoding="utf-8")
    assert main(["bench", "--quick", "--output", str(out), "--model-cache", str(tmp / "models")]) == 0
    return out.read_text(encoding="utf-8")


def test_rerun_replaces_the_bench_tables_and_keeps_other_benchmarks(report):
    assert "stale bench table" not in report
    assert report.endswith(f"{KEPT_MARKER}\n## other benchmark\nkept figures\n")


def table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("|---")]


def test_header_names_command_machine_and_limits(report):
    assert "command: `worker bench --quick`" in report
    assert re.search(r"machine: .+, \d+ cores", report)
    assert re.search(r"matmul 256x256 = [\d.]+ GFLOP/s", report)
    assert re.search(r"copy bandwidth = [\d.]+ GB/s", report)
    assert re.search(r"identical to paddleformers. on \d of 2 baseline prompts", report)


def test_every_workload_row_is_present_with_positive_figures(report):
    rows = {(r[0], r[1]): r for r in table_rows(report) if len(r) == 11 and r[0] != "workload"}
    assert set(rows) == set(ROWS)
    for row in rows.values():
        seconds, tok_s, gflops = float(row[6]), float(row[7].replace(",", "")), float(row[8])
        # Quick shapes can round to 0.00 s or 0.0 GFLOP/s on a fast run; the rate cannot.
        assert seconds >= 0 and gflops >= 0 and tok_s > 0, row
    # Greedy, EOS ignored: exactly requests x output_len tokens.
    assert rows[("decode", "ours")][4] == "16"
    assert rows[("baseline", "ours")][4] == rows[("baseline", "paddleformers")][4] == "8"
    assert rows[("scheduler", "ours")][10], "the decode-step time of the scheduler workload is missing"


def test_kernel_rows_and_every_target_judged(report):
    backends = {r[0] for r in table_rows(report) if len(r) == 4 and r[0] != "attention backend"}
    assert {"cpu", "reference"} <= backends
    targets = [r for r in table_rows(report) if len(r) == 4 and r[-1] in ("yes", "NO")]
    assert len(targets) == len(TARGETS)
    for name, row in zip(TARGETS, targets):
        assert row[0].startswith(name) and row[1] != "n/a", row


def test_matmul_limit_rows_for_decode_and_prefill(report):
    assert "## Matmul limit (issue 17)" in report
    rows = {r[0]: r for r in table_rows(report) if len(r) == 7 and r[0] in ("decode", "prefill")}
    assert set(rows) == {"decode", "prefill"}
    assert all(float(r[5]) > 0 for r in rows.values())


def test_only_rejects_an_unknown_group(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--only", "decode,nope"])
    assert "--only takes a comma list" in capsys.readouterr().err


def test_sampler_rows_for_every_setting(report):
    from worker.bench.sampler import SETTINGS

    assert "## Sampler (64 rows x 2,048 vocabulary)" in report
    rows = {r[0]: float(r[1]) for r in table_rows(report) if len(r) == 2 and r[0] != "sampling parameters"}
    assert set(rows) == set(SETTINGS) and all(ms > 0 for ms in rows.values())


def test_guided_rows_for_every_constraint_against_the_unconstrained_step(report):
    from worker.bench.guided import CONSTRAINTS

    assert "## Guided decoding (64 rows x 2,048 vocabulary)" in report
    rows = {r[0]: r for r in table_rows(report) if len(r) == 9 and r[0] != "constraint"}
    assert set(rows) == set(CONSTRAINTS)
    for row in rows.values():
        steps, lo, median, free_lo, free_median = int(row[1]), *map(float, row[2:6])
        assert steps > 0 and 0 < lo <= median and 0 < free_lo <= free_median, row
        assert row[8].endswith("%"), "the decode step of the same run should give the share"
