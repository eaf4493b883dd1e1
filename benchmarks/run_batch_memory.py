"""Peak RSS of `worker run-batch` on 1,000 and 100,000 lines: memory must not grow with the file.

Usage: .venv/bin/python benchmarks/run_batch_memory.py [--lines 1000 100000] [--model DIR]
Prints a table with the peak RSS of each run and the difference to the smallest one.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(sys.executable).parent / "worker"


def write_input(path: Path, lines: int) -> None:
    with path.open("w") as f:
        for i in range(lines):
            body = {"messages": [{"role": "user", "content": f"Tell me a fun fact. (id={i})"}], "max_tokens": 1}
            f.write(json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n")


def peak_rss_kib(cmd: list[str]) -> int:
    """Run cmd as a child and return its peak resident set size (ru_maxrss of the waited child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert after >= before, "ru_maxrss is a running maximum over waited children"
    return after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--model", default=str(ROOT / ".cache/tiny-model"))
    args = parser.parse_args()
    if not (Path(args.model) / "config.json").exists():
        subprocess.run([str(WORKER), "make-tiny-model", args.model], check=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for lines in sorted(args.lines):  # ascending: ru_maxrss of children only ever grows
            src, dst = Path(tmp) / f"in{lines}.jsonl", Path(tmp) / f"out{lines}.jsonl"
            write_input(src, lines)
            cmd = [str(WORKER), "run-batch", "-i", str(src), "-o", str(dst), "--model", args.model,
                   "--no-progress", "--num-gpu-blocks-override", "1024", "--max-model-len", "512"]
            rows.append((lines, peak_rss_kib(cmd)))
            assert sum(1 for _ in dst.open()) == lines, "output lines != input lines"
    base = rows[0][1]
    print(f"{'lines':>9} | {'peak RSS (MB)':>13} | {'vs smallest (MB)':>16}")
    for lines, rss in rows:
        print(f"{lines:>9} | {rss / 1024:>13.1f} | {(rss - base) / 1024:>+16.1f}")


if __name__ == "__main__":
    main()
