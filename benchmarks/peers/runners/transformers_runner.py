"""HF transformers' `generate` on the bench model: one batch per workload (the bench's prompts
of a workload have equal lengths, so no padding), greedy, float32, torch threads = the cores.
EOS never stops a sequence (generation_config.eos_token_id = None), as `ignore_eos` elsewhere.
transformers keeps no cache across calls: the shared-prefix workload recomputes its prefix.
"""

import sys

import torch
import transformers
from common import read_job, run_all

job = read_job()
torch.set_num_threads(job["threads"])


def load():
    model = transformers.AutoModelForCausalLM.from_pretrained(job["model"], dtype=torch.float32)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model.eval()


def generate(model, workload):
    prompts = workload["prompts"]
    if len({len(p) for p in prompts}) != 1:
        raise SystemExit(f"workload {workload['name']}: prompts of unequal length would need padding")
    input_ids = torch.tensor(prompts, dtype=torch.long)
    n = workload["output_len"]
    with torch.inference_mode():
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=n,
                             do_sample=False)
    return out[:, input_ids.shape[1]:].tolist()


settings = {"dtype": "float32", "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "prefix_caching": "none across requests"}
run_all(job, "transformers", transformers.__version__, settings, load, generate)
sys.exit(0)
