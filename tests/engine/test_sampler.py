import math

import numpy as np
import pytest

from tests.engine.helpers import make_seq
from worker.engine.sampler import Sampler, apply_penalties, filter_probs
from worker.sampling_params import SamplingParams

EOS = 3
V = 50


def random_logits(rows: int, vocab: int = V, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, size=(rows, vocab)).astype(np.float32)


def with_output(prompt, output, **sampling):
    seq = make_seq(prompt, **sampling)
    for t in output:
        seq.append_token(t)
    return seq


def test_repetition_penalty_follows_its_formula_over_prompt_and_output():
    row = random_logits(1)[0]
    row[[1, 2, 7]] = [2.0, -2.0, 0.0]
    seq = with_output([1, 2, 2], [7, 9], repetition_penalty=1.5)
    got = row.copy()
    apply_penalties(got, seq)
    expected = row.copy()
    for t in {1, 2, 7, 9}:
        expected[t] = row[t] / 1.5 if row[t] > 0 else row[t] * 1.5
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[1] == pytest.approx(2.0 / 1.5) and got[2] == pytest.approx(-3.0)


def test_frequency_and_presence_penalties_follow_the_openai_formula_over_output_only():
    row = random_logits(1)[0]
    seq = with_output([4, 4, 5], [5, 6, 6, 6], frequency_penalty=0.5, presence_penalty=1.25)
    got = row.copy()
    apply_penalties(got, seq)
    counts = {5: 1, 6: 3}  # prompt tokens (4, and 5's prompt occurrence) do not count
    expected = row.copy()
    for t, c in counts.items():
        expected[t] = row[t] - c * 0.5 - 1.25
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_penalties_change_the_greedy_choice():
    logits = np.zeros((1, V), dtype=np.float32)
    logits[0, 10], logits[0, 11] = 5.0, 4.0
    seq = with_output([1], [10], temperature=0, presence_penalty=2.0)
    assert Sampler()(logits, [seq]).token_ids.tolist() == [11]


def test_greedy_is_argmax_with_ties_to_the_lowest_id():
    logits = random_logits(4)
    logits[2, [5, 9]] = 100.0
    seqs = [make_seq([1], temperature=0) for _ in range(4)]
    got = Sampler()(logits, seqs).token_ids
    assert got.tolist() == [int(np.argmax(r)) for r in logits] and got[2] == 5


def test_top_k_1_equals_greedy():
    logits = random_logits(8, seed=3)
    greedy = Sampler()(logits, [make_seq([1], temperature=0) for _ in range(8)]).token_ids
    top1 = Sampler(seed=1)(logits, [make_seq([1], temperature=1.3, top_k=1) for _ in range(8)]).token_ids
    assert top1.tolist() == greedy.tolist()


def _probs(logits):
    e = np.exp(logits - logits.max())
    return e / e.sum()


def test_top_p_keeps_the_smallest_set_reaching_its_mass():
    row = np.log(np.array([0.1, 0.5, 0.15, 0.25], dtype=np.float32))
    cand, probs = filter_probs(row, SamplingParams(top_p=0.7))
    assert cand.tolist() == [1, 3]  # 0.5, then 0.25 (mass before it 0.5 < 0.7); 0.15 is out
    np.testing.assert_allclose(probs, [0.5 / 0.75, 0.25 / 0.75])
    cand, _ = filter_probs(row, SamplingParams(top_p=0.0))
    assert cand.tolist() == [1]


def test_min_p_masks_tokens_below_a_share_of_the_top_one():
    row = np.log(np.array([0.1, 0.5, 0.15, 0.25], dtype=np.float32))
    cand, probs = filter_probs(row, SamplingParams(min_p=0.28))  # threshold 0.14
    assert cand.tolist() == [1, 2, 3]
    np.testing.assert_allclose(probs, np.array([0.5, 0.15, 0.25]) / 0.9, rtol=1e-6)
    cand, _ = filter_probs(row, SamplingParams(min_p=0.4))  # threshold 0.2
    assert cand.tolist() == [1, 3]


def test_top_k_and_temperature():
    row = random_logits(1, seed=5)[0]
    cand, probs = filter_probs(row, SamplingParams(top_k=5, temperature=0.5))
    top5 = np.sort(np.argsort(-row)[:5])
    assert cand.tolist() == top5.tolist()
    np.testing.assert_allclose(probs, _probs(row[top5].astype(np.float64) / 0.5), rtol=1e-6)


