"""Our tokenizer against paddleformers' Ernie4_5Tokenizer on the tiny model's files."""

import json
import shutil

import numpy as np
import pytest

from worker.tokenizer import Tokenizer, TokenizerError

TEXTS = [
    "", "hello world", "  two  spaces\nand a newline\t tab", "User: 你好，世界 émoji 🤖 ok",
    "<|begin_of_sentence|>User: hi\nAssistant: ", "x<mask:1>y </s> z<mask:0><unk><s>",
    "digits 1234567890 and punctuation?!", "<think>hmm</think> <|IMAGE_PLACEHOLDER|>",
]
MESSAGES = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "again 你好"},
]


@pytest.fixture(scope="module")
def pair(tiny_model):
    from paddleformers.transformers import AutoTokenizer

    return Tokenizer.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(str(tiny_model))


def random_texts(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    alphabet = list("abcdefghijklmnopqrstuvwxyz ABC.,!?\n\t  ") + list("你好世界文心模型éüß") + ["🤖", "🙂"]
    specials = ["<s>", "</s>", "<|end_of_sentence|>", "<mask:3>"]
    out = []
    for _ in range(n):
        pieces = rng.choice(alphabet, size=rng.integers(1, 40)).tolist()
        if rng.random() < 0.3:
            pieces.insert(int(rng.integers(0, len(pieces))), str(rng.choice(specials)))
        out.append("".join(pieces))
    return out


def test_ids_equal_paddleformers(pair):
    ours, ref = pair
    for text in TEXTS + random_texts(60):
        for add in (True, False):
            assert ours.encode(text, add_special_tokens=add) == ref.encode(text, add_special_tokens=add), text


def test_decode_equals_paddleformers_and_round_trips(pair):
    ours, ref = pair
    for text in TEXTS + random_texts(30):
        ids = ours.encode(text)
        assert ours.decode(ids, skip_special_tokens=False) == text
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip)


@pytest.mark.parametrize("kwargs", [
    {}, {"add_generation_prompt": False}, {"sep_token": "<mask:0>"}, {"cls_token": "", "unused_flag": True},
])
def test_chat_template_equals_paddleformers(pair, kwargs):
    ours, ref = pair
    for messages in (MESSAGES, MESSAGES[1:2]):
        expected = ref.apply_chat_template(messages, tokenize=False, **kwargs)
        assert ours.apply_chat_template(messages, **kwargs) == expected


def test_ids_past_the_vocabulary_decode_to_nothing(pair):
    ours, _ = pair
    hello = ours.encode("hello")
    assert ours.decode(hello + [ours.vocab_size + 7] + hello) == "hellohello"


def test_eos_and_special_ids(pair):
    ours, ref = pair
    assert ours.eos_token_id == 2 == ref.eos_token_id
    assert ours.eos_token_ids == (2, ours.encode("<|end_of_sentence|>")[0])  # generation_config order
    assert ours.all_special_ids == sorted(ref.all_special_ids)


def test_template_features_and_errors(tiny_model, tmp_path):
    tok = Tokenizer.from_pretrained(tiny_model)
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "<b>"}],
        chat_template="{% for m in messages %}{{ m | tojson }}{% endfor %}{{ bos_token }}",
    )
    assert rendered == '{"role": "user", "content": "<b>"}<s>'  # no HTML escaping, like HF
    with pytest.raises(TokenizerError, match="chat template failed: no system role"):
        tok.apply_chat_template(MESSAGES, chat_template="{{ raise_exception('no system role') }}")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    cfg = json.loads((broken / "tokenizer_config.json").read_text())
    del cfg["chat_template"]
    (broken / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(TokenizerError, match="no chat_template"):
        Tokenizer.from_pretrained(broken).apply_chat_template(MESSAGES)
    (broken / "chat_template.jinja").write_text("{{ messages[0]['content'] }}!")
    assert Tokenizer.from_pretrained(broken).apply_chat_template(MESSAGES) == "be brief!"
    (broken / "chat_template.jinja").unlink()
    cfg["chat_template"] = [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    (broken / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert Tokenizer.from_pretrained(broken).apply_chat_template(MESSAGES) == "D"
    (broken / "tokenizer.model").unlink()
    with pytest.raises(TokenizerError, match="neither tokenizer.model nor tokenizer.json"):
        Tokenizer.from_pretrained(broken)


def test_tokenizer_json_only_directory(pair, tiny_model, tmp_path):
    """Models that ship only tokenizer.json (Qwen2, Llama 3) go through HF `tokenizers`;
    the file here is paddleformers' own export of the same tokenizer."""
    ours, ref = pair
    json_only = tmp_path / "json_only"
    shutil.copytree(tiny_model, json_only)
    ref.backend_tokenizer.save(str(json_only / "tokenizer.json"))
    (json_only / "tokenizer.model").unlink()
    tok = Tokenizer.from_pretrained(json_only)
    assert type(tok.backend).__name__ == "_HFTokenizers"
    for text in TEXTS + random_texts(40):
        ids = tok.encode(text)
        assert ids == ours.encode(text), text
        for skip in (True, False):
            assert tok.decode(ids, skip_special_tokens=skip) == ours.decode(ids, skip_special_tokens=skip)
    assert tok.apply_chat_template(MESSAGES) == ours.apply_chat_template(MESSAGES)
    assert tok.eos_token_ids == ours.eos_token_ids and tok.all_special_ids == ours.all_special_ids


@pytest.mark.parametrize("text", ["hello world", "User: 你好，世界 émoji 🤖 ok", "  two  spaces\nand a newline"])
def test_token_bytes_spell_the_text(pair, text):
    ours, _ = pair
    ids = ours.encode(text, add_special_tokens=False)
    data = b"".join(ours.token_bytes(i) for i in ids)
    assert data.decode() in (ours.decode(ids), " " + ours.decode(ids))  # decode drops the dummy-prefix space


def test_partial_utf8_tokens_keep_their_bytes(pair):
    ours, _ = pair
    pieces = [ours.token_bytes(i) for i in ours.encode("🤖", add_special_tokens=False)]
    assert b"".join(pieces).removeprefix(b" ") == "🤖".encode()
    assert any(len(p) == 1 and p[0] >= 0x80 for p in pieces)  # byte-fallback: not text on its own


def test_byte_fallback_and_byte_level_pieces():
    from worker.token_bytes import piece_bytes, token_text

    assert piece_bytes("<0xE4>", byte_level=False) == b"\xe4"
    assert piece_bytes("\u2581hello", byte_level=False) == b" hello"
    assert piece_bytes("\u0120hello\u010a", byte_level=True) == b" hello\n"  # GPT-2's Ġ and Ċ
    assert token_text(b"\xe4\xbd") == "bytes:\\xe4\\xbd" and token_text(" 你".encode()) == " 你"
