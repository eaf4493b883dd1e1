import numpy as np
import pytest

from tests.engine.helpers import make_seq
from worker.engine.scheduler import (
    SampledTokens,
    Scheduler,
    SchedulerConfig,
    SchedulerOutput,
)
from worker.engine.sequence import SequenceStatus

EOS = 2


def make_scheduler(**overrides) -> Scheduler:
    cfg = dict(
        max_num_seqs=8, max_num_batched_tokens=64, max_model_len=32, num_blocks=16, block_size=4,
        eos_token_ids=frozenset({EOS}),
    )
    cfg.update(overrides)
    return Scheduler(SchedulerConfig(**cfg))


def step(sched: Scheduler, token=lambda seq: 100 + seq.num_tokens) -> SchedulerOutput:
    """One engine step with a stand-in model: every sampling sequence gets token(seq)."""
    out = sched.schedule()
    tokens = np.array([token(s) for s in out.sampling_seqs], dtype=np.int64)
    sched.postprocess(out.scheduled, SampledTokens(tokens))
    return out


def plan(out: SchedulerOutput) -> list[tuple[str, int]]:
    return [(s.seq.request_id, s.num_new_tokens) for s in out.scheduled]


def test_running_requests_are_scheduled_before_waiting_ones():
    sched = make_scheduler()
    a = make_seq(range(5), "a", max_tokens=8)
    sched.add(a)
    assert plan(step(sched)) == [("a", 5)]
    sched.add(make_seq(range(10, 16), "b", max_tokens=8))
    assert plan(step(sched)) == [("a", 1), ("b", 6)]
    assert plan(step(sched)) == [("a", 1), ("b", 1)]


def test_chunked_prefill_splits_prompts_under_the_budget():
    sched = make_scheduler(max_num_batched_tokens=8)
    a, b = make_seq(range(20), "a", max_tokens=4), make_seq(range(30, 33), "b", max_tokens=4)
    sched.add(a)
    sched.add(b)
    first = step(sched)
    assert plan(first) == [("a", 8)] and first.sampling_seqs == []
    assert plan(step(sched)) == [("a", 8)]
    last = step(sched)
    assert plan(last) == [("a", 4), ("b", 3)]  # the rest of a, and b fits in what is left
    assert last.sampling_seqs == [a, b] and a.num_output_tokens == 1 and a.num_computed_tokens == 20


def test_max_num_seqs_caps_admission():
    sched = make_scheduler(max_num_seqs=2)
    for name in "abc":
        sched.add(make_seq(range(3), name, max_tokens=4))
    assert [r for r, _ in plan(step(sched))] == ["a", "b"]


def _two_running_one_waiting(a_max_tokens=10):
    # 5 blocks of 4: a and b (7-token prompts) take 2 blocks each; c waits for a sequence slot.
    sched = make_scheduler(max_num_seqs=2, num_blocks=5, max_model_len=20)
    a = make_seq(range(7), "a", max_tokens=a_max_tokens)
    b = make_seq(range(50, 57), "b", max_tokens=10)
    c = make_seq(range(90, 93), "c", max_tokens=2)
    for seq in (a, b, c):
        sched.add(seq)
    assert plan(step(sched)) == [("a", 7), ("b", 7)]
    assert plan(step(sched)) == [("a", 1), ("b", 1)]  # both now hold 9 tokens, 8 computed
    return sched, a, b, c


def test_out_of_blocks_preempts_the_newest_and_admits_nothing_that_step():
    sched, a, b, c = _two_running_one_waiting()
    out = step(sched)
    assert out.preempted == [b] and plan(out) == [("a", 1)]
    assert b.status is SequenceStatus.WAITING and b.block_table == [] and b.num_computed_tokens == 0
    assert list(sched.waiting) == [b, c] and sched.running == [a]
    # c would fit now (a free sequence slot and free blocks), but a step that preempted admits nothing.
    assert sched.block_manager.can_allocate([], c.num_tokens)


