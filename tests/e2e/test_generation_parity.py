"""Greedy generation through LLM equals paddleformers' generate, token for token, under every
scheduling regime: prefix caching on and off, a KV cache small enough to preempt, and a token
budget small enough to chunk prefills."""

import pytest

from tests.e2e.conftest import CONFIGS, model_dir, random_prompts, reference_greedy
from worker.engine.engine_args import EngineArgs
from worker.engine.llm_engine import LLMEngine
from worker.sampling_params import SamplingParams

NUM_PROMPTS = 8
MAX_NEW_TOKENS = 32
PROMPT_LENGTHS = [3, 17, 40, 64, 65, 9, 100, 31]

REGIMES = {
    "prefix-cache-on": dict(enable_prefix_caching=True),
    "prefix-cache-off": dict(enable_prefix_caching=False),
    # 16 blocks of 16 tokens cannot hold 8 sequences of up to 132 tokens: preemption by recompute.
    "preemption": dict(block_size=16, num_gpu_blocks_override=16, max_model_len=256),
    # 24 tokens per step: every prompt longer than that is prefilled in chunks.
    "chunked-prefill": dict(max_num_batched_tokens=24, max_num_seqs=8),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def case(request, model_root):
    path = model_dir(model_root, request.param)
    prompts = random_prompts(CONFIGS[request.param]["seed"], NUM_PROMPTS, PROMPT_LENGTHS)
    expected = reference_greedy(path, prompts, MAX_NEW_TOKENS)
    return path, prompts, expected


def run_engine(path, prompts, **engine_kwargs):
    args = {"max_model_len": 512, "max_num_seqs": 8, "block_size": 16, **engine_kwargs}
    engine = LLMEngine(EngineArgs(model=str(path), **args))
    params = SamplingParams(temperature=0, max_tokens=MAX_NEW_TOKENS, ignore_eos=True)
    seqs = []
    for i, prompt in enumerate(prompts):
        engine.add_request(str(i), None, params, prompt_token_ids=prompt)
        seqs += engine.requests[str(i)].seqs
    finished = {}
    while engine.has_unfinished_requests():
        finished.update((out.request_id, out) for out in engine.step())
    return [finished[str(i)] for i in range(len(prompts))], seqs


@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_greedy_tokens_match_paddleformers(case, regime):
    path, prompts, expected = case
    outputs, seqs = run_engine(path, prompts, **REGIMES[regime])
    for i, (out, want) in enumerate(zip(outputs, expected)):
        assert out.prompt_token_ids == prompts[i]
        assert out.outputs[0].token_ids == want, f"prompt {i} (len {len(prompts[i])}) diverged"
        assert out.outputs[0].finish_reason == "length"
    if regime == "preemption":
        assert sum(seq.num_preemptions for seq in seqs) > 0, "the small cache did not force a preemption"
    if regime == "chunked-prefill":
        assert max(map(len, prompts)) > REGIMES[regime]["max_num_batched_tokens"]
