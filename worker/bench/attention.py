"""Paged decode attention alone: every CPU backend on the same cache, GB/s of K/V read."""

import numpy as np
from pydantic import BaseModel

from kernels import UnknownBackendError, get_backend, list_backends
from worker.bench.machine import best_time
from worker.bench.workloads import AttentionBench
from worker.platform import Platform, paddle


class AttentionResult(BaseModel):
    backend: str
    seconds: float
    kv_bytes: int

    @property
    def gbps(self) -> float:
        return self.kv_bytes / self.seconds / 1e9


def attention_inputs(b: AttentionBench):
    rng = np.random.default_rng(0)
    blocks_per_seq = -(-b.context_len // b.block_size)
    num_blocks = b.num_seqs * blocks_per_seq + 1
    shape = [num_blocks, b.num_kv_heads, b.block_size, b.head_dim]
    # Scattered blocks, as a long-running cache hands them out.
    tables = (rng.permutation(num_blocks - 1) + 1).reshape(b.num_seqs, blocks_per_seq).astype(np.int32)
    return (
        paddle.randn([b.num_seqs, b.num_heads, b.head_dim], dtype="float32"),
        paddle.randn(shape, dtype="float32"), paddle.randn(shape, dtype="float32"),
        np.arange(b.num_seqs + 1, dtype=np.int32), np.full(b.num_seqs, b.context_len, np.int32), tables,
    )


def kv_bytes_read(b: AttentionBench) -> int:
    """Bytes of K and V (float32) one decode call reads: every sequence's whole context."""
    return 2 * b.num_seqs * b.context_len * b.num_kv_heads * b.head_dim * 4


def run_attention_bench(bench: AttentionBench, repeats: int) -> list[AttentionResult]:
    cpu = Platform(device="cpu", dtype="float32")
    query, k_cache, v_cache, qsl, lens, tables = attention_inputs(bench)
    kv_bytes = kv_bytes_read(bench)
    results = []
    for name in list_backends():
        try:
            backend = get_backend(name, cpu)
        except (UnknownBackendError, RuntimeError):  # not for this device, or cannot build here
            continue

        def run():
            backend.paged_attention(query, k_cache, v_cache, qsl, lens, tables, bench.head_dim**-0.5).numpy()

        results.append(AttentionResult(backend=name, seconds=best_time(run, repeats), kv_bytes=kv_bytes))
    return results


def best_attention(a: list[AttentionResult], b: list[AttentionResult]) -> list[AttentionResult]:
    """Per backend, the faster of two measurements."""
    faster = {r.backend: r for r in a}
    for r in b:
        if r.backend not in faster or r.seconds < faster[r.backend].seconds:
            faster[r.backend] = r
    return list(faster.values())