def test_a_preempted_sharer_leaves_the_shared_prefix_alive_and_comes_back_through_it():
    # a and b share an 8-token prefix and are admitted in the same step: b hits a's blocks
    # registered at scheduling time. Preempting b must not disturb a's (shared) blocks.
    sched = make_scheduler(max_num_seqs=2, num_blocks=6, max_model_len=24)
    bm = sched.block_manager
    prefix = list(range(20, 28))
    a, b = make_seq(prefix + [1], "a"), make_seq(prefix + [2], "b")
    sched.add(a)
    sched.add(b)
    assert plan(step(sched)) == [("a", 9), ("b", 1)] and b.num_cached_tokens == 8
    shared = a.block_table[:2]
    outs = [step(sched) for _ in range(8)]
    assert [o.preempted for o in outs] == [[]] * 7 + [[b]]
    assert plan(outs[-1]) == [("a", 1)]  # the preempting step admits nothing
    assert [bm.blocks[x].ref_count for x in shared] == [1, 1] and a.block_table[:2] == shared
    plans = []
    while sched.has_unfinished():
        plans += plan(step(sched))
    # b comes back once a is done, still hitting the shared prefix (its own blocks were reused).
    assert ("b", 9) in plans  # 17 tokens: 8 from the shared prefix, 9 recomputed
    assert a.output_token_ids == [100 + n for n in range(9, 24)]
    assert b.output_token_ids == [100 + n for n in range(9, 24)]
    assert b.num_cached_tokens == 8 and bm.num_free_blocks == 6


def test_requests_admitted_in_the_same_step_share_their_prefix():
    sched = make_scheduler()
    prefix = list(range(40, 48))  # two full blocks
    a, b = make_seq(prefix + [1, 2, 3], "a"), make_seq(prefix + [4, 5], "b")
    sched.add(a)
    sched.add(b)
    out = step(sched)
    # b sees a's two prefix blocks as cached although a computes them in this very step.
    assert plan(out) == [("a", 11), ("b", 2)]
    assert b.num_cached_tokens == 8 and a.num_cached_tokens == 0
    assert b.block_table[:2] == a.block_table[:2] and b.block_table[2] != a.block_table[2]
    assert [sched.block_manager.blocks[x].ref_count for x in a.block_table[:2]] == [2, 2]
    assert out.sampling_seqs == [a, b] and b.num_computed_tokens == 10


def test_identical_prompts_in_one_step_still_recompute_their_last_token():
    sched = make_scheduler()
    seqs = [make_seq(range(8), name) for name in "abc"]  # block-aligned: 2 full blocks
    for seq in seqs:
        sched.add(seq)
    # The block holding the last prompt token is not shared: its logits are needed.
    assert plan(step(sched)) == [("a", 8), ("b", 4), ("c", 4)]
    assert [s.num_cached_tokens for s in seqs] == [0, 4, 4]
    assert len({s.block_table[0] for s in seqs}) == 1 and len({s.block_table[1] for s in seqs}) == 3


def test_a_chunk_exposes_only_the_blocks_it_fills():
    sched = make_scheduler(max_num_batched_tokens=10)
    bm = sched.block_manager
    a, b = make_seq(range(14), "a"), make_seq(list(range(12)) + [99, 98], "b")
    sched.add(a)
    sched.add(b)
    out = sched.schedule()
    assert plan(out) == [("a", 10)]
    # Tokens 8..9 of block 2 are scheduled, 10..11 are not: block 2 must not be visible yet.
    assert bm.get_computed_blocks(b) == a.block_table[:2]
    assert len(a.block_hashes) == 2
    sched.postprocess(out.scheduled, SampledTokens(np.zeros(0, dtype=np.int64)))
    assert bm.get_computed_blocks(b) == a.block_table[:2]
    # The last chunk fills block 2 and b, admitted after it in the same step, hits it.
    assert plan(step(sched)) == [("a", 4), ("b", 2)]
    assert b.num_cached_tokens == 12 and b.block_table[:3] == a.block_table[:3]


def test_preempted_request_is_recomputed_from_the_prefix_cache():
    sched, a, b, c = _two_running_one_waiting(a_max_tokens=3)
    b_tokens = list(b.token_ids)
    out = step(sched)
    assert out.preempted == [b] and a.finish_reason == "length"
    out = step(sched)
    # b's two full blocks are still cached: only its 9th token (its generated one) is recomputed.
    assert plan(out) == [("b", 1), ("c", 3)]
    assert b.token_ids[:9] == b_tokens and b.num_output_tokens == 3 and b.num_computed_tokens == 9
    assert b.num_cached_tokens == 0  # user-visible cache hits are those of the first admission
    assert b.num_preemptions == 1


