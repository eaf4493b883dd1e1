"""The side-by-side table of `make bench-peers`, as a section of benchmarks/RESULTS.md."""

import statistics

from peers.jobs import SystemRun, first_divergence
from peers.systems import CliRun, SystemFailure

HEADING = "## Against the engines users would pick instead (issue 17)"


def _per_s(runs: list[SystemRun], workload: str, prompt: bool = False) -> list[float]:
    found = [r.workload(workload) for r in runs]
    return [w.prompt_tokens_per_s if prompt else w.output_tokens_per_s for w in found if w]


def _median_seconds(runs: list[SystemRun], workload: str) -> float:
    return statistics.median(w.seconds for w in (r.workload(workload) for r in runs) if w)


def throughput_rows(runs: dict[str, list[SystemRun]], workloads: list[str], flops: dict[str, int],
                    peak_gflops: float) -> list[str]:
    rows = ["| workload | system | rounds | output tok/s best | median | prompt tok/s median | ours / this (median) "
            "| % of matmul peak (median) | peak RSS MB | load s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ours = runs.get("ours", [])
    for name in workloads:
        ours_median = statistics.median(_per_s(ours, name)) if _per_s(ours, name) else None
        for system, system_runs in runs.items():
            rates = _per_s(system_runs, name)
            if not rates:
                continue
            median = statistics.median(rates)
            ratio = f"{ours_median / median:.2f}x" if ours_median and system != "ours" else ""
            share = flops[name] / _median_seconds(system_runs, name) / 1e9 / peak_gflops
            rows.append(f"| {name} | {system} | {len(rates)} | {max(rates):,.1f} | {median:,.1f} | "
                        f"{statistics.median(_per_s(system_runs, name, prompt=True)):,.0f} | {ratio} | {share:.0%} | "
                        f"{max(r.peak_rss_mb for r in system_runs):,.0f} | "
                        f"{statistics.median(r.load_seconds for r in system_runs):.1f} |")
    return rows


def best_peer_ratios(runs: dict[str, list[SystemRun]], workloads: list[str]) -> dict[str, tuple[str, float]]:
    """Per workload: the fastest peer (median output tok/s) and ours / it."""
    out = {}
    ours = runs.get("ours", [])
    for name in workloads:
        peers = {s: statistics.median(_per_s(r, name)) for s, r in runs.items() if s != "ours" and _per_s(r, name)}
        if not peers or not ours:
            continue
        best = max(peers, key=peers.get)
        out[name] = (best, statistics.median(_per_s(ours, name)) / peers[best])
    return out


def agreement_rows(runs: dict[str, SystemRun]) -> list[str]:
    ours = runs.get("ours")
    rows = ["| system | prompts identical to ours (32 tokens each) | first diverging position per prompt |",
            "|---|---:|---|"]
    if not ours:
        return rows
    reference = ours.workloads[0].token_ids
    for system, run in runs.items():
        if system == "ours":
            continue
        firsts = [first_divergence(a, b) for a, b in zip(reference, run.workloads[0].token_ids)]
        same = sum(f is None for f in firsts)
        positions = ", ".join("-" if f is None else str(f) for f in firsts)
        rows.append(f"| {system} | {same} of {len(firsts)} | {positions} |")
    return rows


def cli_rows(runs: list[CliRun]) -> list[str]:
    rows = ["| system | wall s (load included) | lines answered | prompt tokens | output tokens | command |",
            "|---|---:|---:|---:|---:|---|"]
    for r in runs:
        wall = f"{r.seconds:.1f}" if r.seconds is not None else f"failed: {r.error}"
        rows.append(f"| {r.system} | {wall} | {r.ok_lines} | {r.prompt_tokens:,} | {r.output_tokens:,} "
                    f"| `{r.command}` |")
    return rows


def target_lines(runs: dict[str, list[SystemRun]], workloads: list[str], flops: dict[str, int], peak_gflops: float,
                 fma_gflops: float | None, bounds: dict[str, float]) -> list[str]:
    """Ours / best peer per workload, and what 1.5x that peer would take against the same-run
    matmul peak, FMA ceiling (the arithmetic no engine can pass on these cores) and the bound
    the workload's own matmuls put on our engine (bench_peers.matmul_bounds)."""
    lines = []
    for name, (peer, ratio) in best_peer_ratios(runs, workloads).items():
        peer_gflops = flops[name] / _median_seconds(runs[peer], name) / 1e9
        line = (f"- {name}: ours / best peer ({peer}) = **{ratio:.2f}x** (medians); {peer} runs at "
                f"{peer_gflops:.1f} model GFLOP/s = {peer_gflops / peak_gflops:.0%} of the matmul peak")
        if fma_gflops:
            need = 1.5 * peer_gflops / fma_gflops
            verdict = "beyond this machine" if need > 1 else "within this machine"
            line += (f" and {peer_gflops / fma_gflops:.0%} of the FMA ceiling; 1.5x it would take "
                     f"{1.5 * peer_gflops:.1f} GFLOP/s = **{need:.0%} of the FMA ceiling** ({verdict})")
        if name in bounds:
            need = 1.5 * peer_gflops / bounds[name]
            verdict = "beyond what its matmuls allow" if need > 1 else "within what its matmuls allow"
            line += (f"; this workload's matmuls alone, at this run's rates on our weights with every other op "
                     f"free, allow at most {bounds[name]:.1f} GFLOP/s: 1.5x {peer} is **{need:.0%} of that** "
                     f"({verdict})")
        lines.append(line)
    return lines


def section(header: list[str], runs: dict[str, list[SystemRun]], workloads: list[str], flops: dict[str, int],
            peak_gflops: float, fma_gflops: float | None, agreement: dict[str, SystemRun], cli: list[CliRun],
            failures: list[SystemFailure], bounds: dict[str, float]) -> str:
    lines = [HEADING, "", *header, "", *throughput_rows(runs, workloads, flops, peak_gflops), "",
             *target_lines(runs, workloads, flops, peak_gflops, fma_gflops, bounds)]
    lines += ["", "Greedy agreement with ours on a small random model (8 prompts x 32 prompt tokens, 32 output "
              "tokens; '-' = identical):", "", *agreement_rows(agreement), ""]
    lines += ["Batch CLIs on the same JSONL (the decode workload's request count and output length, as chat "
              "completions of 96 words), wall time from the command's start to its exit:", "", *cli_rows(cli), ""]
    lines += ["Settings:", ""]
    for system, system_runs in runs.items():
        lines.append(f"- {system} {system_runs[0].version}: "
                     + ", ".join(f"{k}={v}" for k, v in system_runs[0].settings.items()))
    lines += [f"- {f.system}: failed: {f.error}" for f in failures]
    return "\n".join(lines) + "\n"


def replace_section(document: str, new_section: str) -> str:
    """The document with its section under HEADING replaced (or appended), the rest kept."""
    start = document.find(HEADING)
    if start < 0:
        return document.rstrip("\n") + "\n\n" + new_section
    end = document.find("\n## ", start + len(HEADING))
    rest = document[end + 1:] if end >= 0 else ""
    return document[:start] + new_section + ("\n" + rest if rest else "")
