import pytest

from tests.engine.helpers import admit, compute, make_seq
from worker.engine.block_manager import NO_HASH, BlockManager, OutOfBlocksError

BS = 4


def test_allocate_covers_tokens_and_counts_free_blocks():
    bm = BlockManager(num_blocks=8, block_size=BS)
    seq = make_seq(range(10))
    assert bm.can_allocate([], 10)
    bm.allocate(seq, [], 10)
    assert len(seq.block_table) == 3 and bm.num_free_blocks == 5
    assert seq.num_computed_tokens == 0 and seq.num_cached_tokens == 0


def test_prefix_hit_sets_computed_and_cached_tokens():
    bm = BlockManager(num_blocks=8, block_size=BS)
    first = make_seq(range(10))
    admit(bm, first)
    second = make_seq(list(range(8)) + [99, 98, 97])
    hits = bm.get_computed_blocks(second)
    assert hits == first.block_table[:2]
    bm.allocate(second, hits, 3)
    assert second.num_computed_tokens == second.num_cached_tokens == 8
    assert [bm.blocks[b].ref_count for b in hits] == [2, 2]
    assert second.block_table[:2] == hits and second.block_table[2] not in first.block_table


def test_full_prompt_hit_still_recomputes_the_last_token():
    bm = BlockManager(num_blocks=8, block_size=BS)
    admit(bm, make_seq(range(9)))  # 2 full blocks + 1 token
    again = make_seq(range(9))
    assert admit(bm, again) == 8  # both full blocks hit; only the 9th token is computed
    assert again.num_cached_tokens == again.num_prompt_tokens - 1


def test_block_aligned_full_prompt_hit_leaves_the_last_block_to_compute():
    bm = BlockManager(num_blocks=8, block_size=BS)
    admit(bm, make_seq(range(8)))
    again = make_seq(range(8))
    hits = bm.get_computed_blocks(again)
    # The last block holds the last token, which must be recomputed: it is not shared.
    assert len(hits) == 1
    bm.allocate(again, hits, 4)
    assert again.num_computed_tokens == 4 <= again.num_prompt_tokens - 1


def test_freed_cached_blocks_stay_hittable():
    bm = BlockManager(num_blocks=4, block_size=BS)
    first = make_seq(range(9))
    admit(bm, first)
    table = list(first.block_table)
    bm.free(first)
    assert bm.num_free_blocks == 4
    again = make_seq(range(9))
    assert admit(bm, again) == 8 and again.block_table[:2] == table[:2]
    assert bm.num_free_blocks == 1


def test_reusing_a_freed_cached_block_drops_its_stale_hash():
    bm = BlockManager(num_blocks=2, block_size=BS)
    first = make_seq(range(5))
    admit(bm, first)
    cached = first.block_table[0]
    stale = bm.blocks[cached].hash
    assert stale != NO_HASH and bm.hash_to_block_id[stale] == cached
    bm.free(first)
    other = make_seq(range(100, 108))  # needs both blocks: the cached one is handed out
    bm.allocate(other, [], 8)
    assert cached in other.block_table
    assert stale not in bm.hash_to_block_id and bm.blocks[cached].hash == NO_HASH
    bm.free(other)
    assert bm.get_computed_blocks(make_seq(range(5))) == []


def test_lru_hands_out_uncached_then_oldest_freed_then_tail_first():
    bm = BlockManager(num_blocks=6, block_size=BS)
    a, b = make_seq(range(9)), make_seq(range(50, 59))
    admit(bm, a)
    admit(bm, b)  # all 6 blocks in use: 2 full + 1 partial each
    a_partial, b_partial = a.block_table[2], b.block_table[2]
    bm.free(a)
    bm.free(b)
    order = list(bm.free_block_ids)
    assert set(order[:2]) == {a_partial, b_partial}  # uncached blocks are handed out first
    # then cached ones: a (freed first) before b, each sequence's tail block before its head.
    assert [bm.blocks[x].token_ids[0] for x in order[2:]] == [4, 0, 54, 50]
    c = make_seq(range(100, 112))
    bm.allocate(c, [], 12)  # takes 3 blocks: both partials, then a's tail block
    assert len(bm.get_computed_blocks(make_seq(range(9)))) == 1  # a lost its tail block only
    assert len(bm.get_computed_blocks(make_seq(range(50, 59)))) == 2