@pytest.mark.parametrize("spread", [0.2, 2.0, 6.0])  # flat rows take the full sort, peaked ones a prefilter
def test_top_p_over_a_large_vocabulary_matches_a_full_sort(spread):
    row = np.random.default_rng(9).normal(0, spread, size=60000).astype(np.float32)
    for top_p in (0.05, 0.5, 0.99):
        cand, _ = filter_probs(row, SamplingParams(top_p=top_p))
        p = _probs(row.astype(np.float64))
        order = np.argsort(-p)
        n_keep = int(np.searchsorted(np.cumsum(p[order]), top_p, side="left")) + 1
        assert cand.tolist() == sorted(order[:n_keep].tolist())


def test_draws_stay_inside_the_filtered_set_and_follow_the_probabilities():
    row = np.log(np.array([0.1, 0.5, 0.15, 0.25], dtype=np.float32))
    logits = np.tile(row, (4000, 1))
    seqs = [make_seq([0], top_p=0.7) for _ in range(4000)]
    tokens = Sampler(seed=0)(logits, seqs).token_ids
    assert set(tokens.tolist()) == {1, 3}
    assert abs((tokens == 1).mean() - 2 / 3) < 0.03


def test_min_tokens_holds_back_eos_and_stop_tokens():
    logits = np.zeros((3, V), dtype=np.float32)
    logits[:, EOS], logits[:, 8], logits[:, 20] = 9.0, 8.0, 1.0
    sampler = Sampler(eos_token_ids=frozenset({EOS}))
    young = with_output([1], [20], temperature=0, min_tokens=3, stop_token_ids=[8])
    grown = with_output([1], [20, 20, 20], temperature=0, min_tokens=3)
    ignoring = with_output([1], [], temperature=0, min_tokens=3, ignore_eos=True)
    assert sampler(logits, [young, grown, ignoring]).token_ids.tolist() == [20, EOS, EOS]


def test_bad_words_are_masked():
    logits = random_logits(1)
    best = int(np.argmax(logits[0]))
    seq = make_seq([1], temperature=0)
    seq.sampling_params.bad_words_token_ids = [best]
    got = Sampler()(logits, [seq]).token_ids[0]
    assert got != best and got == int(np.argsort(-logits[0])[1])


def test_logprobs_are_the_raw_log_softmax():
    logits = random_logits(3, seed=2)
    seqs = [
        make_seq([1], temperature=0, logprobs=3, repetition_penalty=2.0),
        make_seq([1], temperature=0),
        make_seq([1], temperature=0.7, logprobs=0, seed=4),
    ]
    out = Sampler()(logits, seqs)
    assert out.logprobs[1] is None
    for i in (0, 2):
        x = logits[i].astype(np.float64)
        expected = x - (x.max() + math.log(np.exp(x - x.max()).sum()))
        tok = int(out.token_ids[i])
        k = seqs[i].sampling_params.logprobs
        top = [int(t) for t in np.argsort(-expected)[:k]]
        assert list(out.logprobs[i])[:k] == top
        assert set(out.logprobs[i]) == set(top) | {tok}
        for t, lp in out.logprobs[i].items():
            assert lp == pytest.approx(expected[t], abs=1e-6)


def test_logprobs_accumulate_on_the_sequence():
    seq = make_seq([1], temperature=0, logprobs=2)
    seq.append_token(5, {5: -0.5, 6: -1.0})
    seq.append_token(6, {6: -0.25})
    assert seq.output_logprobs == [{5: -0.5, 6: -1.0}, {6: -0.25}] and seq.cumulative_logprob == -0.75


def _generate(sampler, batch_for_step, steps=12):
    """Tokens of row 0 over `steps` steps; batch_for_step(i, seq) builds (logits, seqs) for step i."""
    seq = make_seq([1, 2, 3], temperature=0.9, top_p=0.9, top_k=20, seed=1234)
    for i in range(steps):
        logits, seqs = batch_for_step(i, seq)
        seq.append_token(int(sampler(logits, seqs).token_ids[0]))
    return seq.output_token_ids


def test_seeded_sampling_is_the_same_alone_and_in_a_batch_of_16():
    def alone(i, seq):
        return random_logits(1, seed=100 + i), [seq]

    def crowded(i, seq):
        others = random_logits(15, seed=500 + i)
        logits = np.concatenate([random_logits(1, seed=100 + i), others])
        mates = [make_seq([7], temperature=1.0, seed=s if s % 2 else None) for s in range(15)]
        return logits, [seq] + mates

    solo = _generate(Sampler(seed=0), alone)
    assert solo == _generate(Sampler(seed=99), crowded)
    assert len(set(solo)) > 1  # it really sampled


