"""How fast can the paged KV cache be read here at all? (issue 6, the attention target)

Runs, on the `worker bench` attention shape (64 sequences x 2048 tokens, 2 KV heads, head dim
128, blocks of 64, scattered), a read-only probe (benchmarks/kv_read_probe.cc: sums the blocks
in the kernel's order, nothing else) on 1 and 2 threads, the `cpu` attention backend, and the
copy bandwidth as `worker bench` measures it; prints GB/s and each against copy bandwidth.

    .venv/bin/python benchmarks/kv_read_limit.py
"""

import contextlib
import sys
import tempfile
from pathlib import Path

from kernels import get_backend
from kernels.cpu.build import CXX_FLAGS, LD_FLAGS, target
from worker.bench.attention import attention_inputs, kv_bytes_read
from worker.bench.machine import best_time, copy_bandwidth_gbps
from worker.bench.workloads import full_plan
from worker.platform import Platform, paddle

REPEATS = 10


def load_probe(build_dir: Path) -> None:
    from paddle.utils.cpp_extension import load

    with contextlib.redirect_stdout(sys.stderr):
        load(name="bi_kv_read_probe", sources=[str(Path(__file__).with_name("kv_read_probe.cc"))],
             extra_cxx_cflags=[*CXX_FLAGS, target()[0]], extra_ldflags=LD_FLAGS,
             build_directory=str(build_dir), verbose=False)


def main() -> None:
    bench = full_plan().attention
    query, k_cache, v_cache, qsl, lens, tables = attention_inputs(bench)
    kv_bytes = kv_bytes_read(bench)
    with tempfile.TemporaryDirectory() as build_dir:
        load_probe(Path(build_dir))
    run = paddle._C_ops._run_custom_op
    lens_t, tables_t = paddle.to_tensor(lens), paddle.to_tensor(tables)
    rows = []
    for threads in (1, 2):
        seconds = best_time(lambda t=threads: run("bi_kv_read_probe", k_cache, v_cache, lens_t, tables_t, t)[0]
                            .numpy(), REPEATS)
        rows.append((f"read-only probe, {threads} thread(s)", seconds))
    cpu = get_backend("cpu", Platform(device="cpu", dtype="float32"))
    rows.append(("cpu attention backend", best_time(
        lambda: cpu.paged_attention(query, k_cache, v_cache, qsl, lens, tables, bench.head_dim**-0.5).numpy(),
        REPEATS)))
    copy = copy_bandwidth_gbps(256 << 20, REPEATS)
    print(f"copy bandwidth (read + write): {copy:.1f} GB/s; the attention target is 50% = {copy / 2:.1f} GB/s\n")
    print("| reader of the KV cache | ms | GB/s | % of copy bandwidth |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows:
        gbps = kv_bytes / seconds / 1e9
        print(f"| {name} | {seconds * 1e3:.2f} | {gbps:.1f} | {100 * gbps / copy:.0f}% |")


if __name__ == "__main__":
    main()
