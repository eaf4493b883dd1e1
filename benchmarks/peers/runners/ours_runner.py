"""batchinfer's engine on the bench model, in the project's virtualenv, through the same job
and result files as the peers: LLMEngine, greedy, EOS ignored, float32, the `cpu` backend."""

import os
import sys
from importlib.metadata import version

from common import read_job, run_all

job = read_job()
os.environ.setdefault("OMP_NUM_THREADS", str(job["threads"]))

from worker.engine.engine_args import EngineArgs  # noqa: E402  (paddle reads OMP_NUM_THREADS)
from worker.engine.llm_engine import LLMEngine  # noqa: E402
from worker.platform import paddle  # noqa: E402
from worker.sampling_params import SamplingParams  # noqa: E402

CACHING = job["prefix_caching"]


def load():
    return LLMEngine(EngineArgs(model=job["model"], max_model_len=job["max_model_len"], max_num_seqs=64,
                                enable_prefix_caching=CACHING))


def generate(engine, workload):
    params = SamplingParams(temperature=0, max_tokens=workload["output_len"], ignore_eos=True)
    tag = f"{workload['name']}-{len(workload['prompts'])}-{id(workload)}"
    for i, prompt in enumerate(workload["prompts"]):
        engine.add_request(f"{tag}-{i}", None, params, prompt_token_ids=prompt)
    finished = {}
    while engine.has_unfinished_requests():
        finished.update((out.request_id, out) for out in engine.step())
    return [list(finished[f"{tag}-{i}"].outputs[0].token_ids) for i in range(len(workload["prompts"]))]


settings = {"dtype": "float32", "OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"],
            "MKL_DEBUG_CPU_TYPE": os.environ.get("MKL_DEBUG_CPU_TYPE", "unset"), "paddle": paddle.__version__,
            "max_num_seqs": 64, "prefix_caching": CACHING}
run_all(job, "ours", version("batchinfer"), settings, load, generate)
sys.exit(0)
