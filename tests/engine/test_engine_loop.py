"""The host logic driven like the engine drives it, with a stand-in model that checks the cache.

The stand-in "KV cache" stores, per slot, the token whose K/V a step wrote there; before each
step produces logits it reads every sequence's context back through its block table, as
attention would, and fails if any position holds the wrong token (a stale prefix-cache hit,
a block reused while still referenced, a wrong slot mapping). The next token depends on the
whole context, so any mistake also changes the text, which must be identical across
configurations.
"""

import numpy as np
import pytest

from tests.engine.helpers import make_seq
from worker.engine.input_batch import build_input_batch
from worker.engine.scheduler import SampledTokens, Scheduler, SchedulerConfig

BLOCK = 4


def next_token(context: list[int]) -> int:
    return 10 + (sum((i + 1) * t for i, t in enumerate(context)) % 97)


def run(requests, **cfg) -> tuple[list[list[int]], int, list[int]]:
    config = dict(max_num_seqs=4, max_num_batched_tokens=64, max_model_len=48, num_blocks=64, block_size=BLOCK)
    config.update(cfg)
    sched = Scheduler(SchedulerConfig(**config))
    seqs = [make_seq(prompt, f"r{i}", max_tokens=n) for i, (prompt, n) in enumerate(requests)]
    for seq in seqs:
        sched.add(seq)
    cache = np.full(config["num_blocks"] * BLOCK, -1, dtype=np.int64)
    preemptions = 0
    while sched.has_unfinished():
        out = sched.schedule()
        preemptions += len(out.preempted)
        assert out.num_batched_tokens <= config["max_num_batched_tokens"]
        assert len(sched.running) <= config["max_num_seqs"]
        batch = build_input_batch(out.scheduled, BLOCK)
        cache[batch.slot_mapping] = batch.token_ids
        for b, s in enumerate(out.scheduled):
            table = batch.block_tables[b]
            pos = np.arange(batch.seq_lens[b])
            seen = cache[table[pos // BLOCK] * BLOCK + pos % BLOCK]
            assert seen.tolist() == s.seq.token_ids[: batch.seq_lens[b]], f"{s.seq.request_id}: cache corrupt"
        tokens = np.array([next_token(s.token_ids) for s in out.sampling_seqs], dtype=np.int64)
        sched.postprocess(out.scheduled, SampledTokens(tokens))
        _check_ref_counts(sched)
        _check_cached_blocks_are_computed(sched, cache)
    return [s.output_token_ids for s in seqs], preemptions, [s.num_cached_tokens for s in seqs]


def _check_ref_counts(sched: Scheduler) -> None:
    bm = sched.block_manager
    held = [b for seq in sched.running for b in seq.block_table]
    counts = np.bincount(np.array(held, dtype=np.int64), minlength=bm.num_blocks)
    assert [blk.ref_count for blk in bm.blocks] == counts.tolist()
    assert bm.num_free_blocks == int((counts == 0).sum())


def _check_cached_blocks_are_computed(sched: Scheduler, cache: np.ndarray) -> None:
    # Blocks are registered when a step is scheduled; once it ran, every block a later step
    # can hit must hold its tokens (a registered but never computed block would be stale).
    bm = sched.block_manager
    for block_id in bm.hash_to_block_id.values():
        written = cache[block_id * BLOCK : (block_id + 1) * BLOCK]
        assert tuple(written.tolist()) == bm.blocks[block_id].token_ids, f"block {block_id} not computed"


def make_requests(seed: int, count: int = 12):
    rng = np.random.default_rng(seed)
    shared = rng.integers(100, 200, size=14).tolist()
    requests = []
    for _ in range(count):
        head = shared[: int(rng.integers(0, 15))]
        tail = rng.integers(100, 200, size=int(rng.integers(1, 12))).tolist()
        requests.append((head + tail, int(rng.integers(1, 16))))
    return requests


def expected_outputs(requests):
    outs = []
    for prompt, n in requests:
        tokens = list(prompt)
        for _ in range(n):
            tokens.append(next_token(tokens))
        outs.append(tokens[len(prompt) :])
    return outs


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "cfg",
    [
        dict(),
        dict(enable_prefix_caching=False),
        dict(max_num_batched_tokens=5),  # chunked prefill
        dict(num_blocks=12),  # preemption
        dict(num_blocks=12, max_num_batched_tokens=7, max_num_seqs=3),
        dict(num_blocks=12, enable_prefix_caching=False, max_num_batched_tokens=6),
    ],
)
def test_outputs_are_the_same_whatever_the_cache_budget_and_preemptions(seed, cfg):
    requests = make_requests(seed)
    outputs, _, _ = run(requests, **cfg)
    assert outputs == expected_outputs(requests)


def test_the_small_cache_configuration_really_preempts_and_hits():
    requests = make_requests(0)
    _, preemptions, _ = run(requests, num_blocks=12)
    assert preemptions > 0
    _, _, cached = run(requests, max_num_seqs=1)
    assert sum(cached) > 0


def test_requests_admitted_together_hit_each_others_prefix():
    prefix = list(range(100, 116))  # 4 blocks
    requests = [(prefix + [200 + i, 201 + i], 3) for i in range(4)]
    outputs, _, cached = run(requests, max_num_seqs=4, max_num_batched_tokens=64)
    assert cached == [0, 16, 16, 16]  # all four are admitted in the first step
    assert outputs == expected_outputs(requests)
