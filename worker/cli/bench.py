"""`worker bench`: throughput, FLOP/s against the same-run matmul peak, the paddleformers
baseline and the attention kernels; prints a table and writes benchmarks/RESULTS.md."""

import argparse
import gc
import shlex
import time
from pathlib import Path

HELP = "benchmark the engine (issue 6 workloads) and write benchmarks/RESULTS.md"
GROUPS = ("decode", "prefill", "prefix", "baseline", "scheduler", "attention", "sampler", "guided", "moe")


def _groups(value: str) -> frozenset[str]:
    chosen = frozenset(v.strip() for v in value.split(",") if v.strip())
    unknown = chosen - set(GROUPS)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"--only takes a comma list of {', '.join(GROUPS)}; got {value!r}")
    return chosen


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", type=_groups, default=frozenset(GROUPS),
                        help=f"comma list of workload groups to run (default all): {','.join(GROUPS)}")
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a smoke test, not a measurement")
    parser.add_argument("--output", type=Path, default=None,
                        help="markdown report (default benchmarks/RESULTS.md; --quick: none)")
    parser.add_argument("--model-cache", type=Path, default=Path(".cache/bench"),
                        help="where the random-weight model directories are written once")


def _engine_runs(plan, only, big: str, small: str) -> list:
    from worker.bench.engine_run import make_engine, run_workload, warm_up
    from worker.bench.matmul_limit import workload_matmul_limits

    by_name = {w.name: w for w in plan.workloads}
    groups = [  # (model dir, prefix caching, workloads): one engine each, one at a time
        (big, True, [by_name[n] for n in ("decode", "prefill", "prefix-on") if n.split("-")[0] in only]
         + ([plan.baseline] if "baseline" in only else [])),
        (big, False, [by_name["prefix-off"]] if "prefix" in only else []),
        (small, True, [by_name["scheduler"]] if "scheduler" in only else []),
    ]
    max_len = max(w.total_prompt_len + w.output_len for w in [*plan.workloads, plan.baseline]) + 64
    results, limits = [], []
    for path, caching, workloads in groups:
        if not workloads:
            continue
        engine, recorder = make_engine(str(path), caching, max_len)
        warm_up(engine, recorder)
        results += [run_workload(engine, recorder, w) for w in workloads]
        if not limits and ({"decode", "prefill"} & only) and path == big:
            # The decode and prefill steps' matmuls alone, on the engine's own weights (issue 17).
            limits = workload_matmul_limits(engine.model_runner, by_name["decode"], by_name["prefill"], plan.repeats)
        del engine, recorder
        gc.collect()
    return results, limits


def _limits(plan, only) -> tuple:
    from worker.bench.attention import run_attention_bench
    from worker.bench.machine import measure_limits

    limits = measure_limits(plan.matmul_size, plan.copy_bytes, plan.repeats)
    return limits, run_attention_bench(plan.attention, plan.repeats) if "attention" in only else []


def _command(args: argparse.Namespace) -> str:
    words = ["worker", "bench", *(["--quick"] if args.quick else [])]
    if args.only != frozenset(GROUPS):
        words += ["--only", ",".join(g for g in GROUPS if g in args.only)]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    from worker.bench.attention import best_attention
    from worker.bench.guided import run_guided_bench
    from worker.bench.baseline import run_baseline
    from worker.bench.machine import best_limits, machine_info
    from worker.bench.models import model_dir
    from worker.bench.report import BenchReport, render
    from worker.bench.sampler import run_sampler_bench
    from worker.bench.workloads import full_plan, quick_plan

    start = time.perf_counter()
    plan = quick_plan() if args.quick else full_plan()
    # The dense 0.3B model only when a group runs it (`--only moe` needs just its own model).
    dense = args.only & {"decode", "prefill", "prefix", "baseline", "scheduler"}
    big = model_dir(args.model_cache, plan.big_model) if dense else None
    small = model_dir(args.model_cache, plan.small_model) if "scheduler" in args.only else big
    limits, attention = _limits(plan, args.only)
    results, matmul_limits = _engine_runs(plan, args.only, big, small)
    if "moe" in args.only:
        from worker.bench.moe import run_moe_bench

        results.append(run_moe_bench(args.model_cache, args.quick))
    if "baseline" in args.only:
        results.append(run_baseline(str(big), plan.baseline))
    after_limits, after_attention = _limits(plan, args.only)  # the host is shared: keep the best
    limits, attention = best_limits(limits, after_limits), best_attention(attention, after_attention)
    sampler = run_sampler_bench(64, plan.big_model.vocab_size, plan.repeats) if "sampler" in args.only else []
    guided = run_guided_bench(plan.big_model.vocab_size, plan.repeats) if "guided" in args.only else None
    report = BenchReport(
        command=_command(args),
        quick=args.quick, info=machine_info(), limits=limits, workloads=results, attention=attention,
        sampler=sampler, guided=guided, matmul_limits=matmul_limits, total_seconds=time.perf_counter() - start,
    )
    text = render(report)
    print(text)
    output = args.output or (None if args.quick else Path("benchmarks/RESULTS.md"))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + _kept_sections(output), encoding="utf-8")
    return 0


# Results of other benchmark scripts (benchmarks/*.py) live below this line and survive a rerun.
KEPT_MARKER = "<!-- results of other benchmarks below: kept by `worker bench` -->"


def _kept_sections(output: Path) -> str:
    old = output.read_text(encoding="utf-8") if output.exists() else ""
    return "" if KEPT_MARKER not in old else "\n" + KEPT_MARKER + old.split(KEPT_MARKER, 1)[1]
