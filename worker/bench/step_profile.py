"""Where one engine step goes: each part of the forward timed alone at the step's real shapes
(the matmuls per projection, the attention op, the small ops), against the whole forward.

Parts are timed round-robin, `rounds` times each, so load from other processes on a shared
host spreads over all of them alike; min and median are reported. The parts do what the
decoder does for the step, layer by layer, on the model's own weights and KV caches.
"""

import statistics
import time
from dataclasses import dataclass

import numpy as np

from worker.engine.input_batch import InputBatch
from worker.engine.model_runner import ModelRunner
from worker.platform import paddle

_C = paddle._C_ops


@dataclass
class Part:
    name: str
    flops: int  # 0 for parts that are not matmuls
    seconds: list[float]

    @property
    def min_ms(self) -> float:
        return 1e3 * min(self.seconds)

    @property
    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.seconds)


def matmul_parts(runner: ModelRunner, rows: int, sampled: int) -> list[tuple[str, int, object]]:
    """(name, FLOPs, closure) of every projection of the step, all layers, and the LM head."""
    model, c = runner.model, runner.config
    dense = [layer for layer in model.layers if layer.moe is None]
    parts = []
    for attr in ("qkv", "o", "gate_up", "down"):
        linears = [getattr(layer, attr) for layer in dense]
        k = linears[0].packed.k if linears[0].packed else linears[0].weight.shape[-2]
        n = linears[0].packed.n if linears[0].packed else linears[0].weight.shape[-1]
        x = paddle.randn([rows, k], dtype="float32")

        def run(linears=linears, x=x):
            for lin in linears:
                lin(x)
        parts.append((f"matmul {attr} {k}x{n}, M={rows}, x{len(linears)}", 2 * rows * k * n * len(linears), run))
    head, h = model.lm_head, paddle.randn([sampled, c.hidden_size], dtype="float32")
    parts.append((f"LM head {c.hidden_size}x{c.vocab_size}, M={sampled}", 2 * sampled * c.hidden_size * c.vocab_size,
                  lambda: head(h)))
    return parts


def small_op_parts(runner: ModelRunner, batch: InputBatch) -> list[tuple[str, int, object]]:
    """The attention op, write_kv and the per-layer small ops, each over all layers."""
    model, c, t = runner.model, runner.config, batch.num_tokens
    n_layers, backend, caches = len(model.layers), model.backend, runner.kv_caches
    heads = model._qkv_split
    q = paddle.randn([t, c.num_attention_heads, c.head_dim], dtype="float32")
    kv = paddle.randn([t, c.num_key_value_heads, c.head_dim], dtype="float32")
    h = paddle.randn([t, c.hidden_size], dtype="float32")
    qkv = paddle.randn([t, sum(heads) * c.head_dim], dtype="float32")
    gate_up = paddle.randn([t, 2 * c.intermediate_size], dtype="float32")
    slots = paddle.to_tensor(np.asarray(batch.slot_mapping, np.int64))
    args = (np.asarray(batch.query_start_loc, np.int32), np.asarray(batch.seq_lens, np.int32),
            np.asarray(batch.block_tables, np.int32), model.scale)
    positions = np.asarray(batch.positions, np.int64)

    def attention():
        for k_cache, v_cache in caches:
            backend.paged_attention(q, k_cache, v_cache, *args)

    def write_kv():
        for k_cache, v_cache in caches:  # rewrites this step's slots: the step writes them anyway
            backend.write_kv(k_cache, v_cache, kv, kv, slots)

    def rmsnorm():
        for _ in range(2 * n_layers + 1):
            model.rms_normalize(h)

    def rotary_split():
        from worker.models.rotary import apply_rotary

        turns = model.rotary.turns(positions, heads[0] + heads[1], sum(heads))
        for _ in range(n_layers):
            _C.split(_C.reshape(apply_rotary(qkv, turns), [0, 0, -1]), heads, 1)

    def paddle_swiglu():
        for _ in range(n_layers):
            gate, up = _C.split_with_num(gate_up, 2, 1)
            _C.multiply(_C.silu(gate), up)

    def swiglu():
        for _ in range(n_layers):
            model.swiglu(gate_up)

    return [(f"paged attention op x{n_layers}", 0, attention), (f"write_kv x{n_layers}", 0, write_kv),
            (f"rmsnorm x{2 * n_layers + 1}", 0, rmsnorm), (f"rotary + split x{n_layers}", 0, rotary_split),
            (f"swiglu as Paddle ops (split, silu, multiply) x{n_layers}", 0, paddle_swiglu),
            (f"swiglu as the model runs it x{n_layers}", 0, swiglu)]


def profile_step(runner: ModelRunner, batch: InputBatch, rounds: int, warmup: bool = True) -> list[Part]:
    """Every part, and the whole forward (runner.execute, logits to host included), timed."""
    sampled = len(batch.sample_indices)
    named = [("forward (runner.execute)", 0, lambda: runner.execute(batch)),
             *matmul_parts(runner, batch.num_tokens, sampled), *small_op_parts(runner, batch)]
    parts = [Part(name, flops, []) for name, flops, _ in named]
    with paddle.no_grad():
        for _, _, fn in named if warmup else []:  # first calls allocate
            fn()
        for _ in range(rounds):
            for part, (_, _, fn) in zip(parts, named):
                start = time.perf_counter()
                fn()
                part.seconds.append(time.perf_counter() - start)
    return parts
