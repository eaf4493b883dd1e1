"""The model's vocabulary as llguidance sees it: the bytes of every token id, which ids are
special (never text a grammar can match) and which end the output.

Built once per engine (~2 s for a 103k vocabulary) from `Tokenizer.token_bytes`, which
serves sentencepiece and tokenizer.json models alike; ids past the tokenizer (padded
embedding rows) are empty, so no grammar ever allows them.
"""

from collections.abc import Callable, Sequence

import llguidance

from worker.tokenizer import Tokenizer


class _Vocabulary:
    """The duck-typed tokenizer `llguidance.TokenizerWrapper` reads."""

    def __init__(self, tokens: list[bytes], eos_token_id: int, bos_token_id: int | None,
                 special_token_ids: list[int], encode: Callable[[str], list[int]]):
        self.tokens = tokens
        self.eos_token_id = eos_token_id
        self.bos_token_id = bos_token_id
        self.special_token_ids = special_token_ids
        self._encode = encode

    def __call__(self, text: str) -> list[int]:
        # llguidance tokenizes the bytes a grammar forces next (a JSON key, a closing quote)
        # with it: it must be the model's own tokenizer, or forced text would have no tokens.
        return self._encode(text)


def ll_tokenizer(tokens: list[bytes], eos_token_ids: Sequence[int], special_token_ids: Sequence[int],
                 encode: Callable[[str], list[int]], bos_token_id: int | None = None) -> llguidance.LLTokenizer:
    """An llguidance tokenizer over `tokens` (index = token id)."""
    eos = list(dict.fromkeys(eos_token_ids))
    if not eos:
        raise ValueError("guided decoding needs an EOS token; the model directory names none")
    specials = sorted(set(special_token_ids) | set(eos))
    vocab = _Vocabulary(tokens, eos[0], bos_token_id, specials, encode)
    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(vocab), n_vocab=len(tokens), eos_token=eos)


def from_tokenizer(tokenizer: Tokenizer, vocab_size: int, eos_token_ids: Sequence[int]) -> llguidance.LLTokenizer:
    """The engine's vocabulary: one entry per row of the model's logits."""
    tokens = [tokenizer.token_bytes(i) for i in range(vocab_size)]
    return ll_tokenizer(
        tokens, eos_token_ids, [i for i in tokenizer.all_special_ids if i < vocab_size],
        encode=lambda text: tokenizer.encode(text, add_special_tokens=False),
        bos_token_id=tokenizer.bos_token_id,
    )
