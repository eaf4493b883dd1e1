"""Incremental detokenization on the tiny model's real tokenizer: the same text as one full
decode, stop strings across token boundaries, special tokens kept or skipped."""

import numpy as np
import pytest

from worker.engine.detokenizer import IncrementalDetokenizer
from worker.tiny_model import TinyModelSpec, write_tiny_model
from worker.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return Tokenizer.from_pretrained(write_tiny_model(tmp_path_factory.mktemp("detok") / "m", TinyModelSpec()))


def feed(detok: IncrementalDetokenizer, ids: list[int]) -> str | None:
    for n in range(1, len(ids) + 1):
        stop = detok.update(ids[:n], final=n == len(ids))
        if stop is not None:
            return stop
    return None


@pytest.mark.parametrize("seed", range(8))
def test_incremental_text_equals_full_decode(tokenizer, seed):
    ids = np.random.default_rng(seed).integers(3, tokenizer.vocab_size, size=60).tolist()
    detok = IncrementalDetokenizer(tokenizer)
    for n in range(1, len(ids)):
        detok.update(ids[:n])
        # Mid-sequence, text is only ever held back, never wrong.
        assert tokenizer.decode(ids[:n]).startswith(detok.text)
    detok.update(ids, final=True)
    assert detok.text == tokenizer.decode(ids)


def test_words_keep_their_spaces(tokenizer):
    text = "Tell me a fun fact about the world"
    detok = IncrementalDetokenizer(tokenizer)
    feed(detok, tokenizer.encode(text, add_special_tokens=False))
    assert detok.text == tokenizer.decode(tokenizer.encode(text, add_special_tokens=False))
    assert " fun fact " in detok.text


def test_stop_string_across_tokens_truncates_before_it(tokenizer):
    ids = tokenizer.encode("one two three four five", add_special_tokens=False)
    detok = IncrementalDetokenizer(tokenizer, stop=["ee fo", "five"])
    assert feed(detok, ids) == "ee fo"
    assert detok.text == "one two thr"


def test_skip_special_tokens(tokenizer):
    eos = tokenizer.eos_token_id
    ids = tokenizer.encode("hello", add_special_tokens=False) + [eos]
    kept, skipped = IncrementalDetokenizer(tokenizer, skip_special_tokens=False), IncrementalDetokenizer(tokenizer)
    feed(kept, ids)
    feed(skipped, ids)
    assert skipped.text == "hello"
    assert kept.text == "hello" + tokenizer.decode([eos], skip_special_tokens=False) and kept.text != "hello"