def test_unseeded_sampling_uses_the_process_generator():
    logits = np.zeros((64, V), dtype=np.float32)
    seqs = [make_seq([1]) for _ in range(64)]
    a = Sampler(seed=1)(logits, seqs).token_ids
    b = Sampler(seed=2)(logits, seqs).token_ids
    assert a.tolist() != b.tolist() and a.tolist() == Sampler(seed=1)(logits, seqs).token_ids.tolist()


def test_seeded_completions_of_one_request_differ_by_index():
    logits = np.zeros((1, V), dtype=np.float32)
    streams = []
    for index in (0, 1):
        seq = make_seq([1], seed=7)
        seq.index = index
        for _ in range(8):
            seq.append_token(int(Sampler()(logits, [seq]).token_ids[0]))
        streams.append(seq.output_token_ids)
    assert streams[0] != streams[1]


def test_a_step_without_sampling_rows():
    out = Sampler()(np.zeros((0, V), dtype=np.float32), [])
    assert out.token_ids.shape == (0,) and out.token_ids.dtype == np.int64 and out.logprobs is None


# -- large vocabularies: candidates found without a full sort agree with one ----------------------

BIG_V = 30000  # > the draw's block of 1024 tokens, and wide enough for the threshold windows


def big_row(spread: float, seed: int = 11) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, spread, size=BIG_V).astype(np.float32)


@pytest.mark.parametrize("spread", [0.05, 3.0, 30.0])  # flat, LM-like, and one token far ahead
@pytest.mark.parametrize("top_k", [2, 50, 700])
def test_top_k_over_a_large_vocabulary_matches_a_full_sort(spread, top_k):
    row = big_row(spread)
    cand, probs = filter_probs(row, SamplingParams(top_k=top_k, temperature=0.7))
    p = _probs(row.astype(np.float64) / 0.7)
    top = np.argsort(-row, kind="stable")[:top_k]
    # Tokens under e^-50 of the top one's probability may be left out: they weigh nothing.
    expected = np.sort(top[p[top] > np.exp(-50) * p.max()])
    assert cand.tolist() == expected.tolist()
    np.testing.assert_allclose(probs, p[expected] / p[expected].sum(), rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("min_p", [0.001, 0.1, 0.9])
def test_min_p_over_a_large_vocabulary_matches_its_definition(min_p):
    row = big_row(3.0)
    cand, _ = filter_probs(row, SamplingParams(min_p=min_p, temperature=1.3))
    p = _probs(row.astype(np.float64) / 1.3)
    assert cand.tolist() == np.flatnonzero(p >= min_p * p.max()).tolist()
    both, _ = filter_probs(row, SamplingParams(min_p=min_p, top_k=5, temperature=1.3))
    assert both.tolist() == sorted(set(cand.tolist()) & set(np.argsort(-row)[:5].tolist()))


def test_temperature_draws_over_a_large_vocabulary_follow_the_probabilities():
    row = big_row(1.0, seed=4)
    row[[3, 2000, 29999]] = [9.0, 8.5, 8.0]  # three likely tokens in different blocks
    row[5000:6000] = -np.inf  # a masked block never comes out
    seqs = [make_seq([1], temperature=0.8) for _ in range(3000)]
    tokens = Sampler(seed=3)(np.tile(row, (len(seqs), 1)), seqs).token_ids
    p = _probs(row.astype(np.float64) / 0.8)
    for t in (3, 2000, 29999):
        assert abs((tokens == t).mean() - p[t]) < 0.03
    assert not ((tokens >= 5000) & (tokens < 6000)).any()
    assert (p[tokens] > 0).all() and len(set(tokens.tolist())) > 50  # the tail is drawn too


def test_logprobs_over_a_large_vocabulary_are_the_exact_top_k():
    row = big_row(3.0)
    row[100] = row[101] = row.max() + 1  # a tie: the lower id first
    seq = make_seq([1], temperature=0, logprobs=20)
    out = Sampler()(row[None, :], [seq]).logprobs[0]
    x = row.astype(np.float64)
    expected = x - (x.max() + math.log(np.exp(x - x.max()).sum()))
    top = sorted(range(BIG_V), key=lambda t: (-expected[t], t))[:20]
    assert list(out) == top and top[:2] == [100, 101]
    for t, lp in out.items():
        assert lp == pytest.approx(expected[t], abs=1e-6)
