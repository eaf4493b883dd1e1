"""Guided decoding end to end on the bundled tiny model, whose weights are random: its text is
noise, so only the constraint can make an output valid. JSON schemas, regexes and choices
through `LLM.generate` and `LLM.chat`, n=2, preemption, chunked prefill and prefix caching."""

import json
import re

import jsonschema
import llguidance
import pytest

from tests.e2e.conftest import random_prompts
from worker import LLM, GuidedDecodingParams, SamplingParams

SHORT = {"type": "string", "maxLength": 8}
SCHEMAS = [
    {"type": "object", "properties": {"name": SHORT, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
     "required": ["name", "age"], "additionalProperties": False},
    {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False},
    {"type": "object", "properties": {"label": {"enum": ["spam", "ham", "unsure"]}}, "required": ["label"],
     "additionalProperties": False},
    {"type": "object", "properties": {"score": {"type": "number", "minimum": -1, "maximum": 1}},
     "required": ["score"], "additionalProperties": False},
    {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"}},
     "required": ["code"], "additionalProperties": False},
    {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 9}, "minItems": 2, "maxItems": 4},
    {"type": "object", "properties": {"tags": {"type": "array", "items": SHORT, "maxItems": 3}},
     "required": ["tags"], "additionalProperties": False},
    {"type": "object", "properties": {"user": {"type": "object", "properties": {"id": {"type": "integer"},
     "email": {"type": "string", "pattern": "^[a-z]{1,6}@[a-z]{1,6}\\.com$"}}, "required": ["id", "email"],
     "additionalProperties": False}}, "required": ["user"], "additionalProperties": False},
    {"type": "object", "properties": {"kind": {"const": "point"}, "x": {"type": "integer", "maximum": 99},
     "y": {"type": "integer", "minimum": -9, "maximum": 9}},
     "required": ["kind", "x", "y"], "additionalProperties": False},
    {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "string", "enum": ["none"]}]},
    {"type": "object", "properties": {"value": {"type": ["integer", "null"], "maximum": 999}}, "required": ["value"],
     "additionalProperties": False},
    {"$defs": {"item": {"type": "object", "properties": {"sku": SHORT, "qty": {"type": "integer", "minimum": 1,
     "maximum": 99}}, "required": ["sku", "qty"], "additionalProperties": False}},
     "type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "maxItems": 2}},
     "required": ["items"], "additionalProperties": False},
    {"type": "string", "enum": ["north", "south", "east", "west"]},
    {"type": "object", "properties": {"date": {"type": "string", "pattern": "^20[0-9]{2}-[01][0-9]-[0-3][0-9]$"}},
     "required": ["date"], "additionalProperties": False},
    {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "object", "properties":
     {"c": {"type": "integer", "exclusiveMinimum": 0, "maximum": 5}}, "required": ["c"], "additionalProperties": False}},
     "required": ["b"], "additionalProperties": False}}, "required": ["a"], "additionalProperties": False},
    {"type": "object", "properties": {"ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}},
     "required": ["ratio"], "additionalProperties": False},
    {"type": "array", "prefixItems": [{"type": "string", "maxLength": 4}, {"type": "integer", "maximum": 99}],
     "items": False, "minItems": 2},
    {"type": "object", "properties": {"name": SHORT, "nick": SHORT}, "required": ["name"], "additionalProperties": False},
    {"type": "object", "properties": {"matrix": {"type": "array", "maxItems": 2, "items": {"type": "array",
     "maxItems": 2, "items": {"type": "integer", "minimum": 0, "maximum": 3}}}}, "required": ["matrix"],
     "additionalProperties": False},
    {"type": "object", "properties": {"status": {"enum": ["open", "closed"]}, "count": {"type": "integer",
     "minimum": 10, "maximum": 20}, "note": {"type": "string", "minLength": 2, "maxLength": 5}},
     "required": ["status", "count", "note"], "additionalProperties": False},
]
REGEXES = [r"[a-z]{3,8}-[0-9]{2,4}", r"(yes|no), because [a-z ]{1,20}\.", r"\(\d{3}\) \d{3}-\d{4}", r"[A-F0-9]{8}"]
CHOICES = ["positive", "negative", "neutral", "a \"quoted\" answer"]


