"""The offline API end to end on the bundled tiny model: prefix caching, sampling parameters
that need the whole engine (seeds in a batch, stop strings, n, min_tokens, EOS), and chat."""

import json
import shutil

import pytest

from tests.e2e.conftest import random_prompts
from worker import LLM, SamplingParams
from worker.engine.request_errors import PromptTooLongError

GREEDY = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)


@pytest.fixture(scope="module")
def llm(tiny_dir):
    return LLM(model=str(tiny_dir), max_model_len=512, max_num_seqs=16)


def test_prefix_cache_hit_reports_cached_tokens_and_same_output(tiny_dir, llm):
    shared = random_prompts(5, 1, [2 * 64])[0]  # two full blocks of the default block size 64
    first, second = shared + [101, 102, 103], shared + [201, 202]
    llm.generate([first], GREEDY, use_tqdm=False)
    (hit,) = llm.generate([second], GREEDY, use_tqdm=False)
    assert hit.num_cached_tokens >= 128
    uncached = LLM(model=str(tiny_dir), max_model_len=512, enable_prefix_caching=False)
    (miss,) = uncached.generate([second], GREEDY, use_tqdm=False)
    assert miss.num_cached_tokens == 0
    assert hit.outputs[0].token_ids == miss.outputs[0].token_ids


def test_results_in_input_order(llm):
    prompts = random_prompts(7, 6, [90, 4, 50, 7, 30, 2])
    outputs = llm.generate(prompts, GREEDY, use_tqdm=False)
    assert [o.prompt_token_ids for o in outputs] == prompts
    singles = [llm.generate([p], GREEDY, use_tqdm=False)[0] for p in prompts]
    assert [o.outputs[0].token_ids for o in outputs] == [o.outputs[0].token_ids for o in singles]


def test_seed_gives_same_text_alone_and_in_a_batch_of_16(llm):
    seeded = SamplingParams(temperature=1.0, top_p=0.9, seed=1234, max_tokens=16, ignore_eos=True)
    prompt = "Tell me a fun fact."
    (alone,) = llm.generate([prompt], seeded, use_tqdm=False)
    others = [SamplingParams(temperature=1.0, max_tokens=16, ignore_eos=True) for _ in range(15)]
    batch = llm.generate([f"Other prompt {i}" for i in range(15)] + [prompt], others + [seeded], use_tqdm=False)
    assert batch[-1].outputs[0].token_ids == alone.outputs[0].token_ids
    assert batch[-1].outputs[0].text == alone.outputs[0].text
    unseeded = llm.generate([prompt] * 4, SamplingParams(temperature=1.0, max_tokens=16, ignore_eos=True), use_tqdm=False)
    assert len({tuple(o.outputs[0].token_ids) for o in unseeded}) > 1, "unseeded sampling should vary"


def test_n_returns_n_completions(llm):
    (out,) = llm.generate(["A poem"], SamplingParams(n=3, temperature=1.0, seed=7, max_tokens=8, ignore_eos=True), use_tqdm=False)
    assert [c.index for c in out.outputs] == [0, 1, 2]
    assert all(len(c.token_ids) == 8 and c.finish_reason == "length" for c in out.outputs)
    assert len({tuple(c.token_ids) for c in out.outputs}) > 1


def test_top_k_1_equals_greedy(llm):
    prompt = "Tell me a fun fact."
    (greedy,) = llm.generate([prompt], GREEDY, use_tqdm=False)
    (top1,) = llm.generate([prompt], SamplingParams(temperature=1.0, top_k=1, max_tokens=12, ignore_eos=True), use_tqdm=False)
    assert top1.outputs[0].token_ids == greedy.outputs[0].token_ids


def test_stop_string_cuts_text_and_sets_finish_reason(llm):
    prompt = "Write me a poem about large language model."
    (free,) = llm.generate([prompt], SamplingParams(temperature=0, max_tokens=24, ignore_eos=True), use_tqdm=False)
    text = free.outputs[0].text
    assert len(text) >= 4, f"need some text to cut: {text!r}"
    stop = text[2:4]
    (cut,) = llm.generate([prompt], SamplingParams(temperature=0, max_tokens=24, ignore_eos=True, stop=[stop]), use_tqdm=False)
    assert cut.outputs[0].text == text[: text.index(stop)]
    assert cut.outputs[0].finish_reason == "stop"
    assert len(cut.outputs[0].token_ids) < len(free.outputs[0].token_ids)


def test_max_tokens_is_honest_length(llm):
    (out,) = llm.generate(["Hello"], SamplingParams(temperature=0, max_tokens=5, ignore_eos=True), use_tqdm=False)
    assert len(out.outputs[0].token_ids) == 5 and out.outputs[0].finish_reason == "length"


