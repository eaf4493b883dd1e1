import numpy as np

from tests.engine.helpers import make_seq
from worker.engine.input_batch import build_input_batch
from worker.engine.scheduler import ScheduledSequence

BS = 4


def placed(tokens, computed, block_table, **sampling):
    seq = make_seq(tokens, **sampling)
    seq.num_computed_tokens, seq.block_table = computed, list(block_table)
    return seq


def test_mixed_prefill_chunk_and_decode_batch():
    chunk_end = placed(range(100, 107), 2, [7, 3])  # last chunk: tokens 2..6, across a block boundary
    decode = placed(range(200, 209), 8, [1, 5, 2])  # one token at position 8: first slot of block 2
    chunk_mid = placed(range(300, 312), 0, [4, 6])  # first chunk of a longer prompt: no sampling
    scheduled = [ScheduledSequence(chunk_end, 5), ScheduledSequence(decode, 1), ScheduledSequence(chunk_mid, 6)]
    batch = build_input_batch(scheduled, BS)

    assert batch.token_ids.tolist() == [102, 103, 104, 105, 106, 208, 300, 301, 302, 303, 304, 305]
    assert batch.positions.tolist() == [2, 3, 4, 5, 6, 8, 0, 1, 2, 3, 4, 5]
    expected_slots = [7 * 4 + 2, 7 * 4 + 3, 3 * 4 + 0, 3 * 4 + 1, 3 * 4 + 2, 2 * 4 + 0]
    expected_slots += [4 * 4 + 0, 4 * 4 + 1, 4 * 4 + 2, 4 * 4 + 3, 6 * 4 + 0, 6 * 4 + 1]
    assert batch.slot_mapping.tolist() == expected_slots
    assert batch.query_start_loc.tolist() == [0, 5, 6, 12]
    assert batch.seq_lens.tolist() == [7, 9, 6]
    assert batch.block_tables.tolist() == [[7, 3, 0], [1, 5, 2], [4, 6, 0]]
    assert batch.sample_indices.tolist() == [4, 5]
    assert (batch.num_tokens, batch.num_seqs) == (12, 3)
    dtypes = [a.dtype for a in (batch.token_ids, batch.positions, batch.slot_mapping, batch.sample_indices)]
    assert dtypes == [np.int64] * 4
    assert [a.dtype for a in (batch.query_start_loc, batch.seq_lens, batch.block_tables)] == [np.int32] * 3


def test_large_prefill_positions_and_slots_match_a_per_token_loop():
    table = list(np.random.default_rng(0).permutation(64))
    seq = placed(range(250), 10, table)
    batch = build_input_batch([ScheduledSequence(seq, 240)], BS)
    positions = list(range(10, 250))
    assert batch.positions.tolist() == positions
    assert batch.slot_mapping.tolist() == [table[p // BS] * BS + p % BS for p in positions]
    assert batch.token_ids.tolist() == positions and batch.sample_indices.tolist() == [239]


def test_prompt_logprob_rows_follow_the_chunks_and_skip_what_is_collected():
    # 7-token prompt: positions 0..5 give the logprobs of tokens 1..6; position 6 is sampled.
    first = placed(range(100, 107), 0, [7, 3], prompt_logprobs=2)
    chunk = ScheduledSequence(first, 4)  # positions 0..3
    decode = ScheduledSequence(placed(range(200, 209), 8, [1, 5, 2]), 1)
    batch = build_input_batch([decode, chunk], BS)
    assert list(chunk.prompt_logprob_positions) == [0, 1, 2, 3]
    assert batch.prompt_logprob_indices.tolist() == [1, 2, 3, 4]
    assert batch.logits_indices.tolist() == [0, 1, 2, 3, 4]  # the sampled decode row first
    # recomputed after a preemption with positions 0..2 collected: from position 3 to 5 only
    first.prompt_logprobs += [{101: -1.0}, {102: -1.0}, {103: -1.0}]
    first.num_computed_tokens = 0
    again = ScheduledSequence(first, 7)
    assert list(again.prompt_logprob_positions) == [3, 4, 5]
    assert build_input_batch([again], BS).prompt_logprob_indices.tolist() == [3, 4, 5]
    assert decode.prompt_logprob_positions == range(0)