@pytest.fixture(scope="module")
def llm(tiny_dir):
    return LLM(model=str(tiny_dir), max_model_len=512, max_num_seqs=32)


def guided(seed=None, max_tokens=128, **constraint) -> SamplingParams:
    temperature = 0.0 if seed is None else 1.0
    return SamplingParams(temperature=temperature, seed=seed, max_tokens=max_tokens,
                          guided_decoding=GuidedDecodingParams(**constraint))


def test_every_json_schema_output_parses_and_validates(llm):
    params = [guided(seed=i, json=schema) for i, schema in enumerate(SCHEMAS)]
    outputs = llm.generate([f"Answer in JSON #{i}" for i in range(len(SCHEMAS))], params, use_tqdm=False)
    stopped = [(o.outputs[0], s) for o, s in zip(outputs, SCHEMAS) if o.outputs[0].finish_reason == "stop"]
    # Unbounded numbers may run on in random digits until max_tokens; the rest must end.
    assert len(stopped) >= len(SCHEMAS) - 2, [o.outputs[0].text for o in outputs]
    for out, schema in stopped:
        jsonschema.validate(json.loads(out.text), schema)


def test_json_object_is_any_json_object(llm):
    # The random model's strings rarely end, so an output cut by max_tokens is checked too:
    # a fresh matcher must take all of its tokens (it is a prefix of some JSON object).
    params = [guided(seed=i, json_object=True, max_tokens=64) for i in range(4)] + [guided(json={"type": "object",
              "properties": {"k": {"type": "integer"}}, "required": ["k"], "additionalProperties": False})]
    outputs = llm.generate(["Some JSON"] * len(params), params, use_tqdm=False)
    for out, sp in zip(outputs, params):
        completion = out.outputs[0]
        if completion.finish_reason == "stop":
            assert isinstance(json.loads(completion.text), dict)
        matcher = llguidance.LLMatcher(llm.engine.guided.ll_tokenizer, sp.guided_decoding.compiled)
        assert completion.text.startswith("{") and matcher.validate_tokens(completion.token_ids) == len(completion.token_ids)
    assert outputs[-1].outputs[0].finish_reason == "stop"


def test_regex_outputs_match(llm):
    params = [guided(seed=i, regex=rx) for i, rx in enumerate(REGEXES)] + [guided(regex=rx) for rx in REGEXES]
    outputs = llm.generate(["A line"] * len(params), params, use_tqdm=False)
    for out, rx in zip(outputs, REGEXES + REGEXES):
        assert out.outputs[0].finish_reason == "stop" and re.fullmatch(rx, out.outputs[0].text), out.outputs[0].text


def test_choice_returns_one_of_the_choices(llm):
    params = [guided(seed=i, choice=CHOICES) for i in range(8)] + [guided(choice=CHOICES)]
    outputs = llm.generate([f"Classify {i}" for i in range(9)], params, use_tqdm=False)
    assert all(o.outputs[0].text in CHOICES and o.outputs[0].finish_reason == "stop" for o in outputs)
    assert len({o.outputs[0].text for o in outputs}) > 1, "sampling should reach more than one choice"


@pytest.mark.parametrize("grammar", [
    'start: WORD ("," WORD)*\nWORD: /[a-z]{2,5}/',  # Lark
    'root ::= word ("," word)*\nword ::= [a-z] [a-z] [a-z]? [a-z]? [a-z]?',  # GBNF
])
def test_grammar_outputs_are_in_the_language(llm, grammar):
    params = [guided(seed=i, grammar=grammar, max_tokens=48) for i in range(4)]
    outputs = llm.generate(["Words"] * 4, params, use_tqdm=False)
    for out in outputs:
        text = out.outputs[0].text
        complete = out.outputs[0].finish_reason == "stop"
        assert re.fullmatch(r"[a-z]{2,5}(,[a-z]{2,5})*" if complete else r"([a-z]{1,5},)*[a-z]{0,5}", text), text


def test_n2_gives_two_valid_completions(llm):
    schema = SCHEMAS[0]
    params = SamplingParams(n=2, temperature=1.0, seed=11, max_tokens=128, guided_decoding=GuidedDecodingParams(json=schema))
    (out,) = llm.generate(["Two people"], params, use_tqdm=False)
    assert [c.finish_reason for c in out.outputs] == ["stop", "stop"]
    texts = [c.text for c in out.outputs]
    for text in texts:
        jsonschema.validate(json.loads(text), schema)
    assert texts[0] != texts[1]