def test_logprobs_hold_top_k_and_sampled_token(llm):
    (out,) = llm.generate(["Hello"], SamplingParams(temperature=0, max_tokens=4, logprobs=3, ignore_eos=True), use_tqdm=False)
    completion = out.outputs[0]
    assert len(completion.logprobs) == 4
    for token, entry in zip(completion.token_ids, completion.logprobs):
        assert token in entry and len(entry) >= 3
        assert entry[token] == max(entry.values())  # greedy picks the most probable token
        assert all(v <= 0.0 for v in entry.values())
    assert completion.cumulative_logprob == pytest.approx(sum(e[t] for t, e in zip(completion.token_ids, completion.logprobs)))


@pytest.fixture(scope="module")
def eos_model(tiny_dir, tmp_path_factory, llm):
    """The tiny model with its EOS set to the token greedy decoding picks first for PROMPT."""
    (out,) = llm.generate([EOS_PROMPT], GREEDY, use_tqdm=False)
    first = out.outputs[0].token_ids[0]
    path = tmp_path_factory.mktemp("eos") / "tiny"
    shutil.copytree(tiny_dir, path)
    for name in ("generation_config.json", "config.json"):
        config = json.loads((path / name).read_text())
        config["eos_token_id"] = first
        (path / name).write_text(json.dumps(config))
    return LLM(model=str(path), max_model_len=512), first


EOS_PROMPT = "Tell me a fun fact."


def test_eos_stops_and_min_tokens_holds_it_back(eos_model):
    llm, eos = eos_model
    (stopped,) = llm.generate([EOS_PROMPT], SamplingParams(temperature=0, max_tokens=10), use_tqdm=False)
    assert stopped.outputs[0].token_ids == [eos] and stopped.outputs[0].finish_reason == "stop"
    (held,) = llm.generate([EOS_PROMPT], SamplingParams(temperature=0, max_tokens=10, min_tokens=4), use_tqdm=False)
    assert len(held.outputs[0].token_ids) >= 4
    assert eos not in held.outputs[0].token_ids[:4]
    (ignored,) = llm.generate([EOS_PROMPT], SamplingParams(temperature=0, max_tokens=10, ignore_eos=True), use_tqdm=False)
    assert len(ignored.outputs[0].token_ids) == 10 and ignored.outputs[0].finish_reason == "length"


def test_stop_token_ids_stop_generation(llm):
    (free,) = llm.generate([EOS_PROMPT], GREEDY, use_tqdm=False)
    third = free.outputs[0].token_ids[2]
    (out,) = llm.generate([EOS_PROMPT], SamplingParams(temperature=0, max_tokens=12, stop_token_ids=[third]), use_tqdm=False)
    assert out.outputs[0].token_ids == free.outputs[0].token_ids[: free.outputs[0].token_ids.index(third) + 1]
    assert out.outputs[0].finish_reason == "stop"


def test_chat_renders_template_with_kwargs_in_input_order(llm):
    tokenizer = llm.get_tokenizer()
    conversations = [
        [{"role": "system", "content": "I'm a helpful AI assistant."}, {"role": "user", "content": "First?"}],
        [{"role": "user", "content": "Second, a longer question than the first one?"}],
    ]
    outputs = llm.chat(conversations, GREEDY, use_tqdm=False, chat_template_kwargs={"cls_token": "<s>"})
    for conversation, out in zip(conversations, outputs):
        rendered = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, cls_token="<s>")
        assert out.prompt == rendered
        assert rendered.startswith("<s>") and rendered.endswith("Assistant: ")
        assert conversation[-1]["content"] in rendered
        assert out.prompt_token_ids == tokenizer.encode(rendered)
    (default,) = llm.chat(conversations[:1], GREEDY, use_tqdm=False)
    assert default.prompt.startswith("<|begin_of_sentence|>")


def test_invalid_requests_raise_value_errors_naming_the_problem(llm):
    with pytest.raises(PromptTooLongError, match="prompt has 600 tokens, max_model_len is"):
        llm.generate([[5] * 600], GREEDY, use_tqdm=False)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)


def test_bad_words_are_never_generated(llm):
    tokenizer = llm.get_tokenizer()
    (free,) = llm.generate([EOS_PROMPT], GREEDY, use_tqdm=False)
    words = [tokenizer.decode([t]).strip() for t in free.outputs[0].token_ids]
    word = next(w for w in words if w and len(tokenizer.encode(w, add_special_tokens=False)) == 1)
    encodings = [tokenizer.encode(v, add_special_tokens=False) for v in (word, " " + word)]
    banned = {ids[0] for ids in encodings if len(ids) == 1}
    (out,) = llm.generate([EOS_PROMPT], SamplingParams(temperature=0, max_tokens=12, ignore_eos=True, bad_words=[word]), use_tqdm=False)
    assert not banned & set(out.outputs[0].token_ids)
    assert out.outputs[0].token_ids != free.outputs[0].token_ids