def test_same_prompts_share_blocks_and_refcounts_release_them():
    bm = BlockManager(num_blocks=4, block_size=BS)
    a, b = make_seq(range(9)), make_seq(range(9))
    admit(bm, a)
    admit(bm, b)
    shared = a.block_table[:2]
    assert b.block_table[:2] == shared
    bm.free(a)
    assert all(bm.blocks[x].ref_count == 1 for x in shared) and bm.num_free_blocks == 1
    bm.free(b)
    assert bm.num_free_blocks == 4


def test_only_computed_full_blocks_are_cached():
    bm = BlockManager(num_blocks=8, block_size=BS)
    seq = make_seq(range(12))
    bm.allocate(seq, [], 12)
    compute(bm, seq, 6)  # a chunk: block 0 computed, block 1 half
    assert len(seq.block_hashes) == 1
    assert len(bm.get_computed_blocks(make_seq(range(12)))) == 1
    compute(bm, seq, 6)
    assert len(bm.get_computed_blocks(make_seq(range(12)))) == 2


def test_decode_tokens_fill_and_cache_blocks():
    bm = BlockManager(num_blocks=8, block_size=BS)
    seq = make_seq(range(3))
    admit(bm, seq)
    for tok in (7, 8):
        seq.append_token(tok)
        assert bm.can_append(seq, 1)
        bm.append_slots(seq, 1)
        compute(bm, seq, 1)
    assert len(seq.block_table) == 2 and len(seq.block_hashes) == 1
    assert bm.get_computed_blocks(make_seq([0, 1, 2, 7, 8])) == seq.block_table[:1]


def test_out_of_blocks_is_a_typed_error():
    bm = BlockManager(num_blocks=1, block_size=BS)
    seq = make_seq(range(8))
    assert not bm.can_allocate([], 8)
    with pytest.raises(OutOfBlocksError):
        bm.allocate(seq, [], 8)


def test_prefix_caching_off_never_hits():
    bm = BlockManager(num_blocks=8, block_size=BS, enable_prefix_caching=False)
    admit(bm, make_seq(range(9)))
    assert bm.get_computed_blocks(make_seq(range(9))) == []


def test_identical_blocks_computed_together_keep_one_cache_entry():
    bm = BlockManager(num_blocks=7, block_size=BS)
    a, b = make_seq(range(9)), make_seq(range(9))
    bm.allocate(a, [], 9)
    bm.allocate(b, [], 9)  # admitted in the same step: no hit yet, private blocks
    compute(bm, a, 9)
    compute(bm, b, 9)
    assert bm.get_computed_blocks(make_seq(range(9))) == a.block_table[:2]
    assert all(bm.blocks[x].hash == NO_HASH for x in b.block_table)
    assert b.block_hashes == a.block_hashes  # b's chain is still known for its later blocks
    b_table = list(b.block_table)
    bm.free(b)
    assert set(list(bm.free_block_ids)[:3]) == set(b_table)  # recycled first


def test_blocks_registered_for_a_step_are_hit_by_a_sequence_admitted_after_it():
    bm = BlockManager(num_blocks=8, block_size=BS)
    a, b = make_seq(list(range(8)) + [1, 2]), make_seq(list(range(8)) + [3])
    bm.allocate(a, [], 10)
    bm.cache_full_blocks(a, 10)  # scheduling time: a's K/V for these tokens are not there yet
    assert a.num_computed_tokens == 0 and len(a.block_hashes) == 2
    hits = bm.get_computed_blocks(b)
    assert hits == a.block_table[:2]
    bm.allocate(b, hits, 1)
    assert b.num_computed_tokens == b.num_cached_tokens == 8 and len(b.block_table) == 3


def test_registration_stops_at_the_last_block_the_step_fills():
    bm = BlockManager(num_blocks=8, block_size=BS)
    seq = make_seq(range(12))
    bm.allocate(seq, [], 7)  # a chunk of 7: block 0 full, block 1 three quarters
    bm.cache_full_blocks(seq, 7)
    assert len(seq.block_hashes) == 1
    assert bm.get_computed_blocks(make_seq(range(12))) == seq.block_table[:1]
