"""Same-step prefix hits on the real model: a request admitted in the step that computes the
shared prefix reads K/V another request writes in that very forward pass. Greedy tokens must
still equal paddleformers', for every attention backend (they read the blocks in place)."""

import pytest

from tests.e2e.conftest import CONFIGS, model_dir, random_prompts, reference_greedy
from worker.engine.engine_args import EngineArgs
from worker.engine.llm_engine import LLMEngine
from worker.sampling_params import SamplingParams

BLOCK = 16
MAX_NEW_TOKENS = 8
PREFIX_BLOCKS = 3

REGIMES = {
    # One step admits all four: requests 2-4 hit the prefix request 1 is computing.
    "one-step": dict(max_num_batched_tokens=512),
    # 40 tokens per step: request 1's prefix comes in chunks; a block is shared only once the
    # chunk that fills it is scheduled, and request 2 is admitted in that same step.
    "chunked": dict(max_num_batched_tokens=40),
}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    path = model_dir(tmp_path_factory.mktemp("same-step"), "gqa2-l2")
    prefix = random_prompts(CONFIGS["gqa2-l2"]["seed"], 1, [PREFIX_BLOCKS * BLOCK])[0]
    prompts = [prefix + tail for tail in random_prompts(3, 4, [5, 1, 16, 9])]
    return path, prompts, reference_greedy(path, prompts, MAX_NEW_TOKENS)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_same_step_prefix_hits_match_paddleformers(case, regime, backend):
    path, prompts, expected = case
    engine = LLMEngine(EngineArgs(model=str(path), max_model_len=256, max_num_seqs=4, block_size=BLOCK,
                                  attention_backend=backend, **REGIMES[regime]))
    params = SamplingParams(temperature=0, max_tokens=MAX_NEW_TOKENS, ignore_eos=True)
    for i, prompt in enumerate(prompts):
        engine.add_request(str(i), None, params, prompt_token_ids=prompt)
    seqs = [engine.requests[str(i)].seqs[0] for i in range(len(prompts))]
    finished, trace = {}, []
    while engine.has_unfinished_requests():
        before = seqs[0].num_computed_tokens
        finished.update((out.request_id, out) for out in engine.step())
        trace.append((before, seqs[1].num_computed_tokens))
    # The step that admits request 1 (its progress leaves 0) is the one in which request 0
    # computes the end of the shared prefix: the hit is on blocks written in that same step.
    admitted = next(i for i, (_, progress) in enumerate(trace) if progress > 0)
    assert trace[admitted][0] < PREFIX_BLOCKS * BLOCK
    assert admitted == (0 if regime == "one-step" else 1)
    outs = [finished[str(i)] for i in range(len(prompts))]
    assert [o.num_cached_tokens for o in outs] == [0] + [PREFIX_BLOCKS * BLOCK] * 3
    for i, (out, want) in enumerate(zip(outs, expected)):
        assert out.outputs[0].token_ids == want, f"prompt {i} diverged"
