"""The `moe` group of `worker bench`: decode throughput of an ERNIE 4.5 MoE-shaped random model
whose active parameters match ERNIE_03B's (~0.36B with the embedding): the same attention, and
per MoE layer top-2 of 8 routed experts plus one shared expert, each 1024 wide, which is as
many MLP FLOPs per token as the dense model's 3072-wide SwiGLU. Layer 0 stays dense, as in
ERNIE 4.5 MoE. 0.68B parameters in all (2.5 GiB as float32 on CPU).

The workload is smaller than the dense `decode` one (32 requests of 64 + 64 tokens) so that
the group runs in about 3 minutes on 2 shared cores, the model's first write included; its
FLOPs count the active experts only (flops.py).
"""

import gc
from pathlib import Path

from worker.bench.engine_run import WorkloadResult, make_engine, run_workload, warm_up
from worker.bench.models import model_dir
from worker.bench.workloads import Workload
from worker.tiny_model import TinyModelSpec

MOE_03B_ACTIVE = TinyModelSpec(
    family="ernie4_5_moe", num_layers=18, hidden_size=1024, num_attention_heads=16, num_key_value_heads=2,
    head_dim=128, intermediate_size=3072, vocab_size=103424, max_position_embeddings=4096,
    num_experts=8, num_experts_per_tok=2, moe_intermediate_size=1024, moe_num_shared_experts=1, seed=6,
)
QUICK_MOE = TinyModelSpec(family="ernie4_5_moe", num_layers=2, hidden_size=128, num_attention_heads=8,
                          num_key_value_heads=2, intermediate_size=256, vocab_size=2048, num_experts=4,
                          num_experts_per_tok=2, moe_intermediate_size=64, seed=6)
MOE_DECODE = Workload(name="moe-decode", num_requests=32, prompt_len=64, output_len=64)
QUICK_MOE_DECODE = Workload(name="moe-decode", num_requests=4, prompt_len=16, output_len=8)


def run_moe_bench(cache: Path, quick: bool) -> WorkloadResult:
    spec, workload = (QUICK_MOE, QUICK_MOE_DECODE) if quick else (MOE_03B_ACTIVE, MOE_DECODE)
    path = model_dir(cache, spec)
    engine, recorder = make_engine(str(path), True, workload.total_prompt_len + workload.output_len + 64)
    warm_up(engine, recorder)
    result = run_workload(engine, recorder, workload)
    del engine, recorder
    gc.collect()
    return result
