"""The matcher/bitmask edge (worker/engine/guided.py) and the sampler under a token mask, on
the bundled tiny model's real tokenizer (no model weights, no paddle)."""

from functools import partial

import numpy as np
import pytest

from tests.engine.helpers import make_seq
from worker.engine.grammar_vocab import from_tokenizer
from worker.engine.guided import GrammarStateError, GuidedDecoder
from worker.engine.sampler import Sampler
from worker.guided_decoding import GuidedDecodingParams
from worker.tiny_model import TinyModelSpec, write_tiny_model
from worker.tokenizer import Tokenizer

VOCAB = 1024


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Tokenizer:
    return Tokenizer.from_pretrained(write_tiny_model(tmp_path_factory.mktemp("guided") / "tiny", TinyModelSpec()))


@pytest.fixture
def decoder(tokenizer) -> GuidedDecoder:
    return GuidedDecoder(partial(from_tokenizer, tokenizer, VOCAB, tokenizer.eos_token_ids))


def constrained(decoder, request_id="r", **constraint):
    seq = make_seq([5, 6, 7], request_id=request_id, guided_decoding=GuidedDecodingParams(**constraint))
    decoder.add(seq)
    return seq


def allowed_ids(decoder, seqs, row=0) -> set[int]:
    mask = decoder.mask(seqs)
    return set(np.flatnonzero(mask.allowed(VOCAB)[mask.rows.index(row)]).tolist())


def feed(decoder, seq, token_ids) -> list:
    complete = []
    for t in token_ids:
        seq.append_token(t)
        complete = decoder.advance([seq])
    return complete


def test_mask_allows_only_tokens_that_extend_a_choice(tokenizer, decoder):
    seq = constrained(decoder, choice=["yes", "no"])
    allowed = allowed_ids(decoder, [seq])
    assert allowed and all(tokenizer.token_bytes(t) and (b"yes".startswith(tokenizer.token_bytes(t))
                                                         or b"no".startswith(tokenizer.token_bytes(t)))
                           for t in allowed)
    assert not allowed & set(tokenizer.eos_token_ids)


def test_eos_is_allowed_only_where_the_grammar_accepts(tokenizer, decoder):
    seq = constrained(decoder, regex="ab+")
    eos = set(tokenizer.eos_token_ids)
    feed(decoder, seq, tokenizer.encode("a", add_special_tokens=False))
    assert not allowed_ids(decoder, [seq]) & eos
    assert feed(decoder, seq, tokenizer.encode("b", add_special_tokens=False)) == []  # more b's may follow
    assert allowed_ids(decoder, [seq]) & eos == eos


def test_a_complete_grammar_ends_the_sequence(tokenizer, decoder):
    seq = constrained(decoder, choice=["yes", "no"])
    *head, last = tokenizer.encode("no", add_special_tokens=False)
    assert feed(decoder, seq, head) == []
    assert feed(decoder, seq, [last]) == [seq]
    assert decoder.mask([seq]) is None  # released: its grammar is done


def test_unconstrained_rows_get_no_mask_row(decoder):
    free = make_seq([1, 2, 3])
    assert decoder.mask([free]) is None
    seq = constrained(decoder, regex="[0-9]+")
    mask = decoder.mask([free, seq, make_seq([4])])
    assert mask.rows == [1] and mask.bits.shape == (1, VOCAB // 32)


def test_each_sequence_has_its_own_matcher(tokenizer, decoder):
    a, b = constrained(decoder, "a", regex="x[0-9]"), constrained(decoder, "b", regex="x[0-9]")
    feed(decoder, a, tokenizer.encode("x", add_special_tokens=False))
    assert allowed_ids(decoder, [a, b], 0) != allowed_ids(decoder, [a, b], 1)


def test_a_reused_compiled_grammar_starts_every_new_sequence_afresh(tokenizer, decoder):
    first = constrained(decoder, "a", regex="x[0-9]")
    start = allowed_ids(decoder, [first])
    feed(decoder, first, tokenizer.encode("x", add_special_tokens=False))
    later = constrained(decoder, "b", regex="x[0-9]")
    assert allowed_ids(decoder, [first, later], 1) == start != allowed_ids(decoder, [first, later], 0)


def test_a_matcher_out_of_step_with_its_sequence_is_an_engine_error(decoder):
    seq = constrained(decoder, regex="[0-9]+")
    seq.append_token(100)  # sampled, but never fed to the matcher
    with pytest.raises(GrammarStateError, match="fed 0 tokens, the sequence has 1"):
        decoder.mask([seq])


def test_a_token_the_grammar_refuses_is_an_engine_error(tokenizer, decoder):
    seq = constrained(decoder, regex="[0-9]+")
    with pytest.raises(GrammarStateError, match="refused sampled token"):
        feed(decoder, seq, tokenizer.encode("z", add_special_tokens=False))


@pytest.mark.parametrize("sampling", [
    dict(temperature=0),
    dict(temperature=1.0, seed=3),
    dict(temperature=0.7, top_k=5, seed=4),
    dict(temperature=1.2, top_p=0.5, seed=5),
    dict(temperature=1.0, min_p=0.1, seed=6),
    dict(temperature=1.0, repetition_penalty=1.3, presence_penalty=0.5, seed=7),
])
def test_the_sampler_draws_only_allowed_tokens(decoder, sampling):
    seqs = [make_seq([1, 2], request_id=str(i), guided_decoding=GuidedDecodingParams(regex="[0-9]{4}"), **sampling)
            for i in range(8)]
    for seq in seqs:
        decoder.add(seq)
    free = make_seq([1, 2], request_id="free", temperature=0)
    logits = np.random.default_rng(0).normal(0, 3, size=(9, VOCAB)).astype(np.float32)
    mask = decoder.mask([*seqs, free])
    sampled = Sampler(seed=0)(logits, [*seqs, free], mask)
    allowed = mask.allowed(VOCAB)
    assert all(allowed[i, t] for i, t in enumerate(sampled.token_ids[:8]))
    assert sampled.token_ids[8] == logits[8].argmax()  # the unconstrained row is untouched


def test_bans_that_would_empty_a_constrained_row_yield_to_the_grammar(decoder):
    seq = make_seq([1, 2], guided_decoding=GuidedDecodingParams(regex="7"), temperature=0,
                   bad_words_token_ids=list(range(VOCAB)))
    decoder.add(seq)
    mask = decoder.mask([seq])
    sampled = Sampler()(np.zeros((1, VOCAB), dtype=np.float32), [seq], mask)
    assert mask.allowed(VOCAB)[0, sampled.token_ids[0]]


def test_logprobs_stay_the_model_s_raw_ones(decoder):
    seq = make_seq([1, 2], guided_decoding=GuidedDecodingParams(regex="[0-9]"), temperature=0, logprobs=0)
    decoder.add(seq)
    logits = np.random.default_rng(1).normal(size=(1, VOCAB)).astype(np.float32)
    sampled = Sampler()(logits, [seq], decoder.mask([seq]))
    token = int(sampled.token_ids[0])
    raw = logits[0].astype(np.float64)
    expected = raw[token] - (raw.max() + np.log(np.exp(raw - raw.max()).sum()))
    assert sampled.logprobs[0][token] == pytest.approx(expected, abs=1e-5)
