"""Prompt logprobs equal the log-softmax of paddleformers' logits of a full forward pass, at
each prompt position for the next prompt token (plus the same top k), under chunked prefill,
preemption and a prefix cache that already holds the prompts."""

import numpy as np
import pytest

from tests.e2e.conftest import CONFIGS, model_dir, random_prompts
from tests.model.conftest import reference_logits
from worker.engine.engine_args import EngineArgs
from worker.engine.llm_engine import LLMEngine
from worker.sampling_params import SamplingParams

K = 3
PROMPT_LENGTHS = [3, 17, 40, 64, 65, 9, 100, 31]
REGIMES = {
    # the prompts are run once without prompt logprobs first, so every block of them is cached
    "prefix-cache-warm": dict(enable_prefix_caching=True),
    "chunked-prefill": dict(max_num_batched_tokens=24, max_num_seqs=8),
    "preemption": dict(block_size=16, num_gpu_blocks_override=16, max_model_len=256),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def case(request, model_root):
    path = model_dir(model_root, request.param)
    prompts = random_prompts(CONFIGS[request.param]["seed"] + 1, len(PROMPT_LENGTHS), PROMPT_LENGTHS)
    return path, prompts, reference_logits(path, prompts)


def _run(engine: LLMEngine, prompts: list[list[int]], params: SamplingParams, tag: str) -> list:
    for i, prompt in enumerate(prompts):
        engine.add_request(f"{tag}{i}", None, params, prompt_token_ids=prompt)
    seqs = [seq for i in range(len(prompts)) for seq in engine.requests[f"{tag}{i}"].seqs]
    done = {}
    while engine.has_unfinished_requests():
        done.update((out.request_id, out) for out in engine.step())
    return [done[f"{tag}{i}"] for i in range(len(prompts))], seqs


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    top = x.max(axis=-1, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_prompt_logprobs_match_paddleformers(case, regime):
    path, prompts, ref = case
    args = {"max_model_len": 512, "max_num_seqs": 8, "block_size": 16, **REGIMES[regime]}
    engine = LLMEngine(EngineArgs(model=str(path), **args))
    if regime == "prefix-cache-warm":
        _run(engine, prompts, SamplingParams(temperature=0, max_tokens=1), "warm")
    params = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True, n=2, prompt_logprobs=K)
    outputs, seqs = _run(engine, prompts, params, "r")
    for prompt, out, logits in zip(prompts, outputs, ref):
        want = _log_softmax(logits)  # [L, V]: position p predicts token p + 1
        got = out.prompt_logprobs
        assert len(got) == len(prompt) and got[0] is None
        for p in range(1, len(prompt)):
            entry, row = got[p], want[p - 1]
            assert entry[prompt[p]] == pytest.approx(row[prompt[p]], abs=1e-4)
            assert list(entry)[:K] == np.argsort(-row, kind="stable")[:K].tolist()
            assert [entry[t] for t in list(entry)[:K]] == pytest.approx(np.sort(row)[::-1][:K], abs=1e-4)
    if regime == "prefix-cache-warm":  # the first completion refused the hit, its sibling took it
        assert all(out.outputs and seq.num_cached_tokens == 0 for out, seq in zip(outputs, seqs[::2]))
        assert any(seq.num_cached_tokens > 0 for seq in seqs[1::2])
    if regime == "preemption":
        assert sum(seq.num_preemptions for seq in seqs) > 0, "the small cache did not force a preemption"
    if regime == "chunked-prefill":
        assert max(map(len, prompts)) > REGIMES[regime]["max_num_batched_tokens"]