def test_chat_takes_a_constraint(llm):
    (out,) = llm.chat([{"role": "user", "content": "Classify: great!"}], guided(choice=CHOICES), use_tqdm=False)
    assert out.outputs[0].text in CHOICES


def test_max_tokens_cuts_a_constrained_output_and_says_length(llm):
    (full,) = llm.generate(["Cut me"], guided(json=SCHEMAS[0]), use_tqdm=False)
    (cut,) = llm.generate(["Cut me"], guided(json=SCHEMAS[0], max_tokens=3), use_tqdm=False)
    assert cut.outputs[0].finish_reason == "length" and len(cut.outputs[0].token_ids) == 3
    assert full.outputs[0].text.startswith(cut.outputs[0].text)


def test_a_stop_string_ends_a_constrained_output(llm):
    (full,) = llm.generate(["Stop me"], guided(json=SCHEMAS[0]), use_tqdm=False)
    sp = guided(json=SCHEMAS[0])
    sp.stop = ['"age"']
    (cut,) = llm.generate(["Stop me"], sp, use_tqdm=False)
    assert cut.outputs[0].finish_reason == "stop"
    assert cut.outputs[0].text == full.outputs[0].text[: full.outputs[0].text.index('"age"')]


REGIMES = {
    # 16 blocks of 16 tokens cannot hold 8 sequences of ~130 tokens: preemption by recompute.
    "preemption": dict(block_size=16, num_gpu_blocks_override=16, max_model_len=256),
    "chunked-prefill": dict(block_size=16, max_num_batched_tokens=24, max_model_len=256),
}


def _mixed_requests():
    """Constrained and free greedy requests over prompts sharing a prefix (prefix cache hits)."""
    shared = random_prompts(3, 1, [48])[0]
    prompts = [shared + tail for tail in random_prompts(4, 8, [60, 70, 52, 81])]
    constrained = [guided(json=SCHEMAS[i % 4]) if i % 3 else guided(regex=REGEXES[0]) for i in range(4)]
    free = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    return prompts, [constrained[i // 2] if i % 2 == 0 else free for i in range(8)]


def run_engine(llm, prompts, params):
    """Like LLM.generate, but keeps the sequences to show how they were scheduled."""
    engine, seqs, finished = llm.engine, [], {}
    for i, (prompt, sp) in enumerate(zip(prompts, params)):
        engine.add_request(str(i), None, sp, prompt_token_ids=prompt)
        seqs += engine.requests[str(i)].seqs
    while engine.has_unfinished_requests():
        finished.update((out.request_id, out) for out in engine.step())
    return [finished[str(i)] for i in range(len(prompts))], seqs


@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_mixed_batch_is_valid_and_unchanged_under_preemption_chunks_and_prefix_caching(tiny_dir, regime):
    prompts, params = _mixed_requests()
    roomy = LLM(model=str(tiny_dir), max_model_len=256, block_size=16, max_num_seqs=8)
    expected = roomy.generate(prompts, params, use_tqdm=False)
    free_only = roomy.generate(prompts[1::2], params[1], use_tqdm=False)
    outputs, seqs = run_engine(LLM(model=str(tiny_dir), max_num_seqs=8, **REGIMES[regime]), prompts, params)
    assert [o.outputs[0].token_ids for o in outputs] == [o.outputs[0].token_ids for o in expected]
    assert [o.outputs[0].token_ids for o in outputs[1::2]] == [o.outputs[0].token_ids for o in free_only]
    for out, sp in zip(outputs[0::2], params[0::2]):
        text, constraint = out.outputs[0].text, sp.guided_decoding
        assert out.outputs[0].finish_reason == "stop", text
        if constraint.json is not None:
            jsonschema.validate(json.loads(text), constraint.json)
        else:
            assert re.fullmatch(constraint.regex, text), text
    assert max(o.num_cached_tokens for o in outputs) >= 32, "the shared prefix should hit the cache"
    if regime == "preemption":
        assert any(s.num_preemptions for s in seqs[0::2]), "no constrained sequence was preempted"
    else:
        assert max(map(len, prompts)) > REGIMES[regime]["max_num_batched_tokens"]
