"""The `cpu` attention op's two Q.K / P.V paths on the bench model's shapes (issue 17).

A work item's rows (query tokens x heads of a kv group) take Q.K and P.V either as the panel
GEMM's register tiles over K transposed 16 keys at a time, or row by row; the op picks by row
count (kernels/cpu/backend.py, TILED_ROWS), and the tiles are AVX-512 ones where the CPU has
AVX-512F. This forces each path (and each tile width the CPU runs) on a prefill step's attention
(4 sequences x 512 tokens: 128-row items, 16 tokens x 8 heads) and on `worker bench`'s decode call (64 sequences x
2048 context: 8-row items), alternating in one process; prints min / median ms and the ratios.

    MKL_DEBUG_CPU_TYPE=5 OMP_NUM_THREADS=2 .venv/bin/python benchmarks/attention_tiles.py [--rounds 9]
"""

import argparse
import statistics
import time

import numpy as np

from kernels import get_backend
from kernels.cpu.build import cpu_flags
from worker.bench.attention import attention_inputs
from worker.bench.workloads import ERNIE_03B, full_plan
from worker.platform import Platform, paddle

# (tiled_rows, wide) forcing each path
PATHS = {"tiled, AVX-512 tiles": (1, True), "tiled, AVX2 tiles": (1, False),
         "Q.K row by row, P.V in AVX-512 tiles": (10**9, True), "row by row": (10**9, False)}


def prefill_inputs(num_seqs: int = 4, seq_len: int = 512, block_size: int = 64):
    """One prefill step's attention: every sequence's whole prompt, causal, in scattered blocks."""
    spec, rng = ERNIE_03B, np.random.default_rng(0)
    num_blocks = num_seqs * seq_len // block_size + 1
    tables = (rng.permutation(num_blocks - 1) + 1).reshape(num_seqs, -1).astype(np.int32)
    cache = [num_blocks, spec.num_key_value_heads, block_size, spec.head_dim]
    return (paddle.randn([num_seqs * seq_len, spec.num_attention_heads, spec.head_dim]), paddle.randn(cache),
            paddle.randn(cache), (np.arange(num_seqs + 1) * seq_len).astype(np.int32),
            np.full(num_seqs, seq_len, np.int32), tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    backend = get_backend("cpu", Platform(device="cpu", dtype="float32"))
    scale = ERNIE_03B.head_dim**-0.5
    print("| call | path | min ms | median ms |\n|---|---|---:|---:|")
    for name, inputs in (("prefill 4 x 512 (128-row items)", prefill_inputs()),
                         ("decode 64 x 2048 (8-row items)", attention_inputs(full_plan().attention))):
        paths = {p: v for p, v in PATHS.items() if not v[1] or "avx512f" in cpu_flags()}

        def call(path):
            tiled_rows, wide = paths[path]
            return backend.paged_attention(*inputs, scale, tiled_rows=tiled_rows, wide=wide).numpy()
        outs = {p: call(p) for p in paths}
        assert all(np.allclose(o, outs["row by row"], rtol=1e-4, atol=1e-5) for o in outs.values()), "paths disagree"
        ms: dict[str, list[float]] = {p: [] for p in paths}
        for r in range(args.rounds):
            for path in list(paths) if r % 2 == 0 else reversed(list(paths)):
                start = time.perf_counter()
                call(path)
                ms[path].append(1e3 * (time.perf_counter() - start))
        first = next(iter(paths))
        for path, t in ms.items():
            print(f"| {name} | {path} | {min(t):.1f} | {statistics.median(t):.1f} |")
        for path in list(paths)[1:]:
            print(f"| {name} | {path} / {first} | {min(ms[path]) / min(ms[first]):.2f} "
                  f"| {statistics.median(ms[path]) / statistics.median(ms[first]):.2f} |")

if __name__ == "__main__":
    main()
