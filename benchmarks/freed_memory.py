"""What glibc's mapping of every large block fresh costs a prefill-heavy run (issue 17).

Runs the prefill-heavy workload (16 x 512 prompt tokens, 1 output) on the bench's 0.3B-shaped
ERNIE model in one fresh process per round: glibc keeping freed memory (the worker's default,
worker/platform.py) or left at its own defaults (BATCHINFER_KEEP_FREED_MEMORY=0), in ABBA order
so the machine's drift falls on both; each round's seconds (model loaded and warmed up first)
and minor page faults, then min / median per setting and their ratio.

    MKL_DEBUG_CPU_TYPE=5 OMP_NUM_THREADS=2 .venv/bin/python benchmarks/freed_memory.py [--rounds 4]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

PREFILL = dict(name="prefill", num_requests=16, prompt_len=512, output_len=1)


def one_round() -> None:
    """In the child: one measured run of the workload, as JSON on the last line of stdout."""
    from worker.bench.engine_run import make_engine, run_workload, warm_up
    from worker.bench.models import model_dir
    from worker.bench.workloads import ERNIE_03B, Workload
    from worker.logs import configure_logging

    configure_logging(level="warning", json_format=False)
    engine, recorder = make_engine(str(model_dir(Path(".cache/bench"), ERNIE_03B)), False, 1024)
    warm_up(engine, recorder)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    seconds = run_workload(engine, recorder, Workload(**PREFILL)).seconds
    print(json.dumps({"seconds": seconds, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="runs per setting (ABBA order)")
    args = parser.parse_args()
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for r in range(2 * args.rounds):
        keep = r % 4 in (1, 2)  # default, keep, keep, default, ...
        env = os.environ | {"BATCHINFER_KEEP_FREED_MEMORY": "1" if keep else "0"}
        out = subprocess.run([sys.executable, __file__, "--one-round"], env=env, capture_output=True, text=True,
                             check=True, timeout=1800)
        runs[keep].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"round {r}: keep freed memory={keep}: {runs[keep][-1]['seconds']:.2f} s, "
              f"{runs[keep][-1]['faults']} minor faults", flush=True)
    print("| glibc malloc | minor faults per run | seconds, min | seconds, median |\n|---|---:|---:|---:|")
    for keep, label in ((False, "its defaults (BATCHINFER_KEEP_FREED_MEMORY=0)"), (True, "keep freed memory")):
        seconds, faults = [x["seconds"] for x in runs[keep]], [x["faults"] for x in runs[keep]]
        print(f"| {label} | {min(faults):,}-{max(faults):,} | {min(seconds):.2f} | {statistics.median(seconds):.2f} |")
    off, on = ([x["seconds"] for x in runs[k]] for k in (False, True))
    print(f"defaults / keep: {min(off) / min(on):.3f} at the min, {statistics.median(off) / statistics.median(on):.3f} "
          "at the median")


if __name__ == "__main__":
    one_round() if sys.argv[1:] == ["--one-round"] else main()
