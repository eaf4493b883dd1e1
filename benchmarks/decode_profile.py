"""Where one 64-sequence decode step and one prefill step of `worker bench` go (issue 17).

On the bench's 0.3B-shaped ERNIE model: the decode workload (64 x 128 prompt, greedy) is run
into its decode phase; its engine steps give the sampler's and the host's share; then one
decode batch and one prefill batch (the prefill workload's first step: 4 x 512 tokens) are
profiled part by part (worker/bench/step_profile.py) with packed weights (the default) and
with plain ones (BATCHINFER_PACKED_WEIGHTS=0), alternating in the same process, next to the
2048^2 matmul peak. Prints markdown tables.

    MKL_DEBUG_CPU_TYPE=5 .venv/bin/python benchmarks/decode_profile.py [--rounds 7]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from worker.bench.engine_run import greedy
from worker.bench.machine import matmul_peak_gflops
from worker.bench.models import model_dir
from worker.bench.step_profile import Part, profile_step
from worker.bench.workloads import ERNIE_03B, Workload
from worker.engine.engine_args import EngineArgs
from worker.engine.llm_engine import LLMEngine
from worker.engine.model_runner import ModelRunner
from worker.logs import configure_logging, get_logger

log = get_logger(__name__)


def capture(engine: LLMEngine, workload: Workload, steps: int) -> tuple[list, dict]:
    """Run `workload` for `steps` engine steps; the batches seen and per-step step/forward/sampler s."""
    runner, sampler, seen = engine.model_runner, engine.sampler, {"step": [], "forward": [], "sampler": []}
    batches, execute, sample = [], runner.execute, sampler.__call__

    def timed(key, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        seen[key].append(time.perf_counter() - start)
        return out

    runner.execute = lambda batch: (batches.append(batch), timed("forward", execute, batch))[1]
    engine.sampler = lambda *args: timed("sampler", sample, *args)
    for i, prompt in enumerate(workload.prompts()):
        engine.add_request(f"{workload.name}-{i}", None, greedy(workload.output_len), prompt_token_ids=prompt)
    for _ in range(steps):
        timed("step", engine.step)
    runner.execute, engine.sampler = execute, sampler
    for i in range(workload.num_requests):
        if f"{workload.name}-{i}" in engine.requests:  # not finished yet
            engine.abort_request(f"{workload.name}-{i}")
    return batches, seen


def plain_runner(engine: LLMEngine, model: Path) -> ModelRunner:
    """The same model with plain weights, sharing the engine's KV caches."""
    os.environ["BATCHINFER_PACKED_WEIGHTS"] = "0"
    packed = engine.model_runner
    plain = ModelRunner(model, packed.platform, packed.block_size, 1, packed.max_num_batched_tokens)
    os.environ["BATCHINFER_PACKED_WEIGHTS"] = "1"
    plain.kv_caches, plain.num_blocks = packed.kv_caches, packed.num_blocks
    return plain


def alternate(runners: dict[str, ModelRunner], batch, rounds: int) -> tuple[dict[str, list[Part]], list[float]]:
    """Each runner's parts, one round at a time in turn, with the matmul peak between rounds."""
    parts: dict[str, list[Part]] = {}
    peaks = []
    for r in range(rounds):
        order = list(runners.items())
        for name, runner in order if r % 2 == 0 else order[::-1]:  # ABBA: neither always goes first
            got = profile_step(runner, batch, 1, warmup=r == 0)
            if name not in parts:
                parts[name] = got
            else:
                for mine, new in zip(parts[name], got):
                    mine.seconds += new.seconds
        peaks.append(matmul_peak_gflops(2048, 2))
    return parts, peaks


def table(title: str, parts: dict[str, list[Part]], peak: float) -> str:
    names = list(parts)
    head = " | ".join(f"{n} min / median ms | {n} GFLOP/s (% of peak)" for n in names)
    lines = [f"### {title}", "", f"| part | {head} |", "|---|" + "---:|---:|" * len(names)]
    for i, part in enumerate(parts[names[0]]):
        cells = []
        for n in names:
            p = parts[n][i]
            rate = f"{p.flops / p.min_ms / 1e6:.1f} ({p.flops / p.min_ms / 1e4 / peak:.0f}%)" if p.flops else ""
            cells.append(f"{p.min_ms:.1f} / {p.median_ms:.1f} | {rate}")
        lines.append(f"| {part.name} | {' | '.join(cells)} |")
    for n in names:
        mm = [p for p in parts[n] if p.flops]
        ms, flops = sum(p.min_ms for p in mm), sum(p.flops for p in mm)
        lines.append(f"\n{n}: all matmuls {ms:.1f} ms (sum of mins), {flops / ms / 1e6:.1f} GFLOP/s = "
                     f"{100 * flops / ms / 1e6 / peak:.0f}% of the 2048^2 peak")
    return "\n".join(lines) + "\n"


def step_shares(seen: dict, decode_rows: list[int]) -> str:
    step = [seen["step"][i] for i in decode_rows]
    forward = [seen["forward"][i] for i in decode_rows]
    sampler = [seen["sampler"][i] for i in decode_rows]
    host = [s - f - m for s, f, m in zip(step, forward, sampler)]
    rows = [("engine.step", step), ("forward (runner.execute)", forward), ("sampler", sampler),
            ("host: scheduler, input batch, detokenizer", host)]
    body = "\n".join(f"| {n} | {1e3 * min(x):.2f} / {1e3 * statistics.median(x):.2f} |" for n, x in rows)
    title = f"### Decode engine steps ({len(step)} steps of 64 sequences)"
    return f"{title}\n\n| part | min / median ms |\n|---|---:|\n{body}\n"


def main() -> None:
    os.environ["BATCHINFER_PACKED_WEIGHTS"] = "1"  # the engine packed, plain_runner's copy not
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--prefill-rounds", type=int, default=3)
    args = parser.parse_args()
    configure_logging()
    model = model_dir(Path(".cache/bench"), ERNIE_03B)
    engine = LLMEngine(EngineArgs(model=str(model), max_model_len=1024, max_num_seqs=64, enable_prefix_caching=False))
    decode = Workload(name="decode", num_requests=64, prompt_len=128, output_len=128)
    batches, seen = capture(engine, decode, 4 + 12)  # 4 prefill steps of 2048 tokens, then decode
    decode_rows = [i for i, b in enumerate(batches) if b.num_tokens == b.num_seqs == 64]
    prefill_batches, _ = capture(engine, Workload(name="prefill", num_requests=16, prompt_len=512, output_len=1), 1)
    runners = {"packed": engine.model_runner, "plain": plain_runner(engine, model)}
    log.info("profiling", decode_seq_len=int(batches[decode_rows[-1]].seq_lens.max()))
    out = [step_shares(seen, decode_rows[1:])]
    parts, peaks = alternate(runners, batches[decode_rows[-1]], args.rounds)
    out.append(f"2048^2 matmul peak in the same run: {max(peaks):.1f} GFLOP/s (best), "
               f"{statistics.median(peaks):.1f} (median)\n")
    out.append(table("Decode step: 64 sequences", parts, max(peaks)))
    parts, peaks2 = alternate(runners, prefill_batches[0], args.prefill_rounds)
    out.append(table(f"Prefill step: {prefill_batches[0].num_tokens} tokens", parts, max(peaks + peaks2)))
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
