"""`make bench-peers`' own logic: jobs, the result contract, the report; and our runner run for
real through the same job/result files as the peers (the peers' venvs are not built in CI)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from peers import jobs, report, systems  # noqa: E402

from worker.bench.models import model_dir  # noqa: E402


def test_first_divergence_names_the_first_differing_position():
    assert jobs.first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert jobs.first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert jobs.first_divergence([1, 2, 3], [1, 2]) == 2


def test_warmup_prompts_share_no_prompt_with_the_timed_ones():
    for w in jobs.bench_workloads(quick=False):
        warm, timed = jobs.warmup_prompts(w), w.prompts()
        assert all(len(p) == w.total_prompt_len for p in warm)
        # A prefix cache must gain nothing from the warm-up: not even the shared prefix.
        assert all(p[:16] != t[:16] for p in warm for t in timed)


def test_the_workloads_are_issue_17s():
    shapes = {w.name: (w.num_requests, w.shared_prefix_len, w.prompt_len, w.output_len)
              for w in jobs.bench_workloads(quick=False)}
    assert shapes == {"decode": (64, 0, 128, 128), "prefill": (16, 0, 512, 1), "prefix-on": (32, 256, 16, 16)}


def _run(system, rates: dict[str, float]) -> jobs.SystemRun:
    return jobs.SystemRun(system=system, version="1", settings={}, load_seconds=1.0, peak_rss_mb=10.0, workloads=[
        jobs.WorkloadRun(name=n, seconds=100 / r, prompt_tokens=10, output_tokens=100, token_ids=[[1]])
        for n, r in rates.items()])


def test_the_best_peer_ratio_takes_the_fastest_peer_by_median():
    runs = {"ours": [_run("ours", {"decode": 30}), _run("ours", {"decode": 10}), _run("ours", {"decode": 20})],
            "a": [_run("a", {"decode": 10})], "b": [_run("b", {"decode": 15}), _run("b", {"decode": 5})]}
    best, ratio = report.best_peer_ratios(runs, ["decode"])["decode"]
    assert best == "a" and ratio == pytest.approx(2.0)


def test_what_1_5x_the_best_peer_would_take_is_judged_against_the_fma_ceiling():
    # decode: 1 GFLOP in 1 s for the peer (100 tok/s), 2 GFLOP/s for ours.
    runs = {"ours": [_run("ours", {"decode": 200})], "vllm": [_run("vllm", {"decode": 100})]}
    flops = {"decode": 10**9}
    (beyond,) = report.target_lines(runs, ["decode"], flops, peak_gflops=2.0, fma_gflops=1.2, bounds={})
    assert "**2.00x**" in beyond and "50% of the matmul peak" in beyond
    assert "1.5 GFLOP/s = **125% of the FMA ceiling** (beyond this machine)" in beyond
    (within,) = report.target_lines(runs, ["decode"], flops, peak_gflops=2.0, fma_gflops=3.0, bounds={})
    assert "50% of the FMA ceiling** (within this machine)" in within
    (unmeasured,) = report.target_lines(runs, ["decode"], flops, peak_gflops=2.0, fma_gflops=None, bounds={})
    assert "FMA ceiling" not in unmeasured and "matmuls alone" not in unmeasured


def test_what_1_5x_the_best_peer_would_take_is_judged_against_the_workloads_own_matmuls():
    runs = {"ours": [_run("ours", {"decode": 200})], "vllm": [_run("vllm", {"decode": 100})]}
    flops = {"decode": 10**9}  # the peer at 1 GFLOP/s: 1.5x it is 1.5 GFLOP/s
    (beyond,) = report.target_lines(runs, ["decode"], flops, peak_gflops=2.0, fma_gflops=None,
                                    bounds={"decode": 1.2})
    assert "allow at most 1.2 GFLOP/s: 1.5x vllm is **125% of that** (beyond what its matmuls allow)" in beyond
    (within,) = report.target_lines(runs, ["decode"], flops, peak_gflops=2.0, fma_gflops=None,
                                    bounds={"decode": 3.0})
    assert "**50% of that** (within what its matmuls allow)" in within


def test_a_rerun_replaces_its_section_and_keeps_the_others():
    doc = "# Results\n\n## Other\nkept\n"
    once = report.replace_section(doc, f"{report.HEADING}\n\nfirst\n")
    twice = report.replace_section(once + "\n## Later\nalso kept\n", f"{report.HEADING}\n\nsecond\n")
    assert "first" not in twice and "second" in twice
    assert "## Other\nkept" in twice and "## Later\nalso kept" in twice


def test_our_runner_answers_a_job_through_the_peers_contract(tmp_path):
    model = model_dir(tmp_path / "models", jobs.AGREEMENT_MODEL)
    job = jobs.job(model, None, jobs.bench_workloads(quick=True), threads=1)
    result = systems.run_system("ours", Path(sys.executable), job, tmp_path / "runs", 1, 600)
    assert isinstance(result, jobs.SystemRun), result
    for asked, done in zip(job["workloads"], result.workloads):
        assert [len(t) for t in done.token_ids] == [asked["output_len"]] * len(asked["prompts"])
    assert result.peak_rss_mb > 100 and result.settings["prefix_caching"] is True


def test_a_runner_that_dies_is_reported_not_raised(tmp_path):
    job = jobs.job(tmp_path / "no-model", None, jobs.bench_workloads(quick=True), threads=1)
    result = systems.run_system("ours", Path(sys.executable), job, tmp_path / "runs", 1, 600)
    assert isinstance(result, systems.SystemFailure) and "exit status 1" in result.error
