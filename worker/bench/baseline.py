"""The baseline: paddleformers' Ernie4_5ForCausalLM.generate, configured as a user would.

KV cache on, greedy, EOS ignored (a fixed number of tokens, as ours), the whole workload in
one batch (the prompts have equal lengths, so no padding), under the same thread settings
(worker.platform sets them before paddle is imported, for both engines).
"""

import gc
import time

from worker.bench.engine_run import WorkloadResult
from worker.bench.flops import dense_generate_flops
from worker.bench.workloads import Workload
from worker.models.config import ModelConfig
from worker.platform import paddle


def _generate(model, prompts: list[list[int]], output_len: int) -> list[list[int]]:
    with paddle.no_grad():
        ids, _ = model.generate(
            input_ids=paddle.to_tensor(prompts, dtype="int64"), max_new_tokens=output_len,
            decode_strategy="greedy_search", use_cache=True, eos_token_id=-1,
        )
    return ids.numpy().tolist()


def run_baseline(model_dir: str, workload: Workload) -> WorkloadResult:
    from paddleformers.transformers import Ernie4_5ForCausalLM

    model = Ernie4_5ForCausalLM.from_pretrained(model_dir, fuse_rms_norm=False)
    model.eval()
    prompts = workload.prompts()
    _generate(model, prompts[:1], 2)  # warm-up, as ours gets
    start = time.perf_counter()
    outputs = _generate(model, prompts, workload.output_len)
    seconds = time.perf_counter() - start
    del model
    gc.collect()
    config = ModelConfig.from_pretrained(model_dir)
    return WorkloadResult(
        name=workload.name, engine="paddleformers", num_requests=len(prompts),
        prompt_tokens=sum(map(len, prompts)), output_tokens=sum(map(len, outputs)), seconds=seconds,
        model_flops=dense_generate_flops(config, workload.total_prompt_len, workload.output_len, len(prompts)),
        output_token_ids=outputs,
    )