def test_everything_finishes_after_preemption():
    sched, a, b, c = _two_running_one_waiting()
    for _ in range(100):
        if not sched.has_unfinished():
            break
        step(sched)
    assert not sched.has_unfinished()
    assert [s.finish_reason for s in (a, b, c)] == ["length"] * 3
    assert [s.num_output_tokens for s in (a, b, c)] == [10, 10, 2]
    assert b.output_token_ids == [100 + n for n in range(7, 17)]
    assert sched.block_manager.num_free_blocks == 5


def test_eos_stops_unless_below_min_tokens_or_ignored():
    sched = make_scheduler()
    plain = make_seq(range(3), "plain")
    held = make_seq(range(3), "held", min_tokens=2)
    ignored = make_seq(range(3), "ignored", ignore_eos=True, max_tokens=3)
    for seq in (plain, held, ignored):
        sched.add(seq)
    step(sched, token=lambda s: EOS)
    assert plain.finish_reason == "stop" and plain.output_token_ids == [EOS]
    assert not held.is_finished and not ignored.is_finished
    step(sched, token=lambda s: EOS)
    assert held.finish_reason == "stop" and held.num_output_tokens == 2
    step(sched, token=lambda s: EOS)
    assert ignored.finish_reason == "length" and ignored.num_output_tokens == 3


def test_stop_token_ids_and_max_model_len():
    sched = make_scheduler(max_model_len=8)
    stopper = make_seq(range(3), "s", stop_token_ids=[7])
    long = make_seq(range(6), "l")
    sched.add(stopper)
    sched.add(long)
    step(sched, token=lambda s: 5)
    step(sched, token=lambda s: 7)
    assert stopper.finish_reason == "stop" and stopper.output_token_ids == [5, 7]
    assert long.finish_reason == "length" and long.num_tokens == 8


def test_finish_from_the_output_processor_frees_blocks():
    sched = make_scheduler()
    seq = make_seq(range(6), "a")
    waiting = make_seq(range(6), "w")
    sched.add(seq)
    step(sched)
    sched.add(waiting)
    sched.finish(seq, "stop")
    sched.finish(waiting, None)
    assert seq.finish_reason == "stop" and seq.is_finished and not sched.has_unfinished()
    assert sched.block_manager.num_free_blocks == 16


def test_finish_corrects_the_reason_of_a_finished_sequence():
    sched = make_scheduler()
    seq = make_seq(range(3), "a", max_tokens=1)
    sched.add(seq)
    step(sched)
    assert seq.finish_reason == "length"
    sched.finish(seq, "stop")  # the output processor found a stop string in that last token
    assert seq.finish_reason == "stop" and sched.block_manager.num_free_blocks == 16


def test_second_request_hits_the_prefix_of_a_finished_one():
    sched = make_scheduler(block_size=4)
    first = make_seq(range(10), "first", max_tokens=1)
    sched.add(first)
    step(sched)
    assert first.is_finished
    second = make_seq(list(range(8)) + [77, 78], "second", max_tokens=1)
    sched.add(second)
    assert plan(step(sched)) == [("second", 2)]
    assert second.num_cached_tokens == 8


def test_config_must_hold_one_full_length_sequence():
    with pytest.raises(ValueError, match="cannot hold one sequence of max_model_len=32"):
        SchedulerConfig(max_num_seqs=1, max_num_batched_tokens=8, max_model_len=32, num_blocks=7, block_size=4)


def test_a_sequence_collecting_prompt_logprobs_takes_no_prefix_hit_until_it_has_them():
    sched = make_scheduler()
    sched.add(make_seq(range(10), "warm", max_tokens=1))
    while sched.has_unfinished():
        step(sched)
    wants = make_seq(range(10), "wants", max_tokens=1, prompt_logprobs=1)
    plain = make_seq(range(10), "plain", max_tokens=1)
    sched.add(wants)
    sched.add(plain)
    assert plan(step(sched)) == [("wants", 10), ("plain", 2)]  # plain hits the 2 cached blocks
    assert (wants.num_cached_tokens, plain.num_cached_tokens) == (0, 8)
